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
    gradient is one choice among many; see the docs page on degeneracy. Raised only when
    asked for, with ``check_invariance=True``.

    Examples
    --------
    >>> import warnings, numpy as np, eigdiff
    >>> V = np.zeros((3, 2)); V[2, 0] = 1.0  # turns y₂ towards y₃ inside the tie λ₂ = λ₃
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     _ = eigdiff.backward(np.array([0.0, 1.0, 1.0]), np.eye(3), V, check_invariance=True)
    >>> caught[0].category.__name__
    'DegenerateGradientWarning'
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


def default_eps(lmd: Array, xp: ModuleType, degeneracy: str = "mask") -> Array:
    """The dtype- and scale-aware default eps, one per matrix, shaped ``(..., 1, 1)``.

    ``"mask"`` and ``"taylor"``: eps = c · M · u · max|λ| with u the dtype's machine epsilon
    and c = `DEFAULT_EPS_FACTOR`. A backward-stable symmetric eigensolver returns eigenvalues
    within a small multiple of M · u · ‖X‖₂ of the exact ones, so computed gaps below eps
    cannot be told from ties (measured in float32: tied eigenvalues came back within 15 to
    29 u‖X‖ of the exact value for M = 128 to 1024); gaps above it are resolved and kept exact.

    ``"lorentzian"``: ε = √u · max|λ|, the broadening: 1/Δ is kept to a relative error below
    (ε/Δ)² for Δ ≫ ε, and no entry of F exceeds 1/(2ε), a gradient amplification of at most
    1/(2√u) ≈ 1.5e3 (float32) or 3.4e7 (float64) relative to ‖V‖/‖X‖. A threshold at
    rounding level would not regularize at all.
    """
    u = xp.finfo(lmd.dtype).eps
    factor = math.sqrt(u) if degeneracy == "lorentzian" else DEFAULT_EPS_FACTOR * lmd.shape[-1] * u
    scale = xp.max(xp.abs(lmd), axis=-1, keepdims=True)
    return factor * scale[..., None]


def gap_threshold(lmd: Array, eps: float | None, xp: ModuleType, degeneracy: str = "mask") -> Array | float:
    """``eps`` when given (absolute), else `default_eps` for the mode."""
    return default_eps(lmd, xp, degeneracy) if eps is None else eps


def gaps(lmd: Array, k: int) -> Array:
    """Δ_ij = λ_{M−k+j} − λ_i, shape (..., M, k)."""
    M = lmd.shape[-1]
    return lmd[..., None, M - k :] - lmd[..., :, None]


def own_columns(M: int, k: int, like: Array, xp: ModuleType) -> Array:
    """E (M, k) with E_ij = 1 where i = M − k + j: each column's own eigenvector."""
    return xp.eye(M, k, k=k - M, dtype=like.dtype, device=like.device)


def gap_matrix(lmd: Array, k: int, *, eps: float | None, degeneracy: str, xp: ModuleType) -> Array:
    """F with F_ij ≈ 1/(λ_{M−k+j} − λ_i), shape (..., M, k), regularized where |Δ| ≤ eps.

    ``eps`` is absolute when given, `default_eps` when None. Each column's own entry
    (i = M − k + j) is 0 in every mode. No division ever sees a zero, so F and its derivatives
    (double backward) stay finite.
    """
    ones = xp.ones(lmd.shape[:-1] + (lmd.shape[-1], k), dtype=lmd.dtype, device=lmd.device)
    return gap_product(ones, lmd, k, eps=eps, degeneracy=degeneracy, xp=xp)


def gap_product(
    P: Array,
    lmd: Array,
    k: int,
    *,
    eps: float | None,
    degeneracy: str,
    xp: ModuleType,
    halve: bool = False,
    overwrite: bool = False,
) -> Array:
    """F ∘ P for the `gap_matrix` F (times ½ when ``halve``), P of shape (..., M, k).

    ``halve`` runs on 2λ and 2·eps, which scales every mode's F by exactly ½ at no cost.
    ``overwrite`` lets the product be formed in P's memory (never under autograd recording).
    """
    lmd_scaled = lmd * 2 if halve else lmd
    gap = gaps(lmd_scaled, k)
    threshold = gap_threshold(lmd, eps, xp, degeneracy)
    if halve:
        threshold = threshold * 2
    if degeneracy == "lorentzian":
        # Δ / (Δ² + ε²) (Liao et al., PRX 2019): 0 at a tie, at most 1/(2ε), ≈ 1/Δ for |Δ| ≫ ε.
        denominator = gap * gap + threshold * threshold
        return _times(P, gap / xp.where(denominator == 0, 1.0, denominator), overwrite)  # 0/1 at Δ = ε = 0
    tiny = xp.abs(gap) <= threshold  # includes each column's own entry, where Δ = 0
    if degeneracy == "mask":
        # P / Δ with Δ := inf where tiny (P/inf = 0): no division by zero, finite derivatives.
        if overwrite:
            gap[tiny] = math.inf
            P /= gap
            return P
        return P / xp.where(tiny, math.inf, gap)
    # "taylor" (Wang et al., TPAMI 2021): for a same-sign pair with a the eigenvalue of larger
    # magnitude and r = b/a ∈ (0, 1], |λ_c − λ_i| = |a|(1 − r) and 1/(1 − r) ≈ Σ_{n<N} rⁿ: at
    # most N/|a| at a tie. The sign is that of c − i (eigenvalues ascend), which keeps F
    # antisymmetric at ties too. Opposite-sign pairs (r ≤ 0) have |Δ| ≥ |a|: exact 1/Δ there;
    # pairs whose larger eigenvalue is within eps of zero are masked.
    M = lmd.shape[-1]
    rows, cols = lmd_scaled[..., :, None], lmd_scaled[..., None, M - k :]
    size = xp.maximum(xp.abs(rows), xp.abs(cols))  # |a|
    usable = (size > threshold) & (rows * cols > 0)
    size_or_inf = xp.where(usable, size, math.inf)
    r = xp.minimum(xp.abs(rows), xp.abs(cols)) / size_or_inf  # 0 where not usable
    series = xp.ones_like(r)
    for _ in range(TAYLOR_TERMS - 1):
        series = 1 + r * series
    # c(j) − i: positive above each column's own eigenvector, 0 on it (where F must be 0).
    offset = (xp.arange(k, device=lmd.device)[None, :] + (M - k)) - xp.arange(M, device=lmd.device)[:, None]
    signed = xp.where(offset > 0, series, xp.where(offset < 0, -series, 0.0))
    F = xp.where(usable, signed / size_or_inf, 1 / xp.where(tiny, math.inf, gap))  # own entry: 0 either way
    return _times(P, F, overwrite)


def _times(P: Array, F: Array, overwrite: bool) -> Array:
    if overwrite:
        P *= F
        return P
    return P * F


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
    overwrite: bool = False,
    xp: ModuleType,
) -> Array:
    """`backward` after validation (the adapters' entry point).

    ``overwrite=True`` forms products in the memory of temporaries (fewer passes over memory);
    pass it only where no autograd records the operations.
    """
    M = Y.shape[-1]
    Y_K = Y[..., M - K :]
    if V is None:
        if g_lmd is None:
            return xp.zeros_like(Y)
        # Only eigenvalue gradients: Y_K diag(g) Y_Kᵀ, as ½(G + Gᵀ) so that it is exactly symmetric.
        G = (Y_K * (g_lmd[..., None, :] / 2)) @ Y_K.mT
        return G + G.mT
    P = Y.mT @ V
    if check_invariance:
        warn_if_not_invariant(lmd, P, K, eps, xp)
    # C = ½(F ∘ P + E diag g): the ½ of ½(G + Gᵀ) is folded into C, where it costs nothing.
    C = gap_product(P, lmd, K, eps=eps, degeneracy=degeneracy, xp=xp, halve=True, overwrite=overwrite)
    if g_lmd is not None:
        C = C + own_columns(M, K, C, xp) * (g_lmd[..., None, :] / 2)
    G = (Y @ C) @ Y_K.mT
    return G + G.mT


def warn_if_not_invariant(lmd: Array, P: Array, K: int, eps: float | None, xp: ModuleType) -> None:
    """Warn when Yᵀ V is not symmetric on the degenerate pairs (see `DegenerateGradientWarning`).

    A loss invariant under rotations inside a degenerate eigenspace has (Yᵀ V)_ij = (Yᵀ V)_ji
    for each degenerate pair (i, j) inside the top K, and (Yᵀ V)_ij = 0 where the degenerate
    partner i lies outside the top K. Tolerance: √u · max|Yᵀ V|.
    """
    M = P.shape[-2]
    if math.prod(P.shape) == 0:
        return
    degenerate = xp.abs(gaps(lmd, K)) <= gap_threshold(lmd, eps, xp)
    top_rows = P[..., M - K :, :]  # (..., K, K): rows of the top-K eigenvectors
    skew = top_rows - top_rows.mT
    residual = xp.concat([P[..., : M - K, :], skew], axis=-2) if M > K else skew
    worst = float(xp.max(xp.where(degenerate, xp.abs(residual), 0.0)))
    scale = float(xp.max(xp.abs(P)))
    if worst > math.sqrt(xp.finfo(P.dtype).eps) * scale:
        warnings.warn(
            f"the eigenvector gradient is not invariant within a degenerate eigenspace "
            f"(asymmetry {worst:.3g} against gradient scale {scale:.3g}); the derivative does not "
            f"exist there and the {K}-column gradient is a regularized choice",
            DegenerateGradientWarning,
            stacklevel=4,
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
    A = Y.mT @ (symmetrize(dX, xp) @ Y_k)  # (..., M, k)
    dY = Y @ gap_product(A, lmd, k, eps=eps, degeneracy=degeneracy, xp=xp)
    dlmd = xp.sum(own_columns(M, k, A, xp) * A, axis=-2)
    return dlmd, dY
