"""Gradient error and gradient size against eigenvalue gap, for each degeneracy mode and dtype.

Two measurements, both against float64 central finite differences of the loss through
NumPy's eigh (the reference never uses eigdiff):

1. A sweep over the gap δ of a two-eigenvalue cluster in the spectrum (−1, 1, 1 + δ, 2.5)
   (δ from 1e-12 to 1e-1): the relative error of the gradient of a loss that is invariant
   inside the cluster (the tests' `cluster_invariant_loss`, top-3), and the largest gradient
   entry for a loss that is not (y_3ᵀ B y_3 with a random B), in units of ‖V‖/‖X‖.
2. The degeneracy corpus of the property tests (exact ties, ties at 1e-9 and 1e-3 relative,
   scales 1e-6 .. 1e6, zero and rank-one matrices), sampled N times: the largest relative
   error of the invariant loss's gradient and the largest amplification |dX|·‖X‖/‖V‖ of a
   random loss's gradient, per mode and dtype.

    python benchmarks/degeneracy_study.py [--samples 300] [--plot docs/_static/degeneracy.png]
                                          [--json docs/_static/degeneracy.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _spectra import (  # noqa: E402
    CLUSTER_KINDS,
    CLUSTER_SCALES,
    CLUSTER_SPREADS,
    cluster_boundaries,
    cluster_invariant_loss,
    clustered_spectrum,
    finite_difference,
    matrix_from_spectrum,
    quadratic_loss_cotangents,
    random_cluster_sizes,
    random_symmetric,
)

import eigdiff  # noqa: E402

MODES = eigdiff.DEGENERACY_MODES
DTYPES = ("float32", "float64")


def invariant_error(
    lmd: np.ndarray, labels: np.ndarray, k: int, dtype: str, mode: str, rng: np.random.Generator
) -> float:
    """max |G − G_fd| / max(|G_fd|, 1) for the cluster-invariant loss (the tests' tolerance scale)."""
    scale = float(np.abs(lmd).max()) or 1.0
    X64 = matrix_from_spectrum(lmd, rng).astype(dtype).astype(np.float64)
    B, c_of, loss = cluster_invariant_loss(scale, labels, k, rng)
    (lmd_k, Y_k), pullback = eigdiff.vjp(X64.astype(dtype), top_k=k, degeneracy=mode)
    _, V, _ = quadratic_loss_cotangents(lmd_k.astype(np.float64), Y_k.astype(np.float64), B, np.zeros(k))
    G = pullback(V.astype(dtype), (2 * c_of(lmd_k.astype(np.float64))).astype(dtype)).astype(np.float64)
    G_fd = finite_difference(loss, X64, h=1e-6 * scale)
    return float(np.abs(G - G_fd).max() / max(np.abs(G_fd).max(), 1.0))


def amplification(lmd: np.ndarray, dtype: str, mode: str, k: int, rng: np.random.Generator) -> float:
    """max|dX| · ‖X‖ / ‖V‖ for a random, non-invariant quadratic loss of the top k eigenvectors."""
    M = len(lmd)
    X = matrix_from_spectrum(lmd, rng).astype(dtype)
    (lmd_k, Y_k), pullback = eigdiff.vjp(X, top_k=k, degeneracy=mode)
    B = random_symmetric((k, M, M), rng)
    _, V, _ = quadratic_loss_cotangents(lmd_k.astype(np.float64), Y_k.astype(np.float64), B, np.zeros(k))
    G = pullback(V.astype(dtype)).astype(np.float64)
    if not np.all(np.isfinite(G)):
        return float("inf")
    norm_X = max(float(np.abs(lmd).max()), np.finfo(np.float64).tiny)
    return float(np.abs(G).max() * norm_X / np.abs(V).max())


def gap_sweep(deltas: np.ndarray, seed: int = 0) -> dict:
    labels = np.array([0, 1, 1, 2])
    out: dict = {"delta": deltas.tolist()}
    for dtype in DTYPES:
        for mode in MODES:
            errors, sizes = [], []
            for delta in deltas:
                lmd = np.array([-1.0, 1.0, 1.0 + delta, 2.5])
                errors.append(invariant_error(lmd, labels, 3, dtype, mode, np.random.default_rng(seed)))
                sizes.append(amplification(lmd, dtype, mode, 2, np.random.default_rng(seed)))
            out[f"{mode}/{dtype}/error"] = errors
            out[f"{mode}/{dtype}/amplification"] = sizes
    return out


def corpus(samples: int, seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    problems = []
    for _ in range(samples):
        kind = CLUSTER_KINDS[min(int(rng.integers(0, 5)), 2) if rng.random() < 0.4 else 0]
        M = int(rng.integers(2, 7))
        spectrum = clustered_spectrum(
            rng,
            kind,
            M,
            float(rng.choice(CLUSTER_SCALES)),
            float(rng.choice(CLUSTER_SPREADS)),
            random_cluster_sizes(rng, M),
        )
        problems.append((spectrum, int(rng.integers(0, 2**32 - 1))))
    out = {}
    for dtype in DTYPES:
        for mode in MODES:
            worst_error, worst_amp = 0.0, 0.0
            for (lmd, labels), s in problems:
                r = np.random.default_rng(s)
                k = int(r.choice(cluster_boundaries(labels)))
                worst_error = max(worst_error, invariant_error(lmd, labels, k, dtype, mode, r))
                k_any = int(r.integers(1, len(lmd) + 1))
                worst_amp = max(worst_amp, amplification(lmd, dtype, mode, k_any, r))
            out[f"{mode}/{dtype}"] = {"max_invariant_error": worst_error, "max_amplification": worst_amp}
    return out


def plot(sweep: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
    for col, dtype in enumerate(DTYPES):
        for mode, style in zip(MODES, ("o-", "s--", "^:")):
            axes[0, col].loglog(
                sweep["delta"], np.maximum(sweep[f"{mode}/{dtype}/error"], 1e-17), style, ms=3, label=mode
            )
            axes[1, col].loglog(sweep["delta"], sweep[f"{mode}/{dtype}/amplification"], style, ms=3, label=mode)
        axes[0, col].set_title(f"{dtype}: invariant loss, relative gradient error", fontsize=9)
        axes[1, col].set_title(f"{dtype}: non-invariant loss, max |dX|·‖X‖/‖V‖", fontsize=9)
        axes[1, col].set_xlabel("gap δ inside the cluster (‖X‖ = 2.5)")
        for ax in axes[:, col]:
            ax.grid(True, which="both", ls=":")
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=300, help="corpus draws (default 300)")
    parser.add_argument("--points", type=int, default=45, help="gap values in the sweep (default 45)")
    parser.add_argument("--plot", metavar="PATH")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    sweep = gap_sweep(np.logspace(-12, -1, args.points))
    summary = corpus(args.samples)
    print(f"{'mode':<11} {'dtype':<8} {'max invariant-loss error':>25} {'max amplification':>18}")
    for key, r in summary.items():
        mode, dtype = key.split("/")
        print(f"{mode:<11} {dtype:<8} {r['max_invariant_error']:25.3e} {r['max_amplification']:18.3e}")
    if args.plot:
        plot(sweep, args.plot)
        print(f"wrote {args.plot}")
    result = {"sweep": sweep, "corpus": summary, "samples": args.samples}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
        print(f"wrote {args.json}")
    return result


if __name__ == "__main__":
    main()
