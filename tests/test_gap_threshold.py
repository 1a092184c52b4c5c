"""The default gap threshold (issue #18): real gaps kept, solver-split ties masked.

Both sides of the default eps = min(8 √M u, 2⁻¹⁸) · max|λ|, at the sizes the suite's time allows
(M up to 1024 here; 1024 to 4096 in ``benchmarks/gradient_accuracy.py`` and ``benchmarks/tie_splitting.py``,
whose numbers are on the degeneracy docs page):

- random symmetric matrices: eigdiff's gradient error against a float64 reference is at most
  2× torch's native error in the same dtype, plus 1e-6 (full and top-8, float32 and float64);
- exact ties that the solver splits (pairs, half the spectrum, clusters at scales 1e-6 .. 1) are
  all within the threshold: float64 at every size (here up to 256), float32 for M ≤ 64 (M ≤ 16
  for torch's float32 eigh on CUDA), the ranges for which the docs promise it.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from _accuracy import measure

import eigdiff
from eigdiff._gaps import default_eps


@pytest.mark.parametrize("k", ["full", 8])
@pytest.mark.parametrize("M", [128, 512, 1024])
def test_random_matrices_keep_their_real_gaps(M: int, k: int | str) -> None:
    for row in measure(M, M if k == "full" else k, ["default"], seed=M):
        assert row["default"] <= 2 * row["native"] + 1e-6, row


def _tied_matrix(shape: str, M: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """X = Q diag(λ) Qᵀ (float64) with exact ties in λ, and each eigenvalue's cluster label."""
    if shape == "pairs":
        lmd, labels = np.repeat(np.linspace(-1, 1, M // 2), 2), np.repeat(np.arange(M // 2), 2)
    elif shape == "half":
        h = M // 2
        lmd = np.r_[np.linspace(-1, 0.5, M - h), np.ones(h)]
        labels = np.r_[np.arange(M - h) + 1, np.zeros(h, int)]
    else:  # clusters of 4 at magnitudes 10^-e, e in 0 .. 6
        n = M // 4
        lmd = np.repeat(np.where(np.arange(n) % 2, 1.0, -1.0) * 10.0 ** -np.linspace(0, 6, n), 4)
        labels = np.repeat(np.arange(n), 4)
    order = np.argsort(lmd, kind="stable")
    Q, R = np.linalg.qr(rng.standard_normal((M, M)))
    X = (Q * lmd[order]) @ Q.T
    return (X + X.T) / 2, labels[order]


@pytest.mark.parametrize("shape", ["pairs", "half", "scales"])
@pytest.mark.parametrize(
    ("dtype", "M"),
    [("float32", 8), ("float32", 16), ("float32", 64), ("float64", 8), ("float64", 64), ("float64", 256)],
)
def test_solver_split_ties_are_masked(grad_backend, M: int, shape: str, dtype: str) -> None:
    """Every pair of computed eigenvalues from one exact tie is within the default threshold."""
    from eigdiff._gaps import degenerate

    rng = np.random.default_rng(M)
    X, labels = _tied_matrix(shape, M, rng)
    lmd, _ = eigdiff.eigh(grad_backend.asarray(X.astype(dtype)))
    tied = grad_backend.to_numpy(degenerate(lmd, M, None, grad_backend.xp))
    same = labels[:, None] == labels[None, :]
    # The docs' scope: torch's float32 eigh on CUDA (cuSOLVER, as torch 2.11 calls it) splits
    # ties of 64 ≤ M ≤ 512 far beyond the float32 cap of 32u (50u at M = 64 with half the
    # spectrum tied, 130u at 128, 905u at 512; benchmarks/tie_splitting.py on an H200), so the
    # promise there is M ≤ 16. Nothing clearly apart is masked on every route (below).
    promised = not (grad_backend.name == "torch:cuda" and dtype == "float32" and M > 16)
    assert not promised or np.all(tied[same]), (
        f"a tie split beyond eps: max spread "
        f"{max(np.ptp(grad_backend.to_numpy(lmd)[labels == c]) for c in np.unique(labels)):.3g}"
    )
    lmd_np = grad_backend.to_numpy(lmd).astype(np.float64)
    eps = float(np.asarray(grad_backend.to_numpy(default_eps(lmd, grad_backend.xp))).max())
    distinct = np.abs(lmd_np[:, None] - lmd_np[None, :]) > 2 * eps
    assert not np.any(tied & distinct)  # and nothing clearly apart is masked
