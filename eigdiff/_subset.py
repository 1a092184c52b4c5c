"""The ``"subset"`` forward: LAPACK's tridiagonal route to a window of eigenpairs, through SciPy.

For each matrix, what LAPACK's subset drivers (``?syevr``) do inside, step by step, so that the
backward can reuse the steps: the Householder tridiagonalization S = Q T Qᵀ (``?sytrd``,
(4/3)M³ flops, the bulk of the cost), the window's eigenpairs of T by MRRR (``?stemr``, O(Mk)),
and their back-transformation Y_W = Q Z_W (``?ormqr`` on the reflectors, O(M²k)). The extreme
eigenvalues of T (bisection, O(M)) give the spectrum's scale for the default gap threshold, and
one guard eigenvalue on each side of the window tells whether the window's edge cuts a cluster.

The backward's projected solve (`eigdiff._partial.projected_solve`) then runs on T, whose product
with a block costs O(Mk), between one Qᵀ V and one Q W (O(M²k) each). What is kept per matrix:
the reflectors (M² entries, as much as X itself), T's two diagonals and Z_W.

NumPy arrays only (torch CPU tensors arrive here as NumPy views of their memory); SciPy is
imported when the method is first used.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

Array = Any

__all__ = ["TridiagonalOperator", "decompose"]


def _scipy() -> Any:
    try:
        import scipy.linalg
    except ImportError as exc:
        raise ImportError(
            "method='subset' needs SciPy (LAPACK's subset drivers): pip install 'eigdiff[scipy]'"
        ) from exc
    return scipy.linalg


class TridiagonalOperator:
    """The basis Q of S = Q T Qᵀ for a stack of matrices (see `eigdiff._partial.Operator`).

    ``reflectors[b]``, ``taus[b]``: matrix b's Householder vectors as ``?sytrd`` leaves them
    (lower), cut to the (M − 1) × (M − 1) block that ``?ormqr`` applies; ``d`` (..., M) and
    ``e`` (..., M − 1): T's diagonals; ``Z`` (..., M, k): the window's eigenvectors of T.
    """

    def __init__(self, reflectors: list[Array], taus: list[Array], d: Array, e: Array, Z: Array) -> None:
        self.reflectors, self.taus, self.d, self.e, self.Z = reflectors, taus, d, e, Z
        self.factors: list[tuple[Array, Array]] | None = None

    def set_preconditioner(self, sigma: Array, sign: float) -> None:
        """Precondition with M = sign · (σ I − T) per matrix (σ (...,) beyond the spectrum's end
        that the window touches, so that M is positive definite): its LDLᵀ (``?pttrf``), once."""
        lapack = _scipy().lapack
        d = self.d.reshape((-1, self.d.shape[-1]))
        e = self.e.reshape((-1, self.e.shape[-1]))
        pttrf = lapack.get_lapack_funcs("pttrf", (d,))
        self.factors = []
        for b, s in enumerate(np.reshape(sigma, (-1,))):
            df, ef, info = pttrf(sign * (s - d[b]), -sign * e[b])
            if info != 0:  # not positive definite: no preconditioner (plain MINRES still converges)
                self.factors = None
                return
            self.factors.append((df, ef))

    @property
    def precondition(self) -> Any:
        return None if self.factors is None else self._precondition

    def _precondition(self, B: Array) -> Array:
        lapack = _scipy().lapack
        flat = B.reshape((-1,) + B.shape[-2:])
        out = np.empty_like(flat)
        pttrs = lapack.get_lapack_funcs("pttrs", (flat,))
        for b, (df, ef) in enumerate(self.factors):  # type: ignore[arg-type]
            out[b], info = pttrs(df, ef, flat[b])
        return out.reshape(B.shape)

    def _apply_q(self, B: Array, trans: str) -> Array:
        lapack = _scipy().lapack
        batch = B.shape[:-2]
        out = np.array(B, dtype=B.dtype, copy=True)
        if B.shape[-2] < 2 or B.shape[-1] == 0:
            return out  # Q = I for M = 1
        flat = out.reshape((-1,) + B.shape[-2:])
        ormqr = lapack.get_lapack_funcs("ormqr", (flat,))
        for b in range(flat.shape[0]):
            H, tau = self.reflectors[b], self.taus[b]
            C = np.asfortranarray(flat[b, 1:])
            lwork = max(1, C.shape[1] * 64)
            result, _, info = ormqr("L", trans, H, tau, C, lwork)
            if info != 0:  # pragma: no cover - LAPACK argument errors only
                raise RuntimeError(f"LAPACK ?ormqr failed with info = {info}")
            flat[b, 1:] = result
        return flat.reshape(batch + B.shape[-2:])

    def to_basis(self, B: Array) -> Array:
        return self._apply_q(B, "T")

    def from_basis(self, B: Array) -> Array:
        return self._apply_q(B, "N")

    def matvec(self, B: Array) -> Array:
        d, e = self.d[..., :, None], self.e[..., :, None]
        out = d * B
        out[..., :-1, :] += e * B[..., 1:, :]
        out[..., 1:, :] += e * B[..., :-1, :]
        return out


def _upper_symmetrized(X: Array) -> Array:
    """A new M × M array whose upper triangle is ½(X + Xᵀ)'s, rounded as `eigdiff._core.symmetrize`
    rounds it (x_ij/2 + x_ji/2); its strict lower blocks are left as X/2 (``?sytrd`` reads one
    triangle). Tile by tile, so that the transposed operand is read in cache-sized pieces."""
    from eigdiff._core import TRANSPOSE_TILE as tile

    H = X * 0.5
    M = X.shape[-1]
    for i in range(0, M, tile):
        for j in range(i, M, tile):
            H[i : i + tile, j : j + tile] += H[j : j + tile, i : i + tile].T
    return H


def decompose(X: Array, lo: int, hi: int) -> tuple[Array, Array, Array, Array, TridiagonalOperator]:
    """The eigenpairs lo ≤ i < hi of each ½(X + Xᵀ), X (..., M, M) (NumPy, float32 or float64;
    not modified).

    Returns ``(lmd_W (..., k), Y_W (..., M, k), guards (..., 2), extremes (..., 2), op)``:
    ``guards`` the eigenvalues just outside the window (λ_{lo−1}, λ_hi; ±inf where the window
    reaches an end), ``extremes`` (λ_0, λ_{M−1}), ``op`` the `TridiagonalOperator` for the
    backward.
    """
    linalg = _scipy()
    batch, M = X.shape[:-2], X.shape[-1]
    k = hi - lo
    flat = X.reshape((-1, M, M))
    count = flat.shape[0]
    sytrd = linalg.lapack.get_lapack_funcs("sytrd", (flat,))
    d_all = np.empty((count, M), dtype=X.dtype)
    e_all = np.empty((count, max(M - 1, 0)), dtype=X.dtype)
    lmd = np.empty((count, k), dtype=X.dtype)
    Z = np.empty((count, M, k), dtype=X.dtype)
    guards = np.full((count, 2), np.inf, dtype=X.dtype)
    guards[:, 0] = -np.inf
    extremes = np.empty((count, 2), dtype=X.dtype)
    reflectors, taus = [], []
    g_lo, g_hi = max(lo - 1, 0), min(hi + 1, M)  # the window with one guard on each side
    for b in range(count):
        lwork = max(1, 64 * M)
        # The upper triangle of a C-ordered array is the lower one of its Fortran-ordered
        # transpose: LAPACK works in place in the new buffer, without an f2py copy.
        c, d, e, tau, info = sytrd(_upper_symmetrized(flat[b]).T, lower=1, lwork=lwork, overwrite_a=1)
        if info != 0:  # pragma: no cover - LAPACK argument errors only
            raise RuntimeError(f"LAPACK ?sytrd failed with info = {info}")
        reflectors.append(np.asfortranarray(c[1:, : M - 1]))
        taus.append(np.array(tau[: M - 1]))
        d_all[b], e_all[b] = d, e
        # T's eigenvalues from an exact power-of-two scale of (d, e) near 1: LAPACK's bisection
        # (?stebz) overflows its Gershgorin bounds for entries near the float maximum. In float64
        # for float32 input (d, e are exact there): sstemr left an eigenvector off by 479 u where
        # float32 eigh was off by 0.5 u (docs/partial-spectra.md).
        big = float(max(np.max(np.abs(d)), np.max(np.abs(e), initial=0.0)))
        unit = 2.0 ** round(math.log2(big)) if big > 0 else 1.0
        d, e = (d / unit).astype(np.float64), (e / unit).astype(np.float64)
        if M == 1:
            w, z = d.copy(), np.ones((1, 1), dtype=X.dtype)
        else:
            w, z = linalg.eigh_tridiagonal(
                d, e, select="i", select_range=(g_lo, g_hi - 1), lapack_driver="stemr", check_finite=False
            )
        w, z = (w * unit).astype(X.dtype, copy=False), z.astype(X.dtype, copy=False)
        lmd[b], Z[b] = w[lo - g_lo : lo - g_lo + k], z[:, lo - g_lo : lo - g_lo + k]
        if lo > 0:
            guards[b, 0] = w[0]
        if hi < M:
            guards[b, 1] = w[-1]
        extremes[b, 0] = w[0] if g_lo == 0 else unit * _eigenvalue(linalg, d, e, 0)
        extremes[b, 1] = w[-1] if g_hi == M else unit * _eigenvalue(linalg, d, e, M - 1)
    op = TridiagonalOperator(
        reflectors,
        taus,
        d_all.reshape(batch + (M,)),
        e_all.reshape(batch + (max(M - 1, 0),)),
        Z.reshape(batch + (M, k)),
    )
    Y = op.from_basis(op.Z)
    return lmd.reshape(batch + (k,)), Y, guards.reshape(batch + (2,)), extremes.reshape(batch + (2,)), op


def _eigenvalue(linalg: Any, d: Array, e: Array, i: int) -> Any:
    """λ_i of the tridiagonal (d, e) by bisection (O(M))."""
    return linalg.eigvalsh_tridiagonal(d, e, select="i", select_range=(i, i), check_finite=False)[0]


def window(
    S: Array, k: int, lo: int, *, eps: float | None, degeneracy: str, tol: float | None, maxiter: int | None
) -> Any:
    """The `eigdiff._partial.Window` of the k eigenpairs from ``lo`` of ½(S + Sᵀ) (S not modified),
    or None where the window's edge cuts a cluster (see `eigdiff._partial.make_window`)."""
    import array_api_compat.numpy as xp

    from eigdiff._partial import make_window

    M = S.shape[-1]
    lmd, Y, guards, extremes, op = decompose(S, lo, lo + k)
    options: dict[str, Any] = {"eps": eps, "degeneracy": degeneracy, "tol": tol, "maxiter": maxiter}
    result = make_window(lmd, Y, guards, extremes, op, method="subset", M=M, lo=lo, xp=xp, **options)
    if result is not None:
        if lo + k == M and lo > 0:  # a top window: M = σ − T with σ above λ_max by the edge gap
            op.set_preconditioner(extremes[..., 1] + (lmd[..., 0] - guards[..., 0]), 1.0)
        elif lo == 0 and k < M:  # a bottom window: M = T − σ with σ below λ_min by the edge gap
            op.set_preconditioner(extremes[..., 0] - (guards[..., 1] - lmd[..., -1]), -1.0)
    return result
