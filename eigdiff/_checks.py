"""Validation of eigdiff's inputs: every error is raised early and names the argument.

Shapes and options are checked everywhere; value checks (NaN/Inf, ascending eigenvalues) run
wherever the value can be read without tracing a branch (not inside torch.compile or a
torch.func transform: see `eigdiff.backends.ArrayAPIAdapter.check_values`).
"""

from __future__ import annotations

import math
import numbers
import operator
import os
import sys
from types import ModuleType
from typing import Any

from array_api_compat import array_namespace, is_array_api_obj

Array = Any

DEGENERACY_MODES = ("mask", "lorentzian", "taylor")


def user_stacklevel() -> int:
    """The ``stacklevel`` for a `warnings.warn` in the calling function that attributes the
    warning to the first frame outside eigdiff and outside the array library's own machinery
    (torch's autograd engine calling a backward, JAX's tracing): the user's line, whatever the
    path through eigdiff's layers. (Python 3.12's ``skip_file_prefixes``, for Python 3.11.)"""
    prefixes = [os.path.dirname(os.path.abspath(__file__)) + os.sep]
    for name in ("torch", "jax"):
        path = getattr(sys.modules.get(name), "__file__", None)
        if path:
            prefixes.append(os.path.dirname(os.path.abspath(path)) + os.sep)
    frame, level = sys._getframe(1), 1  # the caller of this function: warn's stacklevel 1
    while frame.f_back is not None and os.path.abspath(frame.f_code.co_filename).startswith(tuple(prefixes)):
        frame, level = frame.f_back, level + 1
    return level


def library(a: Array) -> str:
    """The library of an array: "numpy", "torch", "cupy", "array_api_strict", "jax", ... (the
    top-level module of its type; JAX's arrays and tracers, defined in jaxlib and jax._src, are "jax")."""
    root = type(a).__module__.split(".")[0]
    return "jax" if root == "jaxlib" else root


def _type_name(a: object) -> str:
    kind = type(a)
    return f"{kind.__module__}.{kind.__qualname__}" if kind.__module__ != "builtins" else kind.__qualname__


def namespace(*arrays: Array, xp: ModuleType | None = None) -> ModuleType:
    """The array-API namespace of ``arrays`` (``xp`` when given)."""
    if xp is not None:
        return xp
    try:
        return array_namespace(*[a for a in arrays if a is not None])
    except TypeError as exc:
        kinds = ", ".join(sorted({_type_name(a) for a in arrays if a is not None}))
        raise TypeError(f"eigdiff needs arrays of one array-API library, got {kinds}: {exc}") from None


def as_array(a: Array, name: str, *, like: Array | None = None) -> Array:
    """``a`` as an array eigdiff accepts, or a TypeError naming ``name``.

    Refused: what is not an array (lists, Python scalars), ``np.matrix`` (its ``*`` and
    shapes are not the array API's), masked arrays (eigdiff would ignore the mask), sparse
    arrays of any library (taken by `eigdiff.eigh`, `vjp` and `jvp` before this, `eigdiff._sparse`), and an array of another library than ``like``.
    A NumPy array in non-native byte order is converted (a copy), as NumPy's own eigh does.
    """
    kind = _type_name(a)
    torch = sys.modules.get("torch")
    np = sys.modules.get("numpy")
    if torch is not None and isinstance(a, torch.Tensor):  # first: no cached helper for Dynamo to trace
        if a.layout != torch.strided:
            raise TypeError(
                f"{name} is a sparse tensor (layout {a.layout}); eigdiff takes sparse input in eigh, vjp and jvp "
                f"(a window of extreme eigenpairs) and needs a dense (strided) tensor here"
            )
    elif np is not None and isinstance(a, np.ndarray):
        if isinstance(a, np.matrix):
            raise TypeError(f"{name} is an np.matrix; pass np.asarray({name}) instead")
        if isinstance(a, np.ma.MaskedArray):
            raise TypeError(f"{name} is a masked array, whose mask eigdiff would ignore; pass {name}.filled(...)")
        if not a.dtype.isnative:
            a = a.astype(a.dtype.newbyteorder("="))
    elif "sparse" in type(a).__module__:
        raise TypeError(
            f"{name} is a sparse array ({kind}); eigdiff takes sparse input in eigh, vjp and jvp (a window of "
            f"extreme eigenpairs) and needs a dense array here"
        )
    elif not is_array_api_obj(a):
        raise TypeError(f"{name} must be an array (NumPy, CuPy, torch, ...), got {kind}")
    if like is not None and library(a) != library(like):
        raise TypeError(
            f"{name} is a {kind} but the decomposition is {_type_name(like)}: eigdiff needs all arrays from one library"
        )
    return a


def is_dask(a: object) -> bool:
    """Whether ``a`` is a `dask.array` array (False without importing dask when it is not loaded)."""
    dask_array = sys.modules.get("dask.array")
    return dask_array is not None and isinstance(a, dask_array.Array)


def check_real_float(a: Array, name: str, xp: ModuleType) -> None:
    """TypeError unless ``a`` is float32 or float64 (float16, ints, bool, complex are refused)."""
    if a.dtype not in (xp.float32, xp.float64):
        raise TypeError(
            f"{name} must be a real float32 or float64 array, got dtype {a.dtype}"
            + (" (complex Hermitian input is not supported yet)" if xp.isdtype(a.dtype, "complex floating") else "")
        )


def check_matrix(X: Array, xp: ModuleType, *, name: str = "X", check_finite: bool = True) -> int:
    """Validate a ``(..., M, M)`` real float matrix stack (M = 0 allowed) and return M."""
    shape = tuple(X.shape)
    if len(shape) < 2:
        raise ValueError(f"{name} must have shape (..., M, M) with at least 2 dimensions, got shape {shape}")
    if shape[-1] != shape[-2]:
        raise ValueError(f"{name} must be square in its last two dimensions, got shape {shape}")
    check_real_float(X, name, xp)
    if check_finite:
        check_finite_values(X, name, xp)
    return shape[-1]


def check_finite_values(a: Array | None, name: str, xp: ModuleType) -> None:
    """ValueError naming ``name`` if ``a`` holds NaN or Inf (one reduction and one host read).

    For torch tensors the test is that a's minimum and maximum are finite (both propagate NaN),
    from one ``torch.aminmax`` pass that allocates nothing: torch's boolean elementwise
    operations and reductions are slow on the CPU (``benchmarks/overhead.py``: 27 µs against
    13 µs at 5×32×32, 1.27 ms against 0.12 ms at 1000×32×32, float32), and max|a| writes |a|
    first (2026-12-01, float32, 2-core AMD EPYC: 11 against 3 µs at 5×32×32, 148 against 59 µs
    at 1000×32×32, 257 against 114 µs at 8×512×512). NumPy's ``all(isfinite)`` is the faster
    test there. JAX arrays take one compiled ``all(isfinite)`` (`eigdiff.backends.jax.all_finite`):
    eagerly JAX would compile its two operations for every new shape.
    """
    if a is None or 0 in tuple(a.shape):
        return
    if library(a) == "torch":
        import torch

        low, high = torch.aminmax(a)
        finite = math.isfinite(low.item()) and math.isfinite(high.item())
    elif library(a) == "jax":
        from eigdiff.backends.jax import all_finite

        finite = bool(all_finite(a))
    else:
        finite = bool(xp.all(xp.isfinite(a)))
    if not finite:
        raise ValueError(f"{name} contains NaN or Inf; eigdiff needs finite input")


def check_ascending(lmd: Array, xp: ModuleType) -> None:
    """ValueError unless the eigenvalues ascend along the last axis, as eigh returns them.

    The gap matrix's sign conventions (and ``"taylor"``'s series) follow the index order, so
    a decomposition in another order would give a wrong gradient.
    """
    if lmd.shape[-1] > 1 and not bool(xp.all(lmd[..., 1:] >= lmd[..., :-1])):
        raise ValueError("lmd must ascend along its last axis (as eigh returns it); sort lmd and Y's columns first")


def check_top_k(top_k: object, M: int, name: str = "top_k") -> int:
    """Return ``top_k`` (or another count called ``name``) as an int in [1, M] (None means M,
    also for M = 0)."""
    if top_k is None:
        return M
    if isinstance(top_k, bool):
        raise TypeError(f"{name} must be an integer or None, got bool {top_k!r}")
    try:
        k = operator.index(top_k)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be an integer or None, got {type(top_k).__name__} {top_k!r}") from None
    if M == 0:
        raise ValueError(f"X has M = 0 (no eigenpairs); {name} must be None, got {k}")
    if not 1 <= k <= M:
        raise ValueError(f"{name} must be in [1, M] = [1, {M}], got {k}")
    return k


def _index(value: object, name: str) -> int:
    """``value`` as a Python int (not bool), or a TypeError naming ``name``."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got bool {value!r}")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}") from None


def check_selection(top_k: object, bottom_k: object, subset_by_index: object, M: int) -> tuple[int, int]:
    """Resolve the eigenpair selection to a window ``(k, lo)``: the k eigenpairs lo ≤ i < lo + k.

    At most one of ``top_k`` (the k largest: lo = M − k), ``bottom_k`` (the k smallest: lo = 0)
    and ``subset_by_index`` (a pair (lo, hi), the half-open ascending window lo ≤ i < hi with
    0 ≤ lo < hi ≤ M) may be given; none selects all M (also for M = 0).
    """
    given = [
        name
        for name, v in (("top_k", top_k), ("bottom_k", bottom_k), ("subset_by_index", subset_by_index))
        if v is not None
    ]
    if len(given) > 1:
        raise ValueError(f"give at most one of top_k, bottom_k and subset_by_index, got {' and '.join(given)}")
    if top_k is not None:
        k = check_top_k(top_k, M)
        return k, M - k
    if bottom_k is not None:
        k = check_top_k(bottom_k, M, name="bottom_k")
        return k, 0
    if subset_by_index is None:
        return M, 0
    if (
        isinstance(subset_by_index, (str, bytes))
        or not hasattr(subset_by_index, "__len__")
        or len(subset_by_index) != 2
    ):  # type: ignore[arg-type]
        raise TypeError(f"subset_by_index must be a pair (lo, hi) of integers, got {subset_by_index!r}")
    lo, hi = (_index(v, "subset_by_index's entries") for v in subset_by_index)  # type: ignore[attr-defined]
    if not 0 <= lo < hi <= M:
        raise ValueError(
            f"subset_by_index = ({lo}, {hi}) is not a window 0 <= lo < hi <= M = {M} "
            f"(it selects the eigenpairs lo <= i < hi, ascending)"
        )
    return hi - lo, lo


def check_options(eps: object, degeneracy: object) -> float | None:
    """Validate the degeneracy mode and return ``eps`` as a Python float (or None).

    ``eps`` may be any real scalar: a Python number, a NumPy scalar, or a 0-d real array of
    any library. It must be finite and non-negative.
    """
    if not isinstance(degeneracy, str) or degeneracy not in DEGENERACY_MODES:
        shown = degeneracy if isinstance(degeneracy, str) else _type_name(degeneracy)
        raise ValueError(f"degeneracy must be one of {DEGENERACY_MODES}, got {shown!r}")
    if eps is None:
        return None
    return real_scalar(eps, "eps")


def real_scalar(value: object, name: str, *, positive: bool = False) -> float:
    """``value`` as a finite non-negative (or positive) Python float, or an error naming ``name``.

    Any real scalar is accepted: a Python number, a NumPy scalar, or a 0-d real array of any
    library. Booleans, complex numbers and arrays of other shapes are refused.
    """
    if hasattr(value, "shape") and not isinstance(value, numbers.Number):
        if tuple(value.shape) != ():
            raise ValueError(f"{name} must be a scalar, got an array of shape {tuple(value.shape)}")
        dtype = str(getattr(value, "dtype", ""))
        if "bool" in dtype or "complex" in dtype:
            raise TypeError(f"{name} must be a real number, got dtype {dtype}")
    elif isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    try:
        result = float(value)  # type: ignore[arg-type]
    except OverflowError:
        raise ValueError(f"{name} must be finite, got {value!r}, which overflows a float") from None
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a real number, got {_type_name(value)}: {exc}") from None
    if not (math.isfinite(result) and (result > 0 if positive else result >= 0)):
        kind = "positive" if positive else "non-negative"
        raise ValueError(f"{name} must be a finite {kind} number, got {value!r}")
    return result


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


def check_cotangents_of_window(Y_W: Array, V: Array | None, g_lmd: Array | None) -> None:
    """``V`` of Y_W's shape (..., M, k) and ``g_lmd`` (..., k), both of its dtype."""
    for name, a, shape in (("V", V, tuple(Y_W.shape)), ("g_lmd", g_lmd, tuple(Y_W.shape[:-2]) + (Y_W.shape[-1],))):
        if a is None:
            continue
        if tuple(a.shape) != shape:
            raise ValueError(f"{name} must have shape {shape} to match the selected eigenpairs, got {tuple(a.shape)}")
        if a.dtype != Y_W.dtype:
            raise TypeError(f"{name} must have dtype {Y_W.dtype}, got {a.dtype}")


def check_cotangents(Y: Array, V: Array | None, g_lmd: Array | None, xp: ModuleType) -> int:
    """Validate ``V (..., M, K)`` and ``g_lmd (..., K)`` against ``Y (..., M, M)``; return K (0 <= K <= M)."""
    M = Y.shape[-1]
    batch = tuple(Y.shape[:-2])
    K = None
    if V is not None:
        if tuple(V.shape[:-1]) != batch + (M,) or not 0 <= V.shape[-1] <= M:
            raise ValueError(
                f"V must have shape (..., M, K) = {batch + (M,)} + (K,) with 0 <= K <= M = {M} "
                f"to match Y of shape {tuple(Y.shape)}, got {tuple(V.shape)}"
            )
        if V.dtype != Y.dtype:
            raise TypeError(f"V must have Y's dtype {Y.dtype}, got {V.dtype}")
        K = V.shape[-1]
    if g_lmd is not None:
        if tuple(g_lmd.shape[:-1]) != batch or not 0 <= g_lmd.shape[-1] <= M:
            raise ValueError(
                f"g_lmd must have shape (..., K) = {batch} + (K,) with 0 <= K <= M = {M} "
                f"to match Y of shape {tuple(Y.shape)}, got {tuple(g_lmd.shape)}"
            )
        if K is not None and g_lmd.shape[-1] != K:
            raise ValueError(f"V has K = {K} columns but g_lmd has {g_lmd.shape[-1]} entries; they must agree")
        if g_lmd.dtype != Y.dtype:
            raise TypeError(f"g_lmd must have Y's dtype {Y.dtype}, got {g_lmd.dtype}")
        K = g_lmd.shape[-1]
    return M if K is None else K
