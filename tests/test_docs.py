"""The documentation builds without a warning (sphinx-build -W), so it cannot rot."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_sphinx_build_without_warnings(tmp_path: Path) -> None:
    modules = ("sphinx", "myst_parser", "furo", "numpydoc", "sphinx_gallery", "sphinx-mathjax-offline")
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"docs dependencies not installed: {missing} (pip install 'eigdiff[docs]')")
    pytest.importorskip("torch", reason="the API page documents the torch adapter, whose autodoc imports torch")
    pytest.importorskip("jax", reason="the gallery runs the JAX example")
    pytest.importorskip("distributed", reason="the gallery runs the Dask example")
    # The gallery executes only the examples whose figures are checked below: test_examples.py runs
    # every example as the gallery does (--quick, a figure to a file) and checks its result and its
    # figure, so running the rest here again (the 5·10⁴-node sparse one alone, ~27 s) adds no check.
    ran = ("covariance_pooling", "spectral_clustering", "numpy_spectral_gap")
    pattern = f"sphinx_gallery_conf.filename_pattern=/({'|'.join(ran)})\\.py$"
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-D", pattern, "-b", "html", str(DOCS)]
        + [str(tmp_path / "html")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    pages = (
        "index",
        "getting-started",
        "derivation",
        "api",
        "backends",
        "degeneracy",
        "matrix-functions",
        "performance",
        "distributed",
        "sparse",
        "examples",
    )
    for page in pages:
        assert (tmp_path / "html" / f"{page}.html").exists(), page
    for example in ran:  # the gallery ran them
        page = (tmp_path / "html" / "auto_examples" / f"{example}.html").read_text()
        assert f"sphx_glr_{example}_001.png" in page, example
    _assert_offline(tmp_path / "html")
    footer = (tmp_path / "html" / "index.html").read_text()
    assert re.search(r"Copyright &#169; 20\d\d, the eigdiff developers", footer)
    api = (tmp_path / "html" / "api.html").read_text()
    for name in (
        "eigdiff.eigh",
        "eigdiff.backward",
        "eigdiff.vjp",
        "eigdiff.jvp",
        "EigenDecompositionFcn",
        "eigdiff.sqrtm",
    ):
        assert name in api, name


def _assert_offline(html: Path) -> None:
    """No page loads a script, style sheet, image or frame from another host (links may point out)."""
    loads = re.compile(
        r"<(?:script|img|iframe)[^>]*\bsrc=\"(https?:)?//|<link[^>]*rel=\"stylesheet\"[^>]*href=\"(https?:)?//"
    )
    pages = list(html.rglob("*.html"))
    assert len(pages) > 10
    for page in pages:
        match = loads.search(page.read_text())
        assert match is None, f"{page.relative_to(html)} loads {match.group(0)!r} from another host"
    for sheet in html.rglob("*.css"):
        assert not re.search(r"url\(['\"]?(https?:)?//", sheet.read_text()), sheet
    math = (html / "degeneracy.html").read_text()
    assert 'src="_static/mathjax/tex-chtml.js"' in math and (html / "_static" / "mathjax" / "tex-chtml.js").exists()


def test_documented_benchmark_command_runs() -> None:
    """The performance page's `python -m pytest benchmarks --benchmark-only` works in the Quickstart
    environment (run here with one round per benchmark, so that it takes seconds)."""
    pytest.importorskip("torch")
    pytest.importorskip("pytest_benchmark")
    page = (DOCS / "performance.md").read_text()
    assert "python -m pytest benchmarks --benchmark-only" in page
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(DOCS.parent / "benchmarks"),
            "--benchmark-only",
            "-q",
            "-p",
            "no:cacheprovider",
        ]
        + ["--benchmark-min-rounds=1", "--benchmark-max-time=0.00001", "--benchmark-warmup=off"],
        capture_output=True,
        text=True,
        check=False,
        cwd=DOCS.parent,
        # run under pytest-xdist (`-n auto`), the worker's variables would make pytest-benchmark
        # disable itself in the child, which then refuses --benchmark-only
        env={name: value for name, value in os.environ.items() if not name.startswith("PYTEST_XDIST")},
    )
    assert result.returncode == 0 and " passed" in result.stdout, result.stdout[-2000:] + result.stderr[-2000:]


def test_docs_static_artifacts_exist() -> None:
    """The figures the pages show are committed (regenerate them with the commands the pages give)."""
    for name in ("degeneracy.png", "profile_cpu.png", "sweep_cpu.png"):
        assert (DOCS / "_static" / name).stat().st_size > 0, name


@pytest.mark.parametrize(
    "page",
    [
        "README.md",
        "docs/getting-started.md",
        "docs/matrix-functions.md",
        "docs/distributed.md",
        "docs/partial-spectra.md",
        "docs/sparse.md",
    ],
)
def test_python_snippets_run(page: str) -> None:
    """Every ```python block of the README and the getting-started page runs as written."""
    import re

    pytest.importorskip("torch")
    if page == "docs/distributed.md":
        pytest.importorskip("distributed", reason="the page's snippets use Dask: pip install 'eigdiff[dask]'")
    text = (DOCS.parent / page).read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, page
    for block in blocks:
        if "import dask" in block and importlib.util.find_spec("distributed") is None:
            continue  # the Dask snippet needs pip install 'eigdiff[dask]'; the others still run
        exec(compile(block, page, "exec"), {})
