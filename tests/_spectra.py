"""Hypothesis strategies for spectra, test matrices, losses and a finite-difference reference.

Matrices are built as X = Q diag(λ) Qᵀ in float64 NumPy from a drawn spectrum and a drawn
seed for the random orthogonal Q, so the spectrum (gaps, clusters, scale) is controlled.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st


def orthogonal(M: int, rng: np.random.Generator) -> np.ndarray:
    Q, R = np.linalg.qr(rng.standard_normal((M, M)))
    return Q * np.sign(np.diag(R))


def matrix_from_spectrum(lmd: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Symmetric float64 stacks with eigenvalues ``lmd`` (..., M)."""
    out = np.empty(lmd.shape + lmd.shape[-1:])
    for idx in np.ndindex(lmd.shape[:-1]):
        Q = orthogonal(lmd.shape[-1], rng)
        X = (Q * lmd[idx]) @ Q.T
        out[idx] = (X + X.T) / 2
    return out


batch_shapes = st.sampled_from([(), (2,), (2, 1)])
seeds = st.integers(0, 2**32 - 1)


@st.composite
def separated_spectra(draw: st.DrawFn, max_m: int = 6, min_gap: float = 0.1) -> np.ndarray:
    """Ascending spectra with every gap at least ``min_gap`` times the spread (scale ~1)."""
    M = draw(st.integers(1, max_m))
    batch = draw(batch_shapes)
    rng = np.random.default_rng(draw(seeds))
    gaps = min_gap + rng.random(batch + (M,))
    lmd = np.cumsum(gaps, axis=-1) - draw(st.floats(0.0, 3.0))
    return lmd


CLUSTER_KINDS = ("clusters", "zero", "rank_one")
CLUSTER_SPREADS = (0.0, 1e-9, 1e-3)
CLUSTER_SCALES = (1e-6, 1e-2, 1.0, 1e3, 1e6)


def clustered_spectrum(
    rng: np.random.Generator, kind: str, M: int, scale: float, spread: float, sizes: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """An ascending spectrum with forced clusters and the cluster label of each eigenvalue.

    ``kind``: "clusters" (cluster sizes ``sizes``, centres at least 0.3 apart relative to the
    scale, gaps inside a cluster ``spread`` times [1, 1.5], relative), "zero" or "rank_one"
    (sign drawn from ``rng``). The whole spectrum is multiplied by ``scale``.
    """
    if kind == "zero":
        return np.zeros(M), np.zeros(M, dtype=int)
    if kind == "rank_one":
        sign = rng.choice([-1.0, 1.0])
        lmd = np.zeros(M)
        lmd[-1 if sign > 0 else 0] = sign * scale
        labels = np.zeros(M, dtype=int)
        labels[-1 if sign > 0 else 0] = 1
        order = np.argsort(lmd, kind="stable")
        return lmd[order], labels[order]
    centres = np.cumsum(0.3 + rng.random(len(sizes))) - rng.random() * len(sizes) * 0.6
    lmd, labels = [], []
    for c, (centre, size) in enumerate(zip(centres, sizes)):
        offsets = np.cumsum(np.r_[0.0, 1.0 + 0.5 * rng.random(size - 1)]) * spread
        lmd.extend(centre + offsets)
        labels.extend([c] * size)
    return np.asarray(lmd) * scale, np.asarray(labels)


def random_cluster_sizes(rng: np.random.Generator, M: int) -> list[int]:
    sizes: list[int] = []
    while sum(sizes) < M:
        sizes.append(min(int(rng.integers(1, 4)), M - sum(sizes)))
    return sizes


@st.composite
def clustered_spectra(draw: st.DrawFn, max_m: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """`clustered_spectrum` with its parameters drawn: the degeneracy corpus.

    Exact ties, ties below float32 resolution (gaps of 1e-9 relative), ties at 1e-3 relative;
    scales 1e-6 .. 1e6; zero and rank-one matrices.
    """
    kind = draw(st.sampled_from(["clusters", "clusters", "clusters", "zero", "rank_one"]))
    M = draw(st.integers(2, max_m))
    scale = draw(st.sampled_from(CLUSTER_SCALES))
    spread = draw(st.sampled_from(CLUSTER_SPREADS))
    rng = np.random.default_rng(draw(seeds))
    sizes = []
    while sum(sizes) < M:
        sizes.append(min(draw(st.integers(1, 3)), M - sum(sizes)))
    return clustered_spectrum(rng, kind, M, scale, spread, sizes)


def cluster_boundaries(labels: np.ndarray) -> list[int]:
    """The k (number of top eigenpairs) that do not split a cluster."""
    M = len(labels)
    return [k for k in range(1, M + 1) if k == M or labels[M - k] != labels[M - k - 1]]


# ---------------------------------------------------------------- losses and references


def quadratic_loss_cotangents(
    lmd_k: np.ndarray, Y_k: np.ndarray, B: np.ndarray, c: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray]:
    """L = Σ_j y_jᵀ B_j y_j + Σ_j c_j λ_j (sign-invariant): value, dL/dY, dL/dλ.

    ``B`` (..., K, M, M) symmetric, ``c`` (..., K).
    """
    BY = np.einsum("...jab,...bj->...aj", B, Y_k)
    value = float(np.sum(Y_k * BY) + np.sum(c * lmd_k))
    return value, 2 * BY, c.copy()


def quadratic_loss(X: np.ndarray, k: int, B: np.ndarray, c: np.ndarray) -> float:
    lmd, Y = np.linalg.eigh((X + np.swapaxes(X, -1, -2)) / 2)
    M = X.shape[-1]
    return quadratic_loss_cotangents(lmd[..., M - k :], Y[..., M - k :], B, c)[0]


def cluster_invariant_loss(scale: float, labels: np.ndarray, k: int, rng: np.random.Generator):
    """L = s Σ_{j ≥ M−k} h_{c(j)} y_jᵀ A y_j + (w/s) Σ_{j ≥ M−k} λ_j², s the spectrum's scale.

    Invariant under rotations inside each cluster (h is constant on a cluster and the
    λ² sum is symmetric), smooth while clusters stay apart; both parts are O(1) in s.
    """
    M = len(labels)
    h = rng.standard_normal(labels.max() + 1)[labels[M - k :]]
    A = random_symmetric((M, M), rng)
    w = rng.standard_normal()
    B = scale * h[:, None, None] * A[None]
    c_of = lambda lmd_k: (w / scale) * lmd_k

    def loss(Z: np.ndarray) -> float:
        lmd_all, Y = np.linalg.eigh((Z + Z.T) / 2)
        value, _, _ = quadratic_loss_cotangents(lmd_all[M - k :], Y[:, M - k :], B, np.zeros(k))
        return value + (w / scale) * float(np.sum(lmd_all[M - k :] ** 2))

    return B, c_of, loss


def finite_difference(f, X: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central differences of a scalar f at float64 X, entry by entry (O(h²) truncation)."""
    G = np.zeros_like(X)
    for idx in np.ndindex(X.shape):
        E = np.zeros_like(X)
        E[idx] = h
        G[idx] = (f(X + E) - f(X - E)) / (2 * h)
    return G


def random_symmetric(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    A = rng.standard_normal(shape)
    return (A + np.swapaxes(A, -1, -2)) / 2


def smallest_gap(spectrum: np.ndarray, window) -> float:  # noqa: ANN001
    """min |λ_j − λ_i| over j in ``window`` (indices into the 1-D ``spectrum``) and i ≠ j: the
    conditioning of the window's eigenvectors (‖dy_j‖ ≤ ‖dS‖₂ / this)."""
    return float(min(abs(spectrum[j] - spectrum[i]) for j in window for i in range(len(spectrum)) if i != j))
