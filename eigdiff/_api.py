"""Public entry points: `eigh`, `backward`, `vjp`, `jvp`, and the matrix functions."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from types import ModuleType
from typing import Any

from eigdiff import _checks, _core, _functions, _methods, _small, _sparse
from eigdiff.backends import adapter_for

Array = Any


def _dask() -> ModuleType:
    """The Dask adapter (imported on the first dask array: `import eigdiff` does not import dask)."""
    from eigdiff.backends import dask

    return dask


def _accept(X: Array) -> tuple[Any, Any, Any]:
    """(X as accepted, its adapter, its namespace)."""
    X = _checks.as_array(X, "X")
    adapter = adapter_for(X)
    return X, adapter, adapter.namespace(X)


def _prepare(
    X: Array, selection: tuple[object, object, object], eps: object, degeneracy: object, method: object
) -> tuple[Any, Any, Any, int, int, float | None, str]:
    """Validate the forward's arguments: (X as accepted, xp, adapter, k, lo (the window of k
    eigenpairs from index lo), eps as a float or None, the method resolved by `_methods.choose`)."""
    X, adapter, xp = _accept(X)
    eps = _checks.check_options(eps, degeneracy)
    readable = adapter.check_values(X)
    M = _checks.check_matrix(X, xp, check_finite=readable)
    k, lo = _checks.check_selection(*selection, M)
    method = _methods.choose(method, X, M, k, lo=lo, traced=not readable, degeneracy=degeneracy)
    return X, xp, adapter, k, lo, eps, method


def _check_cotangent_values(adapter: Any, xp: ModuleType, **arrays: Array | None) -> None:
    """NaN/Inf in any named array: ValueError naming it (where values may be read)."""
    for name, a in arrays.items():
        if a is not None and adapter.check_values(a):
            _checks.check_finite_values(a, name, xp)


def eigh(
    X: Array,
    *,
    top_k: int | None = None,
    bottom_k: int | None = None,
    subset_by_index: tuple[int, int] | None = None,
    eps: float | None = None,
    degeneracy: str = "mask",
    check_invariance: bool = False,
    method: str = "auto",
    tol: float | None = None,
    maxiter: int | None = None,
    assume_symmetric: bool = False,
) -> tuple[Array, Array]:
    """Eigendecomposition of ½(X + Xᵀ), differentiable through eigdiff's backward.

    Parameters
    ----------
    X : array, shape (..., M, M)
        Real float32 or float64 matrices of any array-API library (NumPy, CuPy, torch,
        array_api_strict, ...). Only the symmetric part ½(X + Xᵀ) is used. Not modified.
        A `dask.array` array gives lazy results, one task per chunk (every function here
        takes dask arrays; see the distributed docs page). Also a sparse matrix (SciPy CSR,
        CSC or COO; torch sparse COO or CSR; CuPy sparse) or a matrix-free operator with
        ``shape``, ``dtype`` and ``matmat`` (SciPy's LinearOperator protocol), with ``top_k``,
        ``bottom_k`` or an end window and method ``"auto"``/``"krylov"``: A is never densified,
        and a torch sparse A gets ``A.grad`` at its stored entries (see the sparse docs page).
    top_k : int in [1, M] or None, keyword-only
        Return only the ``top_k`` eigenpairs of largest eigenvalue (still ascending).
    bottom_k : int in [1, M] or None, keyword-only
        Return only the ``bottom_k`` eigenpairs of smallest eigenvalue.
    subset_by_index : pair (lo, hi) of ints, or None, keyword-only
        Return only the eigenpairs lo ≤ i < hi of the ascending order (0 ≤ lo < hi ≤ M).
        At most one of ``top_k``, ``bottom_k`` and ``subset_by_index``; none returns all M.
        The gradient of a window is exact for its eigenvalues and (where the window is
        separated by more than ``eps`` from the eigenvalues outside it) its eigenvectors;
        at a tie across the window's edge it is masked like any tie.
    eps : real scalar or None, keyword-only
        Gap at or below which two eigenvalues count as equal in the backward: an absolute
        number (Python, NumPy or a 0-d array of any library), or None for the default
        min(8 √M u, 2⁻¹⁸) · max|λ| (u: the dtype's machine epsilon; see the degeneracy docs).
    degeneracy : {"mask", "lorentzian", "taylor"}, keyword-only
        How the backward treats gaps at or below ``eps`` (see the degeneracy docs page).
    check_invariance : bool, keyword-only
        torch: have the backward warn (`DegenerateGradientWarning`) when the incoming
        gradient is not invariant within a degenerate eigenspace. Other libraries have no
        backward here; pass it to `vjp` or `backward` instead.
    method : {"auto", "full", "small", "subset", "krylov"}, keyword-only
        The forward's eigensolver: ``"full"``, the array library's own eigh (LAPACK,
        cuSOLVER); ``"small"``, eigdiff's batched solver for M ≤ 3 from elementwise
        operations (faster on large stacks of 2×2 and 3×3 matrices; accurate to 16 u‖X‖
        also at ties; see the performance docs page); ``"subset"``, for a window of k < M
        eigenpairs: LAPACK's tridiagonal subset route through SciPy (NumPy arrays and CPU
        torch tensors), whose backward solves for the rest of the spectrum's contribution
        instead of computing it; ``"krylov"``, for a window at either end: restarted block
        Krylov iteration on every array-API library (GPUs included), fast on decaying
        spectra, with the same backward (see the partial-spectra docs page); ``"auto"``, the small
        solver or ``"subset"`` where they were measured faster or where the library fails (torch
        CUDA stacks of 65,536 tiny matrices and more; ``eigdiff._small.AUTO_MIN_BATCH``,
        ``eigdiff._methods.AUTO_SUBSET``), the full one elsewhere. Eigenvector signs, and
        bases inside tied eigenspaces, may differ between methods.
    tol, maxiter : float in (0, 1) and int ≥ 1, or None, keyword-only
        The relative residual (default u^(3/4)) and iteration cap of the partial methods'
        iterations: for ``"krylov"`` the forward's (cap: 200 restarts; its backward's solve
        takes ``tol``), for ``"subset"`` the backward's solve (cap: 4M + 100). They raise
        `eigdiff.ConvergenceError` rather than return unconverged results. Unused by the
        other methods.
    assume_symmetric : bool, keyword-only
        Sparse input only: use A as given instead of ½(A + Aᵀ) (formed in the sparse domain,
        one copy of A's pattern), after a one-product probe that raises ValueError if A is not
        symmetric to rounding. Operators are always probed (they have no transpose).

    Returns
    -------
    lmd : array, shape (..., K)
        Eigenvalues, ascending; K = M, or the number selected.
    Y : array, shape (..., M, K)
        Matching orthonormal eigenvectors, as columns.

    Both keep the input's namespace, device and dtype, and own their memory (top-k results
    are compact, not views of the full decomposition). M = 0 gives empty arrays. For torch tensors both are
    differentiable with respect to ``X`` (reverse and forward mode, torch.func, double
    backward); NumPy and CuPy users differentiate with `vjp` or `jvp`.

    Raises
    ------
    ValueError
        ``X`` has fewer than 2 dimensions, is not square, or holds NaN/Inf (not checked
        inside torch.compile or torch.func transforms); ``top_k`` or ``bottom_k`` outside
        [1, M], ``subset_by_index`` not a window 0 ≤ lo < hi ≤ M, or more than one of the
        three given; unknown ``degeneracy``; negative, infinite or non-scalar ``eps``; an unknown
        ``method``, ``"small"`` for M > 3, ``"subset"`` for arrays other than NumPy's and CPU
        torch tensors, ``"krylov"`` for JAX or an interior window, either with
        ``degeneracy="taylor"``; a bad ``tol`` or ``maxiter``.
        Sparse input: the errors of `eigdiff._sparse` (a method other than "auto"/"krylov", no
        or an interior window, NaN/Inf among the stored values, an asymmetric A with
        ``assume_symmetric``, a tie across the window's edge).
    ConvergenceError
        ``"krylov"``: the forward did not converge within ``maxiter`` restarts, or its residual
        stalled at rounding level above ``tol`` (a ``tol`` below what the dtype reaches; the
        message names the least residual reached).
    TypeError
        ``X`` is not an array (a list, ``np.matrix``, a masked array, an unsupported sparse
        format such as LIL), or is
        integer, bool, float16, bfloat16 or complex; ``top_k``, ``bottom_k`` or the entries of
        ``subset_by_index`` are not integers; ``eps`` is not a real number.
    NotImplementedError
        torch: nested forward-mode transforms (``jacfwd(jacfwd(f))``), where torch 2.13
        returns zeros for custom autograd Functions; use ``hessian`` or ``jacrev`` instead.
        torch with ``"subset"`` or ``"krylov"``: second derivatives (double backward,
        ``hessian``) and ``vmap`` over X; use ``"full"`` there (first derivatives work in
        every form, and ``torch.compile`` runs them eagerly).

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
    >>> eigdiff.eigh(np.diag([3.0, 1.0, 2.0]), subset_by_index=(1, 3))[0]
    array([2., 3.])
    """
    selection = (top_k, bottom_k, subset_by_index)
    if _checks.is_dask(X):
        return _dask().eigh(X, selection=selection, eps=eps, degeneracy=degeneracy, method=method)  # type: ignore[no-any-return]
    if _sparse.accepts(X):
        options = _sparse_options(eps, degeneracy, method, tol, maxiter, assume_symmetric)
        return _sparse.eigh(X, selection, check_invariance=check_invariance, **options)
    X, xp, adapter, k, lo, eps, method = _prepare(X, selection, eps, degeneracy, method)
    solver = _solver_options(method, degeneracy, tol, maxiter)
    options = {"eps": eps, "degeneracy": degeneracy, "check_invariance": check_invariance, "method": method}
    return adapter.eigh(X, k, xp=xp, lo=lo, **options, **solver)  # type: ignore[no-any-return]


def _sparse_options(
    eps: object, degeneracy: object, method: object, tol: object, maxiter: object, assume_symmetric: object
) -> dict[str, Any]:
    return {
        "eps": eps,
        "degeneracy": degeneracy,
        "method": method,
        "tol": tol,
        "maxiter": maxiter,
        "assume_symmetric": assume_symmetric,
    }


def _partial_window(
    adapter: Any,
    X: Array,
    xp: ModuleType,
    k: int,
    lo: int,
    eps: float | None,
    degeneracy: str,
    solver: dict[str, Any],
    method: str,
) -> tuple[Any, str]:
    """(the `eigdiff._partial.Window` of a partial method, or None, and the method by which the
    full decomposition is computed where there is no window: "full" when a partial method fell
    back, else ``method``)."""
    if not solver:
        return None, method
    return adapter.window(X, xp, k, lo, method=method, eps=eps, degeneracy=degeneracy, **solver), "full"


def _solver_options(method: str, degeneracy: str, tol: object, maxiter: object) -> dict[str, Any]:
    """The partial methods' solver options ({} for the others), validated."""
    tol, maxiter = _methods.check_solver_options(tol, maxiter)
    if method not in _methods.PARTIAL:
        return {}
    if degeneracy == "taylor":
        raise ValueError(
            f"degeneracy='taylor' replaces 1/(λj − λi) by a truncated series for every same-sign pair, also "
            f"outside the window, which method={method!r} solves for exactly; use method='full' with 'taylor'"
        )
    return {"tol": tol, "maxiter": maxiter}


def backward(
    lmd: Array,
    Y: Array,
    V: Array | None = None,
    g_lmd: Array | None = None,
    *,
    eps: float | None = None,
    degeneracy: str = "mask",
    check_invariance: bool = False,
    subset_by_index: tuple[int, int] | None = None,
    xp: ModuleType | None = None,
) -> Array:
    """dL/dX for X = Y Λ Yᵀ, from the gradients of the K largest eigenpairs (or another window).

    With C = F ∘ (Yᵀ V) + E diag(g_lmd), where F_ij = 1/(λ_{M−K+j} − λ_i) (regularized where
    the gap is at most ``eps``) and E places g_lmd on each column's own eigenvector,
    dL/dX = ½(G + Gᵀ) with G = Y C Y_Kᵀ: O(M²K) work, O(M³) only for K = M.

    Parameters
    ----------
    lmd : array, shape (..., M)
        All eigenvalues, ascending (checked), as returned by the forward.
    Y : array, shape (..., M, M)
        All eigenvectors (orthonormal columns), same library and dtype.
    V : array of shape (..., M, K), or None
        dL/d(the last K columns of Y); None for a zero eigenvector gradient.
    g_lmd : array of shape (..., K), or None
        dL/d(the last K eigenvalues); None for zero.
    eps : real scalar or None, keyword-only
        Gap at or below which two eigenvalues count as equal: an absolute number, or None
        for the scale- and dtype-aware default min(8 √M u, 2⁻¹⁸) · max|λ|.
    degeneracy : {"mask", "lorentzian", "taylor"}, keyword-only
        How 1/(λj − λi) is regularized at small gaps (see the degeneracy docs page).
    check_invariance : bool, keyword-only
        Warn with `DegenerateGradientWarning` when the incoming gradient is not invariant
        within a degenerate eigenspace (data-dependent: leave off under compile or vmap).
    subset_by_index : pair (lo, hi) of ints, or None, keyword-only
        The eigenpairs lo ≤ i < hi that ``V``'s columns and ``g_lmd``'s entries refer to
        (K = hi − lo); None: the last K (the top K), as `eigh` with ``top_k`` returns them.

    Returns
    -------
    dX : array, shape (..., M, M)
        The symmetric gradient, in the inputs' namespace, device and dtype.

    Raises
    ------
    ValueError
        Inconsistent shapes (named in the message), NaN or Inf in any array (named; not
        checked inside torch.compile or torch.func transforms), ``lmd`` not ascending, an
        unknown ``degeneracy`` or a bad ``eps``; ``subset_by_index`` not a window
        0 ≤ lo < hi ≤ M, or of another size than V's K columns.
    TypeError
        Non-float or mismatched dtypes; a list, scalar, sparse or masked array; arrays from
        different libraries (both named).

    Examples
    --------
    >>> import numpy as np, eigdiff
    >>> X = np.array([[2.0, 1.0], [1.0, 3.0]])
    >>> lmd, Y = np.linalg.eigh(X)
    >>> dX = eigdiff.backward(lmd, Y, None, np.array([1.0, 1.0]))  # d trace(X)/dX = I
    >>> np.allclose(dX, np.eye(2))
    True
    """
    if any(_checks.is_dask(a) for a in (lmd, Y, V, g_lmd)):
        options = {"eps": eps, "degeneracy": degeneracy, "check_invariance": check_invariance}
        return _dask().backward(lmd, Y, V, g_lmd, subset_by_index=subset_by_index, **options)
    Y = _checks.as_array(Y, "Y")
    lmd = _checks.as_array(lmd, "lmd", like=Y)
    V = None if V is None else _checks.as_array(V, "V", like=Y)
    g_lmd = None if g_lmd is None else _checks.as_array(g_lmd, "g_lmd", like=Y)
    xp = _checks.namespace(lmd, Y, V, g_lmd, xp=xp)
    eps = _checks.check_options(eps, degeneracy)
    _checks.check_decomposition(lmd, Y, xp)
    K = _checks.check_cotangents(Y, V, g_lmd, xp)
    lo = _window_of_cotangents(subset_by_index, K, Y.shape[-1])
    adapter = adapter_for(Y)
    _check_cotangent_values(adapter, xp, lmd=lmd, Y=Y, V=V, g_lmd=g_lmd)
    if adapter.check_values(lmd):
        _checks.check_ascending(lmd, xp)
    return _backward(adapter, lmd, Y, V, g_lmd, K, eps, degeneracy, check_invariance, xp, lo)


def _window_of_cotangents(subset_by_index: object, K: int, M: int) -> int:
    """The first index of the window that K cotangent columns refer to (`backward`'s
    ``subset_by_index``; None: the last K)."""
    if subset_by_index is None:
        return M - K
    k, lo = _checks.check_selection(None, None, subset_by_index, M)
    if k != K:
        raise ValueError(f"subset_by_index = ({lo}, {lo + k}) selects {k} eigenpairs but V and g_lmd give K = {K}")
    return lo


def _backward(
    adapter: Any,
    lmd: Array,
    Y: Array,
    V: Array | None,
    g_lmd: Array | None,
    K: int,
    eps: float | None,
    degeneracy: str,
    check_invariance: bool,
    xp: ModuleType,
    lo: int | None = None,
) -> Array:
    """`backward` after validation: the core on the arrays' device (window of K from ``lo``)."""
    if check_invariance and not adapter.check_values(lmd):
        raise ValueError(
            "check_invariance reads values, which a traced computation (jax.jit, vmap, torch.compile or "
            "a torch.func transform) does not have: call it eagerly"
        )
    with adapter.on_device(Y):
        return adapter.backward(
            lmd, Y, V, g_lmd, K, eps=eps, degeneracy=degeneracy, check_invariance=check_invariance, xp=xp, lo=lo
        )


def vjp(
    X: Array,
    *,
    top_k: int | None = None,
    bottom_k: int | None = None,
    subset_by_index: tuple[int, int] | None = None,
    eps: float | None = None,
    degeneracy: str = "mask",
    check_invariance: bool = False,
    method: str = "auto",
    tol: float | None = None,
    maxiter: int | None = None,
    assume_symmetric: bool = False,
) -> tuple[tuple[Array, Array], Callable[..., Array]]:
    """`eigh` with a pullback, for libraries without autograd (NumPy, CuPy), as ``jax.vjp``.

    The full decomposition is kept inside the pullback, so the pullback of k selected
    eigenpairs costs O(M²k); with ``method="subset"`` it keeps the tridiagonal form instead and
    solves for the unselected spectrum's contribution (O(M²k) plus the iterative solve).

    Parameters
    ----------
    X, top_k, bottom_k, subset_by_index, eps, degeneracy, method, tol, maxiter, assume_symmetric
        As in `eigh`. For sparse X the pullback returns dL/dX at X's stored entries as a
        sparse matrix of X's format and pattern; for a matrix-free operator, the factors
        ``(U, F)`` with dL/dX = ½(U Fᵀ + F Uᵀ) (U = Y, (M, k)).
    check_invariance : bool, keyword-only
        Have the pullback warn (`DegenerateGradientWarning`) when the incoming gradient is
        not invariant within a degenerate eigenspace, where no derivative exists.

    Returns
    -------
    (lmd, Y) : arrays
        As `eigh` returns them: arrays of their own, so editing them leaves the pullback
        unchanged.
    pullback : callable
        ``pullback(V=None, g_lmd=None) -> dX``: ``V`` of Y's shape is dL/dY, ``g_lmd`` of
        lmd's shape is dL/dlmd, either None for zero; ``dX`` (..., M, M) is symmetric.
        With neither, ``dX`` is zeros: the exact gradient of a loss that depends on neither
        output (as ``jax.vjp``'s pullback of a zero cotangent), deliberately not an error.
        Raises ValueError when a cotangent's shape does not match its output or it holds
        NaN/Inf, TypeError when it is not an array of X's library and dtype; for the partial
        methods, `eigdiff.ConvergenceError` when the backward's iterative solve does not reach
        ``tol`` within its cap or, at a window's end, diverges below what the dtype reaches.

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
    selection = (top_k, bottom_k, subset_by_index)
    if _checks.is_dask(X):
        options = {"eps": eps, "degeneracy": degeneracy, "check_invariance": check_invariance, "method": method}
        return _dask().vjp(X, selection=selection, **options)  # type: ignore[no-any-return]
    if _sparse.accepts(X):
        options = _sparse_options(eps, degeneracy, method, tol, maxiter, assume_symmetric)
        return _sparse.vjp(X, selection, check_invariance=check_invariance, **options)
    X, xp, adapter, k, lo, eps, method = _prepare(X, selection, eps, degeneracy, method)
    solver = _solver_options(method, degeneracy, tol, maxiter)
    window, method = _partial_window(adapter, X, xp, k, lo, eps, degeneracy, solver, method)
    if window is not None:
        lmd, Y = window.lmd, window.Y
        outputs = (xp.asarray(lmd, copy=True), xp.asarray(Y, copy=True))
    else:
        lmd, Y = adapter.decompose(X, xp, method)
        outputs = _core.top(lmd, Y, k, xp, copy=True, lo=lo)  # the pullback keeps lmd and Y to itself

    def pullback(V: Array | None = None, g_lmd: Array | None = None) -> Array:
        V = None if V is None else _checks.as_array(V, "V", like=Y)
        g_lmd = None if g_lmd is None else _checks.as_array(g_lmd, "g_lmd", like=Y)
        if window is not None:
            _checks.check_cotangents_of_window(Y, V, g_lmd)
            _check_cotangent_values(adapter, xp, V=V, g_lmd=g_lmd)
            with adapter.on_device(X):
                return window.backward(V, g_lmd, check_invariance=check_invariance)
        K = _checks.check_cotangents(Y, V, g_lmd, xp)
        if (V is not None or g_lmd is not None) and K != k:
            raise ValueError(f"the pullback takes cotangents for the {k} selected eigenpairs, got K = {K}")
        _check_cotangent_values(adapter, xp, V=V, g_lmd=g_lmd)
        return _backward(adapter, lmd, Y, V, g_lmd, K, eps, degeneracy, check_invariance, xp, lo if K == k else None)

    return outputs, pullback


def jvp(
    X: Array,
    dX: Array,
    *,
    top_k: int | None = None,
    bottom_k: int | None = None,
    subset_by_index: tuple[int, int] | None = None,
    eps: float | None = None,
    degeneracy: str = "mask",
    method: str = "auto",
    tol: float | None = None,
    maxiter: int | None = None,
    assume_symmetric: bool = False,
) -> tuple[tuple[Array, Array], tuple[Array, Array]]:
    """Forward-mode derivative of `eigh`: the outputs and their tangents along ``dX``.

    dλ = diag(Y_kᵀ dS Y_k) and dY_k = Y (F ∘ Yᵀ dS Y_k) with dS = ½(dX + dXᵀ) and the same
    regularized gap matrix F as the backward, so ⟨V, J dX⟩ = ⟨backward(V), dX⟩ exactly.

    Parameters
    ----------
    X, top_k, bottom_k, subset_by_index, eps, degeneracy, method, tol, maxiter, assume_symmetric
        As in `eigh`.
    dX : array, shape (..., M, M)
        The tangent; same namespace, shape and dtype as ``X``. For sparse X, a sparse matrix
        of the same library, shape and dtype (any pattern); for an operator, a symmetric
        operator of X's shape.

    Returns
    -------
    (lmd, Y) : arrays
        As `eigh` returns them.
    (dlmd, dY) : arrays
        Their tangents, of the same shapes.

    Raises
    ------
    ValueError, TypeError
        As `eigh`, and when ``dX`` does not match ``X`` in library, shape or dtype, or
        holds NaN/Inf.

    Examples
    --------
    >>> import numpy as np, eigdiff
    >>> X = np.diag([1.0, 3.0])
    >>> (lmd, Y), (dlmd, dY) = eigdiff.jvp(X, np.array([[0.0, 1.0], [1.0, 1.0]]))
    >>> dlmd
    array([0., 1.])
    """
    selection = (top_k, bottom_k, subset_by_index)
    if _checks.is_dask(X):
        return _dask().jvp(X, dX, selection=selection, eps=eps, degeneracy=degeneracy, method=method)  # type: ignore[no-any-return]
    if _sparse.accepts(X):
        return _sparse.jvp(X, dX, selection, **_sparse_options(eps, degeneracy, method, tol, maxiter, assume_symmetric))
    X, xp, adapter, k, lo, eps, method = _prepare(X, selection, eps, degeneracy, method)
    solver = _solver_options(method, degeneracy, tol, maxiter)
    dX = _check_like_X(dX, "dX", X, adapter, xp)
    window, method = _partial_window(adapter, X, xp, k, lo, eps, degeneracy, solver, method)
    if window is not None:
        with adapter.on_device(X):
            tangents = window.jvp(dX)
        return (xp.asarray(window.lmd, copy=True), xp.asarray(window.Y, copy=True)), tangents
    lmd, Y = adapter.decompose(X, xp, method)
    with adapter.on_device(X):
        tangents = adapter.jvp(lmd, Y, dX, k, eps=eps, degeneracy=degeneracy, xp=xp, lo=lo)
    return _core.top(lmd, Y, k, xp, copy=True, lo=lo), tangents


# --------------------------------------------------------------------------- matrix functions


def _spectral_function(f: object, df: object, p: object, floor: object) -> _functions.SpectralFunction:
    """Resolve ``f`` (a built-in name or a callable), ``df``, ``p`` and ``floor`` into a spec."""
    if isinstance(f, str):
        if df is not None:
            raise ValueError(f"df is only for a callable f; {f!r} has its own derivative")
        if f == "power":
            if p is None:
                raise ValueError("f='power' needs the exponent p")
            if isinstance(p, bool) or not isinstance(p, numbers.Real) or not math.isfinite(float(p)):
                raise ValueError(f"p must be a finite real number, got {p!r}")
            spec = _functions.power(float(p))
        elif f in _functions.BUILTIN:
            spec = _functions.BUILTIN[f]
        else:
            raise ValueError(f"f must be a callable or one of {sorted([*_functions.BUILTIN, 'power'])}, got {f!r}")
    elif callable(f):
        if df is not None and not callable(df):
            raise TypeError(f"df must be callable or None, got {type(df).__name__}")
        spec = _functions.custom(f, df)  # type: ignore[arg-type]
    else:
        raise TypeError(f"f must be a callable or the name of a built-in function, got {type(f).__name__}")
    if p is not None and f != "power":
        raise ValueError("p is only for f='power' (or powm)")
    if floor is not None:
        value = _checks.real_scalar(floor, "floor", positive=spec.domain == "positive")
        spec = _functions.floored(spec, value)
    return spec


def _prepare_function(
    X: Array, f: object, df: object, p: object, floor: object, method: object
) -> tuple[Any, Any, Any, Any, str]:
    X, adapter, xp = _accept(X)
    M = _checks.check_matrix(X, xp, check_finite=adapter.check_values(X))
    return X, xp, adapter, _spectral_function(f, df, p, floor), _small.choose(method, X, M)


def _like_X(S: Array, name: str, X: Array) -> Array:
    """``S`` (a tangent or cotangent of X) as accepted: X's library, shape and dtype (no values read)."""
    S = _checks.as_array(S, name, like=X)
    if tuple(S.shape) != tuple(X.shape):
        raise ValueError(f"{name} must have X's shape {tuple(X.shape)}, got {tuple(S.shape)}")
    if S.dtype != X.dtype:
        raise TypeError(f"{name} must have X's dtype {X.dtype}, got {S.dtype}")
    return S


def _check_like_X(S: Array, name: str, X: Array, adapter: Any, xp: ModuleType) -> Array:
    """`_like_X`, and finite (where values may be read)."""
    S = _like_X(S, name, X)
    _check_cotangent_values(adapter, xp, **{name: S})
    return S


def matrix_function(
    X: Array,
    f: Callable[[Array], Array] | str,
    df: Callable[[Array], Array] | None = None,
    *,
    p: float | None = None,
    floor: float | None = None,
    method: str = "auto",
) -> Array:
    """f(X) = Y f(Λ) Yᵀ of the symmetric part of X, with the exact (Daleckii–Krein) derivative.

    The derivative needs no gap threshold: Df(X)[S] = Y (Γ ∘ Yᵀ S Y) Yᵀ with Γ the divided
    differences of f, which are f′ at tied eigenvalues. So the gradient is exact and finite at
    exactly repeated eigenvalues, where the (Λ, Y) chain rule (torch's eigh autograd) gives NaN.

    Parameters
    ----------
    X : array, shape (..., M, M)
        Real float32 or float64 matrices of any array-API library; only ½(X + Xᵀ) is used.
    f : callable or str
        An elementwise function of an array (written with the array's own namespace, e.g.
        ``np.tanh`` for NumPy or ``torch.tanh`` for torch), or a built-in name: ``"sqrt"``,
        ``"inv_sqrt"``, ``"log"``, ``"exp"``, ``"power"`` (with ``p``). The built-ins have
        divided differences free of cancellation (rounding-level accurate near ties).
    df : callable or None
        f′, for a callable ``f``. Used at and near ties (pairs within ∛u of each other's size);
        None uses a central difference of ``f`` there. Either way about u^{2/3} relative.
    p : float, keyword-only
        The exponent for ``f="power"``.
    floor : float or None, keyword-only
        Clamp the eigenvalues at ``floor`` before applying f (its derivative is 0 below it), for
        matrices that are positive semidefinite up to rounding. Without it, eigenvalues outside
        f's domain raise.
    method : {"auto", "full", "small"}, keyword-only
        The eigensolver, as in `eigh` (``"small"``: stacks of 2×2 and 3×3 matrices, e.g. the
        logarithms of diffusion tensors); the derivative is the same for all.

    Returns
    -------
    F : array, shape (..., M, M)
        Symmetric, in X's namespace, device and dtype. Differentiable for torch tensors
        (reverse and forward mode, double backward, torch.func); NumPy and CuPy users
        differentiate with `matrix_function_vjp` and `matrix_function_jvp`.

    Raises
    ------
    ValueError
        A bad shape or NaN/Inf in X; eigenvalues outside f's domain (negative for ``"sqrt"``
        and non-integer powers, non-positive for ``"log"``, ``"inv_sqrt"`` and negative
        non-integer powers, zero for negative integer powers), naming the smallest; an
        unknown name; ``df`` with a built-in name; a bad ``p`` or ``floor``.
    TypeError
        As `eigh` for X; ``f`` neither callable nor a name.

    Examples
    --------
    >>> import numpy as np, eigdiff
    >>> eigdiff.matrix_function(np.diag([1.0, 4.0]), "sqrt")
    array([[1., 0.],
           [0., 2.]])
    >>> eigdiff.matrix_function(np.diag([0.0, 1.0]), np.tanh, lambda x: 1 - np.tanh(x) ** 2).round(4)
    array([[0.    , 0.    ],
           [0.    , 0.7616]])
    """
    if _checks.is_dask(X):
        return _dask().matrix_function(X, f, df, p=p, floor=floor, method=method)
    X, xp, adapter, spec, method = _prepare_function(X, f, df, p, floor, method)
    return adapter.matrix_function(X, spec, xp, method)


def matrix_function_vjp(
    X: Array,
    f: Callable[[Array], Array] | str,
    df: Callable[[Array], Array] | None = None,
    *,
    p: float | None = None,
    floor: float | None = None,
    method: str = "auto",
) -> tuple[Array, Callable[[Array], Array]]:
    """`matrix_function` with a pullback, for libraries without autograd (NumPy, CuPy).

    Returns ``(F, pullback)``; ``pullback(G)`` takes dL/dF of F's shape and returns dL/dX =
    Y (Γ ∘ Yᵀ ½(G + Gᵀ) Y) Yᵀ, symmetric. Arguments and errors as `matrix_function`; the
    pullback raises ValueError or TypeError for a G of another shape, dtype or library, or
    holding NaN/Inf.

    Examples
    --------
    >>> import numpy as np, eigdiff
    >>> F, pullback = eigdiff.matrix_function_vjp(np.eye(2), "log")  # ties: exact, no NaN
    >>> pullback(np.array([[1.0, 2.0], [0.0, 1.0]]))  # log′(1) = 1 on the symmetric part
    array([[1., 1.],
           [1., 1.]])
    """
    if _checks.is_dask(X):
        return _dask().matrix_function_vjp(X, f, df, p=p, floor=floor, method=method)  # type: ignore[no-any-return]
    X, xp, adapter, spec, method = _prepare_function(X, f, df, p, floor, method)
    lmd, Y = adapter.decompose_in_domain(X, spec, xp, method)
    with adapter.on_device(X):
        F = _functions.apply(lmd, Y, spec, xp)

    def pullback(G: Array) -> Array:
        G = _check_like_X(G, "G", X, adapter, xp)
        with adapter.on_device(X):
            return _functions.frechet(lmd, Y, G, spec, xp)

    return F, pullback


def matrix_function_jvp(
    X: Array,
    dX: Array,
    f: Callable[[Array], Array] | str,
    df: Callable[[Array], Array] | None = None,
    *,
    p: float | None = None,
    floor: float | None = None,
    method: str = "auto",
) -> tuple[Array, Array]:
    """`matrix_function` and its Fréchet derivative along ``dX``: (F, Df(X)[½(dX + dXᵀ)]).

    Arguments and errors as `matrix_function`, and ``dX`` must match X in library, shape and
    dtype and be finite.

    Examples
    --------
    >>> import numpy as np, eigdiff
    >>> F, dF = eigdiff.matrix_function_jvp(np.diag([1.0, 1.0]), np.array([[0.0, 1.0], [1.0, 0.0]]), "exp")
    >>> (dF / np.e).round(12)  # exp′(1) = e on the tie
    array([[0., 1.],
           [1., 0.]])
    """
    if _checks.is_dask(X):
        return _dask().matrix_function_jvp(X, dX, f, df, p=p, floor=floor, method=method)  # type: ignore[no-any-return]
    X, xp, adapter, spec, method = _prepare_function(X, f, df, p, floor, method)
    dX = _check_like_X(dX, "dX", X, adapter, xp)
    lmd, Y = adapter.decompose_in_domain(X, spec, xp, method)
    with adapter.on_device(X):
        return _functions.apply(lmd, Y, spec, xp), _functions.frechet(lmd, Y, dX, spec, xp)


def sqrtm(X: Array, *, floor: float | None = None, method: str = "auto") -> Array:
    """The principal square root of a positive semidefinite X: ``matrix_function(X, "sqrt")``.

    Raises ValueError for a negative eigenvalue unless ``floor`` (≥ 0) clamps it. At a zero
    eigenvalue the derivative is infinite (f′(0) = ∞).

    >>> import numpy as np, eigdiff
    >>> S = eigdiff.sqrtm(np.array([[2.0, 1.0], [1.0, 2.0]]))
    >>> np.allclose(S @ S, [[2.0, 1.0], [1.0, 2.0]])
    True
    """
    return matrix_function(X, "sqrt", floor=floor, method=method)


def inv_sqrtm(X: Array, *, floor: float | None = None, method: str = "auto") -> Array:
    """X^{-1/2} of a positive definite X (whitening): ``matrix_function(X, "inv_sqrt")``.

    Raises ValueError for a non-positive eigenvalue unless ``floor`` (> 0) clamps it.

    >>> import numpy as np, eigdiff
    >>> eigdiff.inv_sqrtm(np.diag([4.0, 0.25]))
    array([[0.5, 0. ],
           [0. , 2. ]])
    """
    return matrix_function(X, "inv_sqrt", floor=floor, method=method)


def logm(X: Array, *, floor: float | None = None, method: str = "auto") -> Array:
    """The principal logarithm of a positive definite X: ``matrix_function(X, "log")``.

    Raises ValueError for a non-positive eigenvalue unless ``floor`` (> 0) clamps it.

    >>> import numpy as np, eigdiff
    >>> eigdiff.logm(np.diag([1.0, np.e]))
    array([[0., 0.],
           [0., 1.]])
    """
    return matrix_function(X, "log", floor=floor, method=method)


def expm(X: Array, *, method: str = "auto") -> Array:
    """The exponential of a symmetric X: ``matrix_function(X, "exp")``.

    >>> import numpy as np, eigdiff
    >>> eigdiff.expm(np.zeros((2, 2)))
    array([[1., 0.],
           [0., 1.]])
    """
    return matrix_function(X, "exp", method=method)


def powm(X: Array, p: float, *, floor: float | None = None, method: str = "auto") -> Array:
    """X^p: ``matrix_function(X, "power", p=p)``.

    Integer p: any symmetric X (non-singular for p < 0). Other p: positive semidefinite X
    (positive definite for p < 0), or ``floor`` to clamp.

    >>> import numpy as np, eigdiff
    >>> eigdiff.powm(np.diag([-2.0, 3.0]), 3)
    array([[-8.,  0.],
           [ 0., 27.]])
    """
    return matrix_function(X, "power", p=p, floor=floor, method=method)
