"""How far each forward route splits exact ties, and how small the real gaps of random matrices are.

The measurement behind the default gap threshold (`eigdiff._gaps.DEFAULT_EPS_FACTOR`, issue #18).
For each forward route (torch's and NumPy's LAPACK eigh), dtype and size M, a matrix
X = Q diag(λ) Qᵀ is built in float64 with exactly tied clusters in λ, rounded to the dtype
(as a user's tied matrix is) and decomposed. For each cluster the spread of the computed
eigenvalues (largest minus smallest) is recorded in units of u · max|λ̂| (u the dtype's machine
epsilon): the threshold must exceed it, or a tie escapes the mask and rounding noise is divided
by it. Spectrum shapes:

- ``pairs``: M/2 exact pairs, centres evenly spaced over [-1, 1];
- ``half``: half of the spectrum tied at 1, the rest spread over [-1, 0.5];
- ``scales``: clusters of 4 with centres ±10⁻ᵉ, e spread over 0 .. 6 (ties far below ‖X‖);
- ``two_halves``: half tied at -1, half at 1.

The other side: the smallest adjacent gap of a random symmetric matrix (entries N(0, 1),
symmetrized), in the same units, computed in float64. A threshold above it masks a real,
resolved gap.

    python benchmarks/tie_splitting.py [--sizes 128,512,1024,2048,4096] [--draws 2]
                                       [--json docs/_static/tie_splitting.json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

SHAPES = ("pairs", "half", "scales", "two_halves")


def spectrum(shape: str, M: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Ascending float64 eigenvalues with exact ties and each eigenvalue's cluster label (-1: single)."""
    if shape == "pairs":
        centres = np.linspace(-1, 1, M // 2)  # evenly spaced: neighbouring pairs never collide
        lmd = np.repeat(centres, 2)
        labels = np.repeat(np.arange(M // 2), 2)
        if M % 2:
            lmd, labels = np.r_[lmd, 1.5], np.r_[labels, -1]
    elif shape == "half":
        h = M // 2
        lmd = np.r_[np.sort(rng.uniform(-1, 0.5, M - h)), np.ones(h)]
        labels = np.r_[-np.ones(M - h, int), np.zeros(h, int)]
    elif shape == "scales":
        n = M // 4
        exponents = np.linspace(0, 6, n)
        centres = rng.choice([-1.0, 1.0], n) * 10.0 ** (-exponents)
        lmd = np.repeat(centres, 4)
        labels = np.repeat(np.arange(n), 4)
        rest = M - 4 * n
        lmd, labels = np.r_[lmd, rng.uniform(-1, 1, rest)], np.r_[labels, -np.ones(rest, int)]
    elif shape == "two_halves":
        h = M // 2
        lmd = np.r_[-np.ones(h), np.ones(M - h)]
        labels = np.r_[np.zeros(h, int), np.ones(M - h, int)]
    else:
        raise ValueError(shape)
    order = np.argsort(lmd, kind="stable")
    return lmd[order], labels[order]


def tied_matrix(lmd: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
    M = len(lmd)
    Q, R = torch.linalg.qr(torch.as_tensor(rng.standard_normal((M, M))))
    Q = Q * torch.sign(torch.diagonal(R))
    X = (Q * torch.as_tensor(lmd)) @ Q.T
    return (X + X.T) / 2


def _cupy() -> object | None:
    try:
        import cupy

        return cupy if cupy.cuda.runtime.getDeviceCount() > 0 else None
    except Exception:  # not installed, or no driver
        return None


def routes() -> tuple[str, ...]:
    """The forward routes present here: LAPACK through torch and NumPy; with an NVIDIA GPU,
    cuSOLVER through torch (one matrix, and a batch of two, which takes its batched solver) and
    through CuPy."""
    names = ["torch", "numpy"]
    if torch.cuda.is_available():
        names += ["torch:cuda", "torch:cuda-batched"]
    if _cupy() is not None:
        names.append("cupy")
    return tuple(names)


def eig_routes(X: torch.Tensor, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Computed eigenvalues (float64 copies) from each forward route in ``names``."""
    solvers = {
        "torch": lambda: torch.linalg.eigvalsh(X).double().numpy(),
        "numpy": lambda: np.linalg.eigvalsh(X.numpy()).astype(np.float64),
        "torch:cuda": lambda: torch.linalg.eigvalsh(X.cuda()).double().cpu().numpy(),
        "torch:cuda-batched": lambda: torch.linalg.eigvalsh(torch.stack([X, X]).cuda())[0].double().cpu().numpy(),
        "cupy": lambda: _cupy().asnumpy(_cupy().linalg.eigvalsh(_cupy().asarray(X.numpy()))).astype(np.float64),  # type: ignore[attr-defined]
    }
    return {name: solvers[name]() for name in names}


def worst_split(computed: np.ndarray, lmd: np.ndarray, labels: np.ndarray, u: float) -> tuple[float, float]:
    """Largest within-cluster spread and largest gap between neighbours inside a cluster.

    Both in units of u · max|λ̂|. The computed eigenvalues come back sorted, like the exact
    ones, so cluster c occupies the same index range in both (the clusters are far apart
    compared with the splits).
    """
    scale = float(np.abs(computed).max())
    spread = neighbour = 0.0
    for c in np.unique(labels[labels >= 0]):
        members = computed[labels == c]
        spread = max(spread, float(members.max() - members.min()))
        neighbour = max(neighbour, float(np.diff(members).max()))
    return spread / (u * scale), neighbour / (u * scale)


def smallest_random_gap(M: int, rng: np.random.Generator) -> float:
    A = torch.as_tensor(rng.standard_normal((M, M)))
    lmd = torch.linalg.eigvalsh((A + A.T) / 2).numpy()
    return float(np.diff(lmd).min() / np.abs(lmd).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="128,512,1024,2048,4096")
    parser.add_argument("--draws", type=int, default=2, help="matrices per (shape, M)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    names = routes()
    results: dict = {"split": [], "random_gap": [], "threads": torch.get_num_threads(), "torch": torch.__version__}
    for M in sizes:
        rng = np.random.default_rng(M)
        start = time.perf_counter()
        for shape in SHAPES:
            for draw in range(args.draws):
                lmd, labels = spectrum(shape, M, rng)
                X64 = tied_matrix(lmd, rng)
                for dtype in (torch.float32, torch.float64):
                    u = torch.finfo(dtype).eps
                    for route, computed in eig_routes(X64.to(dtype), names).items():
                        row = dict(M=M, shape=shape, draw=draw, dtype=str(dtype)[6:], route=route)
                        row["split_u"], row["neighbour_u"] = worst_split(computed, lmd, labels, u)
                        results["split"].append(row)
        gaps = [smallest_random_gap(M, rng) for _ in range(max(args.draws, 3))]
        for g in gaps:
            results["random_gap"].append(
                dict(M=M, relative_gap=g, **{f"gap_u_{d}": g / float(np.finfo(d).eps) for d in ("float32", "float64")})
            )
        rows = [x for x in results["split"] if x["M"] == M]
        worst = {
            (d, r): (
                max(x["split_u"] for x in rows if x["dtype"] == d and x["route"] == r),
                max(x["neighbour_u"] for x in rows if x["dtype"] == d and x["route"] == r),
            )
            for d in ("float32", "float64")
            for r in names
        }
        print(
            f"M={M:5d} ({time.perf_counter() - start:5.1f} s)  worst spread, neighbour gap / (u max|λ|): "
            + "  ".join(f"{d} {r} {v[0]:5.1f} {v[1]:5.1f}" for (d, r), v in worst.items())
            + f"  | smallest random gap: {min(gaps):.2e} relative = {min(gaps) / np.finfo(np.float32).eps:7.1f} u32",
            flush=True,
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
