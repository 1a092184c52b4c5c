"""A batched eigensolver for symmetric 1×1, 2×2 and 3×3 matrices, from elementwise operations.

LAPACK solves a stack of tiny matrices one call at a time; here every step is an elementwise
operation over the whole batch, written once against the array API, so it runs on NumPy, CuPy,
torch (CPU and CUDA), JAX and array_api_strict alike.

The method (the reasons and the measurements are on the performance docs page):

- **Scaling.** Each matrix is multiplied by 2⁻ᵏ with 2ᵏ ≤ max|x_ij| < 2ᵏ⁺¹ (exact), so that no
  square or product below can overflow or underflow harmfully, whatever the matrix's scale:
  entries may span the whole float range.
- **2×2**: one Jacobi rotation, t = sign(τ)/(|τ| + √(1 + τ²)) with τ = (c − a)/2b, which is
  backward stable: residual and orthogonality at the level of a few units of roundoff.
- **3×3**: the analytic roots of the characteristic polynomial are accurate for the root that is
  well separated from the other two, and poor for the other two when they nearly tie (the
  arccos is ill-conditioned there). So only that root is taken analytically: with B = (A − qI)/p
  (q = tr A/3, p² = tr(B²)/6 before dividing), the roots of B are 2cos(φ + 2πj/3) with
  φ = arccos(det B / 2)/3. If det B ≥ 0 the largest root is at least √3 (in units of p) from
  both others, otherwise the smallest is. Its eigenvector is the largest of the three cross
  products of the rows of B − βI, well conditioned because of that gap. The other two
  eigenpairs come from the 2×2 matrix A takes on the orthogonal complement of that vector,
  solved by the Jacobi rotation above. So near ties land in the 2×2 problem, where a rotation
  resolves them to full accuracy.

Accuracy (tested over a corpus of hard cases on every backend, `tests/test_small.py`): with
u = eps/2 the dtype's unit roundoff, |λ − λ_exact| ≤ 16 u ‖X‖, ‖YᵀY − I‖ ≤ 16 u and
‖XY − YΛ‖ ≤ 16 u ‖X‖, for ‖X‖ down to 2⁴ smallest_normal / u (below, results in the subnormal
range lose bits, and XLA on the CPU flushes them to zero).
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

from eigdiff import _core
from eigdiff._checks import library, namespace

Array = Any

#: The matrix sizes this solver handles.
SIZES = (1, 2, 3)

#: The forward methods of `eigdiff.eigh`, `vjp` and `jvp`.
METHODS = ("auto", "full", "small")

#: ``method="auto"`` takes the small solver for M ≤ 3 from this many matrices on, per route
#: (`route`: the library, with the device type for GPU tensors). On the CPU, measured by
#: ``benchmarks/small_matrices.py --crossover`` (2-core AMD EPYC, float64, 2026-11-30; the
#: performance docs page has the table): the small solver's per-call cost is ~300 elementwise
#: operations (NumPy 0.2-0.5 ms, torch 0.4-1.0 ms at B = 1), LAPACK's grows ~1.4 µs per matrix,
#: so NumPy's crossover lies between 256 and 1024 matrices, torch's near 1024 for 3×3; the
#: thresholds sit where the small solver wins at both sizes. On a GPU, measured by
#: ``benchmarks/small_matrices.py --gpu`` (NVIDIA H200, torch 2.11 + CUDA 13, CuPy 14.2,
#: 2026-11-30; the performance page has the table): the solver's ~300 kernel launches cost a
#: flat 0.7-4.8 ms up to 10⁶ matrices. CuPy's batched eigh grows from 0.3 ms by 5-14 ns per
#: matrix, and the small solver wins at both sizes and dtypes from 524,288 on (1.2-1.7x; 2.3-3.8x
#: at 10⁶). torch's batched eigh on CUDA is faster up to 16,384 (0.5 ms against 2.7) but fails
#: from 65,536 matrices on (CUSOLVER_STATUS_INTERNAL_ERROR, then a 200-500 GiB workspace request),
#: where the small solver still runs: its threshold is the last batch seen to work (the
#: "full" route has since been given slices of 16,384 there, `eigdiff.backends.torch.EIGH_SLICE`,
#: and the crossover against those was not re-measured). Routes not
#: listed (JAX, array_api_strict, other devices) were not measured, and keep their own eigh.
AUTO_MIN_BATCH = {"numpy": 512, "torch": 2048, "torch:cuda": 16384, "cupy": 524288}


def on_cpu(X: Array) -> bool:
    """Whether X lives on the CPU: a device without a ``type`` (NumPy's "cpu", none at all) counts
    as the CPU, except CuPy's, which is always a GPU."""
    return library(X) != "cupy" and getattr(getattr(X, "device", None), "type", "cpu") == "cpu"


def route(X: Array) -> str:
    """The key of `AUTO_MIN_BATCH` for X: its library ("numpy", "torch", "cupy", ...), with the
    device type appended for a torch tensor off the CPU ("torch:cuda")."""
    name = library(X)
    if name == "cupy" or on_cpu(X):
        return name
    return f"{name}:{getattr(X.device, 'type', X.device)}"


def choose(method: object, X: Array, M: int) -> str:
    """Resolve ``method`` for X (..., M, M) to "full" or "small", or raise a ValueError naming it."""
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "small" and M not in SIZES:
        raise ValueError(
            f"method='small' solves M x M matrices for M in {SIZES}, got M = {M}; use method='full' or 'auto'"
        )
    if method != "auto":
        return method
    if M not in SIZES:
        return "full"
    threshold = AUTO_MIN_BATCH.get(route(X))
    if threshold is None:
        return "full"
    return "small" if math.prod(X.shape[:-2]) >= threshold else "full"


def eigh(X: Array, xp: ModuleType | None = None, block: int | None = None) -> tuple[Array, Array]:
    """(lmd ascending (..., M), Y (..., M, M)) of ½(X + Xᵀ) for M in `SIZES`, from elementwise
    operations over the batch. Reads the entries of ½(X + Xᵀ) as ``_core.symmetrize`` rounds
    them (x_ij/2 + x_ji/2), without forming the symmetrized copy.

    ``block``: solve the batch in slices of this many matrices, written into preallocated
    outputs, so that the thirty-odd temporaries of a slice stay in the CPU's cache and the
    peak memory stays near the outputs' own (for eager NumPy and torch on the CPU; None, one
    pass over the whole batch, for GPUs and traced code).
    """
    xp = namespace(X, xp=xp)
    batch = tuple(X.shape[:-2])
    if block is None or math.prod(batch) <= block or X.shape[-1] == 1:
        return _solve(X, xp)
    lmd, Y = _core.in_slices(lambda x: _solve(x, xp), (X,), batch, block, xp)
    return lmd, Y


def _solve(X: Array, xp: ModuleType) -> tuple[Array, Array]:
    M = X.shape[-1]
    if M == 1:
        return xp.asarray(X[..., 0], copy=True), xp.ones_like(X)
    # The upper triangle of ½(X + Xᵀ), rounded as `_core.symmetrize` rounds it.
    S = {(i, j): X[..., i, i] if i == j else X[..., i, j] / 2 + X[..., j, i] / 2 for i in range(M) for j in range(i, M)}
    if M == 2:
        return _eigh2(S, xp)
    if M == 3:
        return _eigh3(S, xp)
    raise ValueError(f"the small solver handles M in {SIZES}, got M = {M}")


def _scale(xp: ModuleType, *entries: Array) -> tuple[Array, Array]:
    """(2ᵏ, 2⁻ᵏ) per matrix with 2ᵏ ≤ max|entry| < 2ᵏ⁺¹ (1 for a zero matrix): multiplying by a
    power of two is exact, and leaves every entry below 2 in magnitude."""
    m = xp.abs(entries[0])
    for e in entries[1:]:
        m = xp.maximum(m, xp.abs(e))
    k = xp.floor(xp.log2(xp.where(m > 0, m, xp.ones_like(m))))  # finite: 2ᵏ never overflows
    return 2.0**k, 2.0 ** (-k)


def _rotation(a: Array, b: Array, c: Array, xp: ModuleType) -> tuple[Array, Array, Array, Array]:
    """The Jacobi rotation that diagonalizes [[a, b], [b, c]] (entries below 8 in magnitude):
    (cos, sin, λ_a, λ_c) with eigenvectors (cos, −sin) for λ_a = a − t b and (sin, cos) for λ_c = c + t b."""
    zero = b == 0
    # |τ| is clipped at 2⁶⁰ (τ² stays finite in float32): beyond, t ≈ 1/2|τ| < 2⁻⁶¹ changes
    # nothing at the dtype's precision.
    tau = xp.clip((c - a) / (2 * xp.where(zero, xp.ones_like(b), b)), -(2.0**60), 2.0**60)
    sign = xp.where(tau >= 0, xp.ones_like(tau), -xp.ones_like(tau))
    t = xp.where(zero, xp.zeros_like(tau), sign / (xp.abs(tau) + xp.sqrt(1 + tau * tau)))
    cs = 1 / xp.sqrt(1 + t * t)
    return cs, t * cs, a - t * b, c + t * b


def _eigh2(S: dict[tuple[int, int], Array], xp: ModuleType) -> tuple[Array, Array]:
    m, inv_m = _scale(xp, *S.values())
    cs, sn, la, lc = _rotation(S[0, 0] * inv_m, S[0, 1] * inv_m, S[1, 1] * inv_m, xp)
    (lo, y_lo), (hi, y_hi) = _ordered((la, (cs, -sn)), (lc, (sn, cs)), xp)
    return xp.stack([lo * m, hi * m], axis=-1), _columns([y_lo, y_hi], xp)


def _ordered(a: tuple[Array, tuple[Array, ...]], b: tuple[Array, tuple[Array, ...]], xp: ModuleType) -> tuple[Any, Any]:
    """Two (eigenvalue, eigenvector) pairs, the smaller eigenvalue first."""
    swap = a[0] > b[0]
    return (xp.where(swap, b[0], a[0]), _pick(swap, b[1], a[1], xp)), (
        xp.where(swap, a[0], b[0]),
        _pick(swap, a[1], b[1], xp),
    )


def _columns(vectors: list[tuple[Array, ...]], xp: ModuleType) -> Array:
    """The (..., M, M) matrix with the given column vectors, from one stack."""
    M = len(vectors)
    flat = xp.stack([vectors[j][i] for i in range(M) for j in range(M)], axis=-1)
    return xp.reshape(flat, flat.shape[:-1] + (M, M))


def _cross(u: tuple[Array, Array, Array], v: tuple[Array, Array, Array]) -> tuple[Array, Array, Array]:
    return (u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0])


def _dot(u: tuple[Array, ...], v: tuple[Array, ...]) -> Array:
    return u[0] * v[0] + u[1] * v[1] + u[2] * v[2]


def _matvec(A: tuple[Array, ...], x: tuple[Array, ...]) -> tuple[Array, Array, Array]:
    """A x for symmetric A given by its upper triangle (a00, a01, a02, a11, a12, a22)."""
    a00, a01, a02, a11, a12, a22 = A
    return (
        a00 * x[0] + a01 * x[1] + a02 * x[2],
        a01 * x[0] + a11 * x[1] + a12 * x[2],
        a02 * x[0] + a12 * x[1] + a22 * x[2],
    )


def _pick(mask: Array, u: tuple[Array, ...], v: tuple[Array, ...], xp: ModuleType) -> tuple[Array, ...]:
    return tuple(xp.where(mask, a, b) for a, b in zip(u, v))


def _eigh3(S: dict[tuple[int, int], Array], xp: ModuleType) -> tuple[Array, Array]:
    m, inv_m = _scale(xp, *S.values())
    a00, a01, a02 = S[0, 0] * inv_m, S[0, 1] * inv_m, S[0, 2] * inv_m
    a11, a12, a22 = S[1, 1] * inv_m, S[1, 2] * inv_m, S[2, 2] * inv_m

    # B = A − qI, whose entries are of the size of the eigenvalues' spread; everything below
    # works on B, and q is added back at the end.
    q = (a00 + a11 + a22) / 3
    b00, b11, b22 = a00 - q, a11 - q, a22 - q
    p = xp.sqrt((b00 * b00 + b11 * b11 + b22 * b22 + 2 * (a01 * a01 + a02 * a02 + a12 * a12)) / 6)
    flat = p == 0  # A = qI (to within underflow): every vector is an eigenvector
    inv_p = 1 / xp.where(flat, xp.ones_like(p), p)
    c00, c11, c22, c01, c02, c12 = b00 * inv_p, b11 * inv_p, b22 * inv_p, a01 * inv_p, a02 * inv_p, a12 * inv_p

    # The well-separated root of C = B/p: 2cos(φ) (the largest) or 2cos(φ + 2π/3) (the smallest).
    half_det = (c00 * (c11 * c22 - c12 * c12) - c01 * (c01 * c22 - c12 * c02) + c02 * (c01 * c12 - c11 * c02)) / 2
    phi = xp.acos(xp.clip(half_det, -1.0, 1.0)) / 3
    upper = half_det >= 0  # the largest root is separated; otherwise the smallest
    beta = 2 * xp.cos(xp.where(upper, phi, phi + 2 * math.pi / 3))

    # Its eigenvector: the largest cross product of two rows of C − βI (entries of order 1, so
    # that no product underflows however small p is next to the largest entry).
    r0, r1, r2 = (c00 - beta, c01, c02), (c01, c11 - beta, c12), (c02, c12, c22 - beta)
    x01, x02, x12 = _cross(r0, r1), _cross(r0, r2), _cross(r1, r2)
    n01, n02, n12 = _dot(x01, x01), _dot(x02, x02), _dot(x12, x12)
    v = _pick(n01 >= n02, x01, x02, xp)
    n = xp.maximum(n01, n02)
    v = _pick(n >= n12, v, x12, xp)
    n = xp.maximum(n, n12)
    zero, one = xp.zeros_like(n), xp.ones_like(n)
    inv_n = 1 / xp.sqrt(xp.where(n > 0, n, one))
    v = _pick(flat | (n == 0), (one, zero, zero), tuple(vi * inv_n for vi in v), xp)

    # An orthonormal basis (u, w) of the complement of v, built from v's larger components.
    x_big = xp.abs(v[0]) > xp.abs(v[1])
    inv_s = 1 / xp.sqrt(xp.where(x_big, v[0] * v[0], v[1] * v[1]) + v[2] * v[2])
    u = (
        xp.where(x_big, -v[2], zero) * inv_s,
        xp.where(x_big, zero, v[2]) * inv_s,
        xp.where(x_big, v[0], -v[1]) * inv_s,
    )
    w = _cross(v, u)

    # The 2×2 matrix of B on span(u, w), diagonalized by one rotation.
    B = (b00, a01, a02, b11, a12, b22)
    Bu, Bw = _matvec(B, u), _matvec(B, w)
    cs, sn, la, lc = _rotation(_dot(u, Bu), _dot(u, Bw), _dot(w, Bw), xp)
    ya = tuple(cs * ui - sn * wi for ui, wi in zip(u, w))
    yc = tuple(sn * ui + cs * wi for ui, wi in zip(u, w))
    (lo, y_lo), (hi, y_hi) = _ordered((la, ya), (lc, yc), xp)

    # v's eigenvalue p·β is the largest (upper) or the smallest; max() keeps the order against
    # rounding where all three nearly tie.
    lv = p * beta
    l0, l1, l2 = xp.where(upper, lo, lv), xp.where(upper, hi, lo), xp.where(upper, lv, hi)
    l1 = xp.maximum(l1, l0)
    l2 = xp.maximum(l2, l1)
    y0, y1, y2 = _pick(upper, y_lo, v, xp), _pick(upper, y_hi, y_lo, xp), _pick(upper, v, y_hi, xp)
    lmd = xp.stack([(l0 + q) * m, (l1 + q) * m, (l2 + q) * m], axis=-1)
    return lmd, _columns([y0, y1, y2], xp)
