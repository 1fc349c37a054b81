"""Sphinx configuration: the curated documentation site, built offline.

Build (warnings are errors): ``python -m sphinx -W --keep-going -b html docs docs/_build/html``.
The CLI reference (``cli.md``) and the API pages (``api/*.rst``) are generated here from
the typer app and each package's ``__all__``, so they cannot drift from the code.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

import gen_reference  # noqa: E402

from curated import __version__  # noqa: E402

project = "curated"
author = "The curated developers"
copyright = "2026, The curated developers"
release = version = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
myst_heading_anchors = 3
html_theme = "alabaster"
html_static_path: list[str] = []

autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_typehints = "description"
autodoc_member_order = "bysource"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
# Type hints name classes that are documented elsewhere or not at all (numpy, torch);
# an unresolved name in a signature is not a documentation error here.
nitpicky = False
suppress_warnings = ["myst.header"]


def setup(app):  # type: ignore[no-untyped-def]
    gen_reference.write_all(HERE)
