"""Degenerate and near-degenerate spectra: the guarantees of the ``degeneracy`` modes.

The corpus (`clustered_spectra`): exact ties, ties at 1e-9 relative (below float32's
resolution of ~6e-8), ties at 1e-3 relative, scales 1e-6 .. 1e6, zero and rank-one matrices.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from _backends import Backend
from _spectra import (
    cluster_boundaries,
    cluster_invariant_loss,
    clustered_spectra,
    finite_difference,
    matrix_from_spectrum,
    quadratic_loss_cotangents,
    random_symmetric,
)
from hypothesis import given
from hypothesis import strategies as st

import eigdiff

MODES = eigdiff.DEGENERACY_MODES
DTYPES = ["float32", "float64"]


def _as(backend: Backend, a: np.ndarray, dtype: str):
    return backend.asarray(a.astype(dtype))


@pytest.mark.parametrize("degeneracy", MODES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(spectrum=clustered_spectra(), data=st.data())
def test_gradient_is_always_finite(
    grad_backend: Backend, degeneracy: str, dtype: str, spectrum: tuple[np.ndarray, np.ndarray], data: st.DataObject
) -> None:
    """Any loss, any k (splitting a cluster too), any mode: no NaN or Inf."""
    lmd, _ = spectrum
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    M = len(lmd)
    k = data.draw(st.integers(1, M))
    X = _as(grad_backend, matrix_from_spectrum(lmd, rng), dtype)
    (lmd_k, Y_k), pullback = eigdiff.vjp(X, top_k=k, degeneracy=degeneracy)
    B, c = random_symmetric((k, M, M), rng), rng.standard_normal(k)
    _, V, g = quadratic_loss_cotangents(grad_backend.to_numpy(lmd_k), grad_backend.to_numpy(Y_k), B, c)
    G = grad_backend.to_numpy(pullback(_as(grad_backend, V, dtype), _as(grad_backend, g, dtype)))
    assert np.all(np.isfinite(G)), G


@pytest.mark.parametrize("dtype", DTYPES)
@given(spectrum=clustered_spectra(), data=st.data())
def test_invariant_loss_matches_finite_differences(
    grad_backend: Backend, dtype: str, spectrum: tuple[np.ndarray, np.ndarray], data: st.DataObject
) -> None:
    """Default mode against float64 FD: 1e-6 (float64 input), 1e-3 (float32) of the gradient's scale.

    The FD reference runs in float64 on the input exactly as stored (float32 values are
    exact in float64); step 1e-6 · scale, so truncation (h/gap)² and rounding u/h stay < 1e-9.
    """
    lmd, labels = spectrum
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    k = data.draw(st.sampled_from(cluster_boundaries(labels)))
    scale = float(np.abs(lmd).max()) or 1.0
    X64 = matrix_from_spectrum(lmd, rng).astype(dtype).astype(np.float64)
    B, c_of, loss = cluster_invariant_loss(scale, labels, k, rng)
    (lmd_k, Y_k), pullback = eigdiff.vjp(_as(grad_backend, X64, dtype), top_k=k)
    lmd_k, Y_k = grad_backend.to_numpy(lmd_k).astype(np.float64), grad_backend.to_numpy(Y_k).astype(np.float64)
    _, V, _ = quadratic_loss_cotangents(lmd_k, Y_k, B, np.zeros(k))
    g = 2 * c_of(lmd_k)
    G = grad_backend.to_numpy(pullback(_as(grad_backend, V, dtype), _as(grad_backend, g, dtype))).astype(np.float64)
    G_fd = finite_difference(loss, X64, h=1e-6 * scale)
    tol = {"float64": 1e-6, "float32": 1e-3}[dtype]
    np.testing.assert_allclose(G, G_fd, atol=tol * max(np.abs(G_fd).max(), 1.0))


def test_default_eps_scales_with_dtype_and_spectrum() -> None:
    import array_api_compat.numpy as xp

    from eigdiff._gaps import DEFAULT_EPS_CAP, DEFAULT_EPS_FACTOR, default_eps

    lmd = np.array([[-3.0, 1.0, 2.0], [0.0, 0.0, 0.0]])
    eps = default_eps(lmd, xp)
    assert eps.shape == (2, 1, 1)
    np.testing.assert_allclose(eps[:, 0, 0], [DEFAULT_EPS_FACTOR * np.sqrt(3) * np.finfo(np.float64).eps * 3.0, 0.0])
    eps32 = default_eps(lmd.astype(np.float32), xp)
    assert eps32[0, 0, 0] > 1e8 * eps[0, 0, 0]
    # the cap binds in float32 from M = 17 on: 2⁻¹⁸ max|λ| = 32 u max|λ|
    big = np.linspace(-1.0, 2.0, 100)
    np.testing.assert_allclose(default_eps(big.astype(np.float32), xp)[0, 0], DEFAULT_EPS_CAP * 2.0)
    np.testing.assert_allclose(default_eps(big, xp)[0, 0], DEFAULT_EPS_FACTOR * 10 * np.finfo(np.float64).eps * 2.0)
    broadening = default_eps(lmd, xp, "lorentzian")  # √u · max|λ|
    np.testing.assert_allclose(broadening[:, 0, 0], [np.sqrt(np.finfo(np.float64).eps) * 3.0, 0.0])


def test_explicit_eps_is_absolute() -> None:
    """A gap of 1e-6 is masked with eps=1e-5 and resolved with eps=1e-7, whatever the scale."""
    lmd = np.array([0.0, 1.0, 1.0 + 1e-6])
    Y = np.eye(3)
    V = np.zeros((3, 3))
    V[1, 2] = 1.0  # rotates inside the near-tied pair
    masked = eigdiff.backward(lmd, Y, V, eps=1e-5)
    resolved = eigdiff.backward(lmd, Y, V, eps=1e-7)
    assert not np.any(masked)
    np.testing.assert_allclose(resolved[1, 2], 0.5 / 1e-6, rtol=1e-6)


def test_exact_tie_top2_of_identity_float32() -> None:
    """The brief's case: top-2 eigenvectors of a float32 Q I Qᵀ gave 7.7e6 with the tutorial's eps."""
    rng = np.random.default_rng(3)
    X = matrix_from_spectrum(np.ones(5), rng).astype(np.float32)
    (lmd, Y), pullback = eigdiff.vjp(X, top_k=2)
    B = random_symmetric((5, 5), rng).astype(np.float32)
    G = pullback(2 * B @ Y)  # L = tr(Yᵀ B Y): invariant under rotations of the 2-space... inside the tie
    assert np.all(np.isfinite(G)) and np.abs(G).max() < 10 * np.abs(B).max()


@pytest.mark.parametrize(
    ("degeneracy", "expected"),
    [("mask", 0.0), ("lorentzian", 1e-4 / (1e-8 + 1e-8)), ("taylor", None)],
)
def test_mode_formulas_at_a_small_gap(degeneracy: str, expected: float | None) -> None:
    """F for one pair with gap Δ = 1e-4 and eps = 1e-4: the regularizer's documented value."""
    import array_api_compat.numpy as xp

    from eigdiff._gaps import TAYLOR_TERMS, gap_matrix

    lmd = np.array([1.0, 1.0 + 1e-4])
    F = gap_matrix(lmd, 2, eps=1e-4, degeneracy=degeneracy, xp=xp)
    assert F[0, 0] == 0 and F[1, 1] == 0
    if expected is None:  # a = 1 + 1e-4, r = 1/a: F = a⁻¹ Σ_{n<N} rⁿ, ≈ N/a
        a = 1 + 1e-4
        expected = sum((1 / a) ** n for n in range(TAYLOR_TERMS)) / a
    np.testing.assert_allclose(F[0, 1], expected, rtol=1e-12)
    np.testing.assert_allclose(F[1, 0], -expected, rtol=1e-12)


def test_taylor_keeps_exact_inverse_for_opposite_signs_and_approximates_same_sign() -> None:
    import array_api_compat.numpy as xp

    from eigdiff._gaps import TAYLOR_TERMS, gap_matrix

    lmd = np.array([-2.0, 1.0, 4.0])
    F = gap_matrix(lmd, 3, eps=0.0, degeneracy="taylor", xp=xp)
    np.testing.assert_allclose(F[0, 1], 1 / 3)  # opposite signs: exact 1/(1 − (−2))
    r = 1 / 4
    np.testing.assert_allclose(F[1, 2], sum(r**n for n in range(TAYLOR_TERMS)) / 4)  # ≈ 1/3 to r^N
    np.testing.assert_allclose(F[1, 2], 1 / 3, rtol=r**TAYLOR_TERMS * 2)


@pytest.mark.parametrize("degeneracy", MODES)
def test_gap_matrix_is_antisymmetric_at_ties(degeneracy: str) -> None:
    """F_ji = −F_ij, ties included: only the antisymmetric part of Yᵀ V then reaches dX."""
    import array_api_compat.numpy as xp

    from eigdiff._gaps import gap_matrix

    for lmd in (np.array([-3.0, -3.0, 0.0, 2.0, 2.0, 2.0 + 1e-12]), np.array([-1.0, -1e-20, 0.0, 0.0, 5.0, 6.0])):
        F = gap_matrix(lmd, 6, eps=None, degeneracy=degeneracy, xp=xp)
        np.testing.assert_array_equal(F, -F.T)
        assert np.all(np.isfinite(F))


def test_lorentzian_and_mask_agree_with_exact_far_from_ties() -> None:
    import array_api_compat.numpy as xp

    from eigdiff._gaps import gap_matrix

    lmd = np.array([[-1.0, 0.5, 2.0]])
    exact = 1 / (lmd[..., None, :] - lmd[..., :, None] + np.eye(3)) * (1 - np.eye(3))
    for mode in ("mask", "lorentzian"):
        F = gap_matrix(lmd, 3, eps=None, degeneracy=mode, xp=xp)
        np.testing.assert_allclose(F, exact, rtol=1e-12)


# ---------------------------------------------------------------- the invariance check


def _tied() -> tuple[np.ndarray, np.ndarray]:
    return np.array([0.0, 1.0, 1.0]), np.eye(3)


def test_check_invariance_warns_for_a_non_invariant_gradient() -> None:
    lmd, Y = _tied()
    V = np.zeros((3, 2))
    V[1, 1] = 1.0  # dL/dy_3 along y_2: a rotation inside the tie changes L
    with pytest.warns(
        eigdiff.DegenerateGradientWarning, match="not invariant within a degenerate eigenspace"
    ) as caught:
        eigdiff.backward(lmd, Y, V, check_invariance=True)
    assert caught[0].filename == __file__  # attributed to the caller's line, not to eigdiff's layers


def test_check_invariance_warns_when_top_k_splits_a_cluster() -> None:
    lmd, Y = _tied()
    V = np.zeros((3, 1))
    V[1, 0] = 1.0  # the top-1 eigenvector is not determined: its partner is outside the top 1
    with pytest.warns(eigdiff.DegenerateGradientWarning):
        eigdiff.backward(lmd, Y, V, check_invariance=True)
    (_, _), pullback = eigdiff.vjp(np.diag([0.0, 1.0, 1.0]), top_k=1, check_invariance=True)
    with pytest.warns(eigdiff.DegenerateGradientWarning) as caught:
        pullback(np.array([[0.0], [1.0], [1.0]]))
    assert caught[0].filename == __file__


def test_check_invariance_is_silent_for_invariant_gradients_and_by_default() -> None:
    lmd, Y = _tied()
    A = random_symmetric((3, 3), np.random.default_rng(0))
    V = 2 * A @ Y[:, 1:]  # projector loss ⟨A, Y₂Y₂ᵀ⟩ over the whole tie
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        eigdiff.backward(lmd, Y, V, check_invariance=True)
        V_bad = np.zeros((3, 2))
        V_bad[1, 1] = 1.0
        eigdiff.backward(lmd, Y, V_bad)  # check off: silent
