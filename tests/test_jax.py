"""JAX (issue #14): every transformation, nested in any order, under jit and vmap, against JAX's
own eigh derivatives on separated spectra and against finite differences at exact ties.

The backend-parametrized suite runs on JAX too (the ``jax`` backend); this file holds what is
JAX's own: the transformations, jit, vmap, and what is checked outside and inside ``jit``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="JAX is not installed (pip install 'eigdiff[jax]')")
jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp
from _spectra import cluster_invariant_loss, finite_difference, matrix_from_spectrum

import eigdiff

X4 = jnp.asarray(matrix_from_spectrum(np.array([-1.5, -0.3, 0.8, 2.0]), np.random.default_rng(0)))
W4 = jnp.asarray(np.random.default_rng(1).standard_normal((4, 4)))


def _loss(eigh_fn, k):
    """Sign-invariant: Σ W ∘ Y∘Y + Σ λ² over the top k."""

    def loss(X):
        lmd, Y = eigh_fn(X, k)
        return jnp.sum(W4[:, 4 - k :] * Y * Y) + jnp.sum(lmd**2)

    return loss


def _ours(X, k):
    return eigdiff.eigh(X, top_k=k)


def _native(X, k):
    lmd, Y = jnp.linalg.eigh(X)  # symmetrizes its input, as eigdiff does
    return lmd[..., -k:], Y[..., -k:]


ORDERS = {
    "grad": jax.grad,
    "jacfwd": jax.jacfwd,
    "jacrev": jax.jacrev,
    "hessian": jax.hessian,
    "fwd∘fwd": lambda f: jax.jacfwd(jax.jacfwd(f)),
    "fwd∘rev": lambda f: jax.jacfwd(jax.jacrev(f)),
    "rev∘fwd": lambda f: jax.jacrev(jax.jacfwd(f)),
    "rev∘rev": lambda f: jax.jacrev(jax.jacrev(f)),
    "third order": lambda f: jax.jacfwd(jax.jacrev(jax.jacfwd(f))),
}


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("k", [4, 2])
@pytest.mark.parametrize("order", ORDERS)
def test_transformations_match_native(order: str, k: int, jit: bool) -> None:
    """float64, gaps ≥ 0.5: agreement to 1e-10 of the largest entry, every order and nesting."""
    transform = ORDERS[order]
    ours, native = transform(_loss(_ours, k)), transform(_loss(_native, k))
    if jit:
        ours = jax.jit(ours)
    a, b = ours(X4), native(X4)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-10 * float(jnp.abs(b).max()))


def test_jvp_and_vjp_match_native_in_float32() -> None:
    X = X4.astype(jnp.float32)
    f, fn = (lambda Z: eigdiff.eigh(Z, top_k=2)), (lambda Z: _native(Z, 2))
    (_, tangent), (_, tangent_native) = jax.jvp(f, (X,), (X,)), jax.jvp(fn, (X,), (X,))
    for a, b in zip(tangent, tangent_native):
        np.testing.assert_allclose(jnp.abs(a), jnp.abs(b), rtol=0, atol=1e-4)
    g, gn = jax.grad(_loss(_ours, 2))(X), jax.grad(_loss(_native, 2))(X)
    assert g.dtype == jnp.float32
    np.testing.assert_allclose(g, gn, rtol=0, atol=1e-4 * float(jnp.abs(gn).max()))


def test_vmap_and_jit_give_the_eager_results() -> None:
    batch = jnp.stack([X4, X4 + jnp.eye(4), 2 * X4])
    eager = jnp.stack([jax.grad(_loss(_ours, 2))(b) for b in batch])
    for f in (jax.vmap(jax.grad(_loss(_ours, 2))), jax.jit(jax.vmap(jax.grad(_loss(_ours, 2))))):
        np.testing.assert_allclose(f(batch), eager, rtol=0, atol=1e-12)
    inner = jnp.stack([batch, batch], axis=1)  # (3, 2, 4, 4): map over the inner axis
    lmd = jax.vmap(lambda Z: eigdiff.eigh(Z)[0], in_axes=1)(inner)
    np.testing.assert_allclose(lmd, jnp.stack([jnp.linalg.eigvalsh(batch)] * 2), rtol=0, atol=1e-12)


@pytest.mark.parametrize("degeneracy", eigdiff.DEGENERACY_MODES)
def test_exact_ties_finite_and_exact_where_native_is_nan(degeneracy: str) -> None:
    """An invariant loss at an exact tie: JAX's own gradient is NaN, eigdiff's matches float64
    finite differences to 1e-6 of its scale (the tests' cluster loss, top-2 = the tied pair)."""
    rng = np.random.default_rng(3)
    lmd_true, labels = np.array([0.5, 1.0, 2.0, 2.0]), np.array([0, 1, 2, 2])
    X = np.diag(lmd_true)  # exactly tied (a rotated copy would split the tie by rounding)
    B, c_of, loss_np = cluster_invariant_loss(2.0, labels, 2, rng)
    Bj = jnp.asarray(B)

    def loss(Z, eigh_fn):
        lmd, Y = eigh_fn(Z)
        return jnp.einsum("aj,jab,bj->", Y, Bj, Y) + jnp.sum(c_of(lmd) * lmd)

    ours = jax.grad(lambda Z: loss(Z, lambda A: eigdiff.eigh(A, top_k=2, degeneracy=degeneracy)))(jnp.asarray(X))
    native = jax.grad(lambda Z: loss(Z, lambda A: _native(A, 2)))(jnp.asarray(X))
    assert not np.all(np.isfinite(native))
    assert np.all(np.isfinite(ours))
    if degeneracy == "mask":
        fd = finite_difference(loss_np, X, h=1e-6)
        np.testing.assert_allclose(ours, fd, rtol=0, atol=1e-6 * max(1.0, np.abs(fd).max()))


def test_keywords_under_jit() -> None:
    f = jax.jit(lambda Z: eigdiff.eigh(Z, top_k=2, eps=1e-3, degeneracy="lorentzian")[0])
    np.testing.assert_allclose(f(X4), jnp.linalg.eigvalsh(X4)[-2:], rtol=1e-12)
    g = jax.jit(jax.grad(lambda Z: jnp.sum(eigdiff.eigh(Z, top_k=2, degeneracy="taylor")[1] ** 3)))(X4)
    assert g.shape == (4, 4) and np.all(np.isfinite(g))


def test_backward_vjp_jvp_take_jax_arrays_under_jit() -> None:
    lmd, Y = jnp.linalg.eigh(X4)
    V = jnp.ones((4, 2))
    eager = eigdiff.backward(lmd, Y, V)
    np.testing.assert_allclose(jax.jit(lambda a, b, c: eigdiff.backward(a, b, c))(lmd, Y, V), eager, atol=1e-13)

    def through_vjp(Z):
        (_, _), pullback = eigdiff.vjp(Z, top_k=2)
        return pullback(V)

    np.testing.assert_allclose(jax.jit(through_vjp)(X4), through_vjp(X4), atol=1e-13)
    tangent = jax.jit(lambda Z: eigdiff.jvp(Z, Z, top_k=2)[1][0])(X4)
    np.testing.assert_allclose(tangent, jnp.linalg.eigvalsh(X4)[-2:], atol=1e-12)  # d λ(X) along X = λ


def test_what_is_checked_outside_and_inside_jit() -> None:
    """Outside jit, NaN/Inf and unsorted eigenvalues raise; inside jit nothing can branch on a
    value, so they are not checked (NaN in, NaN out), as the docs state."""
    bad = X4.at[0, 1].set(jnp.nan)
    with pytest.raises(ValueError, match="X contains NaN or Inf"):
        eigdiff.eigh(bad)
    lmd = jax.jit(lambda Z: eigdiff.eigh(Z)[0])(bad)
    assert not np.isfinite(np.asarray(lmd)).all()
    lmd_desc, Y = jnp.linalg.eigh(X4)[0][::-1], jnp.eye(4)
    with pytest.raises(ValueError, match="lmd must ascend"):
        eigdiff.backward(lmd_desc, Y, jnp.ones((4, 1)))
    jax.jit(lambda a, b: eigdiff.backward(a, b, jnp.ones((4, 1))))(lmd_desc, Y)  # unchecked in jit


@pytest.mark.parametrize(("M", "k"), [(2, 1), (3, 1), (3, 2), (5, 1), (5, 2)])
def test_eager_grad_is_exactly_symmetric(M: int, k: int) -> None:
    """jax.grad through the rules (their tangents compiled), called eagerly: dL/dX = ½(Z + Zᵀ)
    bit for bit, on 30 random matrices per shape. With the symmetrization inside the compiled
    tangents instead, XLA's FMAs left the K = 1 shapes asymmetric by rounding (50 of 180 draws
    over M ∈ {2, 3, 5}, K ∈ {1, 2} in one run)."""
    rng = np.random.default_rng(M * 10 + k)
    W = jnp.asarray(rng.standard_normal((M, k)))

    def loss(X):
        lmd, Y = eigdiff.eigh(X, top_k=k)
        return jnp.sum(W * Y**3) + jnp.sum(lmd**2)

    grad = jax.grad(loss)
    for _ in range(30):
        G = np.asarray(grad(jnp.asarray(rng.standard_normal((M, M)))))
        np.testing.assert_array_equal(G, G.T)


@pytest.mark.parametrize("exponent", [-63, 88])  # the float32 range's ends as test_hardening sets them
def test_lorentzian_tie_is_finite_under_jit_at_the_range_ends(exponent: int) -> None:
    """A float32 tie at s = 2^e: the Lorentzian gap is 0 there, so the gradient of V is 0, under
    jax.jit and eagerly (compiled too). XLA rewrote (h/t)/(X·t) into h/(t·X·t), t² underflowed
    and 0/0 gave NaN at 2^-63 until the ratio went through a `where`."""
    s = np.float32(2.0**exponent)
    lmd, Y, V = jnp.full((2,), s), jnp.eye(2, dtype=jnp.float32), jnp.ones((2, 2), jnp.float32)
    backward = lambda a: eigdiff.backward(a, Y, V, degeneracy="lorentzian")  # noqa: E731
    for G in (backward(lmd), jax.jit(backward)(lmd)):
        np.testing.assert_array_equal(np.asarray(G), np.zeros((2, 2), np.float32))


def test_check_invariance() -> None:
    with pytest.raises(ValueError, match="check_invariance needs the cotangent"):
        eigdiff.eigh(X4, check_invariance=True)
    (_, _), pullback = eigdiff.vjp(jnp.diag(jnp.array([0.0, 1.0, 1.0])), top_k=2, check_invariance=True)
    V = jnp.zeros((3, 2)).at[1, 1].set(1.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pullback(V)
    assert any(w.category is eigdiff.DegenerateGradientWarning for w in caught)
    with pytest.raises(ValueError, match="check_invariance reads values"):
        jax.jit(lambda a: eigdiff.backward(a, jnp.eye(3), V, check_invariance=True))(jnp.array([0.0, 1.0, 1.0]))


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_matrix_functions_at_ties(jit: bool) -> None:
    """First derivatives of sqrtm/logm/expm at an exact tie against float64 finite differences;
    expm against jax.scipy's expm."""
    from jax.scipy.linalg import expm as jax_expm

    X = matrix_from_spectrum(np.array([1.0, 2.0, 2.0]), np.random.default_rng(4))
    W = np.random.default_rng(5).standard_normal((3, 3))
    for name, f_np in (("sqrtm", np.sqrt), ("logm", np.log), ("expm", np.exp)):
        grad = jax.grad(lambda Z, name=name: jnp.sum(getattr(eigdiff, name)(Z) * W))
        g = (jax.jit(grad) if jit else grad)(jnp.asarray(X))

        def value(Z, f_np=f_np):
            lmd, Y = np.linalg.eigh((Z + Z.T) / 2)
            return float(np.sum((Y * f_np(lmd)) @ Y.T * W))

        fd = finite_difference(value, X, h=1e-6)
        np.testing.assert_allclose(g, fd, rtol=0, atol=1e-7 * np.abs(fd).max())
    g = jax.grad(lambda Z: jnp.sum(eigdiff.expm(Z) * W))(jnp.asarray(X))
    g_ref = jax.grad(lambda Z: jnp.sum(jax_expm((Z + Z.T) / 2) * W))(jnp.asarray(X))
    np.testing.assert_allclose(g, g_ref, rtol=0, atol=1e-10 * float(jnp.abs(g_ref).max()))
    with pytest.raises(ValueError, match="sqrt needs non-negative eigenvalues"):
        eigdiff.sqrtm(-jnp.eye(2))


def test_matrix_function_second_derivatives_on_separated_spectra() -> None:
    """The scope the docs state for JAX: second derivatives of matrix functions exact on separated
    spectra (hessian against central differences of the gradient, float64, h = 1e-5)."""
    X = jnp.asarray(matrix_from_spectrum(np.array([0.7, 1.4, 2.5]), np.random.default_rng(6)))
    W = jnp.asarray(np.random.default_rng(7).standard_normal((3, 3)))
    f = lambda Z: jnp.sum(eigdiff.logm(Z) * W)
    H, g = jax.hessian(f)(X), jax.grad(f)
    D = jnp.asarray(np.random.default_rng(8).standard_normal((3, 3)))
    h = 1e-5
    fd = (g(X + h * D) - g(X - h * D)) / (2 * h)
    np.testing.assert_allclose(jnp.einsum("ijkl,kl->ij", H, D), fd, rtol=0, atol=1e-8 * float(jnp.abs(fd).max()))
