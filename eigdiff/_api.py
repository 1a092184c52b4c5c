"""Public entry points: `eigh`, `backward`, `vjp`, `jvp`."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from eigdiff import _core
from eigdiff.backends import adapter_for

Array = Any


def _prepare(X: Array, top_k: object, eps: object, degeneracy: object) -> tuple[Any, Any, int]:
    adapter = adapter_for(X)
    xp = adapter.namespace(X)
    _core.check_options(eps, degeneracy)
    M = _core.check_matrix(X, xp, check_finite=adapter.check_values(X))
    return xp, adapter, _core.check_top_k(top_k, M)


def eigh(
    X: Array,
    *,
    top_k: int | None = None,
    eps: float | None = None,
    degeneracy: str = "mask",
    check_invariance: bool = False,
) -> tuple[Array, Array]:
    """Eigendecomposition of ½(X + Xᵀ), differentiable through eigdiff's backward.

    Parameters
    ----------
    X : array, shape (..., M, M)
        Real float32 or float64 matrices of any array-API library (NumPy, CuPy, torch,
        array_api_strict, ...). Only the symmetric part ½(X + Xᵀ) is used. Not modified.
    top_k : int in [1, M] or None, keyword-only
        Return only the ``top_k`` eigenpairs of largest eigenvalue (still ascending).
    eps : float or None, keyword-only
        Gap at or below which two eigenvalues count as equal in the backward: an absolute
        float, or None for the default c · M · u · max|λ| (u: the dtype's machine epsilon).
    degeneracy : {"mask", "lorentzian", "taylor"}, keyword-only
        How the backward treats gaps at or below ``eps`` (see the degeneracy docs page).
    check_invariance : bool, keyword-only
        torch: have the backward warn (`DegenerateGradientWarning`) when the incoming
        gradient is not invariant within a degenerate eigenspace. Other libraries have no
        backward here; pass it to `vjp` or `backward` instead.

    Returns
    -------
    lmd : array, shape (..., K)
        Eigenvalues, ascending; K = M, or ``top_k``.
    Y : array, shape (..., M, K)
        Matching orthonormal eigenvectors, as columns.

    Both keep the input's namespace, device and dtype. For torch tensors both are
    differentiable with respect to ``X`` (reverse and forward mode, torch.func, double
    backward); NumPy and CuPy users differentiate with `vjp` or `jvp`.

    Raises
    ------
    ValueError
        ``X`` has fewer than 2 dimensions, is not square, has M = 0, or holds NaN/Inf (not
        checked inside torch.compile or torch.func transforms); ``top_k`` outside [1, M];
        unknown ``degeneracy``; negative ``eps``.
    TypeError
        ``X`` is integer, bool, float16, bfloat16 or complex; ``top_k`` is not an integer.

    Examples
    --------
    >>> import numpy as np, eigdiff
    >>> X = np.array([[2.0, 1.0], [1.0, 2.0]])
    >>> lmd, Y = eigdiff.eigh(X)
    >>> lmd
    array([1., 3.])
    >>> lmd, Y = eigdiff.eigh(X, top_k=1)
    >>> Y.shape
    (2, 1)
    """
    xp, adapter, k = _prepare(X, top_k, eps, degeneracy)
    return adapter.eigh(X, k, eps=eps, degeneracy=degeneracy, xp=xp, check_invariance=check_invariance)  # type: ignore[arg-type]


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
    xp = _core.namespace(lmd, Y, V, g_lmd, xp=xp)
    _core.check_options(eps, degeneracy)
    _core.check_decomposition(lmd, Y, xp)
    K = _core.check_cotangents(Y, V, g_lmd, xp)
    adapter = adapter_for(Y)
    with adapter.on_device(Y):
        return _core.backward_unchecked(
            lmd,
            Y,
            V,
            g_lmd,
            K,
            eps=eps,
            degeneracy=degeneracy,
            check_invariance=check_invariance,
            overwrite=adapter.may_overwrite(lmd, Y, V, g_lmd),
            xp=xp,
        )


def vjp(
    X: Array,
    *,
    top_k: int | None = None,
    eps: float | None = None,
    degeneracy: str = "mask",
    check_invariance: bool = False,
) -> tuple[tuple[Array, Array], Callable[..., Array]]:
    """`eigh` with a pullback, for libraries without autograd (NumPy, CuPy), as ``jax.vjp``.

    The full decomposition is kept inside the pullback, so the top-k pullback costs O(M²k).

    Parameters
    ----------
    X, top_k, eps, degeneracy
        As in `eigh`.
    check_invariance : bool, keyword-only
        Have the pullback warn (`DegenerateGradientWarning`) when the incoming gradient is
        not invariant within a degenerate eigenspace, where no derivative exists.

    Returns
    -------
    (lmd, Y) : arrays
        As `eigh` returns them.
    pullback : callable
        ``pullback(V=None, g_lmd=None) -> dX``: ``V`` of Y's shape is dL/dY, ``g_lmd`` of
        lmd's shape is dL/dlmd, either None for zero; ``dX`` (..., M, M) is symmetric.
        Raises ValueError when a cotangent's shape does not match its output.

    Examples
    --------
    >>> import numpy as np, eigdiff
    >>> X = np.diag([1.0, 2.0, 4.0])
    >>> (lmd, Y), pullback = eigdiff.vjp(X, top_k=1)
    >>> pullback(None, np.ones(1))  # d λ_max / dX = y yᵀ
    array([[0., 0., 0.],
           [0., 0., 0.],
           [0., 0., 1.]])
    """
    xp, adapter, k = _prepare(X, top_k, eps, degeneracy)
    lmd, Y = adapter.decompose(X, xp)
    outputs = _core.top(lmd, Y, k)

    def pullback(V: Array | None = None, g_lmd: Array | None = None) -> Array:
        K = _core.check_cotangents(Y, V, g_lmd, xp)
        if (V is not None or g_lmd is not None) and K != k:
            raise ValueError(f"the pullback takes cotangents for top_k = {k} eigenpairs, got K = {K}")
        return backward(lmd, Y, V, g_lmd, eps=eps, degeneracy=degeneracy, check_invariance=check_invariance, xp=xp)

    return outputs, pullback


def jvp(
    X: Array, dX: Array, *, top_k: int | None = None, eps: float | None = None, degeneracy: str = "mask"
) -> tuple[tuple[Array, Array], tuple[Array, Array]]:
    """Forward-mode derivative of `eigh`: the outputs and their tangents along ``dX``.

    dλ = diag(Y_kᵀ dS Y_k) and dY_k = Y (F ∘ Yᵀ dS Y_k) with dS = ½(dX + dXᵀ) and the same
    regularized gap matrix F as the backward, so ⟨V, J dX⟩ = ⟨backward(V), dX⟩ exactly.

    Parameters
    ----------
    X, top_k, eps, degeneracy
        As in `eigh`.
    dX : array, shape (..., M, M)
        The tangent; same namespace, shape and dtype as ``X``.

    Returns
    -------
    (lmd, Y) : arrays
        As `eigh` returns them.
    (dlmd, dY) : arrays
        Their tangents, of the same shapes.

    Raises
    ------
    ValueError, TypeError
        As `eigh`, and when ``dX`` does not match ``X`` in shape or dtype.

    Examples
    --------
    >>> import numpy as np, eigdiff
    >>> X = np.diag([1.0, 3.0])
    >>> (lmd, Y), (dlmd, dY) = eigdiff.jvp(X, np.array([[0.0, 1.0], [1.0, 1.0]]))
    >>> dlmd
    array([0., 1.])
    """
    xp, adapter, k = _prepare(X, top_k, eps, degeneracy)
    if tuple(dX.shape) != tuple(X.shape):
        raise ValueError(f"dX must have X's shape {tuple(X.shape)}, got {tuple(dX.shape)}")
    if dX.dtype != X.dtype:
        raise TypeError(f"dX must have X's dtype {X.dtype}, got {dX.dtype}")
    lmd, Y = adapter.decompose(X, xp)
    with adapter.on_device(X):
        tangents = _core.jvp_unchecked(lmd, Y, dX, k, eps=eps, degeneracy=degeneracy, xp=xp)
    return _core.top(lmd, Y, k), tangents
