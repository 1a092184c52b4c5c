"""Dask adapter: eigdiff on `dask.array` arrays, lazily, one task per chunk per stage.

A dask array of shape ``(..., M, M)`` is a grid of NumPy (or CuPy) blocks. Each block that
holds whole matrices is an ordinary input of eigdiff's NumPy (or CuPy) path, so every
function here builds a lazy graph with `dask.array.apply_gufunc` whose tasks call the public
`eigdiff` functions (or, for the pullbacks, the same core functions they call) on one block:
no formula is written twice, and Dask's scheduler (threads, processes, or a `distributed`
cluster) carries the work. Nothing is computed until the caller asks (``.compute()``,
``dask.compute``, ``.persist()``).

What is checked when: shapes, dtypes, options and chunk layout at call time, from the dask
array's metadata; values (NaN/Inf, ascending eigenvalues, a matrix function's domain) when a
block is computed, by the block's own eigdiff call, so that a bad block raises its ValueError
from ``compute()``.

Chunking: the last two axes of ``X`` (and of ``Y`` in `backward`) must each be one chunk: a
matrix split across blocks would need an all-to-all exchange, whose cost the caller should
choose to pay (``X.rechunk({-2: -1, -1: -1})``), so we raise a ValueError that says so rather
than rechunk silently. Results are chunked like ``X`` along the batch axes. Cotangents and
tangents are rechunked to ``X``'s (or ``Y``'s) chunks, which is free when they already match.

Importing this module imports dask (``pip install 'eigdiff[dask]'``); `eigdiff` imports it only
when a dask array arrives.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

try:
    import dask.array as da
    from dask.array.utils import meta_from_array
except ImportError as exc:  # only on a direct import: a dask array cannot arrive without dask
    raise ImportError("eigdiff's Dask backend needs dask: pip install 'eigdiff[dask]'") from exc

import eigdiff
from eigdiff import _api, _checks, _functions, _small
from eigdiff.backends import adapter_for

Array = Any

#: The libraries whose blocks eigdiff computes (the type of a dask array's ``_meta``).
BLOCK_LIBRARIES = ("numpy", "cupy")


# --------------------------------------------------------------------------- validation


def check_array(a: Array, name: str, *, like: Array | None = None) -> Array:
    """``a`` as a dask array eigdiff accepts: blocks of NumPy or CuPy, known chunk sizes."""
    a = _checks.as_array(a, name, like=like)
    if not _checks.is_dask(a):
        raise TypeError(f"{name} must be a dask array like the other arguments, got {_checks._type_name(a)}")
    try:  # the blocks as eigdiff's own check sees them: masked, sparse and np.matrix blocks are refused
        _checks.as_array(a._meta, "block")
    except TypeError as exc:
        raise TypeError(f"{name} is a dask array of blocks eigdiff refuses: {exc}") from None
    block = _checks.library(a._meta)
    if block not in BLOCK_LIBRARIES:
        raise TypeError(
            f"{name} is a dask array of {_checks._type_name(a._meta)} blocks; eigdiff computes blocks of "
            f"{' or '.join(BLOCK_LIBRARIES)} arrays"
        )
    if like is not None and block != _checks.library(like._meta):
        raise TypeError(f"{name} has {block} blocks but the other arguments have {_checks.library(like._meta)} blocks")
    if any(math.isnan(s) for s in a.shape):
        raise ValueError(f"{name} has unknown chunk sizes (shape {a.shape}); call {name}.compute_chunk_sizes() first")
    return a


def check_matrix_chunks(X: Array, name: str) -> int:
    """Validate a dask ``(..., M, M)`` float stack whose chunks hold whole matrices; return M."""
    M = _checks.check_matrix(X, _checks.namespace(X), name=name, check_finite=False)
    if len(X.chunks[-2]) > 1 or len(X.chunks[-1]) > 1:
        raise ValueError(
            f"{name}'s last two axes are split into chunks {X.chunks[-2:]}; each chunk must hold whole "
            f"matrices. Rechunk them first with {name} = {name}.rechunk({{-2: -1, -1: -1}}) (this moves data "
            f"between chunks; eigdiff leaves that cost to you)"
        )
    return M


def _conform(a: Array | None, like: Array) -> Array | None:
    """``a`` rechunked to ``like``'s batch chunks, its own trailing axes whole (a no-op when they match)."""
    if a is None:
        return None
    batch = like.ndim - 2
    chunks = tuple(like.chunks[:batch]) + tuple((s,) for s in a.shape[batch:])
    return a if a.chunks == chunks else a.rechunk(chunks)


# --------------------------------------------------------------------------- graph building


def _blockwise(func: Callable[..., Any], signature: str, arrays: list[Array], n_out: int, **kwargs: Any) -> Any:
    """`dask.array.apply_gufunc` of ``func`` over the blocks of ``arrays``, with outputs of the
    first array's dtype and block type, and the trailing (core) axes never rechunked."""
    first = arrays[0]
    metas = tuple(meta_from_array(first._meta, ndim=0, dtype=first.dtype) for _ in range(n_out))
    sizes = {"k": kwargs.pop("k")} if "k" in kwargs else None
    return da.apply_gufunc(
        func,
        signature,
        *arrays,
        output_sizes=sizes,
        allow_rechunk=False,
        meta=metas if n_out > 1 else metas[0],
        **kwargs,
    )


def _decomposition(X: Array, method: str = "auto") -> tuple[Array, Array]:
    """The lazy full decomposition (lmd (..., M), Y (..., M, M)) of a validated dask X."""
    return _blockwise(_eigh_block, "(m,m)->(m),(m,m)", [X], 2, window=None, method=method)


# Block functions: module-level so that they pickle by reference for a distributed cluster.


def _eigh_block(X: Array, *, window: tuple[int, int] | None, method: str) -> tuple[Array, Array]:
    return eigdiff.eigh(X, subset_by_index=window, method=method)


def _jvp_block(X: Array, dX: Array, **options: Any) -> tuple[Array, Array, Array, Array]:
    (lmd, Y), (dlmd, dY) = eigdiff.jvp(X, dX, **options)
    return lmd, Y, dlmd, dY


def _backward_block(lmd: Array, Y: Array, *cotangents: Array, has_V: bool, **options: Any) -> Array:
    V, g_lmd = (cotangents[0], cotangents[1:]) if has_V else (None, cotangents)
    return eigdiff.backward(lmd, Y, V, g_lmd[0] if g_lmd else None, **options)


def _function_block(X: Array, *tangent: Array, f: Any, **options: Any) -> Any:
    if tangent:
        return eigdiff.matrix_function_jvp(X, tangent[0], f, **options)
    return eigdiff.matrix_function(X, f, **options)


def _apply_block(lmd: Array, Y: Array, *, spec: _functions.SpectralFunction) -> Array:
    adapter = adapter_for(Y)
    xp = adapter.namespace(Y)
    _functions.check_domain(lmd, spec, xp)
    with adapter.on_device(Y):
        return _functions.apply(lmd, Y, spec, xp)


def _frechet_block(lmd: Array, Y: Array, G: Array, *, spec: _functions.SpectralFunction) -> Array:
    adapter = adapter_for(Y)
    xp = adapter.namespace(Y)
    _checks.check_finite_values(G, "G", xp)
    with adapter.on_device(Y):
        return _functions.frechet(lmd, Y, G, spec, xp)


# --------------------------------------------------------------------------- the public functions


def _prepare(
    X: Array, selection: tuple[object, object, object], eps: object, degeneracy: object, method: object = "auto"
) -> tuple[Array, int, int, tuple[int, int] | None, float | None]:
    """(X, M, k, the window (lo, hi) or None for all M, eps) of validated arguments."""
    X = check_array(X, "X")
    M = check_matrix_chunks(X, "X")
    eps = _checks.check_options(eps, degeneracy)
    _small.choose(method, X, M)  # a bad method raises now; "auto" is resolved per chunk, by its size
    k, lo = _checks.check_selection(*selection, M)
    return X, M, k, None if k == M else (lo, lo + k), eps


def _top_signature(inputs: str, M: int, k: int, n_pairs: int) -> tuple[str, dict[str, int]]:
    """A gufunc signature whose outputs are ``n_pairs`` pairs (k), (m,k), and its size for k."""
    if k == M:
        return inputs + "->" + ",".join(["(m),(m,m)"] * n_pairs), {}
    return inputs + "->" + ",".join(["(k),(m,k)"] * n_pairs), {"k": k}


def eigh(
    X: Array,
    *,
    selection: tuple[object, object, object] = (None, None, None),
    eps: float | None = None,
    degeneracy: str = "mask",
    method: str = "auto",
) -> tuple[Array, Array]:
    """`eigdiff.eigh` of a dask array: lazy (lmd, Y), chunked like X along the batch axes.
    ``selection`` is (top_k, bottom_k, subset_by_index)."""
    X, M, k, window, _eps = _prepare(X, selection, eps, degeneracy, method)
    signature, sizes = _top_signature("(m,m)", M, k, 1)
    return _blockwise(_eigh_block, signature, [X], 2, window=window, method=method, **sizes)


def vjp(
    X: Array,
    *,
    selection: tuple[object, object, object] = (None, None, None),
    eps: float | None = None,
    degeneracy: str = "mask",
    check_invariance: bool = False,
    method: str = "auto",
) -> tuple[tuple[Array, Array], Callable[..., Array]]:
    """`eigdiff.vjp` of a dask array: lazy outputs, and a pullback that builds a lazy gradient.

    The outputs and the gradient share one lazy full decomposition: compute them together
    (``dask.compute(lmd, Y, dX)``) or ``persist`` the outputs, or each ``compute`` solves again.
    """
    X, M, k, window, eps = _prepare(X, selection, eps, degeneracy, method)
    lmd, Y = _decomposition(X, method)
    outputs = (lmd, Y) if window is None else (lmd[..., window[0] : window[1]], Y[..., window[0] : window[1]])
    options = {"eps": eps, "degeneracy": degeneracy, "check_invariance": check_invariance, "subset_by_index": window}

    def pullback(V: Array | None = None, g_lmd: Array | None = None) -> Array:
        V = None if V is None else check_array(V, "V", like=X)
        g_lmd = None if g_lmd is None else check_array(g_lmd, "g_lmd", like=X)
        K = _checks.check_cotangents(Y, V, g_lmd, _checks.namespace(X))
        if (V is not None or g_lmd is not None) and K != k:
            raise ValueError(f"the pullback takes cotangents for the {k} selected eigenpairs, got K = {K}")
        return _backward_graph(X, lmd, Y, V, g_lmd, options)

    return outputs, pullback


def _backward_graph(
    like: Array, lmd: Array, Y: Array, V: Array | None, g_lmd: Array | None, options: dict[str, Any]
) -> Array:
    """The lazy backward of validated dask arrays, chunked like ``like`` (X or Y)."""
    if V is None and g_lmd is None:
        return da.zeros_like(like)  # X's or Y's shape (..., M, M), chunks and block type
    arrays = [_conform(a, like) for a in (lmd, Y, V, g_lmd) if a is not None]
    signature = "(m),(m,m)" + (",(m,k)" if V is not None else "") + (",(k)" if g_lmd is not None else "") + "->(m,m)"
    return _blockwise(_backward_block, signature, arrays, 1, has_V=V is not None, **options)


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
    xp: Any = None,
) -> Array:
    """`eigdiff.backward` of dask arrays: a lazy gradient chunked like ``Y``."""
    Y = check_array(Y, "Y")
    lmd = check_array(lmd, "lmd", like=Y)
    V = None if V is None else check_array(V, "V", like=Y)
    g_lmd = None if g_lmd is None else check_array(g_lmd, "g_lmd", like=Y)
    namespace = _checks.namespace(Y)
    eps = _checks.check_options(eps, degeneracy)
    _checks.check_decomposition(lmd, Y, namespace)
    check_matrix_chunks(Y, "Y")
    K = _checks.check_cotangents(Y, V, g_lmd, namespace)
    if subset_by_index is not None:
        lo = _api._window_of_cotangents(subset_by_index, K, Y.shape[-1])
        subset_by_index = (lo, lo + K)
    options = {
        "eps": eps,
        "degeneracy": degeneracy,
        "check_invariance": check_invariance,
        "subset_by_index": subset_by_index,
    }
    return _backward_graph(Y, lmd, Y, V, g_lmd, options)


def _tangent(dX: Array, X: Array, name: str) -> Array:
    """A tangent or cotangent of dask X: X's shape and dtype (checked as for NumPy), X's chunks."""
    return _conform(_api._like_X(check_array(dX, name, like=X), name, X), X)


def jvp(
    X: Array,
    dX: Array,
    *,
    selection: tuple[object, object, object] = (None, None, None),
    eps: float | None = None,
    degeneracy: str = "mask",
    method: str = "auto",
) -> tuple[tuple[Array, Array], tuple[Array, Array]]:
    """`eigdiff.jvp` of dask arrays: lazy outputs and tangents from one task per chunk."""
    X, M, k, window, eps = _prepare(X, selection, eps, degeneracy, method)
    dX = _tangent(dX, X, "dX")
    signature, sizes = _top_signature("(m,m),(m,m)", M, k, 2)
    options = {"subset_by_index": window, "eps": eps, "degeneracy": degeneracy, "method": method}
    lmd, Y, dlmd, dY = _blockwise(_jvp_block, signature, [X, dX], 4, **options, **sizes)
    return (lmd, Y), (dlmd, dY)


# --------------------------------------------------------------------------- matrix functions


def _prepare_function(
    X: Array, f: object, df: object, p: object, floor: object, method: object = "auto"
) -> tuple[Array, Any]:
    X = check_array(X, "X")
    _small.choose(method, X, check_matrix_chunks(X, "X"))  # a bad method raises now
    return X, _api._spectral_function(f, df, p, floor)


def matrix_function(
    X: Array, f: Any, df: Any = None, *, p: Any = None, floor: Any = None, method: str = "auto"
) -> Array:
    """`eigdiff.matrix_function` of a dask array, lazily."""
    X, _spec = _prepare_function(X, f, df, p, floor, method)
    return _blockwise(_function_block, "(m,m)->(m,m)", [X], 1, f=f, df=df, p=p, floor=floor, method=method)


def matrix_function_jvp(
    X: Array, dX: Array, f: Any, df: Any = None, *, p: Any = None, floor: Any = None, method: str = "auto"
) -> Any:
    """`eigdiff.matrix_function_jvp` of dask arrays: lazy (F, dF) from one task per chunk."""
    X, _spec = _prepare_function(X, f, df, p, floor, method)
    dX = _tangent(dX, X, "dX")
    options = {"f": f, "df": df, "p": p, "floor": floor, "method": method}
    return _blockwise(_function_block, "(m,m),(m,m)->(m,m),(m,m)", [X, dX], 2, **options)


def matrix_function_vjp(
    X: Array, f: Any, df: Any = None, *, p: Any = None, floor: Any = None, method: str = "auto"
) -> tuple[Array, Callable[[Array], Array]]:
    """`eigdiff.matrix_function_vjp` of a dask array: F and the gradient share one lazy decomposition."""
    X, spec = _prepare_function(X, f, df, p, floor, method)
    lmd, Y = _decomposition(X, method)
    F = _blockwise(_apply_block, "(m),(m,m)->(m,m)", [lmd, Y], 1, spec=spec)

    def pullback(G: Array) -> Array:
        G = _tangent(G, X, "G")
        return _blockwise(_frechet_block, "(m),(m,m),(m,m)->(m,m)", [lmd, Y, G], 1, spec=spec)

    return F, pullback
