"""The code base stays ruff-clean, ruff-formatted and mypy-clean (configuration in pyproject.toml)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PATHS = ["eigdiff", "tests", "benchmarks", "examples", "conftest.py"]


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["check", "format"])
def test_ruff(command: list[str]) -> None:
    # --no-cache: the two runs may be concurrent (pytest-xdist workers) and would share .ruff_cache
    if importlib.util.find_spec("ruff") is None:
        pytest.skip("ruff is not installed (pip install 'eigdiff[test]')")
    result = subprocess.run(
        [sys.executable, "-m", "ruff", *command, "--no-cache", *PATHS],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_on_the_package() -> None:
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (pip install 'eigdiff[test]')")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "eigdiff"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
