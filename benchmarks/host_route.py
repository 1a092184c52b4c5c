"""The torch backward's NumPy route for small eager CPU work: measured with and without it.

Up to `eigdiff.backends.HOST_BACKWARD_MAX` elements of P and M up to
`eigdiff.backends.HOST_BACKWARD_MAX_ORDER`, the torch adapter runs the core's backward on NumPy
views of the tensors (`ArrayAPIAdapter.backward`). This script times, for each shape, the
backward alone (``autograd.grad`` through `eigdiff.eigh`) and a training step (a forward with
graph plus its backward: where a multithreaded BLAS would contend with torch's thread pool, it
shows there) with the route allowed and with it switched off, in interleaved rounds, and prints
the ratios (< 1: the route is faster). Shapes past the limits are included to show why they are
the limits: the script lifts them for its "route" runs.

    python benchmarks/host_route.py [--rounds 9] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable

import torch

import eigdiff
import eigdiff.backends as backends
from eigdiff.profiling import study

SHAPES = [(5, 32), (16, 32), (2, 64), (4, 64), (16, 64), (1, 128)]


def _calls(B: int, M: int, dtype: torch.dtype) -> dict[str, Callable[[], object]]:
    X = torch.randn(B, M, M, dtype=dtype)
    V = torch.randn(B, M, M, dtype=dtype)
    Xg = X.clone().requires_grad_()
    Y = eigdiff.eigh(Xg)[1]

    def step() -> None:
        Xs = X.detach().requires_grad_()
        torch.autograd.grad(eigdiff.eigh(Xs)[1], Xs, V)

    return {"backward": lambda: torch.autograd.grad(Y, Xg, V, retain_graph=True), "step": step}


def _with_limits(fn: Callable[[], object], limits: tuple[int, int]) -> Callable[[], None]:
    """``fn`` run with the route's two limits set to ``limits``."""

    def call() -> None:
        backends.HOST_BACKWARD_MAX, backends.HOST_BACKWARD_MAX_ORDER = limits
        fn()

    return call


def measure(B: int, M: int, dtype: torch.dtype, rounds: int) -> dict:
    limits = (backends.HOST_BACKWARD_MAX, backends.HOST_BACKWARD_MAX_ORDER)
    calls = {
        f"{name} {on}": _with_limits(fn, (B * M * M, M) if on else (0, 0))
        for name, fn in _calls(B, M, dtype).items()
        for on in (True, False)
    }
    try:  # interleaved rounds of ~50 ms samples, as benchmarks/targets.py times
        samples = study.time_repeated(calls, torch.device("cpu"), rounds=rounds)
    finally:
        backends.HOST_BACKWARD_MAX, backends.HOST_BACKWARD_MAX_ORDER = limits
    row: dict = {
        "B": B,
        "M": M,
        "dtype": str(dtype).replace("torch.", ""),
        "within_limits": B * M * M <= limits[0] and M <= limits[1],
    }
    for name in ("backward", "step"):
        on, off = samples[f"{name} True"], samples[f"{name} False"]
        row[f"{name} ms (route, torch)"] = [statistics.median(on), statistics.median(off)]
        row[f"{name} ratio"] = statistics.median(a / b for a, b in zip(on, off))
    return row


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; ratios route / torch (< 1: the route is faster)"
    )
    print("| B | M | dtype | within the limits | backward ratio | step ratio | step ms (route, torch) |")
    print("|---|---|---|---|---|---|---|")
    rows = []
    for dtype in (torch.float32, torch.float64):
        for B, M in SHAPES:
            row = measure(B, M, dtype, args.rounds)
            rows.append(row)
            ms = row["step ms (route, torch)"]
            print(
                f"| {B} | {M} | {row['dtype']} | {'yes' if row['within_limits'] else 'no'} | {row['backward ratio']:.2f} "
                f"| {row['step ratio']:.2f} | {ms[0]:.3f}, {ms[1]:.3f} |",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
