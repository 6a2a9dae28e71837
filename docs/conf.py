"""Sphinx configuration of DENExtractor's documentation: MyST Markdown pages, the furo theme, the command-line
reference generated from the real argument parsers (sphinx-argparse) and the API reference from the docstrings."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "DENExtractor"))

from DENExtractorLib import __version__  # after the path is set

project = "DENExtractor"
author = "DENExtractor contributors"
copyright = "DENExtractor contributors, Apache-2.0"
version = release = __version__

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinxarg.ext"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

# Pages that come from other branches: index.md's toctrees list them, and a page not (yet) in this checkout is left
# out of the toctree instead of failing the build. Every warning is an error (sphinx-build -W).
OPTIONAL_PAGES = ("slicer", "training", "hostile-input", "speed", "toolchain")

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True}

# Options and patterns are meant to be copied: keep "--", "'" and '"' as typed (no en dashes or curly quotes).
smartquotes = False
# Blocks without a language (the commands' usage lines) are shown as typed, not coloured as Python.
highlight_language = "none"

html_theme = "furo"
html_static_path = ["_static"]
html_css_files = ["tables.css"]
html_title = f"DENExtractor {__version__}"


def _leave_out_absent_pages(app, docname: str, source: list[str]) -> None:
    """Drop index.md's toctree entries for optional pages this checkout does not have."""
    if docname != "index":
        return
    absent = {page for page in OPTIONAL_PAGES if not (Path(app.srcdir) / f"{page}.md").is_file()}
    source[0] = "".join(line for line in source[0].splitlines(keepends=True) if line.strip() not in absent)


def setup(app) -> dict:
    """Register the toctree hook."""
    app.connect("source-read", _leave_out_absent_pages)
    return {"parallel_read_safe": True}
