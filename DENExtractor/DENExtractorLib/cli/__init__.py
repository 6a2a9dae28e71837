"""The command line: ``den-extract`` (:mod:`.extract`) and ``den-train`` (:mod:`.train`) over shared options
(:mod:`.options`). ``python -m DENExtractorLib.cli`` runs ``den-extract``."""

from .extract import main

__all__ = ["main"]
