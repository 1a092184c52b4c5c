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


def test_peak_memory_skips_views_of_existing_tensors_and_counts_numpys_arrays() -> None:
    """Views (detach, transpose, slices) and in-place results allocate nothing and count
    nothing; a NumPy temporary (eigdiff's torch backward runs small work on NumPy views) counts
    its bytes. Python's own objects (the dispatch mode's bookkeeping) add under 16 KiB, against
    the 800 kB each array here would count."""
    import numpy as np

    a = torch.ones(1000, 100, dtype=torch.float64)  # 800,000 bytes, made before the call

    def views() -> None:
        b = a.detach()
        b.mT[:10].add_(0.0)  # in place, on a view of a

    noise = 16384
    assert study.peak_memory(views, torch.device("cpu")) < noise
    assert 800000 <= study.peak_memory(lambda: np.ones(100000).sum(), torch.device("cpu")) < 800000 + noise
    both = lambda: (a * 2) + torch.from_numpy(np.ones((1000, 100)))  # a torch temporary, a NumPy one, the sum
    assert 2400000 <= study.peak_memory(both, torch.device("cpu")) < 2400000 + noise


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
        (["--method", "small", "--size", "4"], "--method small solves M <= 3"),
        (["--method", "subset"], "--method subset computes a window of eigenpairs; give --top-k"),
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


# ---------------------------------------------------------------- what a newcomer meets (issue #17)

_SMALL = ["profile", "--batch", "2", "--size", "6", "--iters", "4", "--no-progress"]


def test_methods_without_forward_get_it_and_a_legend(capsys) -> None:
    assert main([*_SMALL, "--methods", "native,eigdiff"]) == 0
    printed = capsys.readouterr().out
    rows = [line.split()[0] for line in printed.splitlines() if line.split() and line.split()[0] in study.STUDY_METHODS]
    assert rows[:3] == ["forward", "eigdiff", "native"]  # forward added, the table's order kept
    assert "rows after 'forward' are backward times" in printed
    assert "torch's own eigh autograd" in printed


def test_profile_runs_the_small_solver(capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--method small`` reaches eigdiff's forward and the graph its backward runs on."""
    seen = []
    original = eigdiff.eigh
    monkeypatch.setattr(eigdiff, "eigh", lambda X, **kw: seen.append(kw["method"]) or original(X, **kw))
    argv = ["profile", "--batch", "3", "--size", "3", "--iters", "4", "--no-progress", "--method", "small"]
    assert main([*argv, "--methods", "eigdiff"]) == 0
    assert seen and set(seen) == {"small"}
    assert "method=small" in capsys.readouterr().out


@pytest.mark.parametrize("method", ["subset", "krylov"])
def test_profile_runs_the_partial_methods(capsys, monkeypatch: pytest.MonkeyPatch, method: str) -> None:
    """``--method subset`` / ``krylov`` with ``--top-k`` reach eigdiff's forward and its backward."""
    seen = []
    original = eigdiff.eigh
    monkeypatch.setattr(eigdiff, "eigh", lambda X, **kw: seen.append(kw["method"]) or original(X, **kw))
    argv = ["profile", "--batch", "2", "--size", "24", "--top-k", "2", "--iters", "4", "--no-progress"]
    assert main([*argv, "--method", method, "--methods", "eigdiff", "--dtype", "float64"]) == 0
    assert seen and set(seen) == {method}
    assert f"method={method}" in capsys.readouterr().out


def test_help_explains_the_methods() -> None:
    result = subprocess.run([sys.executable, "-m", "eigdiff", "profile", "--help"], capture_output=True, text=True)
    for method in study.STUDY_METHODS:
        assert f"  {method} " in result.stdout
    assert "backward, the tutorial's first variant" in result.stdout


def test_missing_packages_are_reported_together(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name in ("tqdm", "matplotlib") else real(name, *a)
    )
    with pytest.raises(SystemExit, match=r"(?s)tqdm: pip install tqdm .*--no-progress.*matplotlib: .*without --plot"):
        main(["profile", "--plot", "p.png"])
    monkeypatch.setattr(study, "run_study", lambda **kw: (_ for _ in ()).throw(RuntimeError("measured")))
    with pytest.raises(RuntimeError, match="measured"):  # neither is needed without a bar or a plot
        main([*_SMALL])


def test_output_paths_are_checked_before_measuring(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(study, "run_study", lambda **kw: (_ for _ in ()).throw(RuntimeError("measured")))
    for flag in ("--plot", "--json"):
        with pytest.raises(SystemExit, match=f"{flag} /nonexistent/dir/p: the folder /nonexistent/dir does not exist"):
            main([*_SMALL, flag, "/nonexistent/dir/p"])


def test_unreliable_timings_are_flagged() -> None:
    from eigdiff.__main__ import spread_warnings

    (warning,) = spread_warnings([("v1", 22.0, 0.1747, 21.5667), ("v2", 2.2, 2.1, 2.3)])
    assert warning.startswith("warning: v1 timings vary widely") and "busy" in warning


def test_study_chart_names_what_it_shows(tmp_path) -> None:
    results = [
        study.Result(m, median_ms=1.0 + i, q1_ms=0.9 + i, q3_ms=1.2 + i, times_forward=1.0 + i)
        for i, m in enumerate(study.STUDY_METHODS)
    ]
    title = "Differentiable eigendecomposition: forward and backward\nB=5, M=32, float32, 50 calls on cpu (x)"
    fig = study.plot_study(results, str(tmp_path / "c.png"), title)
    (ax,) = fig.get_axes()
    assert ax.get_ylabel() == "time per call (ms, log scale)"
    assert [t.get_text() for t in ax.get_xticklabels()] == list(study.STUDY_METHODS)  # the table's names
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == [label for _, label in study.STUDY_COLOURS.values()]
    assert ax.get_title().count("on cpu") == 1
    assert any(type(c).__name__ == "ErrorbarContainer" for c in ax.containers)  # interquartile whiskers


def test_sweep_chart_pairs_colours_and_shares_the_y_range(tmp_path) -> None:
    rows = [
        {"batch": b, "size": m, "top_k": 2, "series": s, "median_ms": 1.0 + m / 10, "q1_ms": 1.0, "q3_ms": 1.0}
        for b in (1, 16)
        for m in (4, 8)
        for s in (
            "forward eigdiff",
            "forward native",
            "backward eigdiff",
            "backward native",
            "backward eigdiff top-2",
            "backward native top-2",
        )
    ]
    fig = study.plot_sweep(rows, str(tmp_path / "s.png"), "t")
    top, bottom = fig.get_axes()
    assert top.get_shared_y_axes().joined(top, bottom)
    lines = {line.get_label(): line for line in top.get_lines()}
    assert lines["backward eigdiff"].get_color() == lines["backward eigdiff top-2"].get_color()
    assert lines["backward native"].get_color() == lines["backward native top-2"].get_color()
    assert lines["backward eigdiff"].get_color() != lines["backward native"].get_color()
    assert lines["backward native"].get_linestyle() != lines["backward native top-2"].get_linestyle()


def test_charts_redraw_from_json(tmp_path, capsys) -> None:
    out_json, out_png = tmp_path / "p.json", tmp_path / "p.png"
    main([*_SMALL, "--json", str(out_json)])
    assert main(["profile", "--from-json", str(out_json), "--plot", str(out_png)]) == 0
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_torch_advice_names_the_cpu_build(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    with pytest.raises(SystemExit, match=r"torch: pip install 'eigdiff\[torch\]' .*CUDA build.*CPU-only build"):
        main([*_SMALL])


def test_time_repeated_repeats_cheap_calls_and_reports_per_call_times() -> None:
    """Each sample repeats its call for about ``seconds`` (50 ms) and is divided back to one call:
    a 0.2 ms sleep reads at least 0.2 ms a call (sleep's floor) and well under the 50 ms a whole
    sample takes (the bound tells a per-call time from a per-sample one, not a speed), and runs
    many times a sample, not once."""
    import time

    counts = {"sleep": 0}

    def sleep() -> None:
        counts["sleep"] += 1
        time.sleep(2e-4)

    samples = study.time_repeated({"sleep": sleep}, torch.device("cpu"), rounds=3, seconds=0.05)
    assert len(samples["sleep"]) == 3
    assert all(0.2 <= t < 25.0 for t in samples["sleep"]), samples
    assert counts["sleep"] > 1 + 3  # the timed first call, then more than one call per sample
