"""Measure the performance targets on this machine and print them as a Markdown table.

For each (B, M) in {(5, 32), (1000, 32), (64, 128), (8, 512), (1, 2048)} x {float32, float64}, eigdiff and
torch's native eigh are timed side by side in one run (interleaved rounds, median per call):
backward of the full eigenvectors, forward + backward, and peak memory of the backward; plus
the top-k backward at (B, M, k) = (8, 512, 8). Ratios are eigdiff / native (< 1: eigdiff faster),
the median over rounds of each round's ratio (the two calls measured back to back).
The "GEMM floor" is the time of the backward's three matrix products alone (Yᵀ V, Y C, and the
product with Y_kᵀ, on the same shapes): each backward is also reported as a multiple of it, and
"floor + G + Gᵀ" adds to the products the one pass an exactly symmetric result needs (its ratio to
native bounds every backward whose result is G + Gᵀ, as eigdiff's and the minimal one are). The
"fwd+bwd floor ratio" is torch's eigh alone plus the GEMM floor over native's forward + backward:
the fwd+bwd ratio eigdiff would reach with nothing above the eigensolver and the three products.
The "minimal" backward is the least this formula can be as a Python autograd Function (eigdiff's
design: the backward written once, in Python, over array operations): the three products, one
broadcast subtraction for the gaps with the own entries set to inf, one in-place division and
the exactly symmetric sum G + Gᵀ; it omits the ½ scaling, the dtype-aware tie threshold and
every check, so it is a lower bound on eigdiff's time, not a usable gradient. Where its ratio to
native is above a target, no backward of this design reaches that target here.

The "faults / call" columns count the minor page faults of one backward (``getrusage``; Linux and
macOS): each is the first touch of a 4 KiB page that the allocator took back from the system since
the last call. How many a call takes depends on the allocator's state, which earlier calls in the
process set (glibc raises its trim and mmap thresholds to the largest block freed so far), so the
same code can measure quite differently at the same shape. ``--heap`` fixes that state for the
whole run by re-running the script with glibc's tunables set: ``steady`` (nothing is returned to
the system: no faults, the arithmetic alone), ``mmap`` (every block of 128 KiB or more is mapped
afresh and faults on first touch: the allocator at its least favourable); the default leaves
glibc's dynamic thresholds as they come.

    python benchmarks/targets.py [--rounds 15] [--json results.json] [--heap steady|mmap] [--shapes 1000x32,64x128]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

import torch

from eigdiff.profiling import study

SHAPES = [(5, 32), (1000, 32), (64, 128), (8, 512), (1, 2048)]
DTYPES = [torch.float32, torch.float64]

#: glibc's malloc tunables for each ``--heap`` state (read when the process starts). "steady": trim
#: and mmap thresholds past any block here, so freed memory stays in the heap; "mmap": a fixed
#: 128 KiB mmap threshold (glibc's initial one, without its dynamic raise), so every larger block is
#: mapped afresh and returned on free.
HEAPS = {
    "steady": {"MALLOC_TRIM_THRESHOLD_": str(2**40), "MALLOC_MMAP_THRESHOLD_": str(2**31), "MALLOC_TOP_PAD_": "0"},
    "mmap": {"MALLOC_MMAP_THRESHOLD_": str(2**17)},
}


def faults_per_call(fn, calls: int = 20) -> float | None:
    """Minor page faults per call of ``fn`` (after one call to warm up), or None without ``resource``."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    fn()
    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(calls):
        fn()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start) / calls


def _fwd_bwd(method: str, X: torch.Tensor, top_k: int | None):
    """One forward with graph plus one backward, as a training step pays them."""
    V = torch.ones(X.shape[:-1] + (top_k or X.shape[-1],), dtype=X.dtype)

    def call() -> None:
        Xg = X.detach().requires_grad_()
        if method == "eigdiff":
            import eigdiff

            Y = eigdiff.eigh(Xg, top_k=top_k)[1]
        elif method == "minimal":
            Y = _Minimal.apply(Xg, top_k or X.shape[-1])[0]
        else:
            Y = study.native_eigh(Xg, top_k)[1]
        torch.autograd.grad(Y, Xg, V)

    return call


class _Minimal(torch.autograd.Function):
    """eigh of ½(X + Xᵀ) with the minimal backward of the module docstring."""

    @staticmethod
    def forward(X: torch.Tensor, k: int) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        lmd, Y = torch.linalg.eigh((X + X.mT) / 2)
        return (Y, lmd) if k == X.shape[-1] else (Y[..., -k:].clone(), lmd, Y)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:  # noqa: ANN001
        ctx.mark_non_differentiable(*output[1:])
        ctx.save_for_backward(output[1], output[-1] if len(output) == 3 else output[0])

    @staticmethod
    def backward(ctx, V: torch.Tensor, *_: torch.Tensor):  # noqa: ANN001, ANN205
        lmd, Y = ctx.saved_tensors
        M, k = Y.shape[-1], V.shape[-1]
        P = Y.mT @ V
        D = lmd[..., None, M - k :] - lmd[..., :, None]
        D.diagonal(offset=-(M - k), dim1=-2, dim2=-1).fill_(float("inf"))  # own entries: P / inf = 0
        P /= D
        G = (Y @ P) @ Y[..., M - k :].mT
        return G + G.mT, None


def _minimal_backward(X: torch.Tensor, top_k: int | None):
    Xg = X.detach().requires_grad_()
    Y = _Minimal.apply(Xg, top_k or X.shape[-1])[0]
    V = torch.ones(Y.shape, dtype=X.dtype)
    return lambda: torch.autograd.grad(Y, Xg, V, retain_graph=True)


def _gemm_floor(X: torch.Tensor, top_k: int | None):
    """The backward's three matrix products alone: P = Yᵀ V, then (Y P) Y_kᵀ."""
    _, Y = torch.linalg.eigh(X)
    k = top_k or X.shape[-1]
    Y_k = Y[..., -k:]
    V = torch.ones(X.shape[:-1] + (k,), dtype=X.dtype)
    return lambda: (Y @ (Y.mT @ V)) @ Y_k.mT


def _symmetric_floor(X: torch.Tensor, top_k: int | None):
    """The three products, then G + Gᵀ: the least a backward with an exactly symmetric result
    G + Gᵀ (elementwise, one operand read transposed) can take."""
    products = _gemm_floor(X, top_k)

    def call() -> torch.Tensor:
        G = products()
        return G + G.mT

    return call


def measure(B: int, M: int, dtype: torch.dtype, top_k: int | None, rounds: int) -> dict:
    X = study.make_input(B, M, dtype, "cpu")
    calls = {
        "bwd eigdiff": study.backward_call("eigdiff", X, top_k),
        "bwd native": study.backward_call("native", X, top_k),
        "bwd minimal": _minimal_backward(X, top_k),
        "fwd+bwd eigdiff": _fwd_bwd("eigdiff", X, top_k),
        "fwd+bwd native": _fwd_bwd("native", X, top_k),
        "fwd+bwd minimal": _fwd_bwd("minimal", X, top_k),
        "gemm floor": _gemm_floor(X, top_k),
        "symmetric floor": _symmetric_floor(X, top_k),
        "eigh": lambda: torch.linalg.eigh(X),
    }
    per_call = study.time_repeated(calls, torch.device("cpu"), rounds=rounds)  # ~50 ms samples
    med = {name: statistics.median(s) for name, s in per_call.items()}

    def ratio(a: str, b: str) -> float:
        """The median over rounds of a / b, each pair measured back to back: slow phases of a
        shared machine cancel in each pair, where a ratio of two medians keeps them."""
        return statistics.median(x / y for x, y in zip(per_call[a], per_call[b]))

    mem = {name: study.peak_memory(calls[name], torch.device("cpu")) for name in ("bwd eigdiff", "bwd native")}
    faults = {name: faults_per_call(calls[name]) for name in ("bwd eigdiff", "bwd native")}
    return {
        "B": B,
        "M": M,
        "dtype": str(dtype).replace("torch.", ""),
        "top_k": top_k,
        "median_ms": med,
        "peak_bytes": mem,
        "faults_per_call": faults,
        "bwd_ratio": ratio("bwd eigdiff", "bwd native"),
        "total_ratio": ratio("fwd+bwd eigdiff", "fwd+bwd native"),
        "minimal_bwd_ratio": ratio("bwd minimal", "bwd native"),
        "minimal_total_ratio": ratio("fwd+bwd minimal", "fwd+bwd native"),
        "symmetric_floor_ratio": ratio("symmetric floor", "bwd native"),
        "mem_ratio": mem["bwd eigdiff"] / mem["bwd native"],
        "eigdiff_over_floor": med["bwd eigdiff"] / med["gemm floor"],
        "native_over_floor": med["bwd native"] / med["gemm floor"],
        # The fwd+bwd ratio with nothing above torch's eigh and the three products: its floor.
        "total_floor_ratio": (med["eigh"] + med["gemm floor"]) / med["fwd+bwd native"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--json", metavar="PATH")
    parser.add_argument("--heap", choices=sorted(HEAPS), help="fix the allocator's state for the run (glibc)")
    parser.add_argument("--shapes", help="only these B×M, as 1000x32,64x128 (and no top-k rows)")
    args = parser.parse_args()
    if args.heap and os.environ.get("EIGDIFF_TARGETS_HEAP") != args.heap:  # the tunables are read at start-up
        env = {**os.environ, **HEAPS[args.heap], "EIGDIFF_TARGETS_HEAP": args.heap}
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    shapes = SHAPES if not args.shapes else [tuple(int(n) for n in s.split("x")) for s in args.shapes.split(",")]
    rows = [measure(B, M, dt, None, args.rounds) for dt in DTYPES for B, M in shapes]
    if not args.shapes:
        rows += [measure(8, 512, dt, 8, args.rounds) for dt in DTYPES]
    machine = study.machine()
    machine["heap"] = args.heap or "as it comes"
    print(
        f"Machine: {machine.get('cpu', machine['processor'])}, torch {machine['torch']}, {machine['threads']} threads, "
        f"heap: {machine['heap']}\n"
    )
    print(
        "| B | M | k | dtype | bwd eigdiff ms | bwd native ms | bwd ratio | fwd+bwd ratio "
        "| minimal: bwd, fwd+bwd ratio | fwd+bwd floor ratio | GEMM floor ms | bwd / floor (eigdiff, native) "
        "| floor + G + Gᵀ / native bwd | bwd peak MiB (eigdiff / native) | bwd faults / call (eigdiff, native) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        m, p, f = r["median_ms"], r["peak_bytes"], r["faults_per_call"]
        faults = "n/a" if f["bwd eigdiff"] is None else f"{f['bwd eigdiff']:.0f}, {f['bwd native']:.0f}"
        print(
            f"| {r['B']} | {r['M']} | {r['top_k'] or 'all'} | {r['dtype']} | {m['bwd eigdiff']:.3f} | "
            f"{m['bwd native']:.3f} | {r['bwd_ratio']:.2f} | {r['total_ratio']:.2f} | "
            f"{r['minimal_bwd_ratio']:.2f}, {r['minimal_total_ratio']:.2f} | {r['total_floor_ratio']:.2f} | "
            f"{m['gemm floor']:.3f} | "
            f"{r['eigdiff_over_floor']:.2f}, {r['native_over_floor']:.2f} | {r['symmetric_floor_ratio']:.2f} | "
            f"{p['bwd eigdiff'] / 2**20:.2f} / {p['bwd native'] / 2**20:.2f} | {faults} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
