"""Which CPU eigensolver is faster for torch tensors: torch.linalg.eigh or NumPy's (zero-copy)?

Times both side by side (interleaved rounds, median per call) over M and dtype at roughly
equal work per shape (B·M³ ≈ 3e7), and prints the ratio numpy / torch (< 1: NumPy faster).
This is the measurement behind the torch adapter's forward route (`_numpy_route_wins`).

    python benchmarks/forward_routes.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from eigdiff.profiling import study


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    print(f"{'dtype':<8} {'B':>6} {'M':>5} {'torch ms':>10} {'numpy ms':>10} {'numpy/torch':>12}")
    for dtype in (torch.float32, torch.float64):
        for M in (8, 16, 32, 64, 128, 256, 512, 1024):
            B = max(2, int(3e7 / M**3))
            X = study.make_input(B, M, dtype, "cpu")
            calls = {
                "torch": lambda X=X: torch.linalg.eigh(X),
                "numpy": lambda X=X: [torch.from_numpy(a) for a in np.linalg.eigh(X.numpy())],
            }
            start = time.perf_counter()
            calls["torch"]()
            once = time.perf_counter() - start
            samples = study.time_interleaved(
                calls, torch.device("cpu"), iters=max(1, int(0.03 / once)) * args.rounds, rounds=args.rounds
            )
            t, n = statistics.median(samples["torch"]), statistics.median(samples["numpy"])
            print(f"{str(dtype).replace('torch.', ''):<8} {B:>6} {M:>5} {t:10.3f} {n:10.3f} {n / t:12.2f}", flush=True)


if __name__ == "__main__":
    main()
