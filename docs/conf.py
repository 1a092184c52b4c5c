"""Sphinx configuration: MyST Markdown, furo, numpydoc, MathJax shipped with the build (offline),
sphinx-gallery for the examples; built with -W in the tests."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import eigdiff  # noqa: E402
from eigdiff.backends import support_table  # noqa: E402

project = "eigdiff"
author = "the eigdiff developers"
copyright = f"2026, {author}"
release = eigdiff.__version__
# "sphinx-mathjax-offline" copies MathJax 3 into the build and points mathjax_path at it, so
# that formulas render without a network (the default loads MathJax from a CDN).
extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]
sys.path.insert(0, str(HERE))
# The gallery runs each example with --quick (what the test suite checks) and shows its figure.
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"\.py$",
    "reset_argv": "_gallery.quick_argv",
    "download_all_examples": False,
    "show_memory": False,
    "write_computation_times": False,  # its page loads a table script from a CDN: not offline
    "image_scrapers": ("matplotlib",),
}
myst_enable_extensions = ["dollarmath", "amsmath"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py", "auto_examples/*.zip"]
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
