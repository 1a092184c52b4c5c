"""The profile study: the tutorial's variants give eigdiff's gradient; the command runs end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

import eigdiff
from eigdiff.__main__ import main
from eigdiff.profiling import study
from eigdiff.profiling.variants import VARIANTS


@pytest.mark.parametrize("name", sorted(VARIANTS))
@pytest.mark.parametrize("top_k", [None, 1, 3])
def test_variants_give_the_core_gradient(name: str, top_k: int | None) -> None:
    X = study.make_input(3, 6, torch.float64, "cpu").requires_grad_()
    Y_ref = eigdiff.eigh(X, top_k=top_k)[1]
    V = torch.randn(Y_ref.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    (G_ref,) = torch.autograd.grad(Y_ref, X, V)
    Y = VARIANTS[name].eigenvectors(X, top_k)
    torch.testing.assert_close(Y, Y_ref, rtol=0, atol=0)
    (G,) = torch.autograd.grad(Y, X, V)
    torch.testing.assert_close(G, G_ref, rtol=0, atol=1e-12)


def test_peak_memory_counts_live_temporaries() -> None:
    a = torch.ones(1000, dtype=torch.float64)

    def two_live() -> torch.Tensor:
        b = a * 2  # 8000 bytes
        c = b + 1  # 8000 more while b is alive
        return c.sum()

    def one_at_a_time() -> None:
        for _ in range(3):
            (a * 2).sum()

    assert study.peak_memory(two_live, torch.device("cpu")) >= 16000
    assert 8000 <= study.peak_memory(one_at_a_time, torch.device("cpu")) < 16000


def test_profile_command_writes_table_json_and_chart(tmp_path, capsys) -> None:
    out_json, out_png = tmp_path / "p.json", tmp_path / "p.png"
    code = main(
        [
            "profile",
            "--batch",
            "2",
            "--size",
            "6",
            "--iters",
            "4",
            "--no-progress",
            "--json",
            str(out_json),
            "--plot",
            str(out_png),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    for method in study.STUDY_METHODS:
        assert method in printed
    data = json.loads(out_json.read_text())
    assert [r["method"] for r in data["results"]] == list(study.STUDY_METHODS)
    assert all(r["median_ms"] > 0 and r["peak_bytes"] >= 0 for r in data["results"])
    assert data["results"][0]["times_forward"] == 1.0
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_profile_sweep_runs(tmp_path) -> None:
    rows = study.run_sweep(
        dtype=torch.float32,
        device="cpu",
        top_k=2,
        sizes=(4, 8),
        batches=(1, 2),
        rounds=1,
        target_ms=0.1,
        show_progress=False,
    )
    assert {(r["batch"], r["size"]) for r in rows} == {(1, 4), (1, 8), (2, 4), (2, 8)}
    assert len({r["series"] for r in rows}) == 6
    study.plot_sweep(rows, str(tmp_path / "s.png"), "test")
    assert (tmp_path / "s.png").stat().st_size > 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--batch", "0"], "--batch must be at least 1"),
        (["--top-k", "40"], "--top-k must be in"),
        (["--methods", "v1,v9"], "--methods takes"),
        (["--device", "cuda"], "no CUDA device"),
    ],
)
def test_profile_argument_errors(argv: list[str], message: str) -> None:
    if argv[:2] == ["--device", "cuda"] and torch.cuda.is_available():
        pytest.skip("a CUDA device is available here")
    with pytest.raises(SystemExit, match=message):
        main(["profile", "--no-progress", *argv])


def test_python_dash_m_entry_point() -> None:
    result = subprocess.run([sys.executable, "-m", "eigdiff", "profile", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "--sweep" in result.stdout
