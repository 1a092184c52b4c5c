"""Backend adapters: one per array library, created lazily and cached per array type.

An adapter owns only what differs between libraries: the native eigensolver route for the
forward, and (for torch) the autograd wiring. Every formula lives in `eigdiff._core`.
Nothing here imports torch or cupy: a library's adapter is loaded only when one of its
arrays arrives (array-api-compat's ``is_*_array`` look in ``sys.modules`` first).
"""

from __future__ import annotations

import contextlib
import math
import sys
from types import ModuleType
from typing import Any

import array_api_compat.numpy as xp_numpy
import numpy as np

from eigdiff import _checks, _core, _functions, _methods, _small

Array = Any

#: The fewest matrices a backward slice holds: where a slice's worth of elements is fewer
#: matrices than this (M > 64 on NumPy, M > 128 on torch), the batch is computed whole.
MIN_BACKWARD_SLICE = 64

#: The most elements of the backward's P = YᵀV (all matrices together), and the largest order M,
#: for which an adapter with a `ArrayAPIAdapter.host_view` (torch) runs the backward, in eager CPU
#: code, on NumPy views of its arrays: the same core, through NumPy's operations, which dispatch in
#: 1-8 µs on arrays of a few thousand elements against torch's 2-25 µs. Measured
#: (``benchmarks/host_route.py``, data ``docs/_static/host_route.json``; 2-core AMD EPYC, torch
#: 2.13.0+cpu, NumPy 2.4 with its wheel's OpenBLAS, 2026-12-01; with the route over without it,
#: median of 9 interleaved rounds, float32 / float64): the backward alone 0.58 / 0.55 at
#: 5 × 32 × 32, 0.67 / 0.58 at 16 × 32 × 32, 0.63 / 0.63 at 2 × 64 × 64, 0.72 / 0.67 at
#: 4 × 64 × 64 (2¹⁴ elements); a training step (forward with graph and backward) 0.90 / 0.89,
#: 0.96 / 0.92, 0.91 / 0.91, 0.94 / 0.94. Past the size the gain is gone (16 × 64 × 64: 1.02 /
#: 1.00). The order is capped because OpenBLAS (in its default build) runs a matrix product of
#: more than 64³ multiply-adds on several threads, which then contend with torch's own thread
#: pool: at 1 × 128 × 128 a training step took 6.0× (float32) and 3.5× (float64) as long with the
#: route (11× and 4.8× in an earlier run), although the backward alone was faster.
HOST_BACKWARD_MAX = 2**14
HOST_BACKWARD_MAX_ORDER = 64

#: How to install torch, for error messages: a plain install pulls the CUDA build on Linux.
TORCH_INSTALL = (
    "pip install 'eigdiff[torch]' (on Linux that pulls torch's CUDA build, several GB; for the "
    "CPU-only build, first pip install torch from PyTorch's CPU wheel index with --index-url, "
    "as PyTorch's install page shows)"
)


#: What each backend supports: the docs' backends table is generated from this, and
#: ``tests/test_backends_table.py`` checks every entry against the code where it can run.
SUPPORT: dict[str, dict[str, str]] = {
    "numpy": {
        "forward (eigh, top-k)": "yes",
        "backward (backward, vjp)": "yes",
        "forward mode (jvp)": "yes",
        "partial spectra (methods)": "top_k, bottom_k, subset_by_index: full, subset, krylov",
        "sparse input": "SciPy CSR, CSC, COO; LinearOperator (krylov; vjp gives sparse / factors)",
        "matrix functions": "yes: matrix_function_vjp / _jvp",
        "autograd": "none: use vjp / jvp",
        "devices": "cpu",
        "dtypes": "float32, float64",
    },
    "array_api_strict": {
        "forward (eigh, top-k)": "yes",
        "backward (backward, vjp)": "yes",
        "forward mode (jvp)": "yes",
        "partial spectra (methods)": "top_k, bottom_k, subset_by_index: full, krylov",
        "sparse input": "none",
        "matrix functions": "yes: matrix_function_vjp / _jvp",
        "autograd": "none: use vjp / jvp",
        "devices": "cpu (its default device)",
        "dtypes": "float32, float64",
    },
    "torch": {
        "forward (eigh, top-k)": "yes",
        "backward (backward, vjp)": "yes",
        "forward mode (jvp)": "yes",
        "partial spectra (methods)": "top_k, bottom_k, subset_by_index: full, subset (cpu), krylov (first derivatives, torch.func)",
        "sparse input": "COO, CSR (krylov; A.grad in reverse mode)",
        "matrix functions": "yes: autograd, torch.compile",
        "autograd": "reverse, forward, double backward, torch.func, torch.compile",
        "devices": "cpu, cuda",
        "dtypes": "float32, float64",
    },
    "jax": {
        "forward (eigh, top-k)": "yes",
        "backward (backward, vjp)": "yes",
        "forward mode (jvp)": "yes",
        "partial spectra (methods)": "top_k, bottom_k, subset_by_index: full",
        "sparse input": "none",
        "matrix functions": "yes: autograd (first order exact at ties)",
        "autograd": "grad, vjp, jvp, jacfwd, jacrev, hessian, any nesting; jit, vmap (float64: jax_enable_x64)",
        "devices": "cpu (GPU where jax has one)",
        "dtypes": "float32, float64",
    },
    "dask": {
        "forward (eigh, top-k)": "yes, lazy",
        "backward (backward, vjp)": "yes, lazy",
        "forward mode (jvp)": "yes, lazy",
        "partial spectra (methods)": "top_k, bottom_k, subset_by_index: full, per chunk",
        "sparse input": "none",
        "matrix functions": "yes, lazy: matrix_function_vjp / _jvp",
        "autograd": "none: use vjp / jvp",
        "devices": "its blocks' (NumPy: cpu; CuPy: cuda), on any Dask scheduler or cluster",
        "dtypes": "float32, float64",
    },
    "cupy": {
        "forward (eigh, top-k)": "yes",
        "backward (backward, vjp)": "yes",
        "forward mode (jvp)": "yes",
        "partial spectra (methods)": "top_k, bottom_k, subset_by_index: full, krylov",
        "sparse input": "cupyx.scipy.sparse CSR, CSC, COO (krylov; vjp)",
        "matrix functions": "yes: matrix_function_vjp / _jvp",
        "autograd": "none: use vjp / jvp",
        "devices": "cuda",
        "dtypes": "float32, float64",
    },
}


def support_table() -> str:
    """`SUPPORT` as a Markdown table (backends as rows)."""
    columns = list(next(iter(SUPPORT.values())))
    lines = ["| backend | " + " | ".join(columns) + " |", "|" + "---|" * (len(columns) + 1)]
    lines += [f"| {name} | " + " | ".join(row[c] for c in columns) + " |" for name, row in SUPPORT.items()]
    return "\n".join(lines)


class ArrayAPIAdapter:
    """The default adapter: the core's forward through the array's own namespace."""

    name = "array-api"

    def namespace(self, X: Array) -> ModuleType:
        """The array-API namespace of ``X``."""
        return _checks.namespace(X)

    def check_values(self, X: Array) -> bool:
        """Whether value-dependent checks (NaN/Inf) may run on ``X``."""
        return True

    def on_device(self, X: Array) -> contextlib.AbstractContextManager[Any]:
        """A context in which new arrays are made on ``X``'s device (where a library needs one)."""
        return contextlib.nullcontext()

    def may_overwrite(self, *arrays: Array | None) -> bool:
        """Whether the backward may form products in its temporaries' memory (no autograd here)."""
        return True

    def backward_options(self, lmd: Array, Y: Array, V: Array | None, g_lmd: Array | None) -> dict[str, Any]:
        """``overwrite``, ``block`` and ``host_reads`` for `eigdiff._core.backward_unchecked`: in
        place where no autograd records, and, where that is eager code on the CPU, in slices of
        the batch and with the tie test read on the host."""
        overwrite = self.may_overwrite(lmd, Y, V, g_lmd)
        eager_cpu = overwrite and _small.on_cpu(Y)
        block = None
        if eager_cpu and self.backward_slice is not None:
            block = self.backward_slice // max(1, Y.shape[-1] ** 2)
            block = block if block >= MIN_BACKWARD_SLICE else None
        return {"overwrite": overwrite, "block": block, "host_reads": eager_cpu}

    def backward(self, lmd: Array, Y: Array, V: Array | None, g_lmd: Array | None, K: int, **options: Any) -> Array:
        """`eigdiff._core.backward_unchecked` (``options``: its keywords but the adapter's own) with
        this adapter's `backward_options`.

        Small eager CPU work (at most `HOST_BACKWARD_MAX` elements of P and M at most
        `HOST_BACKWARD_MAX_ORDER`) runs, where the adapter has a `host_view` for every array, on
        NumPy views of the arrays' memory and returns through `from_host`: the same operations,
        each dispatched at NumPy's lower cost. Results agree to rounding (the matrix products may
        come from another BLAS), and are NumPy eigdiff's bit for bit.
        """
        chosen = self.backward_options(lmd, Y, V, g_lmd)
        small = V is not None and math.prod(V.shape) <= HOST_BACKWARD_MAX and Y.shape[-1] <= HOST_BACKWARD_MAX_ORDER
        if chosen["host_reads"] and small:
            host = [None if a is None else self.host_view(a) for a in (lmd, Y, V, g_lmd)]
            if all(h is not None for h, a in zip(host, (lmd, Y, V, g_lmd)) if a is not None):
                chosen.update(xp=xp_numpy, block=None)
                dX = _core.backward_unchecked(host[0], host[1], host[2], host[3], K, **{**options, **chosen})
                return self.from_host(dX)
        return _core.backward_unchecked(lmd, Y, V, g_lmd, K, **options, **chosen)

    def jvp(
        self,
        lmd: Array,
        Y: Array,
        dX: Array,
        k: int,
        *,
        eps: float | None,
        degeneracy: str,
        xp: ModuleType,
        lo: int | None,
    ) -> tuple[Array, Array]:
        """`eigdiff._core.jvp_unchecked`: (dλ, dY) of the window of k from ``lo`` along dX, from
        the full decomposition (lmd, Y)."""
        return _core.jvp_unchecked(lmd, Y, dX, k, eps=eps, degeneracy=degeneracy, xp=xp, lo=lo)

    def host_view(self, a: Array) -> Any:
        """A NumPy array sharing ``a``'s memory (``a`` on the CPU), or None where there is none
        worth taking: the default, and a library's arrays that NumPy already handles directly."""
        return None

    def from_host(self, a: Any) -> Array:
        """The library's array sharing the NumPy array ``a``'s memory (see `host_view`)."""
        raise NotImplementedError(f"the {self.name} adapter has no host route")

    #: The backward's slice of the batch in eager CPU code, in elements of an (M, M) array per
    #: slice (see `eigdiff._core.in_slices`); None: the whole batch at once. Measured by
    #: ``benchmarks/small_matrices.py --backward-slices`` (the performance page has the table).
    backward_slice: int | None = None

    def eigh_slice(self, X: Array) -> int | None:
        """The most matrices the library's eigh is handed at once for X (the batch is then solved
        in slices, `eigdiff._core.in_slices`, also in traced code); None: the whole batch."""
        return None

    #: The library's own eigensolver for ``method="full"`` (None: ``xp.linalg.eigh``).
    native_solver: Any = None
    #: The small solver's slice of the batch on the CPU, eager (see `eigdiff._small.eigh`;
    #: measured by ``benchmarks/small_matrices.py --blocks``); None: the whole batch at once.
    small_block: int | None = None

    def full_decompose(self, X: Array, xp: ModuleType) -> tuple[Array, Array]:
        """(lmd, Y) of ½(X + Xᵀ) by the library's eigh: `eigdiff._core.decompose`."""
        return _core.decompose(X, xp=xp, solver=self.native_solver)

    def decompose(self, X: Array, xp: ModuleType, method: str = "full") -> tuple[Array, Array]:
        """Full, non-differentiable (lmd ascending, Y) of ½(X + Xᵀ), by a resolved ``method``:
        "full" (the library's eigh) or "small" (eigdiff's, M ≤ 3; it reads ½(X + Xᵀ) itself)."""
        if method != "small":
            block = self.eigh_slice(X)
            batch = tuple(X.shape[:-2])
            if block is not None and math.prod(batch) > block:
                decompose = lambda x: self.full_decompose(x, xp)
                eager = self.check_values(X)  # traced code cannot write into preallocated outputs
                lmd, Y = _core.in_slices(decompose, (X,), batch, block, xp, in_place=eager)
                return lmd, Y
            return self.full_decompose(X, xp)
        eager_cpu = _small.on_cpu(X) and self.check_values(X)
        return _small.eigh(X, xp, block=self.small_block if eager_cpu else None)

    def eigh(
        self,
        X: Array,
        k: int,
        *,
        eps: float | None,
        degeneracy: str,
        xp: ModuleType,
        check_invariance: bool = False,
        method: str = "full",
        lo: int | None = None,
        tol: float | None = None,
        maxiter: int | None = None,
    ) -> tuple[Array, Array]:
        """The top-k eigenpairs of ½(X + Xᵀ) (or the window of k from index ``lo``),
        differentiable where the library has autograd."""
        if method in _methods.PARTIAL:
            options: dict[str, Any] = {"eps": eps, "degeneracy": degeneracy, "tol": tol, "maxiter": maxiter}
            window = self.window(X, xp, k, lo, method=method, **options)
            if window is not None:
                return window.lmd, window.Y
            method = "full"
        lmd, Y = self.decompose(X, xp, method)
        return _core.top(lmd, Y, k, xp, copy=k < lmd.shape[-1], lo=lo)

    def window(
        self,
        X: Array,
        xp: ModuleType,
        k: int,
        lo: int | None,
        *,
        method: str,
        eps: float | None,
        degeneracy: str,
        tol: float | None,
        maxiter: int | None,
    ) -> Any:
        """The `eigdiff._partial.Window` of k eigenpairs from ``lo`` by a partial ``method``:
        ``"subset"`` (NumPy arrays; torch overrides) or ``"krylov"`` (in X's namespace), or None
        where the window's edge cuts a cluster (then "full")."""
        from eigdiff import _krylov, _subset

        lo = X.shape[-1] - k if lo is None else lo
        options: dict[str, Any] = {"eps": eps, "degeneracy": degeneracy, "tol": tol, "maxiter": maxiter}
        if method == "krylov":
            with self.on_device(X):
                return _krylov.window(_core.symmetrize(X, xp), k, lo, xp=xp, **options)
        return _subset.window(np.asarray(X), k, lo, **options)  # it symmetrizes, into LAPACK's buffer

    def decompose_in_domain(self, X: Array, spec: Any, xp: ModuleType, method: str = "full") -> tuple[Array, Array]:
        """`decompose`, then a ValueError if the eigenvalues leave ``spec``'s domain (where
        values may be read)."""
        lmd, Y = self.decompose(X, xp, method)
        if self.check_values(X):
            _functions.check_domain(lmd, spec, xp)
        return lmd, Y

    def matrix_function(self, X: Array, spec: Any, xp: ModuleType, method: str = "full") -> Array:
        """Y f(Λ) Yᵀ, differentiable where the library has autograd; checks f's domain."""
        lmd, Y = self.decompose_in_domain(X, spec, xp, method)
        with self.on_device(X):
            return _functions.apply(lmd, Y, spec, xp)


# Each adapter module by an import statement, not importlib: Dynamo runs an import statement
# while it traces (so a first call inside torch.compile(fullgraph=True) loads the torch adapter),
# where it refuses importlib.import_module as a graph break.
def _torch_adapter() -> Any:
    import eigdiff.backends.torch as module

    return module


def _jax_adapter() -> Any:
    import eigdiff.backends.jax as module

    return module


def _cupy_adapter() -> Any:
    import eigdiff.backends.cupy as module

    return module


def _numpy_adapter() -> Any:
    import eigdiff.backends.numpy as module

    return module


# (library, array class, adapter module's loader); a library not yet imported cannot own the array.
_MODULES = (
    ("torch", "Tensor", _torch_adapter),
    ("jax", "Array", _jax_adapter),
    ("cupy", "ndarray", _cupy_adapter),
    ("numpy", "ndarray", _numpy_adapter),
)
_by_type: dict[type, ArrayAPIAdapter] = {}


def adapter_for(X: Array) -> ArrayAPIAdapter:
    """The adapter for ``X``'s array type, importing its module on first use."""
    kind = type(X)
    adapter = _by_type.get(kind)
    if adapter is None:
        adapter = ArrayAPIAdapter()
        for library, cls, load in _MODULES:
            lib = sys.modules.get(library)
            if lib is not None and isinstance(X, getattr(lib, cls)):
                adapter = load().ADAPTER
                break
        _by_type[kind] = adapter
    return adapter


def load_present_adapters() -> None:
    """Import the adapters of libraries that are already imported (none is imported here), at
    ``import eigdiff``, so that the first call pays no import."""
    for library, _, load in _MODULES:
        if library in sys.modules and library not in ("cupy", "jax"):
            load()
