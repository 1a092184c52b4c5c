"""Gradient properties of the backward, drawn by hypothesis, on every backend.

References are independent of eigdiff: float64 central finite differences of the loss
through NumPy's eigh, and torch's native ``torch.linalg.eigh`` autograd.
"""

from __future__ import annotations

import numpy as np
import pytest
from _backends import Backend
from _spectra import (
    finite_difference,
    matrix_from_spectrum,
    quadratic_loss,
    quadratic_loss_cotangents,
    random_symmetric,
    separated_spectra,
)
from hypothesis import given
from hypothesis import strategies as st

import eigdiff


def _problem(lmd: np.ndarray, data: st.DataObject) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    M = lmd.shape[-1]
    k = data.draw(st.integers(1, M), label="k")
    X = matrix_from_spectrum(lmd, rng)
    R = rng.standard_normal(X.shape)
    X = X + (R - np.swapaxes(R, -1, -2)) / 2  # a skew part, which ½(X + Xᵀ) must ignore
    B = random_symmetric(lmd.shape[:-1] + (k, M, M), rng)
    c = rng.standard_normal(lmd.shape[:-1] + (k,))
    return X, k, B, c


def _eigdiff_gradient(backend: Backend, X: np.ndarray, k: int, B: np.ndarray, c: np.ndarray, **kw) -> np.ndarray:
    (lmd_k, Y_k), pullback = eigdiff.vjp(backend.asarray(X), top_k=k, **kw)
    _, V, g = quadratic_loss_cotangents(backend.to_numpy(lmd_k), backend.to_numpy(Y_k), B, c)
    return backend.to_numpy(pullback(backend.asarray(V), backend.asarray(g)))


@given(lmd=separated_spectra(), data=st.data())
def test_gradient_is_symmetric(grad_backend: Backend, lmd: np.ndarray, data: st.DataObject) -> None:
    X, k, B, c = _problem(lmd, data)
    G = _eigdiff_gradient(grad_backend, X, k, B, c)
    np.testing.assert_array_equal(G, np.swapaxes(G, -1, -2))  # exactly: ½(G + Gᵀ)
    (_, _), pullback = eigdiff.vjp(grad_backend.asarray(X), top_k=k)
    G_g = grad_backend.to_numpy(pullback(None, grad_backend.asarray(c)))  # eigenvalue part alone
    np.testing.assert_array_equal(G_g, np.swapaxes(G_g, -1, -2))


@given(lmd=separated_spectra(), data=st.data())
def test_gradient_matches_finite_differences(grad_backend: Backend, lmd: np.ndarray, data: st.DataObject) -> None:
    """Float64, gaps ≥ 0.1: FD truncation ~h²/gap³ ≈ 1e-9 and rounding ~u/h ≈ 1e-10 per unit of L."""
    X, k, B, c = _problem(lmd, data)
    G = _eigdiff_gradient(grad_backend, X, k, B, c)
    G_fd = finite_difference(lambda Z: quadratic_loss(Z, k, B, c), X)
    np.testing.assert_allclose(G, G_fd, atol=1e-6 * (1 + np.abs(G_fd).max()))


@given(lmd=separated_spectra(), data=st.data())
def test_gradient_matches_torch_native(grad_backend: Backend, lmd: np.ndarray, data: st.DataObject) -> None:
    torch = pytest.importorskip("torch")
    X, k, B, c = _problem(lmd, data)
    G = _eigdiff_gradient(grad_backend, X, k, B, c)
    Xt = torch.tensor(X, requires_grad=True)
    lmd_t, Y_t = torch.linalg.eigh((Xt + Xt.mT) / 2)
    Y_k = Y_t[..., -k:]
    loss = (Y_k * torch.einsum("...jab,...bj->...aj", torch.tensor(B), Y_k)).sum() + (
        torch.tensor(c) * lmd_t[..., -k:]
    ).sum()
    (G_native,) = torch.autograd.grad(loss, Xt)
    np.testing.assert_allclose(G, G_native.numpy(), atol=1e-9 * (1 + np.abs(G).max()))


@given(lmd=separated_spectra(), data=st.data())
def test_backward_entry_point_matches_pullback(grad_backend: Backend, lmd: np.ndarray, data: st.DataObject) -> None:
    X, k, B, c = _problem(lmd, data)
    lmd_full, Y_full = eigdiff.eigh(grad_backend.asarray(X))
    Y_np, l_np = grad_backend.to_numpy(Y_full), grad_backend.to_numpy(lmd_full)
    _, V, g = quadratic_loss_cotangents(l_np[..., -k:], Y_np[..., -k:], B, c)
    a = grad_backend.asarray
    G = grad_backend.to_numpy(eigdiff.backward(lmd_full, Y_full, a(V), a(g)))
    np.testing.assert_allclose(G, _eigdiff_gradient(grad_backend, X, k, B, c), atol=1e-12 * (1 + np.abs(G).max()))
    # g_lmd and V add linearly; None is zero.
    G_V = grad_backend.to_numpy(eigdiff.backward(lmd_full, Y_full, a(V)))
    G_g = grad_backend.to_numpy(eigdiff.backward(lmd_full, Y_full, None, a(g)))
    np.testing.assert_allclose(G_V + G_g, G, atol=1e-12 * (1 + np.abs(G).max()))


@given(lmd=separated_spectra(max_m=5), data=st.data())
def test_jvp_matches_finite_differences_and_is_the_transpose(
    grad_backend: Backend, lmd: np.ndarray, data: st.DataObject
) -> None:
    """⟨V, J dX⟩ = ⟨Jᵀ V, dX⟩ to rounding, and J dX agrees with sign-fixed FD of eigh."""
    X, k, B, c = _problem(lmd, data)
    rng = np.random.default_rng(0)
    dX = rng.standard_normal(X.shape)
    a = grad_backend.asarray
    (lmd_k, Y_k), (dlmd, dY) = eigdiff.jvp(a(X), a(dX), top_k=k)
    lmd_k, Y_k, dlmd, dY = (grad_backend.to_numpy(t) for t in (lmd_k, Y_k, dlmd, dY))
    _, V, g = quadratic_loss_cotangents(lmd_k, Y_k, B, c)
    G = _eigdiff_gradient(grad_backend, X, k, B, c)
    np.testing.assert_allclose(np.sum(V * dY) + np.sum(g * dlmd), np.sum(G * dX), rtol=1e-10, atol=1e-10)

    def top(Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lam, Y = np.linalg.eigh((Z + np.swapaxes(Z, -1, -2)) / 2)
        Y = Y[..., -k:]
        return lam[..., -k:], Y * np.sign(np.sum(Y * Y_k, axis=-2, keepdims=True))  # align signs with Y_k

    h = 1e-6
    (lp, Yp), (lm, Ym) = top(X + h * dX), top(X - h * dX)
    np.testing.assert_allclose(dlmd, (lp - lm) / (2 * h), atol=1e-6)
    np.testing.assert_allclose(dY, (Yp - Ym) / (2 * h), atol=1e-6)
