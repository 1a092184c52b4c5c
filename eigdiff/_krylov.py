"""The ``"krylov"`` forward: extreme eigenpairs by restarted block Krylov iteration, array API only.

For a window at one end of the spectrum (``top_k``, ``bottom_k``, or ``subset_by_index``
touching 0 or M), with a block of b = k + 1 + p vectors (the window, one guard beyond its
edge, p ≥ 2 of oversampling):

1. from the current block V (and AV), build the block Krylov basis Q = [V, A V, …, A^q V],
   each new block orthogonalized twice against all earlier ones (classical Gram–Schmidt,
   "twice is enough") and orthonormalized by QR;
2. Rayleigh–Ritz: the eigenpairs (θ, S) of H = Qᵀ A Q, whose A Q was formed while building;
3. the b Ritz pairs at the wanted end are accepted when the k of the window and the guard
   have residuals ‖A y − θ y‖ ≤ tol · max|θ| (max|θ| over all Ritz values, the spectrum's
   scale as seen from Q); otherwise they are the next V (a thick restart: their A V is Q's
   A Q S, no extra product).

Why this method: one product A·(n × b) per Krylov step (the cost on large matrices, a matrix
product that runs near peak on every library), no per-column recurrences to keep stable
(each restart rebuilds an orthonormal basis; loss of orthogonality cannot accumulate across
restarts), and only the array API's ``linalg.qr`` and ``linalg.eigh`` on small blocks, so it
runs unchanged on NumPy, torch (CPU, CUDA), CuPy and array_api_strict, batched. LOBPCG needs
one product per step too but a Gram-matrix Rayleigh–Ritz that loses definiteness when its
directions converge (torch.lobpcg's and SciPy's fragility); unrestarted Lanczos needs
selective reorthogonalization. A Krylov space of depth q + 1 converges at the Chebyshev rate
of the gap ratio, so matrices with decaying spectra (covariance, kernel) converge in a few
restarts; random matrices and Laplacian clusters, with relative gaps of 1e-3 and below, are
where the tridiagonal ``"subset"`` route wins.

The start is deterministic (no RNG): fixed quasi-random columns sin((i + 1)(j + 1)φ₁ + (i + 1)φ₂).
Not converged after ``maxiter`` restarts: `eigdiff.ConvergenceError`, naming the residual.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
from array_api_compat import is_numpy_namespace

from eigdiff._gaps import _device
from eigdiff._partial import ConvergenceError, DenseOperator

Array = Any

__all__ = ["DEFAULT_MAXITER", "decompose", "iterate", "start_block"]

#: Restarts before `ConvergenceError` when ``maxiter`` is None.
DEFAULT_MAXITER = 200


def start_block(n: int, b: int, like: Array, xp: ModuleType) -> Array:
    """A fixed, full-rank n × b block of quasi-random entries (no RNG): deterministic starts."""
    i = xp.arange(1, n + 1, dtype=like.dtype, device=_device(like))[:, None]
    j = xp.arange(1, b + 1, dtype=like.dtype, device=_device(like))[None, :]
    return xp.sin(i * j * 0.7548776662466927 + i * 0.5698402909980532)


def _projected_out(W: Array, Q: Array) -> Array:
    """W with its components along the orthonormal columns of Q removed, twice (classical
    Gram–Schmidt repeated once: orthogonal to working accuracy)."""
    for _ in range(2):
        W = W - Q @ (Q.mT @ W)
    return W


def _orthonormal(W: Array, xp: ModuleType) -> Array:
    """The Q of W's reduced QR (LAPACK's Householder QR on every library). A 2-D NumPy W goes
    through SciPy's wrapper where SciPy is installed: on (10⁵, 13) float64, 19 ms against
    NumPy's 38 ms, and faster from (2048, 13) up, equal at (512, 13) (2-core Intel Xeon)."""
    if W.ndim == 2 and is_numpy_namespace(xp):
        try:
            import scipy.linalg
        except ImportError:
            return xp.linalg.qr(W)[0]
        return np.ascontiguousarray(scipy.linalg.qr(W, mode="economic", check_finite=False)[0])
    return xp.linalg.qr(W)[0]


def decompose(
    S: Array, lo: int, hi: int, *, tol: float, maxiter: int | None, xp: ModuleType
) -> tuple[Array, Array, Array, Array]:
    """The eigenpairs lo ≤ i < hi of symmetric S (..., n, n), a window at one end of the spectrum,
    for n ≥ 3b (`fits`).

    Returns ``(lmd_W (..., k), Y_W (..., n, k), guards (..., 2), extremes (..., 2))`` as
    `eigdiff._subset.decompose` does; ``extremes`` are the outermost Ritz values (within the
    spectrum, converged at the wanted end). Raises `ConvergenceError` after ``maxiter`` restarts.
    """
    big = xp.max(xp.abs(S), axis=(-2, -1), keepdims=True) if math.prod(S.shape) else None
    return iterate(lambda B: S @ B, S.shape[:-2], S.shape[-1], S, lo, hi, tol=tol, maxiter=maxiter, xp=xp, big=big)


def iterate(
    product: Callable[[Array], Array],
    batch: tuple[int, ...],
    n: int,
    like: Array,
    lo: int,
    hi: int,
    *,
    tol: float,
    maxiter: int | None,
    xp: ModuleType,
    big: Array | None = None,
    depth: int = 4,
) -> tuple[Array, Array, Array, Array]:
    """`decompose` for any symmetric operator given by ``product(B) = S B`` for blocks B
    (..., n, b) of ``like``'s dtype and device (a dense matrix, a sparse matrix, a
    matrix-free operator). ``big`` (..., 1, 1): the largest |entry| of S where known, to scale
    S exactly into [2^-64, 2^64] where it lies far outside (None: the first block product's
    largest entry stands in). ``depth``: Krylov steps per restart (at most n // b - 1); the
    basis holds (depth + 1) b vectors.
    """
    k = hi - lo
    top = hi == n
    if math.prod(batch) == 0:  # an empty stack: empty results of the right shapes
        empty = xp.zeros(batch + (k,), dtype=like.dtype, device=_device(like))
        pair = xp.zeros(batch + (2,), dtype=like.dtype, device=_device(like))
        return empty, xp.zeros(batch + (n, k), dtype=like.dtype, device=_device(like)), pair, pair
    b = block_size(k)
    depth = max(1, min(depth, n // b - 1))  # q Krylov steps per restart: (q + 1) b ≤ n
    V = _orthonormal(xp.broadcast_to(start_block(n, b, like, xp), batch + (n, b)), xp)
    AV = product(V)
    # An exact power-of-two scale into [2^-64, 2^64] where S's entries lie far outside it, so that
    # no norm or product of the iteration leaves the float range (results are scaled back).
    if big is None:
        big = xp.max(xp.abs(AV), axis=(-2, -1), keepdims=True)
    exponent = xp.where(big > 0, xp.round(xp.log2(xp.where(big > 0, big, 1.0))), 0.0)
    out_of_range = bool(xp.any(xp.abs(exponent) > 64))
    unit = 2.0**exponent if out_of_range else None
    if unit is not None:
        AV = AV / unit
        scaled = product
        product = lambda B: scaled(B) / unit  # noqa: E731
    limit = DEFAULT_MAXITER if maxiter is None else maxiter
    reached = math.inf
    progress = _Progress(like.dtype, xp)
    for restart in range(1, limit + 1):
        blocks, products = [V], [AV]
        for _ in range(depth):
            W = products[-1]
            Q = xp.concat(blocks, axis=-1)
            W = _orthonormal(_projected_out(W, Q), xp)
            W = _orthonormal(W - Q @ (Q.mT @ W), xp)  # where A's block fell into span(Q)
            blocks.append(W)
            products.append(product(W))
        Q, AQ = xp.concat(blocks, axis=-1), xp.concat(products, axis=-1)
        H = Q.mT @ AQ
        theta, Z = xp.linalg.eigh((H + H.mT) / 2)
        m = theta.shape[-1]
        keep = slice(m - b, m) if top else slice(0, b)
        Zb = Z[..., keep]
        Y, AY = Q @ Zb, AQ @ Zb
        th = theta[..., keep]
        scale = xp.max(xp.abs(theta), axis=-1, keepdims=True)
        gap = (AY - Y * th[..., None, :]) / xp.where(scale > 0, scale, 1.0)[..., None]
        residual = xp.sqrt(xp.sum(gap * gap, axis=-2))
        # the window and its guard: the last k + 1 (top) or the first k + 1 (bottom) of the block
        judged = residual[..., b - k - 1 :] if top else residual[..., : k + 1]
        reached = float(xp.max(judged))
        if reached <= tol:
            lmd, Y_W, guards, extremes = _window(th, Y, theta, k, b, top, n, xp)
            if unit is not None:
                lmd, guards, extremes = lmd * unit[..., 0], guards * unit[..., 0], extremes * unit[..., 0]
            return lmd, Y_W, guards, extremes
        if progress.stalled(reached):
            raise progress.error("block Krylov", top, k, restart, "restarts", tol)
        V, AV = Y, AY
    raise ConvergenceError(
        f"the block Krylov iteration for the {'largest' if top else 'smallest'} {k} eigenpairs stopped after "
        f"{limit} restarts at relative residual {reached:.3g} (tolerance {tol:.3g}): the gap between the window and "
        f"the rest of the spectrum is too small relative to its spread. Raise maxiter, loosen tol, or use "
        f"method='subset' or 'full'"
    )


def _window(th: Array, Y: Array, theta: Array, k: int, b: int, top: bool, n: int, xp: ModuleType) -> tuple:
    inf = xp.full(th.shape[:-1] + (1,), math.inf, dtype=th.dtype, device=_device(th))
    if top:
        lmd, Y_W = th[..., b - k :], Y[..., b - k :]
        guards = xp.concat([th[..., b - k - 1 : b - k], inf], axis=-1) if k < n else xp.concat([-inf, inf], axis=-1)
    else:
        lmd, Y_W = th[..., :k], Y[..., :k]
        guards = xp.concat([-inf, th[..., k : k + 1]], axis=-1)
    extremes = xp.stack([theta[..., 0], theta[..., -1]], axis=-1)
    return lmd, Y_W, guards, extremes


def window(
    S: Array,
    k: int,
    lo: int,
    *,
    eps: float | None,
    degeneracy: str,
    tol: float | None,
    maxiter: int | None,
    xp: ModuleType,
) -> Any:
    """The `eigdiff._partial.Window` of the k eigenpairs from ``lo`` of symmetric S by block
    Krylov iteration (its backward: the projected solve with S's products), or None where the
    window's edge cuts a cluster (`eigdiff._partial.make_window`)."""
    from eigdiff._partial import default_tol, make_window

    n = S.shape[-1]
    solve_tol = default_tol(S.dtype, xp) if tol is None else tol
    lmd, Y, guards, extremes = decompose(S, lo, lo + k, tol=solve_tol, maxiter=maxiter, xp=xp)
    op = DenseOperator(S, Y)
    options: dict[str, Any] = {"eps": eps, "degeneracy": degeneracy, "tol": tol, "maxiter": None}
    return make_window(lmd, Y, guards, extremes, op, method="krylov", M=n, lo=lo, xp=xp, **options)


def block_size(k: int) -> int:
    """b = k + 1 + p: the window, one guard pair and p = max(2, k // 2) of oversampling."""
    return k + 1 + max(2, k // 2)


def fits(n: int, k: int) -> bool:
    """Whether an n × n problem leaves room for a Krylov space beyond the block (n ≥ 3b), the
    precondition of `decompose`; the callers route smaller problems to "full"."""
    return 3 * block_size(k) <= n


#: The largest Chebyshev filter degree per Rayleigh–Ritz step of `filtered` (measured on the
#: 10^5-node grid Laplacian's 8 smallest, float64, 2-core AMD EPYC: degree 20 took 8061
#: products and 61 s, degree 60 took 4081 products and 27 s; fewer Rayleigh–Ritz steps, each a
#: QR and an eigh). Each step takes less where its estimate says so (`_degree`).
FILTER_DEGREE = 60


def filtered(
    product: Callable[[Array], Array],
    n: int,
    like: Array,
    lo: int,
    hi: int,
    bounds: tuple[float, float] | None,
    *,
    tol: float,
    maxiter: int | None,
    xp: ModuleType,
    big: float | None = None,
    degree: int = FILTER_DEGREE,
    shifted: Callable[[float, float], Callable[[Array], Array]] | None = None,
) -> tuple[Array, Array, Array, Array, tuple[Array, Array]]:
    """The window lo ≤ i < hi at one end of the spectrum of one symmetric operator (n × n,
    ``product(B) = S B``) by Chebyshev-filtered block iteration, for sparse and matrix-free S.

    Each step applies to the block (b = `block_size` (k) vectors) the degree-``degree``
    Chebyshev polynomial of S that is bounded by 1 on [θ_b, λ_max] (θ_b: the block's outermost
    Ritz value, so the rest of the spectrum is damped) and grows fastest away from it (Zhou and
    Saad's scaled three-term recurrence, which stays in the float range), then a QR and a
    Rayleigh–Ritz step. The iterate stays in the block Krylov space of the start, like
    `iterate`'s, but costs one product and three elementwise passes per degree, with no
    orthogonalization against a growing basis: on a sparse matrix, where a product costs
    O(nnz · b) and an orthogonalization O(n · (qb)²), that is what makes it fast (`iterate` at
    depth 24 did not reach the 10^5-node grid Laplacian's 8 smallest in 300 s; this takes 9.5 s).

    ``bounds``: (lower, upper) bounds of the spectrum (Gershgorin's for a sparse matrix), or None
    to estimate them from a short Krylov run (matrix-free operators); an estimate that proves
    too narrow (a Ritz value beyond it) is widened and the step repeated. Converged as
    `iterate`: the window with residuals ≤ tol · max(|lower|, |upper|), and its guard with a
    residual small enough to certify half the edge gap (reported as its lower bound).
    Returns what `decompose` returns, and (U, SU): the block's other b − k Ritz vectors (the
    guard and the oversampling, orthogonal to the window) and their products, which the
    backward's conjugate gradients deflate; ``extremes`` is the converged end and the bound at
    the other. ``shifted(a, b)``: a callable B ↦ (aS + bI) B made once per filter step (a shifted
    sparse matrix, one product per degree); None: ``a · product(B) + b · B``. ``big``: S's largest |entry| where known: S is scaled by an exact power of two into
    [2^-64, 2^64] where it lies far outside (the results scaled back), as in `iterate`.
    Raises `ConvergenceError` after ``maxiter`` (default `DEFAULT_MAXITER`) steps.
    """
    unit = 1.0
    if big is not None and big > 0 and abs(round(math.log2(big))) > 64:
        unit = 2.0 ** round(math.log2(big))
        unscaled, unscaled_shifted = product, shifted
        product = lambda B: unscaled(B) / unit  # noqa: E731
        if unscaled_shifted is not None:
            shifted = lambda a, b: unscaled_shifted(a / unit, b)  # noqa: E731
        bounds = None if bounds is None else (bounds[0] / unit, bounds[1] / unit)
    lmd, Y, guards, extremes, (U, AU) = _filtered(product, n, like, lo, hi, bounds, tol, maxiter, xp, degree, shifted)
    if unit != 1.0:
        lmd, guards, extremes, AU = lmd * unit, guards * unit, extremes * unit, AU * unit
    return lmd, Y, guards, extremes, (U, AU)


def _filtered(
    product: Callable[[Array], Array],
    n: int,
    like: Array,
    lo: int,
    hi: int,
    bounds: tuple[float, float] | None,
    tol: float,
    maxiter: int | None,
    xp: ModuleType,
    degree: int,
    shifted: Callable[[float, float], Callable[[Array], Array]] | None,
) -> tuple[Array, Array, Array, Array, tuple[Array, Array]]:
    k = hi - lo
    top = hi == n
    sign = -1.0 if top else 1.0  # the top window is the bottom window of −S
    lower, upper = estimate_bounds(product, n, like, xp) if bounds is None else bounds
    lower, upper = (-upper, -lower) if top else (lower, upper)

    def apply(B: Array) -> Array:
        return product(B) * sign

    def signed(a: float, b: float) -> Callable[[Array], Array]:  # B ↦ (a sign S + b I) B
        if shifted is None:
            return lambda B: product(B) * (a * sign) + B * b
        return shifted(a * sign, b)

    b = block_size(k)
    V = _orthonormal(start_block(n, b, like, xp), xp)
    AV = apply(V)
    limit = DEFAULT_MAXITER if maxiter is None else maxiter
    reached = math.inf
    progress = _Progress(like.dtype, xp)
    for step in range(1, limit + 1):
        H = V.mT @ AV
        theta, Z = xp.linalg.eigh((H + H.mT) / 2)
        V, AV = V @ Z, AV @ Z
        scale = max(abs(lower), abs(upper), float(xp.max(xp.abs(theta))))
        gap = (AV - V * theta[None, :]) / (scale if scale > 0 else 1.0)
        residual = xp.sqrt(xp.sum(gap * gap, axis=-2))
        # The guard needs only enough accuracy to bound the edge gap: with an eigenvalue within
        # ‖r_g‖ of θ_g (and none missed), λ_guard ≥ θ_g − ‖r_g‖, so a guard residual of half the
        # Ritz edge gap already certifies half that gap; it is reported as θ_g − ‖r_g‖.
        guard_residual = float(residual[k]) * scale
        edge_gap = float(theta[k] - theta[k - 1])
        settled = guard_residual <= max(tol * scale, edge_gap / 2)
        reached = float(xp.max(residual[:k] if settled else residual[: k + 1]))
        if reached <= tol:
            th = theta * sign
            # the window as new, contiguous arrays (the backward's products with a strided view of V
            # would miss BLAS: NumPy's matmul falls back to a loop for negative strides)
            order = xp.arange(k - 1, -1, -1, device=_device(th)) if top else xp.arange(k, device=_device(th))
            lmd, Y = xp.take(th, order, axis=0), xp.take(V, order, axis=1)
            edge = (theta[k : k + 1] - guard_residual) * sign
            inf = xp.full((1,), math.inf, dtype=th.dtype, device=_device(th))
            guards = xp.concat([edge, inf]) if top else xp.concat([-inf, edge])
            ends = (-upper, float(th[0])) if top else (float(th[0]), upper)
            rest = xp.arange(k, b, device=_device(th))  # the guard and the oversampling: the backward's deflation
            deflation = (xp.take(V, rest, axis=1), xp.take(AV, rest, axis=1) * sign)
            return lmd, Y, guards, xp.asarray(ends, dtype=th.dtype, device=_device(th)), deflation
        if progress.stalled(reached):
            raise progress.error("Chebyshev-filtered block", top, k, step, "filter steps", tol)
        cut, low = float(theta[-1]), min(float(theta[0]), lower)
        if float(theta[-1]) > upper:  # the upper estimate was too low: widen it and filter again
            upper = float(theta[-1]) + (upper - lower)
        # Lock the converged leading pairs (a prefix of the window): they are not filtered again,
        # which saves their products and keeps them from outgrowing the rest in the filter.
        converged = [bool(c) for c in (residual[:k] <= tol)]
        p = converged.index(False) if False in converged else k
        steps = _degree(theta[p:], k - p, cut, upper, reached, tol, degree, xp)
        F = _chebyshev(signed, V[:, p:], AV[:, p:], steps, cut, upper, max(low, float(theta[p])), xp)
        if p:
            L = V[:, :p]
            F = _orthonormal(_projected_out(F, L), xp)
            V, AV = xp.concat([L, F], axis=-1), xp.concat([AV[:, :p], apply(F)], axis=-1)
        else:
            V = _orthonormal(F, xp)
            AV = apply(V)
    raise ConvergenceError(
        f"the Chebyshev-filtered block iteration for the {'largest' if top else 'smallest'} {k} eigenpairs stopped "
        f"after {limit} filter steps of degree {degree} at relative residual {reached:.3g} (tolerance {tol:.3g}): "
        f"the gap between the window and the rest of the spectrum is too small relative to its spread. Raise "
        f"maxiter or loosen tol"
    )


#: A forward's residual is at rounding level below ROUNDING_LEVEL · eps (relative to the
#: spectrum's scale); there, STALLED_STEPS steps (filter steps, restarts) without a new least
#: residual end the iteration with a `ConvergenceError` naming it (a tol below what the dtype
#: reaches), instead of running to ``maxiter``: 200 filter steps of degree 60 took 14.6 s on a
#: 10⁴-node k-NN Laplacian's 8 smallest at tol 1e-16, 20× its converged forward, and 1.6 s
#: with the rule. Far above that level a stall is left to ``maxiter`` (slow progress on a small
#: gap is progress).
ROUNDING_LEVEL = 1000
STALLED_STEPS = 10


class _Progress:
    """The least residual a forward iteration has reached, and the steps since."""

    def __init__(self, dtype: Any, xp: ModuleType) -> None:
        self.dtype, self.floor = dtype, ROUNDING_LEVEL * float(xp.finfo(dtype).eps)
        self.least, self.since = math.inf, 0

    def stalled(self, reached: float) -> bool:
        """Records ``reached``; whether the iteration has stalled at rounding level."""
        self.least, self.since = (reached, 0) if reached < self.least else (self.least, self.since + 1)
        return self.since >= STALLED_STEPS and self.least <= self.floor

    def error(self, iteration: str, top: bool, k: int, done: int, unit: str, tol: float) -> ConvergenceError:
        """The error after ``done`` steps, each a ``unit`` ("filter steps", "restarts")."""
        return ConvergenceError(
            f"the {iteration} iteration for the {'largest' if top else 'smallest'} {k} eigenpairs stopped decreasing "
            f"its residual after {done} {unit}: it reached {self.least:.3g} relative, within rounding of {self.dtype} "
            f"(tolerance {tol:.3g}), and no less in the {self.since} {unit} since. Loosen tol above {self.least:.1g}"
        )


def _degree(
    theta: Array, k: int, cut: float, upper: float, reached: float, tol: float, most: int, xp: ModuleType
) -> int:
    """The filter degree for the next step: what should bring the guard's residual from
    ``reached`` to ``tol`` at its Chebyshev rate ρ_g = acosh(x_g) (the damped band's gain is 1,
    the guard's ≈ e^(d ρ_g) / 2), at least 4 and at most ``most``, and small enough that the
    lowest Ritz value's component outgrows the guard's by at most u^(-1/2) (no loss of the
    guard in the QR that follows)."""
    e, c = (upper - cut) / 2, (upper + cut) / 2
    if not e > 0:
        return 1

    def rate(value: float) -> float:
        x = max((c - value) / e, 1.0)
        return math.log(x + math.sqrt(x * x - 1))

    guard, lowest = rate(float(theta[k])), rate(float(theta[0]))
    need = math.log(2 * reached / tol) / max(guard, 1e-12) if reached > tol else 1.0
    spread = lowest - guard
    keep = 0.5 * math.log(1 / float(xp.finfo(theta.dtype).eps)) / spread if spread > 0 else math.inf
    return int(max(4, min(most, math.ceil(need), keep)))


def _chebyshev(
    shifted: Callable[[float, float], Callable[[Array], Array]],
    V: Array,
    AV: Array,
    degree: int,
    cut: float,
    upper: float,
    low: float,
    xp: ModuleType,
) -> Array:
    """p(S) V, up to a scalar, for the degree-``degree`` Chebyshev polynomial of [cut, upper]
    (``shifted(a, b)``: B ↦ (aS + bI) B).

    The plain recurrence Y_{j+1} = 2x Y_j − Y_{j−1} in x = (S − c)/e, with the operator 2x
    formed once (a shifted sparse matrix: one product and one in-place subtraction per degree,
    the least memory traffic), and X, Y divided by max|Y| whenever the largest growth factor
    (x_low + √(x_low² − 1) per degree, at ``low``) could have reached 2^40 since the last time:
    the same subspace as Zhou and Saad's scaled recurrence, in the float range.
    """
    e, c = (upper - cut) / 2, (upper + cut) / 2
    if not e > 0:  # the block spans the whole spectrum (tiny n): nothing to damp
        return V
    two_x = shifted(2 / e, -2 * c / e)
    x_low = max((c - low) / e, 1.0)
    growth = math.log2(x_low + math.sqrt(x_low * x_low - 1))
    every = max(1, int(40 / max(growth, 1e-6)))
    X, Y = V, (AV - V * c) / e
    for j in range(2, degree + 1):
        Z = two_x(Y)
        Z -= X  # Z is the product's own new array
        X, Y = Y, Z
        if j % every == 0:
            m = xp.max(xp.abs(Y))
            X, Y = X / m, Y / m
    return Y


def estimate_bounds(product: Callable[[Array], Array], n: int, like: Array, xp: ModuleType) -> tuple[float, float]:
    """(lower, upper) estimates of an operator's spectrum: the extreme Ritz values of a 24-step
    Krylov space of one start vector, widened by their residual norms.

    The basis is held as the rows of one preallocated q × n array (each new vector orthogonalized
    twice against the rows so far), and only the two extreme Ritz vectors' residuals are formed:
    on the 10⁵-node k-NN Laplacian of `benchmarks/sparse_spectra.py` (float64, 2-core Intel
    Xeon), 0.27 s with the basis as a list of columns concatenated at each step, most of it
    strided copies, against ~0.05 s of products.
    """
    q = min(n, 24)
    Q = xp.zeros((q, n), dtype=like.dtype, device=_device(like))  # the basis, one vector per row
    AQ = xp.zeros((q, n), dtype=like.dtype, device=_device(like))
    w = xp.reshape(_orthonormal(start_block(n, 1, like, xp), xp), (1, n))
    m = 0
    while True:
        Q[m : m + 1, :] = w
        AQ[m : m + 1, :] = xp.reshape(product(xp.reshape(w, (n, 1))), (1, n))
        m += 1
        if m == q:
            break
        w = AQ[m - 1 : m, :]
        for _ in range(2):  # classical Gram–Schmidt, twice
            w = w - (w @ Q[:m, :].mT) @ Q[:m, :]
        norm = float(xp.sqrt(xp.sum(w * w)))
        if not norm > 0:
            break
        w = w / norm
    Q, AQ = Q[:m, :], AQ[:m, :]
    H = AQ @ Q.mT
    theta, Z = xp.linalg.eigh((H + H.mT) / 2)
    ends = xp.stack([Z[:, 0], Z[:, -1]], axis=-1)  # the two extreme Ritz vectors' coefficients
    R = ends.mT @ AQ - (ends * xp.stack([theta[0], theta[-1]])[None, :]).mT @ Q
    slack = xp.sqrt(xp.sum(R * R, axis=-1))
    return float(theta[0] - slack[0]), float(theta[-1] + slack[1])
