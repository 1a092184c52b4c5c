"""The array-API core: one copy of every formula, for every backend.

Notation follows the seed tutorial (``shared/reference``): X = Y Λ Yᵀ with ascending
eigenvalues ``lmd`` (λ) and orthonormal eigenvectors ``Y``; ``V`` is dL/dY for the last
K columns of Y (the K largest eigenpairs), ``g_lmd`` is dL/dλ for the same K eigenvalues.

Everything here reaches its operations through the arrays' namespace (``xp``), so the same
code runs on NumPy, CuPy, torch and array_api_strict arrays, and under torch autograd it is
itself differentiable (double backward, ``torch.func``).
"""

from __future__ import annotations

import math
import operator
import warnings
from types import ModuleType
from typing import Any

from array_api_compat import array_namespace

Array = Any

DEGENERACY_MODES = ("mask", "lorentzian", "taylor")

#: Terms kept in the ``"taylor"`` expansion 1/(a − b) ≈ a⁻¹ Σ_{n<N} (b/a)ⁿ (Wang et al., 2021).
TAYLOR_TERMS = 10

#: Safety factor c in the default gap threshold eps = c · M · u · max|λ| (see `default_eps`).
DEFAULT_EPS_FACTOR = 4.0


class DegenerateGradientWarning(UserWarning):
    """The incoming gradient is not invariant within a degenerate eigenspace.

    There the derivative of the eigenvectors does not exist and the masked (or regularized)
    gradient is one choice among many; see the docs page on degeneracy.
    """


# --------------------------------------------------------------------------- validation


def namespace(*arrays: Array, xp: ModuleType | None = None) -> ModuleType:
    """The array-API namespace of ``arrays`` (``xp`` when given)."""
    if xp is not None:
        return xp
    try:
        return array_namespace(*[a for a in arrays if a is not None])
    except TypeError as exc:
        kinds = ", ".join(sorted({type(a).__module__ + "." + type(a).__name__ for a in arrays if a is not None}))
        raise TypeError(f"eigdiff needs arrays of one array-API library, got {kinds}: {exc}") from None


def check_real_float(a: Array, name: str, xp: ModuleType) -> None:
    """TypeError unless ``a`` is float32 or float64 (float16, ints, bool, complex are refused)."""
    if a.dtype not in (xp.float32, xp.float64):
        raise TypeError(
            f"{name} must be a real float32 or float64 array, got dtype {a.dtype}"
            + (" (complex Hermitian input is not supported yet)" if xp.isdtype(a.dtype, "complex floating") else "")
        )


def check_matrix(X: Array, xp: ModuleType, *, name: str = "X", check_finite: bool = True) -> int:
    """Validate a ``(..., M, M)`` real float matrix stack and return M."""
    shape = tuple(X.shape)
    if len(shape) < 2:
        raise ValueError(f"{name} must have shape (..., M, M) with at least 2 dimensions, got shape {shape}")
    if shape[-1] != shape[-2]:
        raise ValueError(f"{name} must be square in its last two dimensions, got shape {shape}")
    if shape[-1] == 0:
        raise ValueError(f"{name} must have M >= 1, got shape {shape}")
    check_real_float(X, name, xp)
    if check_finite and not bool(xp.all(xp.isfinite(X))):
        raise ValueError(f"{name} contains NaN or Inf; eigdiff needs finite input")
    return shape[-1]


def check_top_k(top_k: object, M: int) -> int:
    """Return ``top_k`` as an int in [1, M] (None means M)."""
    if top_k is None:
        return M
    if isinstance(top_k, bool):
        raise TypeError(f"top_k must be an integer or None, got bool {top_k!r}")
    try:
        k = operator.index(top_k)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"top_k must be an integer or None, got {type(top_k).__name__} {top_k!r}") from None
    if not 1 <= k <= M:
        raise ValueError(f"top_k must be in [1, M] = [1, {M}], got {k}")
    return k


def check_options(eps: object, degeneracy: object) -> None:
    """Validate the gap threshold and the degeneracy mode."""
    if degeneracy not in DEGENERACY_MODES:
        raise ValueError(f"degeneracy must be one of {DEGENERACY_MODES}, got {degeneracy!r}")
    if eps is not None:
        if isinstance(eps, bool) or not isinstance(eps, (int, float)):
            raise TypeError(f"eps must be a non-negative float or None, got {type(eps).__name__} {eps!r}")
        if not (math.isfinite(eps) and eps >= 0):
            raise ValueError(f"eps must be a finite non-negative float or None, got {eps!r}")


# --------------------------------------------------------------------------- forward


def symmetrize(X: Array, xp: ModuleType) -> Array:
    """½(X + Xᵀ) over the last two axes."""
    return (X + X.mT) / 2


def decompose(X: Array, *, xp: ModuleType | None = None) -> tuple[Array, Array]:
    """Full eigendecomposition (lmd ascending, Y) of ½(X + Xᵀ), without validation."""
    xp = namespace(X, xp=xp)
    lmd, Y = xp.linalg.eigh(symmetrize(X, xp))
    return lmd, Y


def top(lmd: Array, Y: Array, k: int) -> tuple[Array, Array]:
    """The k largest eigenpairs of a full ascending decomposition (the tutorial's ``Y[:, :, -k:]``)."""
    M = lmd.shape[-1]
    return lmd[..., M - k :], Y[..., M - k :]


# --------------------------------------------------------------------------- the gap matrix


def default_eps(lmd: Array, xp: ModuleType) -> Array:
    """The dtype- and scale-aware gap threshold, one per matrix, shaped ``(..., 1, 1)``.

    eps = c · M · u · max|λ| with u the dtype's unit roundoff and c = `DEFAULT_EPS_FACTOR`.
    A backward-stable symmetric eigensolver returns eigenvalues within a small multiple of
    M · u · ‖X‖₂ of the exact ones, so computed gaps below eps cannot be told from ties
    (measured: exact ties come back up to 15 u‖X‖ apart in float32 at M = 128).
    """
    M = lmd.shape[-1]
    u = xp.finfo(lmd.dtype).eps
    scale = xp.max(xp.abs(lmd), axis=-1, keepdims=True)
    return (DEFAULT_EPS_FACTOR * M * u) * scale[..., None]


def gap_matrix(
    lmd: Array, k: int, *, eps: float | None, degeneracy: str, xp: ModuleType
) -> tuple[Array, Array, Array]:
    """F with F_ij ≈ 1/(λ_c(j) − λ_i), c(j) = M − k + j, for i < M, j < k.

    Returns ``(F, degenerate, own)``: F regularized by ``degeneracy`` where the gap is below
    ``eps`` (absolute when given, `default_eps` when None), the boolean mask of pairs whose
    gap is at most eps, and the mask of each column's own eigenvector (where F is 0).
    """
    M = lmd.shape[-1]
    dev = lmd.device
    lmd_rows = lmd[..., :, None]
    lmd_cols = lmd[..., None, M - k :]
    gap = lmd_cols - lmd_rows
    threshold = default_eps(lmd, xp) if eps is None else eps
    own = xp.arange(M, device=dev)[:, None] == (xp.arange(k, device=dev)[None, :] + (M - k))
    degenerate = xp.logical_and(xp.abs(gap) <= threshold, xp.logical_not(own))
    zero = xp.zeros((), dtype=lmd.dtype, device=dev)
    one = xp.ones((), dtype=lmd.dtype, device=dev)
    tiny = xp.abs(gap) <= threshold
    exact = xp.where(tiny, zero, one / xp.where(tiny, one, gap))
    if degeneracy == "mask":
        F = exact
    elif degeneracy == "lorentzian":
        # Δ / (Δ² + ε²) (Liao et al., PRX 2019): 0 at a tie, 1/(2ε) at most, ≈ 1/Δ for |Δ| ≫ ε.
        denom = gap * gap + threshold * threshold
        F = xp.where(denom == 0, zero, gap / xp.where(denom == 0, one, denom))
    else:
        # Taylor (Wang et al., TPAMI 2021): with a the eigenvalue of larger magnitude and
        # r = b/a ∈ (0, 1], 1/(a − b) = a⁻¹/(1 − r) ≈ a⁻¹ Σ_{n<N} rⁿ: at most N/|a| at a tie.
        # Pairs of opposite sign (r ≤ 0) have |a − b| ≥ |a|, so the exact 1/Δ is kept there.
        big_is_col = xp.abs(lmd_cols) >= xp.abs(lmd_rows)
        a = xp.where(big_is_col, lmd_cols, lmd_rows)
        b = xp.where(big_is_col, lmd_rows, lmd_cols)
        usable = xp.logical_and(xp.abs(a) > threshold, a * b > 0)
        a_safe = xp.where(usable, a, one)
        r = xp.where(usable, b / a_safe, zero)
        series = one + zero * r
        for _ in range(TAYLOR_TERMS - 1):
            series = one + r * series
        # 1/(λ_col − λ_row) = +1/(a − b) when a is λ_col, −1/(a − b) otherwise.
        sign = xp.where(big_is_col, one, -one)
        F = xp.where(usable, sign * series / a_safe, exact)
    F = xp.where(own, zero, F)
    return F, degenerate, own


# --------------------------------------------------------------------------- backward


def check_decomposition(lmd: Array, Y: Array, xp: ModuleType) -> int:
    """Validate a full decomposition ``lmd (..., M)``, ``Y (..., M, M)``; return M."""
    M = check_matrix(Y, xp, name="Y", check_finite=False)
    check_real_float(lmd, "lmd", xp)
    if tuple(lmd.shape) != tuple(Y.shape[:-1]):
        raise ValueError(
            f"lmd must have shape (..., M) = {tuple(Y.shape[:-1])} to match Y of shape {tuple(Y.shape)}, "
            f"got {tuple(lmd.shape)}"
        )
    if lmd.dtype != Y.dtype:
        raise TypeError(f"lmd and Y must share a dtype, got {lmd.dtype} and {Y.dtype}")
    return M


def check_cotangents(Y: Array, V: Array | None, g_lmd: Array | None, xp: ModuleType) -> int:
    """Validate ``V (..., M, K)`` and ``g_lmd (..., K)`` against ``Y (..., M, M)``; return K."""
    M = Y.shape[-1]
    batch = tuple(Y.shape[:-2])
    K = None
    if V is not None:
        if tuple(V.shape[:-1]) != batch + (M,) or not 1 <= V.shape[-1] <= M:
            raise ValueError(
                f"V must have shape (..., M, K) = {batch + (M,)} + (K,) with 1 <= K <= M = {M} "
                f"to match Y of shape {tuple(Y.shape)}, got {tuple(V.shape)}"
            )
        if V.dtype != Y.dtype:
            raise TypeError(f"V must have Y's dtype {Y.dtype}, got {V.dtype}")
        K = V.shape[-1]
    if g_lmd is not None:
        if tuple(g_lmd.shape[:-1]) != batch or not 1 <= g_lmd.shape[-1] <= M:
            raise ValueError(
                f"g_lmd must have shape (..., K) = {batch} + (K,) with 1 <= K <= M = {M} "
                f"to match Y of shape {tuple(Y.shape)}, got {tuple(g_lmd.shape)}"
            )
        if K is not None and g_lmd.shape[-1] != K:
            raise ValueError(f"V has K = {K} columns but g_lmd has {g_lmd.shape[-1]} entries; they must agree")
        if g_lmd.dtype != Y.dtype:
            raise TypeError(f"g_lmd must have Y's dtype {Y.dtype}, got {g_lmd.dtype}")
        K = g_lmd.shape[-1]
    return M if K is None else K


def backward(
    lmd: Array,
    Y: Array,
    V: Array | None,
    g_lmd: Array | None = None,
    *,
    eps: float | None = None,
    degeneracy: str = "mask",
    check_invariance: bool = False,
    xp: ModuleType | None = None,
) -> Array:
    """dL/dX for X = Y Λ Yᵀ, from the gradients of the K largest eigenpairs.

    With C = F ∘ (Yᵀ V) + E diag(g_lmd), where F_ij = 1/(λ_{M−K+j} − λ_i) (regularized where
    the gap is at most ``eps``) and E places g_lmd on each column's own eigenvector,
    dL/dX = ½(G + Gᵀ) with G = Y C Y_Kᵀ: O(M²K) work, O(M³) only for K = M.

    Parameters
    ----------
    lmd : array, shape (..., M)
        All eigenvalues, ascending, as returned by the forward.
    Y : array, shape (..., M, M)
        All eigenvectors (orthonormal columns), same namespace and dtype.
    V : array of shape (..., M, K), or None
        dL/d(the last K columns of Y); None for a zero eigenvector gradient.
    g_lmd : array of shape (..., K), or None
        dL/d(the last K eigenvalues); None for zero.
    eps : float or None, keyword-only
        Gap at or below which two eigenvalues count as equal: an absolute float, or None for
        the scale- and dtype-aware default c · M · u · max|λ|.
    degeneracy : {"mask", "lorentzian", "taylor"}, keyword-only
        How 1/(λj − λi) is regularized at small gaps (see the degeneracy docs page).
    check_invariance : bool, keyword-only
        Warn with `DegenerateGradientWarning` when the incoming gradient is not invariant
        within a degenerate eigenspace (data-dependent: leave off under compile or vmap).

    Returns
    -------
    dX : array, shape (..., M, M)
        The symmetric gradient, in the inputs' namespace, device and dtype.

    Raises
    ------
    ValueError
        Inconsistent shapes (named in the message), or an unknown ``degeneracy``.
    TypeError
        Non-float or mismatched dtypes, arrays from different libraries.

    Examples
    --------
    >>> import numpy as np, eigdiff
    >>> X = np.array([[2.0, 1.0], [1.0, 3.0]])
    >>> lmd, Y = np.linalg.eigh(X)
    >>> dX = eigdiff.backward(lmd, Y, None, np.array([1.0, 1.0]))  # d trace(X)/dX = I
    >>> np.allclose(dX, np.eye(2))
    True
    """
    xp = namespace(lmd, Y, V, g_lmd, xp=xp)
    check_options(eps, degeneracy)
    check_decomposition(lmd, Y, xp)
    K = check_cotangents(Y, V, g_lmd, xp)
    return backward_unchecked(
        lmd, Y, V, g_lmd, K, eps=eps, degeneracy=degeneracy, check_invariance=check_invariance, xp=xp
    )


def backward_unchecked(
    lmd: Array,
    Y: Array,
    V: Array | None,
    g_lmd: Array | None,
    K: int,
    *,
    eps: float | None,
    degeneracy: str,
    check_invariance: bool = False,
    xp: ModuleType,
) -> Array:
    """`backward` after validation (the adapters' entry point)."""
    M = Y.shape[-1]
    Y_K = Y[..., M - K :]
    if V is None and g_lmd is None:
        return xp.zeros_like(Y)
    if V is None:
        # Only eigenvalue gradients: Y_K diag(g) Y_Kᵀ, exactly symmetric by construction.
        return (Y_K * g_lmd[..., None, :]) @ Y_K.mT
    F, degenerate, own = gap_matrix(lmd, K, eps=eps, degeneracy=degeneracy, xp=xp)
    P = Y.mT @ V
    if check_invariance:
        warn_if_not_invariant(P, degenerate, K, xp)
    C = F * P
    if g_lmd is not None:
        C = C + xp.where(own, g_lmd[..., None, :], xp.zeros((), dtype=C.dtype, device=C.device))
    G = (Y @ C) @ Y_K.mT
    return (G + G.mT) / 2


def warn_if_not_invariant(P: Array, degenerate: Array, K: int, xp: ModuleType) -> None:
    """Warn when Yᵀ V is not symmetric on the degenerate pairs (see `DegenerateGradientWarning`).

    A loss invariant under rotations inside a degenerate eigenspace has (Yᵀ V)_ij = (Yᵀ V)_ji
    for each degenerate pair (i, j) inside the top K, and (Yᵀ V)_ij = 0 where the degenerate
    partner i lies outside the top K. Tolerance: √u · max|Yᵀ V|.
    """
    M = P.shape[-2]
    top_rows = P[..., M - K :, :]  # (..., K, K): rows of the top-K eigenvectors
    skew = top_rows - top_rows.mT
    residual = xp.concat([P[..., : M - K, :], skew], axis=-2) if M > K else skew
    zero = xp.zeros((), dtype=P.dtype, device=P.device)
    if math.prod(P.shape) == 0:
        return
    worst = float(xp.max(xp.where(degenerate, xp.abs(residual), zero)))
    scale = float(xp.max(xp.abs(P)))
    if worst > math.sqrt(xp.finfo(P.dtype).eps) * scale:
        warnings.warn(
            f"the eigenvector gradient is not invariant within a degenerate eigenspace "
            f"(asymmetry {worst:.3g} against gradient scale {scale:.3g}); the derivative does not "
            f"exist there and the {K}-column gradient is a regularized choice",
            DegenerateGradientWarning,
            stacklevel=3,
        )


# --------------------------------------------------------------------------- forward mode


def jvp_unchecked(
    lmd: Array, Y: Array, dX: Array, k: int, *, eps: float | None, degeneracy: str, xp: ModuleType
) -> tuple[Array, Array]:
    """Tangents of the top-k eigenpairs: dλ = diag(Y_kᵀ dS Y_k), dY_k = Y (F ∘ Yᵀ dS Y_k).

    dS = ½(dX + dXᵀ); F is the same regularized gap matrix as in the backward, so this is
    exactly the transpose of `backward`.
    """
    M = Y.shape[-1]
    Y_k = Y[..., M - k :]
    dS_Yk = symmetrize(dX, xp) @ Y_k
    A = Y.mT @ dS_Yk  # (..., M, k)
    F, _, own = gap_matrix(lmd, k, eps=eps, degeneracy=degeneracy, xp=xp)
    dY = Y @ (F * A)
    zero = xp.zeros((), dtype=A.dtype, device=A.device)
    dlmd = xp.sum(xp.where(own, A, zero), axis=-2)
    return dlmd, dY
