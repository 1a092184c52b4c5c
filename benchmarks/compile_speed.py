"""torch.compile(fullgraph=True) of "eigh, loss, backward" against eager, for eigdiff and native.

The compiled function returns the loss; its backward runs the compiled backward graph. Times
are medians of interleaved rounds after a warm-up that includes compilation (reported apart).

    python benchmarks/compile_speed.py [--batch 64] [--size 32] [--top-k 4] [--rounds 15]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch

import eigdiff
from eigdiff.profiling import study


def make_step(method: str, top_k: int | None):
    def loss_fn(X: torch.Tensor) -> torch.Tensor:
        if method == "eigdiff":
            lmd, Y = eigdiff.eigh(X, top_k=top_k)
        else:
            lmd, Y = study.native_eigh(X, top_k)
        return (Y * Y).mul(torch.arange(X.shape[-1], dtype=X.dtype)[:, None]).sum() + lmd.sum()

    return loss_fn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    X = study.make_input(args.batch, args.size, getattr(torch, args.dtype), "cpu")
    calls, compile_s = {}, {}
    warnings.simplefilter("ignore", DeprecationWarning)  # torch's own, from inductor's imports
    for method in ("eigdiff", "native"):
        for mode in ("eager", "compiled"):
            fn = make_step(method, args.top_k)
            if mode == "compiled":
                fn = torch.compile(fn, fullgraph=True)

            def step(fn=fn) -> None:
                Xg = X.detach().requires_grad_()
                fn(Xg).backward()

            start = time.perf_counter()
            step()
            compile_s[f"{method} {mode}"] = time.perf_counter() - start
            calls[f"{method} {mode}"] = step
    samples = study.time_interleaved(calls, torch.device("cpu"), iters=args.rounds * 5, rounds=args.rounds)
    base = statistics.median(samples["eigdiff eager"])
    print(f"B={args.batch} M={args.size} top_k={args.top_k} {args.dtype}, forward+backward per call:")
    for name, s in samples.items():
        m = statistics.median(s)
        print(f"  {name:<18} {m:9.3f} ms  ({m / base:4.2f}x eigdiff eager; first call {compile_s[name]:.1f} s)")


if __name__ == "__main__":
    main()
