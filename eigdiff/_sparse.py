"""Sparse and matrix-free input: a window of extreme eigenpairs of a large symmetric A, and its
gradient at A's stored entries (or as low-rank factors), without ever forming an M × M array.

Accepted (`accepts`): SciPy sparse arrays and matrices (CSR, CSC, COO), torch sparse COO and
CSR tensors, CuPy sparse matrices (``cupyx.scipy.sparse``: CSR, CSC, COO), and matrix-free
operators with ``shape``, ``dtype`` and ``matmat(B)`` (SciPy's `LinearOperator` protocol).

- **Symmetry.** Like the dense path, which decomposes ½(X + Xᵀ), a sparse A is symmetrized
  in the sparse domain, S = ½(A + Aᵀ): a transpose and an add, O(nnz) time and one copy of A's
  pattern. ``assume_symmetric=True`` skips that copy and uses A as given, after a check that
  costs one product with two probe vectors (one pass over the stored entries):
  |xᵀ(Ay) − yᵀ(Ax)| must be at rounding level, computed in float64. An operator has no
  transpose, so it is always probed and must be symmetric.
- **Forward.** The window's eigenpairs by `eigdiff._krylov.filtered` (Chebyshev-filtered block
  iteration: one sparse product with an M × b block per polynomial degree), with Gershgorin's
  bounds of S (estimated for an operator).
- **Backward.** The projected solve of `eigdiff._partial` with S's products gives the factor F
  (M × k) of dL/dA = ½(Y_W Fᵀ + F Y_Wᵀ) (`eigdiff._partial.partial_factors`). An operator's
  pullback returns the factors ``(Y_W, F)``; a sparse A's gradient is that matrix at A's stored
  entries, ½(Σ_r Y_ir F_jr + F_ir Y_jr) for each stored (i, j): a length-k dot product each,
  O(nnz · k), in chunks (`pattern_values`). The result is a sparse matrix in the library's own
  sense: where a position is stored m times (uncoalesced COO), each copy holds 1/m of the
  entry, so that they sum to it as the library sums them (and torch's chain rule through
  ``sparse_coo_tensor`` gives each duplicated value the full derivative). Explicit zeros get
  theirs (edges that may be learned).

Memory: A and S (O(nnz)), the block iteration's 3 blocks of M × b, the solve's O(Mk) vectors.
"""

from __future__ import annotations

import math
import sys
import warnings
from types import ModuleType
from typing import Any

from eigdiff import _krylov, _methods
from eigdiff._gaps import _device
from eigdiff._partial import DenseOperator, Window, default_tol, make_window

Array = Any

__all__ = ["accepts", "SparseInput", "pattern_values"]

#: Elements (stored entries × k) per chunk of `pattern_values`' temporaries: about 1 MB in
#: float64 on the CPU, where the gathered rows then stay in cache (on the 10⁵-node k-NN
#: Laplacian, 1,238,690 entries, k = 8, float64, 2-core Intel Xeon: 0.065 s against 0.21 s for
#: chunks of 2²⁰ entries), and 2²⁴ on a GPU, where each chunk costs kernel launches.
CHUNK_ELEMENTS = {"cpu": 1 << 17, "gpu": 1 << 24}


def _torch_sparse(A: object) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(A, torch.Tensor) and A.layout != torch.strided


def accepts(A: object) -> bool:
    """Whether ``A`` is a sparse matrix or a matrix-free operator (cheap for dense arrays)."""
    np = sys.modules.get("numpy")
    if np is not None and type(A) is np.ndarray:
        return False
    if _torch_sparse(A):
        return True
    module = type(A).__module__
    if module.startswith(("scipy.sparse", "cupyx.scipy.sparse")) and hasattr(A, "format"):
        return True
    return _is_operator(A)


def _is_operator(A: object) -> bool:
    return (
        callable(getattr(A, "matmat", None))
        and hasattr(A, "shape")
        and hasattr(A, "dtype")
        and not hasattr(A, "__array_namespace__")
    )


class SparseInput:
    """A validated sparse matrix or operator A, with what the forward and backward need.

    ``library``: "scipy", "torch", "cupy" or "operator"; ``xp``: the namespace of the dense
    blocks (NumPy for SciPy and NumPy-dtype operators, torch, CuPy); ``n``; ``product(B)`` = S B
    for blocks B (n, b); ``bounds``: (lower, upper) bounds of S's spectrum, or None. A SciPy or
    CPU torch S may be held reordered (``order``, `_order`; ``reorder=False``: never), and
    ``product`` and ``S`` are then the reordered matrix's: `window` maps its results back.

    Raises TypeError for an unsupported format, dtype or operator, ValueError for a shape that
    is not square 2-D, NaN/Inf among the stored values, or an asymmetric A where symmetry is
    assumed (with the size of the asymmetry).
    """

    xp: Any
    bounds: tuple[float, float] | None
    big: float | None
    #: (order, inverse) where S is held reordered, S[order][:, order] (`_order`); None: as given.
    order: tuple[Array, Array] | None = None

    def __init__(self, A: Any, *, assume_symmetric: bool, name: str = "A", reorder: bool = True) -> None:
        if not isinstance(assume_symmetric, bool):
            raise TypeError(f"assume_symmetric must be a bool, got {type(assume_symmetric).__name__}")
        self.A, self.name = A, name
        shape = tuple(A.shape)
        if len(shape) != 2 or shape[0] != shape[1]:
            raise ValueError(f"{name} must be a square 2-D sparse matrix or operator, got shape {shape}")
        self.n = shape[0]
        if _torch_sparse(A):
            self._init_torch(A, assume_symmetric, reorder)
        elif _is_operator(A) and not hasattr(A, "format"):
            self._init_operator(A)
        else:
            self._init_scipy_like(A, assume_symmetric, reorder)

    # ----------------------------------------------------------------------- per library

    def _init_scipy_like(self, A: Any, assume_symmetric: bool, reorder: bool) -> None:
        cupy = type(A).__module__.startswith("cupyx")
        xp = _namespace("cupy" if cupy else "numpy")
        self.library, self.xp = ("cupy" if cupy else "scipy"), xp
        if A.format not in ("csr", "csc", "coo"):
            raise TypeError(
                f"{self.name} is a sparse {A.format.upper()} {'matrix' if 'matrix' in type(A).__name__ else 'array'}; "
                f"eigdiff takes CSR, CSC and COO (convert with .tocsr())"
            )
        self.dtype = _float_dtype(A.dtype, self.name)
        _check_finite(xp.asarray(A.data), self.name, xp)
        self.like = xp.zeros((0,), dtype=A.dtype)
        S = A.tocsr() if assume_symmetric else ((A + A.T) * 0.5).tocsr()
        if reorder and not cupy:
            S, self.order = _reordered(S, structurally_symmetric=not assume_symmetric)
        self.S, self.product = S, S.__matmul__
        absolute = abs(S)
        diagonal, absrow = xp.asarray(S.diagonal()), xp.reshape(xp.asarray(absolute.sum(axis=1)), (-1,))
        self.bounds = self._tightened(_gershgorin(diagonal, absrow, xp))
        self.big = float(absolute.max()) if S.nnz else 0.0
        if assume_symmetric:
            self._probe(lambda: A.astype(xp.float64) @ self._probes(xp.float64))

    def _init_torch(self, A: Any, assume_symmetric: bool, reorder: bool) -> None:
        import torch

        xp = _namespace("torch")
        self.library, self.xp = "torch", xp
        if A.layout not in (torch.sparse_coo, torch.sparse_csr):
            raise TypeError(f"{self.name} is a torch sparse tensor of layout {A.layout}; eigdiff takes COO and CSR")
        self.dtype = _float_dtype(A.dtype, self.name)
        D = A.detach()
        values = D._values() if D.layout == torch.sparse_coo else D.values()
        _check_finite(values, self.name, xp)
        self.like = torch.zeros(0, dtype=A.dtype, device=A.device)
        with warnings.catch_warnings():  # torch's one-time "beta" note about CSR tensors
            warnings.simplefilter("ignore", UserWarning)
            C = D.to_sparse_coo() if D.layout != torch.sparse_coo else D
            S = (C if assume_symmetric else (C + C.t()) * 0.5).coalesce().to_sparse_csr()
        if reorder:
            S, self.order = _reordered_torch(S, structurally_symmetric=not assume_symmetric)
        self.S, self.product = S, S.__matmul__
        Sc = S.to_sparse_coo()
        rows, cols = Sc.indices()
        vals = Sc.values()
        diagonal = torch.zeros(self.n, dtype=vals.dtype, device=vals.device).index_add_(
            0, rows, torch.where(rows == cols, vals, 0)
        )
        absrow = torch.zeros(self.n, dtype=vals.dtype, device=vals.device).index_add_(0, rows, vals.abs())
        self.bounds = self._tightened(_gershgorin(diagonal, absrow, xp))
        self.big = float(vals.abs().max()) if vals.numel() else 0.0
        if assume_symmetric:
            self._probe(lambda: S.to(torch.float64) @ self._probes(torch.float64))

    def _init_operator(self, A: Any) -> None:
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(A.dtype, torch.dtype):
            xp = _namespace("torch")
            self.like = torch.zeros(0, dtype=A.dtype, device=getattr(A, "device", "cpu"))
        else:
            import numpy

            xp = _namespace("cupy" if type(A).__module__.startswith("cupyx") else "numpy")
            self.like = xp.zeros((0,), dtype=numpy.dtype(A.dtype))
        self.library, self.xp = "operator", xp
        self.dtype = _float_dtype(self.like.dtype, self.name)
        self.S, self.bounds, self.big = None, None, None
        self.product = self._checked(A.matmat)
        self._probe(None)

    def _checked(self, matmat: Any) -> Any:
        like, name = self.like, self.name

        def product(B: Array) -> Array:
            out = matmat(B)
            if tuple(getattr(out, "shape", ())) != tuple(B.shape) or getattr(out, "dtype", None) != like.dtype:
                raise TypeError(
                    f"{name}.matmat must return an array of the block's shape {tuple(B.shape)} and dtype "
                    f"{like.dtype}, got {type(out).__name__} of shape {getattr(out, 'shape', None)} and dtype "
                    f"{getattr(out, 'dtype', None)}"
                )
            return out

        return product

    def _tightened(self, bounds: tuple[float, float]) -> tuple[float, float]:
        """Gershgorin's bounds, narrowed to a short Krylov run's estimates where those are inside
        (Gershgorin's can be twice the spectrum's reach, and the filter's rate goes as the
        square root of it; an estimate that proves too narrow is widened by the iteration)."""
        reach = max(abs(bounds[0]), abs(bounds[1]))
        unit = 2.0 ** round(math.log2(reach)) if reach > 0 else 1.0  # exact: no overflow at 2^±1000

        def scaled(B: Array) -> Array:
            return self.product(B) / unit

        lower, upper = _krylov.estimate_bounds(scaled, self.n, self.like, self.xp)
        return max(bounds[0], lower * unit), min(bounds[1], upper * unit)

    def shifted(self, a: float, b: float) -> Any:
        """B ↦ (aS + bI) B by one product with a shifted copy of S (None for an operator)."""
        S = self.S
        if self.library == "torch":
            import torch

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                eye = torch.sparse_coo_tensor(
                    torch.arange(self.n, device=S.device).expand(2, self.n),
                    torch.full((self.n,), b, dtype=S.dtype, device=S.device),
                    (self.n, self.n),
                )
                return ((S.to_sparse_coo() * a + eye).coalesce().to_sparse_csr()).__matmul__
        module = sys.modules["cupyx.scipy.sparse" if self.library == "cupy" else "scipy.sparse"]
        return (S * a + module.identity(self.n, dtype=S.dtype, format="csr") * b).tocsr().__matmul__

    # ----------------------------------------------------------------------- symmetry probe

    def _probes(self, dtype: Any) -> Array:
        xp = self.xp
        return xp.astype(_krylov.start_block(self.n, 2, self.like, xp), dtype)

    def _probe(self, product64: Any) -> None:
        """ValueError unless |xᵀ(Ay) − yᵀ(Ax)| ≤ 16 u √n (‖x‖‖Ay‖ + ‖y‖‖Ax‖) for two fixed
        quasi-random probes x, y (u of float64 when ``product64`` computes A [x y] in float64;
        an operator is probed in its own dtype)."""
        xp = self.xp
        if product64 is not None:
            P, AP, u = self._probes(xp.float64), product64(), float(xp.finfo(xp.float64).eps)
        else:
            P = self._probes(self.like.dtype)
            AP, u = self.product(P), float(xp.finfo(self.like.dtype).eps)
        x, y, Ax, Ay = P[:, 0], P[:, 1], AP[:, 0], AP[:, 1]
        asymmetry = abs(float(xp.sum(x * Ay)) - float(xp.sum(y * Ax)))

        def norm(v: Array) -> float:
            return float(xp.sqrt(xp.sum(v * v)))

        bound = 16 * u * math.sqrt(self.n) * (norm(x) * norm(Ay) + norm(y) * norm(Ax))
        if not asymmetry <= bound:
            raise ValueError(
                f"{self.name} is not symmetric: for two probe vectors |xᵀ(Ay) − yᵀ(Ax)| = {asymmetry:.3g} exceeds the "
                f"rounding bound {bound:.3g}. "
                + (
                    "An operator must be symmetric (its matmat is used as S)"
                    if self.library == "operator"
                    else "Pass assume_symmetric=False (the default) to use ½(A + Aᵀ)"
                )
            )

    # ----------------------------------------------------------------------- forward, gradient

    def window(
        self, k: int, lo: int, *, eps: float | None, degeneracy: str, tol: float | None, maxiter: int | None
    ) -> Window:
        """The `Window` of the k eigenpairs from ``lo`` (an end of the spectrum). Raises
        ValueError where its edge cuts a cluster (the dense path's fallback would densify)."""
        xp = self.xp
        solve_tol = default_tol(self.dtype, xp) if tol is None else tol
        with _on_device(self):
            lmd, Y, guards, extremes, deflation = _krylov.filtered(
                self.product,
                self.n,
                self.like,
                lo,
                lo + k,
                self.bounds,
                tol=solve_tol,
                maxiter=maxiter,
                xp=xp,
                big=self.big,
                shifted=None if self.library == "operator" else self.shifted,
            )
            if self.order is None:
                op = DenseOperator(self.S, Y, product=self.product)
            else:  # the iteration ran on the reordered S: its vectors are in that basis
                op = Reordered(self.S, Y, self.product, *self.order, xp)
                Y = op.from_basis(Y)
            op.deflation = deflation
            op.spectrum = (float(extremes[0]), float(extremes[1]))
            op.shifted = None if self.library == "operator" else self.shifted
            window = make_window(
                lmd,
                Y,
                guards,
                extremes,
                op,
                method="krylov",
                M=self.n,
                lo=lo,
                xp=xp,
                eps=eps,
                degeneracy=degeneracy,
                tol=tol,
                maxiter=None,
                fallback=False,
            )
        assert window is not None
        return window

    def tangent_product(self, dA: Any, Y: Array) -> Array:
        """½(dA + dAᵀ) Y for a tangent dA like A (sparse: any pattern; operator: symmetric, probed)."""
        if self.library == "operator":
            if not _is_operator(dA) or tuple(dA.shape) != (self.n, self.n):
                raise TypeError(
                    f"dA must be an operator like A (shape {(self.n, self.n)}, matmat), got {type(dA).__name__}"
                )
            tangent = SparseInput(dA, assume_symmetric=True, name="dA")
            return tangent.product(Y)
        tangent = SparseInput(dA, assume_symmetric=False, name="dA", reorder=False)  # its product meets Y as given
        if tangent.library != self.library or tangent.dtype != self.dtype or tangent.n != self.n:
            raise TypeError(
                f"dA must be a {self.library} sparse matrix of A's shape {(self.n, self.n)} and dtype {self.dtype}, "
                f"got a {tangent.library} one of shape {(tangent.n, tangent.n)} and dtype {tangent.dtype}"
            )
        return tangent.product(Y)

    def pattern(self) -> tuple[Array, Array]:
        """(rows, cols) of A's stored entries, in storage order (duplicates included)."""
        A, xp = self.A, self.xp
        if self.library == "torch":
            import torch

            if A.layout == torch.sparse_coo:
                rows, cols = A._indices()
                return rows, cols
            counts = A.crow_indices().diff()
            return torch.repeat_interleave(torch.arange(self.n, device=A.device), counts), A.col_indices()
        if A.format == "coo":
            return xp.asarray(A.row), xp.asarray(A.col)
        index = xp.asarray(A.indices)
        counts = xp.asarray(A.indptr[1:] - A.indptr[:-1])
        spanned = _repeat(xp.arange(self.n, dtype=index.dtype), counts, xp)
        return (spanned, index) if A.format == "csr" else (index, spanned)

    def with_values(self, values: Array) -> Any:
        """A sparse matrix of A's format and pattern (index arrays copied) holding ``values``."""
        A = self.A
        if self.library == "torch":
            import torch

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                if A.layout == torch.sparse_coo:
                    return torch.sparse_coo_tensor(A._indices().clone(), values, A.shape, is_coalesced=A.is_coalesced())
                return torch.sparse_csr_tensor(A.crow_indices().clone(), A.col_indices().clone(), values, A.shape)
        if A.format == "coo":
            return type(A)((values, (A.row.copy(), A.col.copy())), shape=A.shape)
        return type(A)((values, A.indices.copy(), A.indptr.copy()), shape=A.shape)

    def gradient(self, window: Window, V: Array | None, g_lmd: Array | None, *, check_invariance: bool) -> Any:
        """dL/dA at A's stored entries, in A's format (operator: the factors (Y_W, F))."""
        with _on_device(self):
            F = window.factors(V, g_lmd, check_invariance=check_invariance)
            if self.library == "operator":
                return window.Y, F
            rows, cols = self.pattern()
            values = pattern_values(window.Y, F, rows, cols, self.xp)
            if self._may_repeat():  # duplicates sum to the entry: each holds its share
                values = values / self._multiplicity(rows, cols)
            return self.with_values(values)

    def _may_repeat(self) -> bool:
        A = self.A
        if self.library == "torch":
            return A.layout == sys.modules["torch"].sparse_coo and not A.is_coalesced()
        return not A.has_canonical_format

    def _multiplicity(self, rows: Array, cols: Array) -> Array:
        """How often each stored entry's position (i, j) is stored."""
        key = rows * self.n + cols
        if self.library == "torch":
            import torch

            _, inverse, counts = torch.unique(key, return_inverse=True, return_counts=True)
        else:
            unique = self.xp.unique_all(key)
            inverse, counts = unique.inverse_indices, unique.counts
        return self.xp.astype(self.xp.take(counts, self.xp.reshape(inverse, (-1,))), self.dtype)


class Reordered(DenseOperator):
    """S held in a reordered basis, S_o = S[order][:, order] (a permutation, so an orthogonal
    basis change): ``to_basis(B) = B[order]``, ``from_basis(B) = B[inverse]``, ``matvec`` S_o's
    product, and ``Z`` the window in that basis (the backward's solve runs there)."""

    def __init__(self, S: Any, Z: Array, product: Any, order: Array, inverse: Array, xp: ModuleType) -> None:
        super().__init__(S, Z, product=product)
        self.order, self.inverse, self.xp = order, inverse, xp

    def to_basis(self, B: Array) -> Array:
        return self.xp.take(B, self.order, axis=-2)

    def from_basis(self, B: Array) -> Array:
        return self.xp.take(B, self.inverse, axis=-2)


def _order(indptr: Any, indices: Any, n: int, *, structurally_symmetric: bool) -> tuple[Any, Any] | None:
    """The reverse Cuthill–McKee order of the CSR pattern (``indptr``, ``indices``: NumPy) as
    NumPy ``(order, inverse)``, where it at least halves the bandwidth (max |i − j| over the
    stored entries); None where it does not, or where SciPy (which finds it) is not installed.

    Why: a sparse product with an M × b block reads the block's rows at the column indices of
    each matrix row; in a scattered order (a k-NN graph of points in random order) nearly every
    read misses the cache. On the 10^5-node k-NN Laplacian of `benchmarks/sparse_spectra.py`
    (1,238,690 stored entries, float64, 2-core Intel Xeon), a product with 13 columns took
    14.7 ms as given and 4.6 ms reordered with SciPy, 5.0 and 2.0 ms with torch's CPU CSR; the
    order took about 50 ms to find and apply, once. A grid's natural order is already banded
    and is kept. O(nnz) time.
    """
    try:
        import numpy as np
        import scipy.sparse as sparse
        from scipy.sparse.csgraph import reverse_cuthill_mckee
    except ImportError:
        return None
    if n < 2 or indices.shape[0] == 0:
        return None
    pattern = sparse.csr_array((np.ones(indices.shape[0], dtype=np.int8), indices, indptr), shape=(n, n))
    order = reverse_cuthill_mckee(pattern, symmetric_mode=structurally_symmetric).astype(np.intp)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(n, dtype=np.intp)
    rows = np.repeat(np.arange(n, dtype=np.intp), np.diff(indptr))
    if 2 * int(np.max(np.abs(inverse[rows] - inverse[indices]))) > int(np.max(np.abs(rows - indices))):
        return None
    return order, inverse


def _reordered(S: Any, *, structurally_symmetric: bool) -> tuple[Any, tuple[Array, Array] | None]:
    """SciPy's CSR S as ``(S[order][:, order], (order, inverse))`` where `_order` finds an
    order, else ``(S, None)``: one more copy of the pattern."""
    import numpy as np

    found = _order(S.indptr, S.indices, S.shape[0], structurally_symmetric=structurally_symmetric)
    if found is None:
        return S, None
    inverse = found[1]
    rows = np.repeat(inverse, np.diff(S.indptr))
    R = type(S)((S.data, (rows, inverse[S.indices])), shape=S.shape).tocsr()
    R.sum_duplicates()
    return R, found


def _reordered_torch(S: Any, *, structurally_symmetric: bool) -> tuple[Any, tuple[Array, Array] | None]:
    """A CPU torch CSR S as `_reordered` does SciPy's, with ``order`` and ``inverse`` as tensors."""
    import torch

    if S.device.type != "cpu":
        return S, None
    indptr, indices = S.crow_indices().numpy(), S.col_indices().numpy()
    found = _order(indptr, indices, S.shape[0], structurally_symmetric=structurally_symmetric)
    if found is None:
        return S, None
    order, inverse = (torch.from_numpy(a) for a in found)
    rows = torch.repeat_interleave(inverse, S.crow_indices().diff())
    index = torch.stack([rows, inverse[S.col_indices()]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        R = torch.sparse_coo_tensor(index, S.values(), S.shape).coalesce().to_sparse_csr()
    return R, (order, inverse)


def pattern_values(U: Array, F: Array, rows: Array, cols: Array, xp: ModuleType) -> Array:
    """½(U Fᵀ + F Uᵀ) at the entries (rows[e], cols[e]): ½ Σ_r (U_ir F_jr + F_ir U_jr), in
    chunks of `CHUNK_ELEMENTS` / k entries."""
    nnz = rows.shape[0]
    if nnz == 0:
        return xp.zeros((0,), dtype=U.dtype, device=_device(U))
    where = "gpu" if _on_gpu(U) else "cpu"
    chunk = max(1, CHUNK_ELEMENTS[where] // max(1, U.shape[-1]))
    parts = []
    for start in range(0, nnz, chunk):
        r, c = rows[start : start + chunk], cols[start : start + chunk]
        Ur, Fr = xp.take(U, r, axis=0), xp.take(F, r, axis=0)
        Uc, Fc = xp.take(U, c, axis=0), xp.take(F, c, axis=0)
        parts.append(xp.sum(Ur * Fc + Fr * Uc, axis=1) / 2)
    return parts[0] if len(parts) == 1 else xp.concat(parts)


def _on_gpu(a: Array) -> bool:
    """Whether ``a`` lives on a GPU (a CuPy array, a torch CUDA tensor)."""
    if type(a).__module__.startswith("cupy"):
        return True
    return getattr(getattr(a, "device", None), "type", None) == "cuda"


def _namespace(library: str) -> Any:
    """array-api-compat's namespace for ``library`` (imported on use)."""
    import importlib

    return importlib.import_module(f"array_api_compat.{library}")


def _repeat(values: Array, counts: Array, xp: ModuleType) -> Array:
    if hasattr(xp, "repeat"):  # array API 2023.12
        return xp.repeat(values, counts)
    import numpy

    return numpy.repeat(values, counts)  # pragma: no cover - every supported library has repeat


def _gershgorin(diagonal: Array, absrow: Array, xp: ModuleType) -> tuple[float, float]:
    """Bounds of a symmetric matrix's spectrum from its diagonal and absolute row sums."""
    if diagonal.shape[0] == 0:
        return 0.0, 0.0
    radius = absrow - xp.abs(diagonal)
    return float(xp.min(diagonal - radius)), float(xp.max(diagonal + radius))


def _float_dtype(dtype: Any, name: str) -> Any:
    text = str(dtype).replace("torch.", "")
    if text not in ("float32", "float64"):
        raise TypeError(f"{name} must be float32 or float64, got {dtype}")
    return dtype


def _check_finite(values: Array, name: str, xp: ModuleType) -> None:
    if values.shape[0] and not bool(xp.all(xp.isfinite(values))):
        raise ValueError(f"{name} holds NaN or Inf among its stored values")


def _on_device(source: SparseInput) -> Any:
    import contextlib

    if source.library == "cupy":
        return source.like.device
    return contextlib.nullcontext()


def check_method(method: object, k: int, lo: int, M: int, degeneracy: object) -> None:
    """ValueError unless a sparse/matrix-free call can run: ``method`` "auto" or "krylov", a
    window (not all M) at an end of the spectrum, small enough for the block iteration, and
    not ``degeneracy="taylor"``."""
    if not isinstance(method, str) or method not in _methods.METHODS:
        raise ValueError(f"method must be one of {_methods.METHODS}, got {method!r}")
    if method not in ("auto", "krylov"):
        raise ValueError(
            f"method={method!r} needs the dense matrix; sparse and matrix-free input runs method='krylov' "
            f"(or 'auto'), whose products with A never form it"
        )
    if k == M or not _krylov.fits(M, k):
        raise ValueError(
            f"a sparse or matrix-free A of order M = {M} takes a window of k eigenpairs with 3 (k + 1 + max(2, k // 2)) "
            f"<= M (the block iteration's room), got k = {k}; give top_k or bottom_k, or densify A for its whole spectrum"
        )
    if lo != 0 and lo + k != M:
        raise ValueError(
            f"sparse and matrix-free input takes windows at either end of the spectrum (top_k, bottom_k, or "
            f"subset_by_index starting at 0 or ending at M = {M}), got the interior window ({lo}, {lo + k})"
        )
    if degeneracy == "taylor":
        raise ValueError("degeneracy='taylor' is not available for sparse input (see method='krylov'); use 'mask'")


# --------------------------------------------------------------------------- entry points


def prepare(
    A: Any,
    selection: tuple[object, object, object],
    *,
    eps: object,
    degeneracy: object,
    method: object,
    tol: object,
    maxiter: object,
    assume_symmetric: object,
) -> tuple[SparseInput, Window]:
    """Validate a sparse or matrix-free call to `eigdiff.eigh`, `vjp` or `jvp` and compute its
    window: (the accepted input, its `Window`)."""
    from eigdiff import _checks

    eps = _checks.check_options(eps, degeneracy)
    tol, maxiter = _methods.check_solver_options(tol, maxiter)
    source = SparseInput(A, assume_symmetric=assume_symmetric)  # type: ignore[arg-type]
    k, lo = _checks.check_selection(*selection, source.n)
    check_method(method, k, lo, source.n, degeneracy)
    window = source.window(k, lo, eps=eps, degeneracy=degeneracy, tol=tol, maxiter=maxiter)  # type: ignore[arg-type]
    return source, window


def eigh(
    A: Any, selection: tuple[object, object, object], *, check_invariance: bool, **options: Any
) -> tuple[Array, Array]:
    """`eigdiff.eigh` of a sparse or matrix-free A (see `prepare`); differentiable for a torch
    sparse A (dL/dA at its stored entries)."""
    source, window = prepare(A, selection, **options)
    if source.library == "torch" and A.requires_grad:
        from eigdiff.backends.torch import SparseEighFunction

        out = SparseEighFunction.apply(A, source, window, check_invariance)
        return out[0], out[1]
    xp = source.xp
    return xp.asarray(window.lmd, copy=True), xp.asarray(window.Y, copy=True)


def vjp(A: Any, selection: tuple[object, object, object], *, check_invariance: bool, **options: Any) -> tuple[Any, Any]:
    """`eigdiff.vjp` of a sparse or matrix-free A: the pullback gives dL/dA at A's stored
    entries in A's format, or an operator's factors (Y_W, F) with dL/dA = ½(Y_W Fᵀ + F Y_Wᵀ)."""
    from eigdiff import _checks

    source, window = prepare(A, selection, **options)
    xp = source.xp
    Y = window.Y

    def pullback(V: Array | None = None, g_lmd: Array | None = None) -> Any:
        V = None if V is None else _checks.as_array(V, "V", like=Y)
        g_lmd = None if g_lmd is None else _checks.as_array(g_lmd, "g_lmd", like=Y)
        _checks.check_cotangents_of_window(Y, V, g_lmd)
        for name, a in (("V", V), ("g_lmd", g_lmd)):
            if a is not None:
                _checks.check_finite_values(a, name, xp)
        return source.gradient(window, V, g_lmd, check_invariance=check_invariance)

    return (xp.asarray(window.lmd, copy=True), xp.asarray(Y, copy=True)), pullback


def jvp(A: Any, dA: Any, selection: tuple[object, object, object], **options: Any) -> tuple[Any, Any]:
    """`eigdiff.jvp` of a sparse or matrix-free A along dA (a sparse matrix like A, any pattern;
    for an operator, a symmetric operator of A's shape)."""
    source, window = prepare(A, selection, **options)
    xp = source.xp
    with _on_device(source):
        tangents = window.jvp_product(source.tangent_product(dA, window.Y))
    return (xp.asarray(window.lmd, copy=True), xp.asarray(window.Y, copy=True)), tangents
