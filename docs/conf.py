"""Sphinx configuration of DENExtractor's documentation: MyST Markdown pages, the furo theme, the command-line
reference generated from the real argument parsers (sphinx-argparse) and the API reference from the docstrings."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "DENExtractor"))

from DENExtractorLib import __version__  # noqa: E402  (after the path is set)

project = "DENExtractor"
author = "DENExtractor contributors"
copyright = "DENExtractor contributors, Apache-2.0"  # noqa: A001  (Sphinx's own setting name)
version = release = __version__

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinxarg.ext"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

# The toctree lists some pages by glob so that it builds whether or not each page is in this checkout yet; an empty
# glob is therefore not an error. Every other warning is (sphinx-build -W).
suppress_warnings = ["toc.empty_glob"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": False}

html_theme = "furo"
html_title = f"DENExtractor {__version__}"
pygments_style = "sphinx"
