"""Partial spectra: eigdiff's ``"full"``, ``"subset"`` and ``"krylov"`` methods against torch's
native eigh autograd, forward + backward of a loss on the selected eigenpairs, side by side in
one run.

Rows (the partial-spectra issue's targets; ``--large`` adds the 4096 rows, minutes):

- one 2048 × 2048 random symmetric matrix, top 10, float64 and float32;
- a batch of 16 matrices of 512, top 8, float64 and float32;
- ``--large``: a 4096 sample covariance (power-law spectrum, σ_i ∝ 1/i) and a 4096 RBF kernel
  matrix (8-dimensional Gaussian points, lengthscale 4: its top 16 cut a cluster of nearly
  equal eigenvalues, a hard case), top 16, float32; the 8 smallest eigenpairs of a 64 × 64
  grid Laplacian (4096 nodes, a cluster near 0), float64.

"krylov" runs only on the rows with decaying spectra (``-`` elsewhere): on random matrices
and Laplacians its restarts take seconds, which is why ``"auto"`` never picks it.

``--crossover`` times "full" against "subset" (both eigdiff, fwd + bwd, top 8, float64 and
float32, CPU torch) for M = 256 ... 2048: the numbers behind ``eigdiff._methods.AUTO_SUBSET``.

``--memory`` measures each method's peak resident memory during one forward + backward, in a
fresh process per cell (the rise of ``ru_maxrss`` over the process's peak after building the
input and warming every library up on a small problem).

Each cell is the minimum over ``--rounds`` interleaved rounds after one warm-up. Usage::

    python benchmarks/partial_spectra.py [--large] [--crossover] [--memory] [--rounds 3]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time

import numpy as np
import torch

import eigdiff


def random_symmetric(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    A = rng.standard_normal(shape)
    return (A + np.swapaxes(A, -1, -2)) / 2


def rbf_kernel(n: int, rng: np.random.Generator) -> np.ndarray:
    P = rng.standard_normal((n, 8))
    sq = np.sum(P * P, axis=1)
    return np.exp(-(sq[:, None] + sq[None, :] - 2 * P @ P.T) / 16.0)  # lengthscale 4


def power_law_covariance(n: int, rng: np.random.Generator) -> np.ndarray:
    A = rng.standard_normal((n, n)) / np.arange(1, n + 1)  # column i scaled by 1/i
    return A.T @ A / n


def grid_laplacian(side: int) -> np.ndarray:
    n = side * side
    L = np.zeros((n, n))
    for i in range(side):
        for j in range(side):
            a = i * side + j
            for di, dj in ((1, 0), (0, 1)):
                if i + di < side and j + dj < side:
                    b = (i + di) * side + j + dj
                    L[a, b] = L[b, a] = -1.0
                    L[a, a] += 1.0
                    L[b, b] += 1.0
    return L


def _step(X: torch.Tensor, V: torch.Tensor, selection: dict, method: str | None) -> None:
    Z = X.clone().requires_grad_()
    if method is None:  # torch's native full eigh autograd, the same window
        lmd, Y = torch.linalg.eigh(Z)
        lo, hi = _window(selection, X.shape[-1])
        lmd, Y = lmd[..., lo:hi], Y[..., lo:hi]
    else:
        lmd, Y = eigdiff.eigh(Z, method=method, **selection)
    ((Y * Y) * V).sum().add(lmd.sum()).backward()  # sign-invariant


def _window(selection: dict, M: int) -> tuple[int, int]:
    if "top_k" in selection:
        return M - selection["top_k"], M
    if "bottom_k" in selection:
        return 0, selection["bottom_k"]
    return selection["subset_by_index"]


def time_row(X: np.ndarray, dtype: torch.dtype, selection: dict, rounds: int, methods: dict) -> dict[str, float]:
    """The minimum wall time of each method (None: native), over ``rounds`` interleaved rounds."""
    Xt = torch.tensor(X, dtype=dtype)
    lo, hi = _window(selection, X.shape[-1])
    V = torch.randn(*X.shape[:-1], hi - lo, dtype=dtype, generator=torch.Generator().manual_seed(0))
    best = dict.fromkeys(methods, float("inf"))
    for r in range(rounds + 1):
        for name, method in methods.items():
            start = time.perf_counter()
            _step(Xt, V, selection, method)
            if r:  # round 0 warms up
                best[name] = min(best[name], time.perf_counter() - start)
    return best


MEMORY_ROWS = {
    "2048 random, top 10": (lambda rng: random_symmetric((2048, 2048), rng), {"top_k": 10}, "float64"),
    "16 × 512 random, top 8": (lambda rng: random_symmetric((16, 512, 512), rng), {"top_k": 8}, "float64"),
    "4096 covariance, top 16": (lambda rng: power_law_covariance(4096, rng), {"top_k": 16}, "float32"),
}


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def memory_child(row: str, method: str) -> None:
    """One cell of ``--memory``: print the peak memory rise (MiB) of one forward + backward."""
    make, selection, dtype_name = MEMORY_ROWS[row]
    dtype = getattr(torch, dtype_name)
    small = torch.tensor(random_symmetric((40, 40), np.random.default_rng(1)), dtype=dtype)
    for m in (None, "full", "subset", "krylov"):  # load every library and kernel on a small problem
        _step(small, torch.ones(40, 2, dtype=dtype), {"top_k": 2}, m)
    X = torch.tensor(make(np.random.default_rng(0)), dtype=dtype)
    lo, hi = _window(selection, X.shape[-1])
    V = torch.randn(*X.shape[:-1], hi - lo, dtype=dtype, generator=torch.Generator().manual_seed(0))
    base = _peak_mib()
    _step(X, V, selection, None if method == "native" else method)
    print(f"{_peak_mib() - base:.1f}")


def memory_table() -> None:
    print("\n| problem | dtype | input MiB | native | eigdiff full | subset | krylov |")
    print("|---|---|---|---|---|---|---|")
    for row, (make, _, dtype_name) in MEMORY_ROWS.items():
        shape = make(np.random.default_rng(0)).shape
        size = float(np.prod(shape)) * (8 if dtype_name == "float64" else 4) / 2**20
        cells = []
        for method in ("native", "full", "subset", "krylov"):
            argv = [sys.executable, __file__, "--memory-child", row, method]
            cells.append(subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip())
        print(f"| {row} | {dtype_name} | {size:.0f} | " + " | ".join(cells) + " |", flush=True)


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--memory-child":
        memory_child(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--large", action="store_true", help="add the 4096 rows (minutes)")
    parser.add_argument("--crossover", action="store_true", help="time full against subset for M = 256..2048")
    parser.add_argument("--memory", action="store_true", help="peak memory per method, one process per cell")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.memory:
        memory_table()
        return
    torch.set_grad_enabled(True)
    rng = np.random.default_rng(0)
    both = (torch.float64, torch.float32)
    rows = [
        ("2048 random, top 10", random_symmetric((2048, 2048), rng), {"top_k": 10}, both, False),
        ("16 × 512 random, top 8", random_symmetric((16, 512, 512), rng), {"top_k": 8}, both, False),
    ]
    if args.large:
        rows += [
            ("4096 covariance, top 16", power_law_covariance(4096, rng), {"top_k": 16}, (torch.float32,), True),
            ("4096 RBF kernel, top 16", rbf_kernel(4096, rng), {"top_k": 16}, (torch.float32,), True),
            ("4096 grid Laplacian, bottom 8", grid_laplacian(64), {"bottom_k": 8}, (torch.float64,), False),
        ]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; fwd + bwd, ms (min of {args.rounds})")
    print("| problem | dtype | native | eigdiff full | subset | krylov | native / best |")
    print("|---|---|---|---|---|---|---|")
    for label, X, selection, dtypes, krylov in rows:
        for dtype in dtypes:
            methods = {"native": None, "full": "full", "subset": "subset"} | ({"krylov": "krylov"} if krylov else {})
            t = time_row(X, dtype, selection, args.rounds, methods)
            best = min(v for name, v in t.items() if name not in ("native", "full"))
            kry = f"{t['krylov'] * 1e3:.1f}" if krylov else "-"
            print(
                f"| {label} | {str(dtype)[6:]} | {t['native'] * 1e3:.1f} | {t['full'] * 1e3:.1f} | "
                f"{t['subset'] * 1e3:.1f} | {kry} | {t['native'] / best:.2f} |",
                flush=True,
            )
    if args.crossover:
        print("\n| M | dtype | eigdiff full | eigdiff subset | full/subset |")
        print("|---|---|---|---|---|")
        for M in (256, 512, 1024, 2048):
            X = random_symmetric((M, M), rng)
            for dtype in (torch.float64, torch.float32):
                t = time_row(X, dtype, {"top_k": 8}, args.rounds, {"full": "full", "subset": "subset"})
                print(
                    f"| {M} | {str(dtype)[6:]} | {t['full'] * 1e3:.1f} | {t['subset'] * 1e3:.1f} | "
                    f"{t['full'] / t['subset']:.2f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
