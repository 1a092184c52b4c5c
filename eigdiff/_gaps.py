"""The gap matrix F ≈ 1/(λ_c − λ_i) and its regularized modes, written to stay in range.

No square, product or sum here can leave the float range for finite eigenvalues: gaps are
formed as plain differences (finite or ±inf, never NaN), the Lorentzian is evaluated in units
of max(|Δ|, ε) per entry, and Taylor's same-sign test compares signs rather than multiplying.
So F(sλ) = F(λ)/s for every power of two s, up to the point where the true result itself
overflows or underflows.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

from eigdiff._checks import DEGENERACY_MODES

Array = Any

__all__ = [
    "DEFAULT_EPS_CAP",
    "DEFAULT_EPS_FACTOR",
    "DEGENERACY_MODES",
    "TAYLOR_TERMS",
    "TIE_TEST_MIN",
    "default_eps",
    "default_eps_factor",
    "gap_matrix",
    "gap_product",
    "own_entries",
    "ties_beyond_own",
]

#: Terms kept in the ``"taylor"`` expansion 1/(a − b) ≈ a⁻¹ Σ_{n<N} (b/a)ⁿ (Wang et al., 2021).
TAYLOR_TERMS = 10

#: c in the default gap threshold eps = min(c · √M · u, cap) · max|λ| (see `default_eps`).
DEFAULT_EPS_FACTOR = 8.0

#: The fewest elements of P (all matrices together) for which the mask's ``host_reads`` tie test
#: (`ties_beyond_own`) is run: it costs a handful of dispatched operations, 20-40 µs, against
#: about 1 ns per element saved (measured on a 2-core AMD EPYC, torch 2.13 float32, 2026-12-01:
#: 5 × 32 × 32 lost 56 µs per backward with it; 1000 × 32 × 32 and 64 × 128 × 128 gained 0.9 ms).
TIE_TEST_MIN = 2**16

#: The cap on the default threshold relative to max|λ|: 2⁻¹⁸ ≈ 3.8e-6 (= 32 float32 ulps of 1).
DEFAULT_EPS_CAP = 2.0**-18


def default_eps(lmd: Array, xp: ModuleType, degeneracy: str = "mask") -> Array:
    """The dtype- and scale-aware default eps, one per matrix, shaped ``(..., 1, 1)``.

    ``"mask"`` and ``"taylor"``: eps = min(c · √M · u, cap) · max|λ| with u the dtype's machine
    epsilon, c = `DEFAULT_EPS_FACTOR` = 8 and cap = `DEFAULT_EPS_CAP` = 2⁻¹⁸. Both bounds are
    measured (``benchmarks/tie_splitting.py``, ``benchmarks/gradient_accuracy.py``; the table
    is on the degeneracy docs page):

    - LAPACK's eigh (torch's and NumPy's) splits exact ties by up to about 3.6 √M u‖X‖
      (228 u‖X‖ at M = 4096), so c √M u masks them with a margin of two;
    - random symmetric matrices have real gaps down to about 6e-6 ‖X‖ at M = 4096, which the
      cap keeps. The cap binds only in float32 (for M > 16, where it equals 32 u): there, for
      M ≳ 128, large tied clusters split further than any threshold that keeps real gaps,
      and the docs say what to pass instead.

    ``"lorentzian"``: ε = √u · max|λ|, the broadening: 1/Δ is kept to a relative error below
    (ε/Δ)² for Δ ≫ ε, and no entry of F exceeds 1/(2ε), a gradient amplification of at most
    1/(2√u) ≈ 1.5e3 (float32) or 3.4e7 (float64) relative to ‖V‖/‖X‖.
    """
    scale = xp.max(xp.abs(lmd), axis=-1, keepdims=True)
    return default_eps_factor(lmd.shape[-1], lmd.dtype, xp, degeneracy) * scale[..., None]


def default_eps_factor(M: int, dtype: Any, xp: ModuleType, degeneracy: str = "mask") -> float:
    """`default_eps` over max|λ|, for matrices of order M (the partial methods, which know the
    spectrum's extremes but not all of it, multiply it by max(|λ_min|, |λ_max|) themselves)."""
    u = float(xp.finfo(dtype).eps)
    if degeneracy == "lorentzian":
        return math.sqrt(u)
    return min(DEFAULT_EPS_FACTOR * math.sqrt(M) * u, DEFAULT_EPS_CAP)


def gap_threshold(lmd: Array, eps: float | None, xp: ModuleType, degeneracy: str = "mask") -> Array | float:
    """``eps`` when given (absolute), else `default_eps` for the mode."""
    return default_eps(lmd, xp, degeneracy) if eps is None else eps


def first_column(M: int, k: int, lo: int | None) -> int:
    """The index of the window's first eigenpair: ``lo``, or M − k (the top k) when None.

    Every function here takes the window of k selected eigenpairs, columns c(j) = lo + j of the
    full decomposition, as (k, lo); ``lo=None`` is the top-k window.
    """
    return M - k if lo is None else lo


def degenerate(lmd: Array, k: int, eps: float | None, xp: ModuleType, lo: int | None = None) -> Array:
    """(..., M, k) booleans: |λ_{c(j)} − λ_i| ≤ eps (the default for "mask"), own entries included."""
    return xp.abs(half_gaps(lmd, k, lo)) <= gap_threshold(lmd, eps, xp) / 2


def half_gaps(lmd: Array, k: int, lo: int | None = None) -> Array:
    """½Δ_ij = λ_{c(j)}/2 − λ_i/2, shape (..., M, k): finite for all finite λ (Δ itself can
    overflow when |λ| exceeds half the dtype's maximum), and exact for normal λ."""
    lo = first_column(lmd.shape[-1], k, lo)
    half = lmd / 2
    return half[..., None, lo : lo + k] - half[..., :, None]


def _device(a: Array) -> Any:
    """``a.device``, or None for a JAX tracer (inside jit or vmap), which has none: new arrays
    then go to the default device, where the traced computation runs anyway."""
    return getattr(a, "device", None)


def index_offset(M: int, k: int, like: Array, xp: ModuleType, lo: int | None = None) -> Array:
    """(M, k) integers c(j) − i with c(j) = lo + j: 0 on each column's own eigenvector."""
    lo = first_column(M, k, lo)
    return (xp.arange(k, device=_device(like))[None, :] + lo) - xp.arange(M, device=_device(like))[:, None]


def own_columns(M: int, k: int, like: Array, xp: ModuleType, lo: int | None = None) -> Array:
    """E (M, k) with E_ij = 1 where i = c(j) = lo + j: each column's own eigenvector."""
    return xp.eye(M, k, k=-first_column(M, k, lo), dtype=like.dtype, device=_device(like))


def own_entries(C: Array, lo: int, xp: ModuleType) -> tuple[Array, slice]:
    """C (..., M, K) flattened over its last two axes (a view where C's memory allows, else a
    copy) and the slice of that flattening holding each column's own entry C[..., lo + j, j]:
    the entries lo·K + j(K + 1) of each matrix's row-major flattening, one strided slice."""
    M, K = C.shape[-2], C.shape[-1]
    flat = xp.reshape(C, tuple(C.shape[:-2]) + (M * K,))
    return flat, slice(lo * K, lo * K + (K - 1) * (K + 1) + 1, K + 1)


def ties_beyond_own(lmd: Array, k: int, half_threshold: Array | float, xp: ModuleType, lo: int | None = None) -> bool:
    """Whether any eigenvalue i ≠ c(j) lies within the mask's threshold of a window column's own
    eigenvalue λ_{c(j)}, for any matrix of the batch: whether the mask has entries other than
    the own ones. Read on the host (eager CPU code only, where that costs no synchronization).

    For ascending λ (checked on entry, or from eigdiff's own solvers) the smallest half-gap
    |λ_c/2 − λ_i/2| with i ≠ c is one of c's two neighbours' (rounding is monotone), so only
    the consecutive half-gaps at the window and its two edges are read: O(k) per matrix, against
    the O(Mk) passes of the mask it can spare. A negative gap (λ out of order) counts as a tie.
    """
    M = lmd.shape[-1]
    lo = first_column(M, k, lo)
    start, stop = max(lo - 1, 0), min(lo + k, M - 1)  # the gaps λ_{i+1} − λ_i for start ≤ i < stop
    if stop <= start:
        return False
    gaps = lmd[..., start + 1 : stop + 1] / 2 - lmd[..., start:stop] / 2
    limit: Any = half_threshold
    if hasattr(limit, "shape"):
        limit = limit[..., 0]  # (..., 1, 1) → (..., 1)
    return bool(xp.any(gaps <= limit))


def gap_matrix(
    lmd: Array, k: int, *, eps: float | None, degeneracy: str, xp: ModuleType, lo: int | None = None
) -> Array:
    """F with F_ij ≈ 1/(λ_{c(j)} − λ_i), shape (..., M, k), regularized where |Δ| ≤ eps.

    ``eps`` is absolute when given, `default_eps` when None. Each column's own entry
    (i = c(j)) is 0 in every mode. No division ever sees a zero, so F and its derivatives
    (double backward) stay finite.
    """
    ones = xp.ones(lmd.shape[:-1] + (lmd.shape[-1], k), dtype=lmd.dtype, device=_device(lmd))
    return gap_product(ones, lmd, k, eps=eps, degeneracy=degeneracy, xp=xp, lo=lo)


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
    lo: int | None = None,
    host_reads: bool = False,
    spare: list[Array] | None = None,
) -> Array:
    """F ∘ P for the `gap_matrix` F (times ½ when ``halve``), P of shape (..., M, k).

    Every mode works on half-gaps ½Δ (finite for every finite λ) and scales by a power of two
    at the end, exactly. ``overwrite`` lets the product be formed in P's memory (never under
    autograd recording); ``spare`` (a list, with ``overwrite``) then receives the temporary of
    P's shape that is no longer needed (the half-gaps, or F), for the caller's next result to
    be written into. ``host_reads`` (with ``overwrite``: eager code on the CPU, ascending λ)
    lets ``"mask"`` read on the host whether anything beyond each column's own entry is masked
    (`ties_beyond_own`); where nothing is, the own entries are set by one strided slice instead
    of the three M × k passes of the mask. The result is the same, bit for bit.
    """
    half = half_gaps(lmd, k, lo)
    half_threshold = gap_threshold(lmd, eps, xp, degeneracy) / 2
    scale = 0.25 if halve else 0.5  # F = 1/Δ = ½ · 1/(½Δ), and ½F when halving
    if degeneracy == "mask" and overwrite:
        # P / Δ with Δ := inf where tiny (P/inf = 0): no division by zero.
        if host_reads and math.prod(half.shape) >= TIE_TEST_MIN and not ties_beyond_own(lmd, k, half_threshold, xp, lo):
            flat, own = own_entries(half, first_column(lmd.shape[-1], k, lo), xp)
            flat[..., own] = math.inf
            half = xp.reshape(flat, half.shape)
        else:
            half[xp.abs(half) <= half_threshold] = math.inf
        P /= half
        P *= scale
        if spare is not None:
            spare.append(half)
        return P
    tiny = xp.abs(half) <= half_threshold  # includes each column's own entry, where Δ = 0
    if degeneracy == "mask":
        # As above, out of place: finite derivatives (double backward) too.
        return P / xp.where(tiny, math.inf, half) * scale
    M = lmd.shape[-1]
    own = index_offset(M, k, lmd, xp, lo) == 0
    if not hasattr(half_threshold, "shape"):  # an explicit eps: an array for maximum and where
        half_threshold = xp.asarray(half_threshold, dtype=lmd.dtype, device=_device(lmd))
    if degeneracy == "lorentzian":
        F = _lorentzian(half, half_threshold, xp)
    else:
        F = _taylor(lmd, half, tiny, half_threshold * 2, k, xp, lo)
    # The own entries are 0 with no dependence on λ: there Δ = λ_c − λ_c, and a derivative of
    # F through it (1/ε² for the Lorentzian) would cancel catastrophically in double backward.
    F = xp.where(own, 0.0, F * scale)
    if overwrite:
        P *= F
        if spare is not None:
            spare.append(F)
        return P
    return P * F


def _lorentzian(half: Array, half_threshold: Array, xp: ModuleType) -> Array:
    # Δ / (Δ² + ε²) (Liao et al., PRX 2019): 0 at a tie, at most 1/(2ε), ≈ 1/Δ for |Δ| ≫ ε;
    # here on h = ½Δ and e = ½ε: h/(h² + e²) = 2Δ/(Δ² + ε²) = 2F, which the caller halves.
    # In units of t = max(|h|, e) per entry, so no square over- or underflows:
    # h/(h² + e²) = (h/t) / (t · ((h/t)² + (e/t)²)), the bracket in [1, 2].
    t = xp.maximum(xp.abs(half), half_threshold)
    both_zero = t == 0  # Δ = ε = 0: F = 0 / (1 · 1)
    t = xp.where(both_zero, 1.0, t)
    # a through a `where` too: XLA (JAX's jit) rewrites (h/t) / (X·t) into h / (t·X·t), whose t²
    # underflows to 0 for t < √(smallest normal) (0/0 at float32 ties near 2^-63); it does not
    # look through a select.
    a, b = xp.where(both_zero, 0.0, half / t), xp.where(both_zero, 1.0, half_threshold / t)
    return a / ((a * a + b * b) * t)


def _taylor(lmd: Array, half: Array, tiny: Array, threshold: Array, k: int, xp: ModuleType, lo: int | None) -> Array:
    # "taylor" (Wang et al., TPAMI 2021): for a same-sign pair with a the eigenvalue of larger
    # magnitude and r = b/a ∈ (0, 1], |λ_c − λ_i| = |a|(1 − r) and 1/(1 − r) ≈ Σ_{n<N} rⁿ: at
    # most N/|a| at a tie. The sign is that of c − i (eigenvalues ascend), which keeps F
    # antisymmetric at ties too. Opposite-sign pairs have |Δ| ≥ |a|: exact 1/Δ there; pairs
    # whose larger eigenvalue is within eps of zero are masked. The sign test compares signs
    # (a product of two small eigenvalues would underflow). Returns 2F, which the caller halves.
    M = lmd.shape[-1]
    first = first_column(M, k, lo)
    rows, cols = lmd[..., :, None], lmd[..., None, first : first + k]
    size = xp.maximum(xp.abs(rows), xp.abs(cols))  # |a|
    same_sign = ((rows > 0) & (cols > 0)) | ((rows < 0) & (cols < 0))
    usable = (size > threshold) & same_sign
    size_or_inf = xp.where(usable, size, math.inf)
    r = xp.minimum(xp.abs(rows), xp.abs(cols)) / size_or_inf  # 0 where not usable
    series = xp.ones_like(r)
    for _ in range(TAYLOR_TERMS - 1):
        series = 1 + r * series
    offset = index_offset(M, k, lmd, xp, lo)  # positive above each column's own eigenvector
    signed = xp.where(offset > 0, series, -series)
    exact = 1 / xp.where(tiny, math.inf, half)  # 1/(½Δ) = 2/Δ
    return xp.where(usable, (signed + signed) / size_or_inf, exact)
