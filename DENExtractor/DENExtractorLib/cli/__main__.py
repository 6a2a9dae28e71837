"""``python -m DENExtractorLib.cli``: run ``den-extract``."""

from .extract import console_main

console_main()
