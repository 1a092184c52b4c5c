"""Spectral matrix functions f(X) = Y f(Λ) Yᵀ and their Daleckii–Krein derivative, once.

For a symmetric X = Y Λ Yᵀ and a scalar function f, the derivative of f(X) along a symmetric
direction S is the Fréchet derivative

    Df(X)[S] = Y (Γ ∘ (Yᵀ S Y)) Yᵀ,   Γ_ij = (f(λ_i) − f(λ_j)) / (λ_i − λ_j),  Γ_ii = f′(λ_i),

(Daleckii & Krein, 1965; Bhatia, *Matrix Analysis*, V.3). Γ is the first divided difference of
f: it needs no gap threshold, is finite at ties (f′ there), and symmetric, so the same map is
the forward-mode rule and (applied to the symmetric part of the cotangent) the backward.

Each named function carries a divided difference written without cancellation, exact at and
near ties: 1/(√a + √b) for the square root, (2/(a+b))·atanh(z)/z with z = (a−b)/(a+b) for the
logarithm, e^{(a+b)/2}·sinh(d/2)/(d/2) for the exponential, and a sinh/atanh form for powers.
A user's own f gets the secant where the gap is large and f′ (or a central difference) at the
midpoint where it is below ∛u of the pair's size, about u^{2/3} relative either way.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from types import ModuleType
from typing import Any

Array = Any

#: Domains a spectral function can require of the eigenvalues, and their wording in errors.
DOMAINS = {
    "any": "",
    "nonnegative": "non-negative",
    "positive": "positive",
    "nonzero": "non-zero",
}


@dataclasses.dataclass(frozen=True)
class SpectralFunction:
    """A scalar function f applied to the eigenvalues, with its divided difference.

    ``f(lmd, xp)`` is elementwise; ``divided_difference(a, b, xp)`` returns
    (f(a) − f(b))/(a − b), and f′(a) where a = b, elementwise for broadcast arrays a, b;
    ``second_derivative(x, xp)`` is f″ (for second derivatives of f(X) at and near ties).
    ``domain`` is a key of `DOMAINS`.
    """

    name: str
    f: Callable[[Array, ModuleType], Array]
    divided_difference: Callable[[Array, Array, ModuleType], Array]
    second_derivative: Callable[[Array, ModuleType], Array]
    domain: str = "any"


def _safe(x: Array, bad: Array, xp: ModuleType) -> Array:
    """x with 1 where ``bad``: a divisor for the branch of a ``where`` that is not taken, so that
    neither its value nor its derivative (double backward) is NaN."""
    return xp.where(bad, 1.0, x)


#: Below this |x|, sinh(x)/x and atanh(x)/x are their Taylor polynomials (truncation < 1e-21),
#: so that their derivatives (double backward) do not cancel as (x cosh x − sinh x)/x² would.
_SERIES_BELOW = 1e-2


def _sinhc(x: Array, xp: ModuleType) -> Array:
    """sinh(x)/x: 1 + x²/6 + x⁴/120 + x⁶/5040 near 0."""
    small = xp.abs(x) < _SERIES_BELOW
    x2 = x * x
    series = 1 + x2 * (1 / 6 + x2 * (1 / 120 + x2 / 5040))
    return xp.where(small, series, xp.sinh(x) / _safe(x, small, xp))


def _atanhc(z: Array, xp: ModuleType) -> Array:
    """atanh(z)/z for |z| < 1: 1 + z²/3 + z⁴/5 + z⁶/7 + z⁸/9 near 0."""
    small = xp.abs(z) < _SERIES_BELOW
    z2 = z * z
    series = 1 + z2 * (1 / 3 + z2 * (1 / 5 + z2 * (1 / 7 + z2 / 9)))
    return xp.where(small, series, xp.atanh(xp.where(small, 0.5, z)) / _safe(z, small, xp))


def _log_ratio_over_difference(a: Array, b: Array, xp: ModuleType) -> Array:
    """(log a − log b)/(a − b) for a, b > 0: (2/(a+b))·atanh(z)/z with z = (a−b)/(a+b) for
    |z| < ½ (no cancellation near ties), the plain secant beyond (where atanh's slope near ±1
    would amplify the rounding of z)."""
    s = a + b
    z = (a - b) / s
    near = xp.abs(z) < 0.5
    far = (xp.log(a) - xp.log(b)) / _safe(a - b, near, xp)
    return xp.where(near, (2 / s) * _atanhc(xp.where(near, z, 0.0), xp), far)


def _exp_dd(a: Array, b: Array, xp: ModuleType) -> Array:
    # e^{(a+b)/2}·sinh(d/2)/(d/2): no cancellation; for |d| ≥ 2, the plain secant (no overflow
    # of sinh for far-apart eigenvalues, and no cancellation there either).
    d = a - b
    near = xp.abs(d) < 2
    close = xp.exp(a / 2 + b / 2) * _sinhc(xp.where(near, d, 0.0) / 2, xp)
    far = (xp.exp(a) - xp.exp(b)) / _safe(d, near, xp)
    return xp.where(near, close, far)


def _sqrt_dd(a: Array, b: Array, xp: ModuleType) -> Array:
    return 1 / (xp.sqrt(a) + xp.sqrt(b))  # +inf only at a = b = 0, where f′ is infinite


def _inv_sqrt_dd(a: Array, b: Array, xp: ModuleType) -> Array:
    ra, rb = xp.sqrt(a), xp.sqrt(b)
    return -1 / (ra * rb * (ra + rb))


def power(p: float) -> SpectralFunction:
    """λ ↦ λ^p. Integer p: any real eigenvalues (non-zero for p < 0); otherwise non-negative
    (positive for p < 0) eigenvalues."""
    p = float(p)
    integer = p.is_integer()

    def f(lmd: Array, xp: ModuleType) -> Array:
        return lmd**p

    def dd(a: Array, b: Array, xp: ModuleType) -> Array:
        # Same sign, both non-zero: s^{p−1} · Γ(|a|, |b|) with the positive form
        # Γ = p (|a||b|)^{p/2} · sinh(pL/2)/(pL/2) · L/(|a|−|b|), L = log|a| − log|b|.
        # Opposite signs or a zero: |a − b| ≥ max(|a|, |b|), the plain secant is exact enough;
        # a = b = 0: f′(0) = p·0^{p−1}.
        same = ((a > 0) & (b > 0)) | ((a < 0) & (b < 0))
        ua, ub = xp.where(same, xp.abs(a), 1.0), xp.where(same, xp.abs(b), 1.0)
        L_over_d = _log_ratio_over_difference(ua, ub, xp)
        L = L_over_d * (ua - ub)
        positive = p * xp.exp((p / 2) * (xp.log(ua) + xp.log(ub))) * _sinhc((p / 2) * L, xp) * L_over_d
        if integer and p % 2 == 0:  # s^{p−1} = s for even p
            positive = xp.where(a < 0, -positive, positive)
        d = a - b
        both_zero = (a == 0) & (b == 0)
        dummy = same | both_zero  # entries the secant does not serve: 1 − 1 over 1, finite
        secant = (xp.where(dummy, 1.0, a) ** p - xp.where(dummy, 1.0, b) ** p) / _safe(d, dummy, xp)
        at_zero = 0.0 if (p > 1 or p == 0) else (1.0 if p == 1 else math.inf)  # p·0^{p−1}
        return xp.where(same, positive, xp.where(both_zero, at_zero, secant))

    def d2f(x: Array, xp: ModuleType) -> Array:
        return p * (p - 1) * x ** (p - 2) if p not in (0.0, 1.0) else xp.zeros_like(x)

    if integer:
        domain = "nonzero" if p < 0 else "any"
    else:
        domain = "positive" if p < 0 else "nonnegative"
    return SpectralFunction(f"power({p:g})", f, dd, d2f, domain)


BUILTIN: dict[str, SpectralFunction] = {
    "sqrt": SpectralFunction(
        "sqrt", lambda x, xp: xp.sqrt(x), _sqrt_dd, lambda x, xp: -0.25 / (x * xp.sqrt(x)), "nonnegative"
    ),
    "inv_sqrt": SpectralFunction(
        "inv_sqrt", lambda x, xp: 1 / xp.sqrt(x), _inv_sqrt_dd, lambda x, xp: 0.75 / (x * x * xp.sqrt(x)), "positive"
    ),
    "log": SpectralFunction(
        "log",
        lambda x, xp: xp.log(x),
        lambda a, b, xp: _log_ratio_over_difference(a, b, xp),
        lambda x, xp: -1 / (x * x),
        "positive",
    ),
    "exp": SpectralFunction("exp", lambda x, xp: xp.exp(x), _exp_dd, lambda x, xp: xp.exp(x)),
}


def custom(f: Callable[[Array], Array], df: Callable[[Array], Array] | None) -> SpectralFunction:
    """A user's elementwise f (and f′ when given) as a `SpectralFunction`.

    Pairs closer than τ = ∛u · max(|a|, |b|) use f′ at the midpoint (a central difference of f
    with step τ/2 when ``df`` is None); farther pairs use the secant. Both errors are about
    u^{2/3} relative for a smooth f: the secant's cancellation u|f|/|a−b| and the midpoint
    rule's truncation (a−b)²|f‴|/24.
    """

    def dd(a: Array, b: Array, xp: ModuleType) -> Array:
        d = a - b
        tau = float(xp.finfo(a.dtype).eps) ** (1 / 3) * xp.maximum(xp.abs(a), xp.abs(b))
        close = xp.abs(d) <= tau
        m = a / 2 + b / 2
        if df is not None:
            slope = df(m)
        else:
            h = xp.where(tau > 0, tau / 2, float(xp.finfo(a.dtype).eps) ** (1 / 3))
            slope = (f(m + h) - f(m - h)) / (2 * h)
        secant = (f(a) - f(b)) / _safe(d, close, xp)
        return xp.where(close, slope, secant)

    def d2f(x: Array, xp: ModuleType) -> Array:
        # central differences of f′ (or second differences of f) with a step of ∛u (resp. ⁴√u)
        u = float(xp.finfo(x.dtype).eps)
        if df is not None:
            h = u ** (1 / 3) * xp.maximum(xp.abs(x), 1.0)
            return (df(x + h) - df(x - h)) / (2 * h)
        h = u**0.25 * xp.maximum(xp.abs(x), 1.0)
        return (f(x + h) - 2 * f(x) + f(x - h)) / (h * h)

    return SpectralFunction(getattr(f, "__name__", "f"), lambda x, xp: f(x), dd, d2f)


def floored(spec: SpectralFunction, floor: float) -> SpectralFunction:
    """g(λ) = f(max(λ, floor)): eigenvalues below ``floor`` are clamped to it (g′ = 0 there)."""

    def g(lmd: Array, xp: ModuleType) -> Array:
        return spec.f(xp.maximum(lmd, floor), xp)

    def dd(a: Array, b: Array, xp: ModuleType) -> Array:
        # Γ_g(a, b) = Γ_f(a_c, b_c) · (a_c − b_c)/(a − b): the ratio is 1 when neither is clamped
        # (exactly), 0 when both are, and in (0, 1] between; at a tie, 1 or 0.
        ac, bc = xp.maximum(a, floor), xp.maximum(b, floor)
        tie = a == b
        ratio = xp.where(tie, xp.where(a >= floor, 1.0, 0.0), (ac - bc) / _safe(a - b, tie, xp))
        return spec.divided_difference(ac, bc, xp) * ratio

    def d2g(x: Array, xp: ModuleType) -> Array:
        return xp.where(x > floor, spec.second_derivative(xp.maximum(x, floor), xp), 0.0)

    return SpectralFunction(f"{spec.name} floored at {floor:g}", g, dd, d2g, "any")


def check_domain(lmd: Array, spec: SpectralFunction, xp: ModuleType) -> None:
    """ValueError naming the smallest (or offending) eigenvalue when λ leaves f's domain."""
    if spec.domain == "any" or math.prod(lmd.shape) == 0:
        return
    if spec.domain == "nonzero":
        bad = bool(xp.any(lmd == 0))
        worst = 0.0
    else:
        worst = float(xp.min(lmd))
        bad = worst < 0 if spec.domain == "nonnegative" else worst <= 0
    if bad:
        raise ValueError(
            f"{spec.name} needs {DOMAINS[spec.domain]} eigenvalues, but the smallest is {worst:.6g}"
            + ("" if spec.domain == "nonzero" else "; pass floor=... to clamp the eigenvalues at a stated floor")
        )


# --------------------------------------------------------------------------- the formulas


def divided_differences(lmd: Array, spec: SpectralFunction, xp: ModuleType) -> Array:
    """Γ (..., M, M) with Γ_ij = (f(λ_i) − f(λ_j))/(λ_i − λ_j), f′(λ_i) at ties; exactly symmetric."""
    a, b = lmd[..., :, None], lmd[..., None, :]
    G = spec.divided_difference(a, b, xp)
    return (G + G.mT) / 2


def apply(lmd: Array, Y: Array, spec: SpectralFunction, xp: ModuleType) -> Array:
    """Y f(Λ) Yᵀ, exactly symmetric."""
    F = (Y * spec.f(lmd, xp)[..., None, :]) @ Y.mT
    return (F + F.mT) / 2


def frechet(lmd: Array, Y: Array, S: Array, spec: SpectralFunction, xp: ModuleType) -> Array:
    """Df(X)[sym S] = Y (Γ ∘ (Yᵀ ½(S + Sᵀ) Y)) Yᵀ: the forward-mode rule, and the backward for a
    cotangent S (the map is self-adjoint). Exactly symmetric."""
    C = Y.mT @ ((S + S.mT) / 2) @ Y
    D = Y @ (divided_differences(lmd, spec, xp) * C) @ Y.mT
    return (D + D.mT) / 2


# --------------------------------------------------------------------------- second order


def second_divided_differences(lmd: Array, spec: SpectralFunction, xp: ModuleType) -> Array:
    """T (..., M, M, M) with T_ikj = f[λ_i, λ_k, λ_j], the second divided difference.

    Each triple uses the recurrence f[a, b, c] = (f[a, b] − f[b, c])/(a − c) over whichever of
    its three pairs is farthest apart (so the first divided differences that cancel are those
    of the closest pair), and f″(mean)/2 where all three lie within √u of their size: exact at
    exact ties, about √u relative in that narrow window. O(M³) memory.
    """
    G = divided_differences(lmd, spec, xp)
    a, b, c = lmd[..., :, None, None], lmd[..., None, :, None], lmd[..., None, None, :]
    G_ab, G_bc, G_ac = G[..., :, :, None], G[..., None, :, :], G[..., :, None, :]
    d_ac, d_bc, d_ab = a - c, b - c, a - b
    s_ac, s_bc, s_ab = xp.abs(d_ac), xp.abs(d_bc), xp.abs(d_ab)
    use_ac = (s_ac >= s_bc) & (s_ac >= s_ab)
    use_bc = ~use_ac & (s_bc >= s_ab)
    spread = xp.maximum(s_ac, xp.maximum(s_bc, s_ab))
    size = xp.maximum(xp.abs(a), xp.maximum(xp.abs(b), xp.abs(c)))
    close = spread <= math.sqrt(float(xp.finfo(lmd.dtype).eps)) * size
    numerator = xp.where(use_ac, G_ab - G_bc, xp.where(use_bc, G_ab - G_ac, G_ac - G_bc))
    denominator = xp.where(use_ac, d_ac, xp.where(use_bc, d_bc, d_ab))
    mean = (a + b + c) / 3
    curvature = spec.second_derivative(xp.where(close, mean, 1.0), xp) / 2
    return xp.where(close, curvature, numerator / _safe(denominator, close, xp))


def frechet_second(lmd: Array, Y: Array, S: Array, H: Array, spec: SpectralFunction, xp: ModuleType) -> Array:
    """D²f(X)[S, H] = Y [Σ_k T_ikj (Ŝ_ik Ĥ_kj + Ĥ_ik Ŝ_kj)] Yᵀ with Ŝ = Yᵀ sym(S) Y, Ĥ likewise.

    Symmetric in S and H, and self-adjoint in each: ⟨W, D²f[S, H]⟩ = ⟨D²f[S, W], H⟩, so the
    same map is the forward-mode rule of Df(X)[S] and its backward with respect to X.
    """
    T = second_divided_differences(lmd, spec, xp)
    S_hat = Y.mT @ ((S + S.mT) / 2) @ Y
    H_hat = Y.mT @ ((H + H.mT) / 2) @ Y
    inner = xp.sum(
        T * (S_hat[..., :, :, None] * H_hat[..., None, :, :] + H_hat[..., :, :, None] * S_hat[..., None, :, :]), axis=-2
    )
    D = Y @ inner @ Y.mT
    return (D + D.mT) / 2
