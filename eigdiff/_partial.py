"""Partial spectra without the full decomposition: the projected solve, the backward and the jvp.

For a window of k selected eigenpairs (λ_j, y_j), j ∈ W, of X = Y Λ Yᵀ, the full backward's
G = Y C Y_Wᵀ splits into the window's own block and the rest. With P = I − Y_W Y_Wᵀ,

    Y_⊥ (F ∘ Y_⊥ᵀ V) = W,   w_j = Σ_{i∉W} y_i (y_iᵀ v_j) / (λ_j − λ_i),

and w_j is the solution orthogonal to Y_W of P (λ_j I − X) P w_j = P v_j (the operator is
invertible on the complement when λ_j is apart from every unselected eigenvalue). So

    dL/dX = ½(G + Gᵀ),   G = (Y_W (F_W ∘ Y_Wᵀ V + diag g) + W) Y_Wᵀ,

with F_W the window's own regularized gap matrix: O(M²k) given W, and W from k shifted
solves that never need the unselected eigenvectors. The jvp uses the same solve with
right-hand sides dS Y_W. See the partial-spectra docs page.

The solves run in a basis of the caller's choice (an `Operator`): the identity for a dense X,
the tridiagonal form T = Qᵀ X Q for the ``"subset"`` forward (`eigdiff._subset`), where the
product with T costs O(Mk) and only Qᵀ V and Q W cost O(M²k). The solver is MINRES (Paige and
Saunders), vectorized over the batch and the k columns, each column with its own shift: one
product with the operator per iteration for all columns, a short recurrence (no stored basis),
and it needs no definiteness, so interior windows work as well as extreme ones. For an extreme
window the operator is definite and MINRES converges like CG, at a rate set by
√(spread / gap) with the gap between the window and the rest of the spectrum.
"""

from __future__ import annotations

import math
import warnings
from types import ModuleType
from typing import Any, Protocol

import numpy as np
from array_api_compat import is_numpy_namespace, is_torch_namespace

from eigdiff._checks import user_stacklevel
from eigdiff._core import DegenerateGradientWarning, add_transpose, warn_if_not_invariant
from eigdiff._gaps import _device, default_eps_factor, gap_product

Array = Any

__all__ = [
    "ConvergenceError",
    "Operator",
    "default_tol",
    "partial_backward",
    "partial_factors",
    "partial_jvp",
    "projected_solve",
]


class ConvergenceError(RuntimeError):
    """An iterative solve stopped at ``maxiter`` before reaching its tolerance.

    The message names the relative residual reached, the tolerance and the iteration count.
    eigdiff raises it rather than return an unconverged result.

    Examples
    --------
    >>> import eigdiff
    >>> issubclass(eigdiff.ConvergenceError, RuntimeError)
    True
    """


class Operator(Protocol):
    """Where the projected solve runs: a basis Q (orthogonal) in which X is ``matvec``.

    ``to_basis(B) = Qᵀ B`` and ``from_basis(B) = Q B`` for B (..., M, k); ``matvec(B) = QᵀXQ B``;
    ``Z = Qᵀ Y_W``, the window's eigenvectors in the basis. An operator may also have
    ``precondition(B)``: M⁻¹B for a symmetric positive definite M ≈ ±(QᵀXQ − λ_j I) (the
    same for every column), which `projected_solve` then uses.
    """

    Z: Array

    def to_basis(self, B: Array) -> Array: ...

    def from_basis(self, B: Array) -> Array: ...

    def matvec(self, B: Array) -> Array: ...


class DenseOperator:
    """The identity basis: ``matvec(B) = S B`` for the symmetric part S of a dense X, or
    ``product(B)`` where given (a sparse matrix's or a matrix-free operator's product)."""

    #: +1 (−1) where every unselected eigenvalue lies above (below) the window, which makes the
    #: projected operator definite and `projected_solve` use conjugate gradients; 0: unknown.
    side = 0
    #: (U, SU): approximate unselected eigenvectors next to the window, orthogonal to it, and
    #: their products, for deflation (`_conjugate_gradients`); None: none.
    deflation: tuple[Array, Array] | None = None
    #: (lower, upper): bounds of the whole spectrum (estimates may be a little inside), and
    #: ``shifted(a, b)``: B ↦ (aS + bI) B by one product, or None (then a product and two
    #: passes), for the conjugate gradients' polynomial preconditioner
    #: (`chebyshev_preconditioner`); None: no preconditioner.
    spectrum: tuple[float, float] | None = None
    shifted: Any = None

    def __init__(self, S: Array, Y_W: Array, product: Any = None) -> None:
        self.S, self.Z, self.product = S, Y_W, product

    def to_basis(self, B: Array) -> Array:
        return B

    def from_basis(self, B: Array) -> Array:
        return B

    def matvec(self, B: Array) -> Array:
        return self.S @ B if self.product is None else self.product(B)


def default_tol(dtype: Any, xp: ModuleType) -> float:
    """The solve's relative-residual tolerance: u^(3/4) (1.8e-12 in float64, 6.4e-6 in float32).

    The error of each w_j is at most the residual over the gap between λ_j and the unselected
    spectrum, so the gradient's relative error is about tol · ‖X‖/gap: 1e-9 for a gap of
    1e-3 ‖X‖ in float64.
    """
    return float(xp.finfo(dtype).eps) ** 0.75


def _power_of_two(a: Array, xp: ModuleType) -> Array:
    """2^round(log2 a) for a > 0, 1 where a is 0 or not finite: an exact scale."""
    ok = (a > 0) & (a < math.inf)
    return 2.0 ** xp.round(xp.log2(xp.where(ok, a, 1.0)))


def inner_products(a: Array, b: Array, axis: int, xp: ModuleType) -> Array:
    """The dot products of a's and b's columns (``axis=-2``, giving (..., 1, k) for (..., n, k)
    arrays) or rows (``axis=-1``, giving (..., k, 1) for (..., k, n), `_conjugate_gradients`'
    transposed vectors), in each library's fastest form measured on 10⁵ × 8 float64 in
    row-major order (quiet 2-core AMD EPYC): for columns NumPy's ``einsum`` (0.69 ms against
    ``vecdot``'s 0.86; the 10⁵-node grid's bottom-8 sparse backward took 13.4 s against 15.2 s
    side by side), for rows ``vecdot`` (0.26 against 0.50 ms on (8, 10⁵), 7.0 against 11.3 µs
    on the (8, 4096) blocks of `_conjugate_gradients`, 2-core Intel Xeon); torch's sum of the
    product (0.95 against 1.13 ms), ``vecdot`` elsewhere.
    """
    if is_numpy_namespace(xp) and axis == -2:
        return np.expand_dims(np.einsum("...ij,...ij->...j", a, b), axis)
    if is_torch_namespace(xp):
        return xp.sum(a * b, axis=axis, keepdims=True)
    return xp.expand_dims(xp.vecdot(a, b, axis=axis), axis=axis)


def times_columns(B: Array, s: Array, xp: ModuleType) -> Array:
    """B ∘ s (a new array) for B (..., n, k) and column factors s (..., 1, k). For 2-D NumPy
    arrays as the product B · diag(s), one BLAS pass: NumPy's broadcast over rows of k ≈ 8
    runs its inner loop k elements at a time, at half that speed (0.95 against 0.45 ms on
    (10⁵, 8) float64, 2-core AMD EPYC). The product adds exact zeros, so each entry is the
    same b_ij s_j, as long as B is finite.
    """
    if is_numpy_namespace(xp) and B.ndim == 2:
        return B @ np.diag(s.reshape(-1))
    return B * s


def projected_solve(op: Operator, lmd_W: Array, R: Array, *, tol: float, maxiter: int | None, xp: ModuleType) -> Array:
    """W (..., n, k) with w_j ⊥ Z and P(λ_j I − A)P w_j = r_j, for r_j ⊥ Z (A = ``op.matvec``).

    MINRES on (A_P − λ_j I) x_j = r_j with A_P = P A P, one column per shift, preconditioned
    by P M⁻¹ P where the operator has a ``precondition`` (then the residual is measured in the
    M⁻¹ norm); w = −x. Scaled by
    powers of two (the operator by max|λ_W|, each column by its largest entry) so that no
    recurrence leaves the float range. Stops when every column's residual estimate is at most
    ``tol`` times its right-hand side's norm; raises `ConvergenceError` after ``maxiter``
    iterations (default 4n + 100).
    """
    Z = op.Z
    n, k = R.shape[-2], R.shape[-1]
    if n == 0 or k == 0 or math.prod(R.shape) == 0:
        return xp.zeros_like(R)
    scale = _power_of_two(xp.max(xp.abs(lmd_W), axis=-1, keepdims=True)[..., None], xp)  # (..., 1, 1)
    col = _power_of_two(xp.max(xp.abs(R), axis=-2, keepdims=True), xp)  # (..., 1, k)
    shifts = lmd_W[..., None, :] / scale

    def project(B: Array) -> Array:
        return B - Z @ (Z.mT @ B)

    def apply(B: Array) -> Array:
        # P (A/scale − λ) B with one projection: for B in the complement that is P (A − λ) P B,
        # and a stray component of B along Z (rounding) maps to P Z (Λ_W − λ) ≈ 0, not to −λ
        out = op.matvec(B) / scale  # a new array: the in-place step below touches only it
        out -= times_columns(B, shifts, xp)
        return project(out)

    precondition = getattr(op, "precondition", None)
    side = getattr(op, "side", 0)
    if side and precondition is None:
        # projected again after the column scaling: a right-hand side at rounding level (dX = I
        # in a jvp) is noise with O(1) components along Z once scaled, where CG sees ≈ 0
        b = project(R / col)
        return _conjugate_gradients(op, project, b, side, scale, shifts, tol, limit_of(n, maxiter), xp) * (col / scale)

    def psolve(B: Array) -> Array:  # P M⁻¹ P, SPD on the complement, for the operator over `scale`
        return B if precondition is None else project(precondition(project(B))) * scale

    def dot(a: Array, b: Array) -> Array:
        return inner_products(a, b, -2, xp)

    # Projected again, as for the conjugate gradients above: R formed in float32 keeps a component
    # along Z of up to ~2e-6 of its size, which the projected operator cannot reduce, and with
    # tol = u^(3/4) = 6.4e-6 that close MINRES returned columns off by up to 2 % (an interior window
    # of a 7 × 7 matrix, well separated; tests/test_partial.py). Twice is enough.
    b = project(R / col)
    r1 = r2 = b
    y = psolve(b)
    beta1 = xp.sqrt(xp.maximum(dot(b, y), 0.0))
    target = tol * beta1
    zero = xp.zeros_like(beta1)
    oldb, beta, dbar, epsln, phibar = zero, beta1, zero, zero, beta1
    cs, sn = zero - 1, zero
    x, w, w2 = xp.zeros_like(b), xp.zeros_like(b), xp.zeros_like(b)
    tiny = float(xp.finfo(R.dtype).smallest_normal)
    limit = limit_of(n, maxiter)
    # In place only on arrays made here (y after `apply`, w, x): never on r1, r2 or the caller's.
    for itn in range(1, limit + 1):
        s = 1 / xp.where(beta > 0, beta, 1.0)
        v = y * s
        y = apply(v)
        if itn >= 2:
            y -= (beta / xp.where(oldb > 0, oldb, 1.0)) * r1
        alfa = dot(v, y)
        y -= (alfa * s) * r2
        r1, r2 = r2, y
        y = psolve(r2)
        oldb, beta = beta, xp.sqrt(xp.maximum(dot(r2, y), 0.0))
        oldeps = epsln
        delta = cs * dbar + sn * alfa
        gbar = sn * dbar - cs * alfa
        epsln = sn * beta
        dbar = -cs * beta
        gamma = xp.maximum(xp.sqrt(gbar * gbar + beta * beta), tiny)
        cs, sn = gbar / gamma, beta / gamma
        phi = cs * phibar
        phibar = sn * phibar
        w1, w2 = w2, w
        w = v - oldeps * w1
        w -= delta * w2
        w /= gamma
        x += phi * w
        if bool(xp.all(phibar <= target)):
            return -project(x) * (col / scale)
    reached = float(xp.max(phibar / xp.where(beta1 > 0, beta1, 1.0)))
    raise ConvergenceError(
        f"the projected solve of the partial-spectrum gradient stopped after {limit} MINRES iterations at "
        f"relative residual {reached:.3g} (tolerance {tol:.3g}): the selected eigenvalues are too close to the "
        f"unselected ones for the iteration count. Raise maxiter, loosen tol, or use method='full'"
    )


def limit_of(n: int, maxiter: int | None) -> int:
    """The solve's iteration cap: ``maxiter``, or 4n + 100."""
    return 4 * n + 100 if maxiter is None else maxiter


def _conjugate_gradients(
    op: Operator,
    project: Any,
    b: Array,
    side: int,
    scale: Array,
    shifts: Array,
    tol: float,
    limit: int,
    xp: ModuleType,
) -> Array:
    """−x with side · P (A/scale − λ_j) P x_j = b_j on the complement, for an extreme window
    (side · the operator positive definite there): conjugate gradients, one column per shift,
    vectorized; four M × k vectors and fewer passes over them per iteration than MINRES. Stops
    when every column's recursive residual is at most ``tol`` times its right-hand side's norm.

    Where the operator carries ``deflation`` (U, AU): orthonormal vectors U ⊥ Z that approximate
    the unselected eigenvectors nearest the window (the forward's guard and oversampling Ritz
    vectors) and their products, the iteration is deflated CG (Saad, Yeung, Erhel and
    Guyomarc'h 2000): the solution's component in span(U) is solved for exactly at every step
    (a k × m × m system), so the rate is set by the gap to the spectrum beyond U instead of the
    guard's. U need not be accurate; the solution is the same.

    The iteration's vectors are held transposed, (..., k, M), each column of the problem
    contiguous: every per-column step (the shifts, α and β, the inner products) is then one
    number broadcast over a contiguous row, where NumPy broadcast over rows of k ≈ 8 runs k
    elements at a time (0.49 against 1.43 ms per product on 10⁵ × 8 float64). For NumPy the
    passes run in blocks of `COLUMNS_PER_PASS` columns, the steps that read a block fused
    while it is in cache. The 10⁵-node grid's backward (8 smallest or largest) took 0.85-0.86
    of the time of the untransposed, unblocked loop, side by side (2-core Intel Xeon), with
    equal results (1.5e-15 and 2e-13 relative).

    Each product (..., n, k) is transposed block by block inside the first pass that reads it
    (no separate transpose), and a column whose residual has met the tolerance in every matrix
    of the batch leaves the block: its x is final (α = 0 from then on), so the later products
    and passes run over the open columns only, and the solutions are put back in the columns'
    order at the end. On the 10⁵-node grid and k-NN Laplacians (8 smallest, 8 largest) the
    columns finish at 0.8-1 of the last one's iteration count; with the rows' ``vecdot``
    (`inner_products`) the three changes took the backward to 0.78-0.85 of its time, side by
    side (2-core Intel Xeon), equal to 2e-13 relative. (A row-major copy of p written by the
    direction pass, for SciPy's product, which copies a transposed operand, was slower in the
    loop: 12.6 against 11.8 s on the grid's 8 smallest.)
    """
    Z = op.Z
    Zt = _rows(Z, xp)
    c = side / scale  # an exact power of two: side (A/scale − λ) = c A − side λ/scale

    def dot(a: Array, d: Array) -> Array:  # (..., k, 1): the rows' inner products
        return inner_products(a, d, -1, xp)

    n = b.shape[-2]
    step = columns_per_pass(n, xp)
    blocks = [slice(i, min(i + step, n)) for i in range(0, n, step)]

    def signed(Bt: Array, lam: Array) -> tuple[Array, Array]:
        """(side P (A/scale − λ) B)ᵀ, new, and its dots with B, for Bᵀ (..., k, n); ``lam``
        (..., k, 1): side λ/scale."""
        product = op.matvec(Bt.mT)  # (..., n, k), never written to
        out = xp.empty_like(Bt)
        gram: Any = 0
        for s in blocks:  # transposed in cache, scaled, shifted, and the projection's Gram product
            o = out[..., s]
            o[...] = product[..., s, :].mT
            o *= c
            o -= Bt[..., s] * lam
            gram = gram + o @ Zt[..., s].mT
        dots: Any = 0
        for s in blocks:  # the projection: (B − Z Zᵀ B)ᵀ
            o = out[..., s]
            o -= gram @ Zt[..., s]
            dots = dots + dot(Bt[..., s], o)
        return out, dots

    bt = _rows(b, xp)
    bt *= side
    lam = (shifts * side).mT  # (..., k, 1): side λ/scale
    precondition = chebyshev_preconditioner(op, side, scale, lam, xp)
    # Deflation and the polynomial preconditioner are not combined: with both, the grid
    # Laplacian's 8 largest (250², 316²) stagnated near 1e-9 and then diverged (the
    # preconditioner alone, or the deflation alone, converges there). With the coarse correction
    # taken from the preconditioned residual z = M⁻¹r, as deflated PCG prescribes, the 150²
    # grid's 8 largest still diverged after reaching 2.8e-12, and where the pair converged it was
    # no faster (0.9-1.2× the preconditioner alone; 2026-12-03). The preconditioner's
    # interval starts at the deflation's outermost Ritz value all the same, so the few
    # eigenvalues below it cost a few iterations more (177 against 160, grid 316², 8 smallest).
    deflation = getattr(op, "deflation", None) if precondition is None else None
    if deflation is not None:
        U, AU = deflation
        Ut = _rows(U, xp)
        m = U.shape[-1]
        eye = xp.eye(m, dtype=b.dtype, device=_device(b))
        H = U.mT @ AU
        H = (H + H.mT) / 2  # (..., m, m)
        # per column j: E_j = Uᵀ side (A/scale − λ_j) U, (..., k, m, m)
        E = side * (H[..., None, :, :] / scale[..., None] - shifts[..., 0, :, None, None] * eye)
        MUt = _rows(xp.concat([AU / scale, U], axis=-1), xp)  # side (A/scale − λ_j) U = side (AU/scale − U λ_j)

        def per_column(t: Array, E: Array) -> Array:  # row j of t (..., k, m) solved with E_j
            return xp.linalg.solve(E, t[..., None])[..., 0]

        def coarse(T: Array, E: Array, lam: Array) -> Array:
            """(E_j⁻¹ (side (A/scale − λ_j) U)ᵀ b_j)ᵀ, (..., k, m), from T = Bᵀ MU."""
            return per_column(side * T[..., :m] - T[..., m:] * lam, E)

        xt = per_column(bt @ U, E) @ Ut
        rt = bt - signed(xt, lam)[0]
        pt = rt - coarse(rt @ MUt.mT, E, lam) @ Ut
    else:
        rt = bt  # a new array: updated in place below, as are x and p
        xt = xp.zeros_like(bt)
        pt = bt * 1.0 if precondition is None else precondition(rt)
    rr = dot(rt, rt)  # ‖r‖², for the stopping test
    rz = rr if precondition is None else dot(rt, pt)  # rᵀ M⁻¹ r
    target = (tol * tol) * dot(bt, bt)
    # Divergence: in exact arithmetic the error's energy norm never grows, so ‖r‖ never exceeds
    # √κ times an earlier residual, and κ < 1/u for any system this precision can solve. A
    # residual over 10 u^(-1/2) times its column's least means rounding has taken over (the window's
    # rounding components, on which the projected operator is indefinite, grow without bound:
    # below about 1e-13 relative, a 10⁴-node k-NN Laplacian's 8 smallest overflowed after 1,000
    # of the 40,100 allowed iterations). It raises there, not at the iteration limit.
    growth = 200 / float(xp.finfo(b.dtype).eps)  # (10 u^(-1/2))², u = eps/2
    least = rr
    # Columns converge at different iterations: a converged column leaves the block (above).
    ids = list(range(b.shape[-1]))
    finished: list[tuple[list[int], Array]] = []
    for iteration in range(1, limit + 1):
        Apt, pAp = signed(pt, lam)
        active = (rr > target) & (pAp > 0)  # a converged column stops (its r would underflow)
        alpha = xp.where(active, rz / xp.where(active, pAp, 1.0), 0.0)
        new: Any = 0
        T: Any = 0
        for s in blocks:  # x and r stepped, r's inner products and (deflated) Gram product
            xs, rs = xt[..., s], rt[..., s]
            xs += pt[..., s] * alpha
            rs -= Apt[..., s] * alpha
            new = new + dot(rs, rs)
            if deflation is not None:
                T = T + rs @ MUt[..., s].mT
        if bool(xp.any(new > least * growth)):
            _diverged(least, new, target, tol, iteration, xp)
        least = xp.minimum(least, new)
        converged = _converged_rows(new <= target, xp)
        if len(converged) == len(ids):
            return -project(_in_order(finished + [(ids, xt)], xp).mT)
        if converged:
            finished.append(([ids[j] for j in converged], _take_rows(xt, converged, -2, xp)))
            leaving = set(converged)
            open_ = [j for j in range(len(ids)) if j not in leaving]
            ids = [ids[j] for j in open_]
            xt, rt, pt, new, rr, rz, target, lam, active, least = (
                _take_rows(a, open_, -2, xp) for a in (xt, rt, pt, new, rr, rz, target, lam, active, least)
            )
            if deflation is not None:
                T, E = _take_rows(T, open_, -2, xp), _take_rows(E, open_, -3, xp)
        if precondition is None:
            zt, rz_new = rt, new
        else:
            zt = precondition(rt)
            rz_new = 0
            for s in blocks:
                rz_new = rz_new + dot(rt[..., s], zt[..., s])
        beta = xp.where(active, rz_new / xp.where(active, rz, 1.0), 0.0)
        correction = coarse(T, E, lam) if deflation is not None else None
        for s in blocks:  # the new direction
            ps = pt[..., s]
            ps *= beta
            ps += zt[..., s]
            if correction is not None:
                ps -= correction @ Ut[..., s]
        rr, rz = new, rz_new
    reached = float(xp.max(xp.sqrt(rr / xp.where(target > 0, target, 1.0)))) * tol
    raise ConvergenceError(
        f"the projected solve of the partial-spectrum gradient stopped after {limit} conjugate-gradient iterations "
        f"at relative residual {reached:.3g} (tolerance {tol:.3g}): the selected eigenvalues are too close to the "
        f"unselected ones for the iteration count. Raise maxiter, loosen tol, or use method='full'"
    )


def _diverged(least: Array, new: Array, target: Array, tol: float, iteration: int, xp: ModuleType) -> None:
    """Raises the `ConvergenceError` of conjugate gradients whose residual has grown past its
    bound: the least relative residual any diverging column reached, and where it is now."""
    norm2 = xp.where(target > 0, target, 1.0) / (tol * tol)  # ‖b‖², per column
    growth = xp.where(least > 0, new / xp.where(least > 0, least, 1.0), xp.inf)
    worst = xp.reshape(growth == xp.max(growth), (-1,))  # the column that grew most
    lowest = float(xp.max(xp.reshape(xp.sqrt(least / norm2), (-1,))[worst]))
    now = float(xp.max(xp.reshape(xp.sqrt(new / norm2), (-1,))[worst]))
    raise ConvergenceError(
        f"the projected solve of the partial-spectrum gradient diverged after {iteration} conjugate-gradient "
        f"iterations: a column's relative residual fell to {lowest:.3g}, then grew to {now:.3g} (tolerance "
        f"{tol:.3g}); rounding errors dominate below about {lowest:.1g} in this dtype for this window's gap. "
        f"Loosen tol above it, or use method='full' on a dense matrix"
    )


#: The polynomial preconditioner's largest degree (odd): on the 10⁵-node grid and k-NN
#: Laplacians' 8 smallest and largest the backward's time was flat from 9 to 13 or 17.
MAX_DEGREE = 9


def chebyshev_preconditioner(op: Operator, side: int, scale: Array, lam: Array, xp: ModuleType) -> Any:
    """Bᵀ ↦ (p(H) B)ᵀ for Bᵀ (k, n), with H = side (A/scale − λ_ref) and p a polynomial ≈ 1/x
    on [a, b] ⊇ H's spectrum beyond the window; or None (no spectrum bounds or deflation
    vectors on ``op``, a batch, or a system too well conditioned to gain).

    λ_ref is the window's eigenvalue nearest the rest of the spectrum (side λ_ref/scale =
    max ``lam``), so that column j's operator is H + δ_j with δ_j ≥ 0: one polynomial serves
    every column. a: the deflation vectors' outermost Ritz value (the spectrum below it is a
    few eigenvalues, which cost CG a few iterations), b: the far end of ``op.spectrum``.

    p(x) = (1 − T_d(t(x))/T_d(t(0)))/x with t(x) = (b + a − 2x)/(b − a): the Chebyshev
    residual polynomial's preconditioner, degree d − 1. For odd d, 1 − T_d(t(x))/T_d(t(0)) has
    the sign of x on the whole real line, so p > 0 everywhere and p(H) is symmetric positive
    definite whatever H's true spectrum (bounds that are estimates, the window's own
    eigenvalues, rounding): conjugate gradients stay valid. On [a, b] it takes the condition
    number κ = b/a to about κ/d² (CG's iterations to about 1/d), each application d − 1
    products with S held shifted (one sparse product and two passes over n × k per degree),
    evaluated by the Chebyshev recurrence in row-major n × k. d is the least odd number with
    T_d(t(0)) ≥ 2 (the preconditioned condition number ≤ 3), at most `MAX_DEGREE`.

    Why: each conjugate-gradient iteration's dense passes (projection, updates, inner
    products, transposes) cost several times one sparse product, so trading iterations for
    products pays: on the 10⁵-node grid's 8 smallest, 932 iterations became 177.
    """
    spectrum, deflation = getattr(op, "spectrum", None), getattr(op, "deflation", None)
    shifted = getattr(op, "shifted", None)
    if spectrum is None or deflation is None or lam.ndim != 2:
        return None
    s = float(xp.reshape(scale, (-1,))[0])
    ref = float(xp.max(lam))
    U, AU = deflation
    H = U.mT @ AU
    a = float(xp.max(xp.linalg.eigvalsh((H + H.mT) / 2) * side)) / s - ref
    b = side * (spectrum[1] if side > 0 else spectrum[0]) / s - ref
    if not (a > 0 and b > a):
        return None
    t0 = (b + a) / (b - a)
    need = math.acosh(2.0) / math.acosh(t0)  # T_d(t0) = cosh(d acosh t0) ≥ 2
    if need <= 1:
        return None
    d = min(2 * math.ceil((need - 1) / 2) + 1, MAX_DEGREE)
    top = math.cosh(d * math.acosh(t0))
    nodes = np.cos(np.pi * (np.arange(d) + 0.5) / d)  # p as a Chebyshev series in t, degree d − 1: exact
    x = (b + a - (b - a) * nodes) / 2
    coef = [
        float(c) for c in np.polynomial.chebyshev.chebfit(nodes, (1 - np.cos(d * np.arccos(nodes)) / top) / x, d - 1)
    ]
    c1, c0 = -4 * side / (s * (b - a)), (2 * (b + a) + 4 * ref) / (b - a)  # 2 t(H) = c1 A + c0 I
    if shifted is not None:
        twice_t = shifted(c1, c0)
    else:

        def twice_t(B: Array) -> Array:  # the operator's product is never written to
            return op.matvec(B) * c1 + B * c0

    numpy = is_numpy_namespace(xp)

    def apply(Bt: Array) -> Array:
        B = _rows(Bt, xp)  # (n, k), row-major: the sparse products' layout
        z = B * coef[0]
        older, old = B, twice_t(B)
        old *= 0.5  # T_1(t) B
        spare = xp.empty_like(B) if numpy else None
        for j, c in enumerate(coef[1:]):
            if j:
                new = twice_t(old)
                new -= older  # T_{j+1}(t) B
                older, old = old, new
            if spare is not None:  # z += c T_j B without a temporary
                xp.multiply(old, c, out=spare)
                z += spare
            else:
                z += old * c
        return _rows(z, xp)

    return apply


def _converged_rows(done: Array, xp: ModuleType) -> list[int]:
    """The rows j of ``done`` (..., k, 1) that are true in every matrix of the batch; one host
    read unless some but not all are (then one per row)."""
    mask = xp.all(xp.reshape(done, (-1, done.shape[-2])), axis=0)
    count = int(xp.sum(xp.astype(mask, xp.int64)))
    if count in (0, mask.shape[0]):
        return list(range(count))
    return [j for j in range(mask.shape[0]) if bool(mask[j])]


def _take_rows(a: Array, rows: list[int], axis: int, xp: ModuleType) -> Array:
    """The entries ``rows`` of ``a`` along ``axis``, in that order (a new array)."""
    return xp.take(a, xp.asarray(rows, device=_device(a)), axis=axis)


def _in_order(parts: list[tuple[list[int], Array]], xp: ModuleType) -> Array:
    """The rows of ``parts`` ((original row numbers, their rows (..., r, n)), ...) as one array
    (..., k, n) in the original order."""
    if len(parts) == 1:
        return parts[0][1]
    ids = [i for part, _ in parts for i in part]
    inverse = [0] * len(ids)
    for position, i in enumerate(ids):
        inverse[i] = position
    return _take_rows(xp.concat([rows for _, rows in parts], axis=-2), inverse, -2, xp)


#: Columns of the transposed (..., k, M) vectors per block of `_conjugate_gradients`' passes
#: for NumPy: each block's work runs while it is in cache (other libraries take the whole
#: array in one pass).
COLUMNS_PER_PASS = 4096


def columns_per_pass(n: int, xp: ModuleType) -> int:
    """The block width of `_conjugate_gradients`' passes over its (..., k, n) vectors."""
    return COLUMNS_PER_PASS if is_numpy_namespace(xp) else max(n, 1)


def _rows(a: Array, xp: ModuleType) -> Array:
    """a.mT as a new row-major array, (..., k, M) for a (..., M, k) or back; for NumPy in blocks of
    `columns_per_pass` rows (columns) of a, each block's transpose done in cache: on (10⁵, 8) float64,
    0.64 ms against 1.97 ms for the whole array's strided copy (2-core Intel Xeon), which made
    a fifth of the grid's sparse backward (`_conjugate_gradients` transposes every product).
    """
    n, k = a.shape[-2], a.shape[-1]
    out = xp.empty(a.shape[:-2] + (k, n), dtype=a.dtype, device=_device(a))
    step = columns_per_pass(max(n, k), xp)
    if n >= k:
        for i in range(0, n, step):
            out[..., i : i + step] = a[..., i : i + step, :].mT
    else:  # (..., k, M) back to (..., M, k): blocks of a's columns
        for i in range(0, k, step):
            out[..., i : i + step, :] = a[..., i : i + step].mT
    return out


def _halved_window_block(
    P_W: Array, lmd_W: Array, g_lmd: Array | None, *, eps: Any, degeneracy: str, xp: ModuleType
) -> Array:
    """½(F_W ∘ P_W + diag g): the window's own k × k block of the backward's C."""
    k = lmd_W.shape[-1]
    C = gap_product(P_W, lmd_W, k, eps=eps, degeneracy=degeneracy, xp=xp, halve=True, lo=0)
    if g_lmd is not None:
        C = C + xp.eye(k, dtype=C.dtype, device=_device(C)) * (g_lmd[..., None, :] / 2)
    return C


def partial_factors(
    op: Operator,
    lmd_W: Array,
    Y_W: Array,
    V: Array | None,
    g_lmd: Array | None,
    *,
    eps: Any,
    degeneracy: str,
    tol: float,
    maxiter: int | None,
    xp: ModuleType,
) -> Array:
    """F (..., M, k) with dL/dX = ½(Y_W Fᵀ + F Y_Wᵀ): F = Y_W (F_W ∘ Y_Wᵀ V + diag g) + W (see
    the module docstring), from the window's pairs and gradients alone.

    ``eps``: the absolute gap threshold, a float or an array (..., 1, 1) resolved by the forward
    from the whole spectrum's scale (the window alone does not know it).
    """
    if V is None:
        return xp.zeros_like(Y_W) if g_lmd is None else Y_W * g_lmd[..., None, :]
    V_b = op.to_basis(V)
    P_W = op.Z.mT @ V_b  # = Y_Wᵀ V
    C = _halved_window_block(P_W, lmd_W, g_lmd, eps=eps, degeneracy=degeneracy, xp=xp)
    W = op.from_basis(projected_solve(op, lmd_W, V_b - op.Z @ P_W, tol=tol, maxiter=maxiter, xp=xp))
    return Y_W @ (2 * C) + W


def partial_backward(
    op: Operator,
    lmd_W: Array,
    Y_W: Array,
    V: Array | None,
    g_lmd: Array | None,
    *,
    eps: Any,
    degeneracy: str,
    tol: float,
    maxiter: int | None,
    xp: ModuleType,
) -> Array:
    """dL/dX (..., M, M) = ½(Y_W Fᵀ + F Y_Wᵀ) with F from `partial_factors` (same arguments)."""
    F = partial_factors(op, lmd_W, Y_W, V, g_lmd, eps=eps, degeneracy=degeneracy, tol=tol, maxiter=maxiter, xp=xp)
    return add_transpose((F / 2) @ Y_W.mT, xp, blocked=True)  # never under autograd recording (once differentiable)


def partial_jvp(
    op: Operator,
    lmd_W: Array,
    Y_W: Array,
    dS_Y: Array,
    *,
    eps: Any,
    degeneracy: str,
    tol: float,
    maxiter: int | None,
    xp: ModuleType,
) -> tuple[Array, Array]:
    """Tangents (dλ_W, dY_W) from dS Y_W (..., M, k), dS = ½(dX + dXᵀ): dλ = diag(Y_Wᵀ dS Y_W),
    dY_W = Y_W (F_W ∘ Y_Wᵀ dS Y_W) + W with W the projected solve of dS Y_W: the transpose of
    `partial_backward`."""
    A_b = op.to_basis(dS_Y)
    P_W = op.Z.mT @ A_b
    k = lmd_W.shape[-1]
    dlmd = xp.sum(P_W * xp.eye(k, dtype=P_W.dtype, device=_device(P_W)), axis=-2)
    inner = gap_product(P_W, lmd_W, k, eps=eps, degeneracy=degeneracy, xp=xp, lo=0)
    W = op.from_basis(projected_solve(op, lmd_W, A_b - op.Z @ P_W, tol=tol, maxiter=maxiter, xp=xp))
    return dlmd, Y_W @ inner + W


class Window:
    """A computed window of eigenpairs and what its backward and jvp need (no full Y).

    ``lmd`` (..., k) and ``Y`` (..., M, k): the window, ascending; ``op``: the basis of the
    projected solve; ``eps``: the absolute gap threshold resolved from the whole spectrum's
    scale; ``tol`` and ``maxiter``: the solve's; ``method``: the partial method that made it
    (for messages).
    """

    def __init__(
        self,
        lmd: Array,
        Y: Array,
        op: Operator,
        *,
        method: str,
        eps: Any,
        degeneracy: str,
        tol: float,
        maxiter: int | None,
        xp: ModuleType,
    ) -> None:
        self.lmd, self.Y, self.op, self.xp, self.method = lmd, Y, op, xp, method
        self.options = {"eps": eps, "degeneracy": degeneracy, "tol": tol, "maxiter": maxiter}

    def _check(self, V: Array | None, check_invariance: bool) -> None:
        if check_invariance and V is not None:
            P_W = self.op.Z.mT @ self.op.to_basis(V)
            warn_if_not_invariant(self.lmd, P_W, self.lmd.shape[-1], self.options["eps"], self.xp, lo=0)

    def backward(self, V: Array | None, g_lmd: Array | None, *, check_invariance: bool = False) -> Array:
        """dL/dX (..., M, M) from dL/dY_W and dL/dλ_W (either None for zero)."""
        self._check(V, check_invariance)
        return partial_backward(self.op, self.lmd, self.Y, V, g_lmd, xp=self.xp, **self.options)

    def factors(self, V: Array | None, g_lmd: Array | None, *, check_invariance: bool = False) -> Array:
        """F (..., M, k) with dL/dX = ½(Y_W Fᵀ + F Y_Wᵀ) (`partial_factors`), never forming dL/dX."""
        self._check(V, check_invariance)
        return partial_factors(self.op, self.lmd, self.Y, V, g_lmd, xp=self.xp, **self.options)

    def jvp(self, dX: Array) -> tuple[Array, Array]:
        """(dλ_W, dY_W) along dX (..., M, M)."""
        return self.jvp_product((dX @ self.Y + dX.mT @ self.Y) / 2)

    def jvp_product(self, dS_Y: Array) -> tuple[Array, Array]:
        """(dλ_W, dY_W) from dS Y_W (..., M, k), dS = ½(dX + dXᵀ) (a sparse or matrix-free tangent)."""
        return partial_jvp(self.op, self.lmd, self.Y, dS_Y, xp=self.xp, **self.options)


def make_window(
    lmd: Array,
    Y: Array,
    guards: Array,
    extremes: Array,
    op: Operator,
    *,
    method: str,
    M: int,
    lo: int,
    eps: float | None,
    degeneracy: str,
    tol: float | None,
    maxiter: int | None,
    xp: ModuleType,
    fallback: bool = True,
) -> Window | None:
    """The `Window` of a partial forward's results, or None (after a `DegenerateGradientWarning`)
    where an unselected eigenvalue lies within the gap threshold of the window's edge: there the
    edge eigenvectors are not determined by the window and the projected operator is singular,
    so the caller computes the window with ``"full"``, whose gradient masks that tie.

    ``guards`` (..., 2): the eigenvalues just outside the window (±inf where it reaches an end);
    ``extremes`` (..., 2): the spectrum's smallest and largest, for the default threshold
    `eigdiff._gaps.default_eps_factor` · max(|λ_min|, |λ_max|) (the full path's); ``method``
    the partial method that computed them. ``fallback=False`` (sparse and matrix-free input,
    where "full" would densify): a ValueError there instead.
    """
    k = lmd.shape[-1]
    if eps is None:
        scale = xp.max(xp.abs(extremes), axis=-1)[..., None, None]
        threshold: Any = default_eps_factor(M, lmd.dtype, xp, degeneracy) * scale
        edge_threshold = threshold[..., 0]
    else:
        threshold = edge_threshold = eps
    edge_gaps = xp.stack([lmd[..., 0] - guards[..., 0], guards[..., 1] - lmd[..., -1]], axis=-1)
    if bool(xp.any(edge_gaps <= edge_threshold)):
        if not fallback:
            raise ValueError(
                f"the selected window (eigenpairs {lo} <= i < {lo + k}) has an unselected eigenvalue within the gap "
                f"threshold of its edge (smallest edge gap {float(xp.min(edge_gaps)):.3g}): the eigenvectors at the "
                f"edge are not determined by the window. Widen or narrow the window so that it holds the whole "
                f"cluster, or pass a smaller eps"
            )
        warnings.warn(
            f"the selected window (eigenpairs {lo} <= i < {lo + k}) has an unselected eigenvalue within the gap "
            f"threshold of its edge (smallest edge gap {float(xp.min(edge_gaps)):.3g}): the eigenvectors at the edge "
            f"are not determined by the window and the projected solve would be singular, so method='full' is used "
            f"instead (its gradient masks that tie)",
            DegenerateGradientWarning,
            stacklevel=user_stacklevel(),
        )
        return None
    tol = default_tol(lmd.dtype, xp) if tol is None else tol
    if hasattr(op, "side") and k < M:  # an extreme window: the projected operator is definite
        op.side = 1 if lo == 0 else (-1 if lo + k == M else 0)
    return Window(lmd, Y, op, method=method, eps=threshold, degeneracy=degeneracy, tol=tol, maxiter=maxiter, xp=xp)
