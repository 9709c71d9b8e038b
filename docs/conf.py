"""Sphinx configuration of the documentation site (built by tests/test_docs.py with -W).

    .venv/bin/python -m sphinx -W -b html docs docs/_build/html
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "gen" / "python"), str(Path(__file__).parent / "_ext")]

import vnegov  # noqa: E402

project = "vnegov"
author = "vnegov contributors"
copyright = "vnegov contributors, Apache-2.0"  # noqa: A001
release = vnegov.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx.ext.viewcode",
    "cli_reference",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "decisions/*.md"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
# The narrative pages link to source files of the repository (not part of the site) and use
# their own heading levels: only those two kinds of notice are silenced.
suppress_warnings = ["myst.xref_missing", "myst.header"]

autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_mock_imports: list[str] = []
autoclass_content = "class"

html_theme = "alabaster"
html_title = f"vnegov {release}"
html_theme_options = {"description": "Vietnamese e-government reference implementation"}

doctest_global_setup = "import datetime as dt"
