"""The documentation builds without a warning (sphinx-build -W), so it cannot rot."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_sphinx_build_without_warnings(tmp_path: Path) -> None:
    missing = [m for m in ("sphinx", "myst_parser", "furo", "numpydoc") if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"docs dependencies not installed: {missing} (pip install 'eigdiff[docs]')")
    pytest.importorskip("torch", reason="the API page documents the torch adapter, whose autodoc imports torch")
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(DOCS), str(tmp_path / "html")],
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
        "examples",
    )
    for page in pages:
        assert (tmp_path / "html" / f"{page}.html").exists(), page
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


def test_docs_static_artifacts_exist() -> None:
    """The figures the pages show are committed (regenerate them with the commands the pages give)."""
    for name in ("degeneracy.png", "profile_cpu.png", "sweep_cpu.png"):
        assert (DOCS / "_static" / name).stat().st_size > 0, name


@pytest.mark.parametrize("page", ["README.md", "docs/getting-started.md", "docs/matrix-functions.md"])
def test_python_snippets_run(page: str) -> None:
    """Every ```python block of the README and the getting-started page runs as written."""
    import re

    pytest.importorskip("torch")
    text = (DOCS.parent / page).read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, page
    for block in blocks:
        exec(compile(block, page, "exec"), {})
