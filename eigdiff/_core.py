"""The array-API core: the forward helpers, the backward and the forward-mode rule, once.

Notation follows S. Gould's tutorial on differentiating the eigendecomposition (deep
declarative networks): X = Y Λ Yᵀ with ascending
eigenvalues ``lmd`` (λ) and orthonormal eigenvectors ``Y``; ``V`` is dL/dY for the last
K columns of Y (the K largest eigenpairs), ``g_lmd`` is dL/dλ for the same K eigenvalues.
Every function also takes another window of K consecutive eigenpairs, columns lo ≤ c < lo + K
(``lo=None``: the top K, lo = M − K).

Everything here reaches its operations through the arrays' namespace (``xp``), so the same
code runs on NumPy, CuPy, torch and array_api_strict arrays, and under torch autograd it is
itself differentiable (double backward, ``torch.func``). Validation lives in `eigdiff._checks`,
the gap matrix and its degeneracy modes in `eigdiff._gaps`.
"""

from __future__ import annotations

import math
import warnings
from types import ModuleType
from typing import Any

from array_api_compat import is_cupy_namespace, is_numpy_namespace, is_torch_namespace

from eigdiff._checks import namespace, user_stacklevel
from eigdiff._gaps import degenerate, first_column, gap_product, own_columns, own_entries

Array = Any


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


# --------------------------------------------------------------------------- forward


def symmetrize(X: Array, xp: ModuleType) -> Array:
    """½(X + Xᵀ) over the last two axes, as H + Hᵀ with H = X/2: no overflow for entries near
    the dtype's maximum, the same rounding as (X + Xᵀ)/2 for every normal entry, two passes."""
    H = X / 2
    return H + H.mT


#: Tile of `add_transpose`'s blocked pass, taken from M ≥ 4 tiles on. Measured (2-core AMD EPYC,
#: 2026-11-30): at M = 2048 tiled 17.5 ms against 32.5 ms strided (NumPy float32), 8.9 against
#: 14.7 (torch float32), 22 against 27 (torch float64); at 8 × 512 × 512, where a matrix fits
#: the cache, tiling is 15-30 % slower, so smaller M keep the one strided pass.
TRANSPOSE_TILE = 256


def add_transpose(G: Array, xp: ModuleType, *, blocked: bool = False, spare: Array | None = None) -> Array:
    """G + Gᵀ over the last two axes, exactly symmetric (each entry is one sum g_ij + g_ji).

    ``blocked=True`` (eager code with no autograd recording) forms it, for M ≥ 4 tiles, tile by
    tile into a new array (each tile summed in place, no temporary), so that the transposed
    operand is read in cache-sized pieces: the same sums, the same rounding, fewer cache misses.
    ``spare`` (eager code only): a dead temporary that the sum is written into where it fits
    (see `_into`), instead of a new array.
    """
    M = G.shape[-1]
    if not blocked or M < 4 * TRANSPOSE_TILE:
        return G + G.mT if spare is None else _into("add", G, G.mT, spare, xp)
    out = spare
    if out is None or tuple(out.shape) != tuple(G.shape) or out.dtype != G.dtype:
        out = xp.empty_like(G)
    for i in range(0, M, TRANSPOSE_TILE):
        for j in range(0, M, TRANSPOSE_TILE):
            rows, cols = slice(i, i + TRANSPOSE_TILE), slice(j, j + TRANSPOSE_TILE)
            tile = out[..., rows, cols]  # a view: the sum is formed in place, no temporary tile
            tile[...] = G[..., rows, cols]
            tile += G[..., cols, rows].mT
    return out


#: The fewest elements of a result that `_into` writes into a spare array; smaller ones come from
#: the allocator's free lists without page faults (glibc maps blocks afresh only from 128 KiB
#: on), and there the checks and ``out=`` cost more than they save: at 5 × 32 × 32 float32 (the
#: NumPy route) they made the backward 7-9 % slower (2-core AMD EPYC, 2026-12-03).
INTO_MIN = 2**15


def _into(op: str, a: Array, b: Array, spare: Array | None, xp: ModuleType) -> Array:
    """``a @ b`` (``op="matmul"``) or ``a + b`` of equal shapes (``"add"``), written into ``spare``
    where it fits, else a new array. ``spare`` is a temporary that is no longer needed and does
    not overlap ``a`` or ``b`` (eager code only), or None; it fits where it has the result's
    shape and dtype, at least `INTO_MIN` elements, and the library's functions take an ``out``
    (NumPy, CuPy, torch: the array API standard has none). The same operation either way, the
    same values, one allocation fewer.

    On the CPU a new array of megabytes can cost a page fault per 4 KiB page, where the
    allocator has returned that memory to the system since the last call (glibc does past its
    trim and mmap thresholds); see the performance docs ("Page faults")."""
    matmul = op == "matmul"
    if spare is None or math.prod(spare.shape) < INTO_MIN:
        return a @ b if matmul else a + b
    if matmul:
        fits = tuple(a.shape[:-2]) == tuple(b.shape[:-2]) and tuple(spare.shape) == tuple(a.shape[:-1]) + (b.shape[-1],)
    else:
        fits = tuple(spare.shape) == tuple(a.shape) == tuple(b.shape)
    takes_out = is_numpy_namespace(xp) or is_torch_namespace(xp) or is_cupy_namespace(xp)
    if not (fits and takes_out and spare.dtype == a.dtype == b.dtype):
        return a @ b if matmul else a + b
    return xp.matmul(a, b, out=spare) if matmul else xp.add(a, b, out=spare)


def in_slices(
    fn: Any,
    arrays: tuple[Array | None, ...],
    batch: tuple[int, ...],
    block: int,
    xp: ModuleType,
    *,
    in_place: bool = True,
) -> tuple[Array, ...]:
    """``fn(*arrays)`` (a tuple of arrays, each with the batch axes ``batch`` in front) computed
    on slices of ``block`` matrices of the flattened batch. ``None`` entries of ``arrays`` pass
    through.

    ``in_place=True`` (eager code) writes each slice's results into preallocated outputs; on the
    CPU a slice's temporaries then stay in cache, where a pass over the whole batch streams each
    of them through memory. ``in_place=False`` (traced code: torch.compile, torch.func
    transforms) concatenates them instead, at the cost of one more copy of the outputs. The
    values are the same either way: every matrix is computed by the same operations.
    """
    n = math.prod(batch)
    flat = [None if a is None else xp.reshape(a, (n,) + tuple(a.shape[len(batch) :])) for a in arrays]
    rows = [slice(start, min(start + block, n)) for start in range(0, n, block)]  # a stop past the end is not portable
    on_rows = lambda r: fn(*(None if a is None else a[r, ...] for a in flat))
    if not in_place:
        parts = [on_rows(r) for r in rows]
        outputs = [xp.concat([part[i] for part in parts], axis=0) for i in range(len(parts[0]))]
    else:
        outputs = []
        for r in rows:
            parts = on_rows(r)
            if not outputs:
                outputs = [xp.empty((n,) + tuple(p.shape[1:]), dtype=p.dtype, device=p.device) for p in parts]
            for out, part in zip(outputs, parts):
                out[r, ...] = part
    return tuple(xp.reshape(out, batch + tuple(out.shape[1:])) for out in outputs)


def decompose(X: Array, *, xp: ModuleType | None = None, solver: Any = None) -> tuple[Array, Array]:
    """Full eigendecomposition (lmd ascending, Y) of ½(X + Xᵀ), without validation.

    ``solver`` is the library's eigh (default ``xp.linalg.eigh``); every library here returns
    empty results for M = 0.
    """
    xp = namespace(X, xp=xp)
    lmd, Y = (solver or xp.linalg.eigh)(symmetrize(X, xp))
    return lmd, Y


def top(
    lmd: Array, Y: Array, k: int, xp: ModuleType, *, copy: bool = False, lo: int | None = None
) -> tuple[Array, Array]:
    """The k largest eigenpairs of a full ascending decomposition (the tutorial's ``Y[:, :, -k:]``),
    or the window of k from index ``lo``.

    ``copy=True`` returns arrays of their own (compact for k < M, not views that keep the
    full M × M arrays alive, and not shared with what a pullback keeps).
    """
    M = lmd.shape[-1]
    lo = first_column(M, k, lo)
    lmd_k, Y_k = (lmd, Y) if k == M else (lmd[..., lo : lo + k], Y[..., lo : lo + k])
    if copy:
        return xp.asarray(lmd_k, copy=True), xp.asarray(Y_k, copy=True)
    return lmd_k, Y_k


# --------------------------------------------------------------------------- backward


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
    lo: int | None = None,
    block: int | None = None,
    host_reads: bool = False,
) -> Array:
    """`backward` after validation (the adapters' entry point), for the window of K eigenpairs
    from ``lo`` (None: the top K).

    ``overwrite=True`` forms products in the memory of temporaries (fewer passes over memory);
    pass it only where no autograd records the operations. ``block`` (with ``overwrite``, eager
    CPU code; see `in_slices`) computes the batch in slices of that many matrices: the same
    values, fewer passes through memory. ``host_reads`` (with ``overwrite``, eager CPU code)
    lets the mask skip its passes where no eigenvalue is tied (`eigdiff._gaps.gap_product`).
    ``check_invariance`` takes the whole batch at once. Every option gives the same values.
    """
    batch = tuple(Y.shape[:-2])
    if block is not None and overwrite and not check_invariance and math.prod(batch) > block:
        options: dict[str, Any] = {
            "eps": eps,
            "degeneracy": degeneracy,
            "xp": xp,
            "lo": lo,
            "overwrite": True,
            "host_reads": host_reads,
        }
        kernel = lambda lm, y, v, g: (backward_unchecked(lm, y, v, g, K, **options),)
        return in_slices(kernel, (lmd, Y, V, g_lmd), batch, block, xp)[0]
    spare: list[Array] | None = [] if overwrite and math.prod(Y.shape) >= INTO_MIN else None
    options = {"check_invariance": check_invariance, "overwrite": overwrite, "lo": lo, "host_reads": host_reads}
    G = backward_half(lmd, Y, V, g_lmd, K, eps=eps, degeneracy=degeneracy, xp=xp, spare=spare, **options)
    return add_transpose(G, xp, blocked=overwrite, spare=spare.pop() if spare else None)


def backward_half(
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
    lo: int | None = None,
    host_reads: bool = False,
    spare: list[Array] | None = None,
) -> Array:
    """G (..., M, M) with `backward_unchecked`'s result = G + Gᵀ (options as there, but
    ``block``): Y (½F ∘ P + ½E diag g) Y_Kᵀ. Exactly symmetric only once added to its transpose,
    which a caller that compiles this part (JAX's jit) does outside the compiled code: a compiler
    that fuses the last product with the sum may round (i, j) and (j, i) differently.

    ``spare`` (a list, with ``overwrite``): each product is written into a temporary that is no
    longer needed where one fits (`_into`: of the full window, K = M), and the last such
    temporary is left in the list, for the caller's G + Gᵀ. Peak memory is unchanged (P and
    one more temporary of its shape); the allocations fall from five to two."""
    M = Y.shape[-1]
    lo = first_column(M, K, lo)
    Y_K = Y[..., lo : lo + K]
    if V is None or K == 0:
        if g_lmd is None or K == 0:
            return xp.zeros_like(Y)
        # Only eigenvalue gradients: Y_K diag(g) Y_Kᵀ, as ½(G + Gᵀ) so that it is exactly symmetric.
        return (Y_K * (g_lmd[..., None, :] / 2)) @ Y_K.mT
    P = Y.mT @ V
    if check_invariance:
        warn_if_not_invariant(lmd, P, K, eps, xp, lo)
    # C = ½(F ∘ P + E diag g): the ½ of ½(G + Gᵀ) is folded into C, where it costs nothing.
    spare = spare if overwrite else None
    options: dict[str, Any] = {"halve": True, "overwrite": overwrite, "lo": lo, "host_reads": host_reads and overwrite}
    C = gap_product(P, lmd, K, eps=eps, degeneracy=degeneracy, xp=xp, spare=spare, **options)
    del P  # (often C itself) each temporary is dropped once used, so that the next can take its memory
    if g_lmd is not None and overwrite:
        C = add_to_own(C, g_lmd / 2, lo, xp)
    elif g_lmd is not None:
        C = C + own_columns(M, K, C, xp, lo) * (g_lmd[..., None, :] / 2)
    if spare is None:
        W = Y @ C
        del C
        return W @ Y_K.mT
    W = _into("matmul", Y, C, spare.pop() if spare else None, xp)
    G = _into("matmul", W, Y_K.mT, C, xp)  # into C's memory where K = M
    del C
    spare.append(W)
    return G


def add_to_own(C: Array, d: Array, lo: int, xp: ModuleType) -> Array:
    """C (..., M, K) with d (..., K) added to each column's own entry C[..., lo + j, j], in place
    where C's memory allows (eager code only): the entries lo·K + j(K + 1) of each matrix's row-major
    flattening, one strided slice, instead of a broadcast pass over all of C. Returns the result,
    which is C itself unless reshaping had to copy."""
    flat, own = own_entries(C, lo, xp)
    flat[..., own] += d
    return xp.reshape(flat, C.shape)


def warn_if_not_invariant(
    lmd: Array, P: Array, K: int, eps: float | None, xp: ModuleType, lo: int | None = None
) -> None:
    """Warn when Yᵀ V is not symmetric on the degenerate pairs (see `DegenerateGradientWarning`).

    A loss invariant under rotations inside a degenerate eigenspace has (Yᵀ V)_ij = (Yᵀ V)_ji
    for each degenerate pair (i, j) inside the window of K, and (Yᵀ V)_ij = 0 where the
    degenerate partner i lies outside it. Tolerance: √u · max|Yᵀ V|.
    """
    M = P.shape[-2]
    if math.prod(P.shape) == 0:
        return
    lo = first_column(M, K, lo)
    tied = degenerate(lmd, K, eps, xp, lo)
    window_rows = P[..., lo : lo + K, :]  # (..., K, K): rows of the window's eigenvectors
    skew = window_rows - window_rows.mT
    residual = xp.concat([P[..., :lo, :], skew, P[..., lo + K :, :]], axis=-2)
    worst = float(xp.max(xp.where(tied, xp.abs(residual), 0.0)))
    scale = float(xp.max(xp.abs(P)))
    if worst > math.sqrt(xp.finfo(P.dtype).eps) * scale:
        warnings.warn(
            f"the eigenvector gradient is not invariant within a degenerate eigenspace "
            f"(asymmetry {worst:.3g} against gradient scale {scale:.3g}); the derivative does not "
            f"exist there and the {K}-column gradient is a regularized choice",
            DegenerateGradientWarning,
            stacklevel=user_stacklevel(),
        )


# --------------------------------------------------------------------------- forward mode


def jvp_unchecked(
    lmd: Array,
    Y: Array,
    dX: Array,
    k: int,
    *,
    eps: float | None,
    degeneracy: str,
    xp: ModuleType,
    lo: int | None = None,
) -> tuple[Array, Array]:
    """Tangents of the top-k eigenpairs (or the window of k from ``lo``): dλ = diag(Y_kᵀ dS Y_k),
    dY_k = Y (F ∘ Yᵀ dS Y_k).

    dS = ½(dX + dXᵀ); F is the same regularized gap matrix as in the backward, so this is
    exactly the transpose of `backward`.
    """
    M = Y.shape[-1]
    lo = first_column(M, k, lo)
    Y_k = Y[..., lo : lo + k]
    if k == 0:
        return xp.zeros_like(lmd[..., :0]), xp.zeros_like(Y_k)
    A = Y.mT @ (symmetrize(dX, xp) @ Y_k)  # (..., M, k)
    dY = Y @ gap_product(A, lmd, k, eps=eps, degeneracy=degeneracy, xp=xp, lo=lo)
    dlmd = xp.sum(own_columns(M, k, A, xp, lo) * A, axis=-2)
    return dlmd, dY
