"""Every script in examples/ runs at small size and achieves what it prints."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NEEDS_TORCH = {"pca_layer", "zca_whitening", "spectral_clustering", "point_cloud_normals", "covariance_pooling"}


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_example_is_listed() -> None:
    assert {p.stem for p in EXAMPLES.glob("*.py")} == NEEDS_TORCH | {"numpy_spectral_gap"}


@pytest.mark.parametrize("name", sorted(NEEDS_TORCH | {"numpy_spectral_gap"}))
def test_example_runs_and_improves(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if name in NEEDS_TORCH:
        pytest.importorskip("torch")
    plot = tmp_path / f"{name}.png"
    argv = ["--quick", "--plot", str(plot)]
    result = _load(name).main(argv)
    out = capsys.readouterr().out
    assert "->" in out and f"wrote {plot}" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result["after"] < result["before"], result  # the loss went down
    checks = {
        "pca_layer": lambda r: r["accuracy"] > 0.9,
        "zca_whitening": lambda r: r["off_identity"] < 1e-2,
        "spectral_clustering": lambda r: r["agreement"] > 0.95,
        "numpy_spectral_gap": lambda r: r["gap_after"] > 2 * r["gap_before"],
        "point_cloud_normals": lambda r: r["angle_error_deg"] < 5.0,
        "covariance_pooling": lambda r: r["accuracy"] > 0.95,
    }
    assert checks[name](result), result
