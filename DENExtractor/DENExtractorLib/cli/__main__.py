"""``python -m DENExtractorLib.cli``: run ``den-extract``."""

import sys

from .extract import main

sys.exit(main())
