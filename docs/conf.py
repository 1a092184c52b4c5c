"""Sphinx configuration: MyST Markdown, furo, numpydoc, MathJax; built with -W in the tests."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import eigdiff  # noqa: E402
from eigdiff.backends import support_table  # noqa: E402

project = "eigdiff"
author = "the eigdiff developers"
release = eigdiff.__version__
extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.mathjax", "numpydoc"]
myst_enable_extensions = ["dollarmath", "amsmath"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
html_theme = "furo"
html_static_path = ["_static"]
html_title = f"eigdiff {release}"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
autodoc_typehints = "none"
suppress_warnings = ["myst.header"]

# The backends table is generated from eigdiff.backends.SUPPORT (itself checked by the tests).
generated = HERE / "_generated"
generated.mkdir(exist_ok=True)
(generated / "backends_table.md").write_text(support_table() + "\n")
