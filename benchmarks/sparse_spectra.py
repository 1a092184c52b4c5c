"""Sparse input: eigdiff's forward (``method="krylov"`` on a SciPy CSR matrix) against SciPy's
``eigsh`` (ARPACK) and ``lobpcg`` at the same tolerance, and eigdiff's backward as a multiple of
its forward, float64, side by side in one run.

Matrices (the sparse issue's):

- the 2-D grid Laplacian (5-point stencil, Dirichlet), 316 × 316 = 99,856 nodes;
- a k-NN graph Laplacian: 10^5 uniform points in the unit square, 10 nearest neighbours,
  symmetrized (an edge where either point lists the other), unit weights;

each for the 8 smallest and the 8 largest eigenpairs. ``--quick``: 100 × 100 and 10^4 nodes.

Same tolerance: eigdiff stops when the window and its guard have residuals ‖Ay − θy‖ ≤ tol · s
(tol = u^(3/4) ≈ 1.8e-12, s the Gershgorin bound of max|λ|); ARPACK's criterion is
‖Ay − θy‖ ≤ tol_A · max(u^(2/3), |θ|), so it gets tol_A = tol · s / max|θ_window| (its
loosest pair meets ours, the others are held tighter: a Laplacian's 0 eigenvalue would
otherwise loosen ARPACK without bound); LOBPCG's is ‖Ay − θy‖ ≤ tol_L (absolute), so tol_L = tol · s. Start vectors are
SciPy's defaults (eigsh) and a fixed Gaussian block (lobpcg, maxiter ``--lobpcg-maxiter``,
default 1000; a run that stops short of its tolerance is marked). One run per cell (each takes
seconds to a minute); the residual each method reached is printed next to its time.

``--memory``: the 1000 × 1000 grid Laplacian (10^6 nodes), the 8 smallest eigenpairs and their
gradient at the stored entries, in a fresh process; prints the peak resident memory
(``ru_maxrss``) and the time of each phase. Usage::

    python benchmarks/sparse_spectra.py [--quick] [--memory]
"""

from __future__ import annotations

import argparse
import resource
import time
import warnings

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as sla
from scipy.spatial import cKDTree

import eigdiff

TOL = float(np.finfo(np.float64).eps) ** 0.75


def grid_laplacian(side: int) -> sp.csr_array:
    D = sp.diags_array([-1.0, 2.0, -1.0], offsets=[-1, 0, 1], shape=(side, side))
    eye = sp.identity(side, format="csr")
    return (sp.kron(D, eye) + sp.kron(eye, D)).tocsr()


def knn_laplacian(n: int, neighbours: int = 10, seed: int = 0) -> sp.csr_array:
    points = np.random.default_rng(seed).uniform(size=(n, 2))
    _, index = cKDTree(points).query(points, neighbours + 1)
    rows = np.repeat(np.arange(n), neighbours)
    W = sp.coo_array((np.ones(rows.size), (rows, index[:, 1:].ravel())), shape=(n, n)).tocsr()
    W = ((W + W.T) > 0).astype(np.float64)
    return (sp.diags_array(np.asarray(W.sum(axis=1)).ravel()) - W).tocsr()


def residual(A: sp.csr_array, lmd: np.ndarray, Y: np.ndarray) -> float:
    R = A @ Y - Y * lmd
    return float(np.max(np.linalg.norm(R, axis=0)))


def gershgorin_scale(A: sp.csr_array) -> float:
    d = A.diagonal()
    radius = np.asarray(abs(A).sum(axis=1)).ravel() - np.abs(d)
    return float(max(abs(np.min(d - radius)), abs(np.max(d + radius))))


def timed(f):  # noqa: ANN001, ANN201
    start = time.perf_counter()
    out = f()
    return time.perf_counter() - start, out


def compare(name: str, A: sp.csr_array, k: int, top: bool, lobpcg_maxiter: int) -> None:
    s = gershgorin_scale(A)
    selection = {"top_k": k} if top else {"bottom_k": k}
    t_fwd, ((lmd, Y), pullback) = timed(lambda: eigdiff.vjp(A, **selection))
    V = np.random.default_rng(1).standard_normal(Y.shape)
    t_bwd, _ = timed(lambda: pullback(V, np.ones(k)))
    tol_arpack = TOL * s / float(np.max(np.abs(lmd)))
    t_arpack, (w, Z) = timed(lambda: sla.eigsh(A, k=k, which="LA" if top else "SA", tol=tol_arpack))
    X0 = np.random.default_rng(2).standard_normal((A.shape[0], k))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t_lobpcg, (w2, Z2) = timed(lambda: sla.lobpcg(A, X0, largest=top, tol=TOL * s, maxiter=lobpcg_maxiter))
    short = " (stopped short)" if any("not reaching the requested tolerance" in str(c.message) for c in caught) else ""
    best = min(t_arpack, t_lobpcg if not short else np.inf)
    print(
        f"| {name}, {'largest' if top else 'smallest'} {k} | {t_fwd:.1f} ({residual(A, lmd, Y) / s:.1e}) | "
        f"{t_arpack:.1f} ({residual(A, w, Z) / s:.1e}) | {t_lobpcg:.1f} ({residual(A, w2, Z2) / s:.1e}){short} | "
        f"**{t_fwd / best:.2f}** | {t_bwd:.1f} | **{t_bwd / t_fwd:.2f}** |",
        flush=True,
    )
    print(f"|   | max |λ_eigsh − λ_eigdiff| / s = {float(np.max(np.abs(np.sort(w) - lmd))) / s:.1e} | | | | | |")


def memory() -> None:
    phase = {}
    start = time.perf_counter()
    A = grid_laplacian(1000)
    phase["build A"] = time.perf_counter() - start
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t_fwd, ((lmd, Y), pullback) = timed(lambda: eigdiff.vjp(A, bottom_k=8, maxiter=2000))
    t_bwd, G = timed(lambda: pullback(np.ones(Y.shape), np.ones(8)))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        f"10^6-node grid Laplacian (nnz {A.nnz:,}), 8 smallest, float64: forward {t_fwd:.0f} s, backward "
        f"{t_bwd:.0f} s, peak resident memory {peak / 2**20:.2f} GiB (after building A: {base / 2**20:.2f} GiB); "
        f"gradient nnz {G.nnz:,}; λ = {np.array2string(lmd, precision=6)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10^4 nodes instead of 10^5")
    parser.add_argument("--memory", action="store_true", help="the 10^6-node grid's peak memory")
    parser.add_argument("--lobpcg-maxiter", type=int, default=1000)
    args = parser.parse_args()
    if args.memory:
        memory()
        return
    side, n = (100, 10_000) if args.quick else (316, 100_000)
    print("| matrix | eigdiff fwd s (residual) | eigsh s | lobpcg s | fwd / best | eigdiff bwd s | bwd / fwd |")
    print("|---|---|---|---|---|---|---|")
    for name, A in ((f"grid {side}²", grid_laplacian(side)), (f"k-NN {n:,}", knn_laplacian(n))):
        for top in (False, True):
            compare(name, A, 8, top, args.lobpcg_maxiter)


if __name__ == "__main__":
    main()
