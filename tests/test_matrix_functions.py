"""Matrix functions (issue #16): values, identities and Daleckii–Krein derivatives, every backend.

References are independent of eigdiff: float64 central finite differences of f(X) computed
through NumPy's eigh (f(X) is smooth at ties, so the differences converge there too), and
torch's ``matrix_exp`` autograd for the exponential.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from _backends import Backend
from _spectra import clustered_spectrum, matrix_from_spectrum, random_symmetric
from hypothesis import given
from hypothesis import strategies as st

import eigdiff

NAMED = {
    "sqrt": (np.sqrt, "sqrtm"),
    "inv_sqrt": (lambda x: 1 / np.sqrt(x), "inv_sqrtm"),
    "log": (np.log, "logm"),
    "exp": (np.exp, "expm"),
}


def _reference(X: np.ndarray, f) -> np.ndarray:
    lmd, Y = np.linalg.eigh((X + np.swapaxes(X, -1, -2)) / 2)
    return (Y * f(lmd)[..., None, :]) @ np.swapaxes(Y, -1, -2)


def _fd_directional(X: np.ndarray, dX: np.ndarray, f, h: float) -> np.ndarray:
    return (_reference(X + h * dX, f) - _reference(X - h * dX, f)) / (2 * h)


@st.composite
def spd_clustered(draw: st.DrawFn) -> np.ndarray:
    """SPD spectra in [0.5, 3] with exact ties, ties at 1e-9 and 1e-5 relative, or none."""
    M = draw(st.integers(1, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    sizes = []
    while sum(sizes) < M:
        sizes.append(min(draw(st.integers(1, 3)), M - sum(sizes)))
    spread = draw(st.sampled_from([0.0, 1e-9, 1e-5, 0.3]))
    lmd, _ = clustered_spectrum(rng, "clusters", M, 1.0, spread, sizes)
    lmd = 0.5 + 2.5 * (lmd - lmd.min()) / max(np.ptp(lmd), 1.0)
    return matrix_from_spectrum(lmd, rng)


@pytest.mark.parametrize("name", [*NAMED, "power", "custom"])
@given(X=spd_clustered(), data=st.data())
def test_derivatives_match_finite_differences_at_and_near_ties(
    grad_backend: Backend, name: str, X: np.ndarray, data: st.DataObject
) -> None:
    """jvp and vjp against float64 FD (h = 1e-5: truncation h²‖f‴‖ ≈ 1e-10 on [0.5, 3]); and
    ⟨G, J dX⟩ = ⟨Jᵀ G, dX⟩. Built-ins: 1e-8 of the scale; a user's f (tanh, f′ given): 1e-7,
    its divided differences being accurate to about u^{2/3}."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    dX, G = random_symmetric(X.shape, rng), rng.standard_normal(X.shape)
    a = grad_backend.asarray
    if name == "power":
        args, kwargs, f = ("power",), {"p": 1.7}, lambda x: x**1.7
    elif name == "custom":
        xpf = grad_backend.xp
        args, kwargs, f = (xpf.tanh, lambda x: 1 - xpf.tanh(x) ** 2), {}, np.tanh
    else:
        args, kwargs, f = (name,), {}, NAMED[name][0]
    F, pullback = eigdiff.matrix_function_vjp(a(X), *args, **kwargs)
    F2, dF = eigdiff.matrix_function_jvp(a(X), a(dX), *args, **kwargs)
    n = grad_backend.to_numpy
    np.testing.assert_allclose(n(F), _reference(X, f), rtol=0, atol=1e-12 * np.abs(n(F)).max())
    np.testing.assert_array_equal(n(F), n(F2))
    fd = _fd_directional(X, dX, f, 1e-5)
    tol = (1e-7 if name == "custom" else 1e-8) * max(1.0, np.abs(fd).max())
    np.testing.assert_allclose(n(dF), fd, rtol=0, atol=tol)
    dX_G = n(pullback(a(G)))
    np.testing.assert_array_equal(dX_G, np.swapaxes(dX_G, -1, -2))
    np.testing.assert_allclose(np.sum(dX_G * dX), np.sum(G * n(dF)), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_identities(backend: Backend, dtype: str) -> None:
    """sqrtm(X)² = X, expm(logm(X)) = X, inv_sqrtm(X) X inv_sqrtm(X) = I, X^1.5 = X·√X, X³ = X·X·X,
    to 100 u κ relative (κ ≤ 6 for these spectra, which include an exact tie)."""
    rng = np.random.default_rng(8)
    X_np = matrix_from_spectrum(np.array([[0.5, 1.0, 1.0, 3.0], [0.7, 0.8, 2.0, 2.0]]), rng)
    X = backend.asarray(X_np.astype(dtype))
    n = lambda A: backend.to_numpy(A).astype(np.float64)
    Xd = n(X)
    tol = 100 * np.finfo(dtype).eps * 6 * np.abs(Xd).max()
    S = n(eigdiff.sqrtm(X))
    np.testing.assert_allclose(S @ S, Xd, atol=tol)
    np.testing.assert_allclose(n(eigdiff.expm(eigdiff.logm(X))), Xd, atol=tol)
    R = n(eigdiff.inv_sqrtm(X))
    np.testing.assert_allclose(R @ Xd @ R, np.broadcast_to(np.eye(4), Xd.shape), atol=tol)
    np.testing.assert_allclose(n(eigdiff.powm(X, 1.5)), Xd @ S, atol=tol * 3)
    np.testing.assert_allclose(n(eigdiff.powm(X, 3)), Xd @ Xd @ Xd, atol=tol * 30)


def test_integer_powers_of_indefinite_matrices() -> None:
    rng = np.random.default_rng(9)
    X = matrix_from_spectrum(np.array([-2.0, -2.0, 0.5, 1.5]), rng)
    np.testing.assert_allclose(eigdiff.powm(X, 2), X @ X, atol=1e-13)
    np.testing.assert_allclose(eigdiff.powm(X, -1), np.linalg.inv(X), atol=1e-12)
    dX = random_symmetric((4, 4), rng)
    for p in (2, 3, -1):
        _, dF = eigdiff.matrix_function_jvp(X, dX, "power", p=p)
        np.testing.assert_allclose(dF, _fd_directional(X, dX, lambda x, p=p: x**p, 1e-5), atol=1e-8)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda: eigdiff.sqrtm(np.diag([-1e-3, 1.0])),
            r"sqrt needs non-negative eigenvalues, but the smallest is -0.001",
        ),
        (lambda: eigdiff.logm(np.diag([0.0, 1.0])), r"log needs positive eigenvalues, but the smallest is 0"),
        (lambda: eigdiff.inv_sqrtm(np.diag([-2.0, 1.0])), r"inv_sqrt needs positive .* smallest is -2"),
        (lambda: eigdiff.powm(np.diag([-2.0, 1.0]), 0.5), r"power\(0.5\) needs non-negative"),
        (lambda: eigdiff.powm(np.diag([0.0, 1.0]), -1), r"power\(-1\) needs non-zero eigenvalues"),
        (lambda: eigdiff.matrix_function(np.eye(2), "cbrt"), "f must be a callable or one of"),
        (lambda: eigdiff.matrix_function(np.eye(2), "sqrt", np.sqrt), "df is only for a callable f"),
        (lambda: eigdiff.matrix_function(np.eye(2), "power"), "needs the exponent p"),
        (lambda: eigdiff.matrix_function(np.eye(2), "sqrt", p=2), "p is only for f='power'"),
        (lambda: eigdiff.logm(np.eye(2), floor=0.0), "floor must be a finite positive number"),
        (lambda: eigdiff.sqrtm(np.eye(2), floor=-1.0), "floor must be a finite non-negative number"),
    ],
)
def test_domain_and_argument_errors(call, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


def test_type_errors() -> None:
    with pytest.raises(TypeError, match="f must be a callable or the name"):
        eigdiff.matrix_function(np.eye(2), 3.0)
    F, pullback = eigdiff.matrix_function_vjp(np.eye(2), "exp")
    with pytest.raises(TypeError, match="G must be an array"):
        pullback([[1.0, 0.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match=r"G must have X's shape \(2, 2\), got \(3, 3\)"):
        pullback(np.eye(3))
    with pytest.raises(ValueError, match="G contains NaN or Inf"):
        pullback(np.full((2, 2), np.nan))


def test_floor_clamps_and_zeroes_the_derivative_below_it() -> None:
    X = np.diag([-1e-17, 4.0])  # PSD up to rounding
    np.testing.assert_allclose(eigdiff.sqrtm(X, floor=0.0), np.diag([0.0, 2.0]))
    _, dF = eigdiff.matrix_function_jvp(np.diag([0.01, 4.0]), np.eye(2), "log", floor=0.1)
    np.testing.assert_allclose(dF, np.diag([0.0, 0.25]))  # clamped eigenvalue: no change


def test_empty_and_batched(backend: Backend) -> None:
    X = backend.asarray(np.zeros((2, 0, 0)))
    assert tuple(eigdiff.expm(X).shape) == (2, 0, 0)
    Xb = backend.asarray(matrix_from_spectrum(np.array([[1.0, 2.0], [3.0, 3.0]]), np.random.default_rng(1)))
    np.testing.assert_allclose(backend.to_numpy(eigdiff.logm(Xb)).trace(axis1=-2, axis2=-1), np.log([2.0, 9.0]))


# ---------------------------------------------------------------- torch


def test_torch_gradients_at_exact_ties_where_the_eigh_chain_fails() -> None:
    """d tr f(X) / dX through torch's native eigh is NaN at a tie; eigdiff's is f′(X), exact."""
    torch = pytest.importorskip("torch")
    X = torch.diag(torch.tensor([2.0, 2.0, 5.0], dtype=torch.float64)).requires_grad_()
    W = torch.arange(9.0, dtype=torch.float64).reshape(3, 3)
    (eigdiff.logm(X) * W).sum().backward()
    X_native = X.detach().clone().requires_grad_()
    lmd, Y = torch.linalg.eigh(X_native)
    ((Y * torch.log(lmd)) @ Y.mT * W).sum().backward()
    assert torch.isnan(X_native.grad).any()
    D = random_symmetric((3, 3), np.random.default_rng(0))
    fd = np.sum(_fd_directional(X.detach().numpy(), D, np.log, 1e-5) * W.numpy())
    np.testing.assert_allclose(np.sum(X.grad.numpy() * D), fd, rtol=1e-9)


def test_torch_expm_matches_matrix_exp() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    X = torch.tensor(matrix_from_spectrum(np.array([[-1.0, 0.5, 0.5, 2.0]]), rng)).requires_grad_()
    W = torch.tensor(rng.standard_normal((1, 4, 4)))
    (G,) = torch.autograd.grad((eigdiff.expm(X) * W).sum(), X)
    (G_ref,) = torch.autograd.grad((torch.linalg.matrix_exp((X + X.mT) / 2) * W).sum(), X)
    torch.testing.assert_close(G, G_ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["sqrtm", "logm", "expm", "inv_sqrtm"])
@pytest.mark.parametrize(
    "spectrum", [[0.7, 1.3, 2.0], [1.0, 1.0, 2.0], [2.0, 2.0, 2.0]], ids=["separated", "pair", "triple"]
)
def test_torch_first_and_second_order_checks(name: str, spectrum: list[float]) -> None:
    """gradcheck, forward-mode gradcheck and gradgradcheck (float64), also at exact ties, where
    the second derivatives need the second divided differences f[λ, λ, μ] and f″(λ)/2."""
    torch = pytest.importorskip("torch")
    from torch.autograd import gradcheck, gradgradcheck

    fn = getattr(eigdiff, name)
    X = torch.tensor(matrix_from_spectrum(np.array(spectrum), np.random.default_rng(3))).requires_grad_()
    assert gradcheck(fn, (X,))
    assert gradgradcheck(fn, (X,))
    assert gradcheck(
        fn, (X,), check_forward_ad=True, check_backward_ad=False, check_undefined_grad=False, check_batched_grad=False
    )


def test_torch_func_transforms_and_nesting() -> None:
    torch = pytest.importorskip("torch")
    from torch.func import grad, hessian, jacfwd, jacrev, vmap

    W = torch.tensor(np.random.default_rng(4).standard_normal((3, 3)))
    f = lambda Z: (eigdiff.sqrtm(Z) * W).sum()
    X = torch.tensor(matrix_from_spectrum(np.array([1.0, 1.0, 3.0]), np.random.default_rng(5)))
    H = jacrev(jacrev(f))(X)
    for name, other in [
        ("fwd∘rev", jacfwd(jacrev(f))(X)),
        ("rev∘fwd", jacrev(jacfwd(f))(X)),
        ("hessian", hessian(f)(X)),
    ]:
        torch.testing.assert_close(other, H, rtol=0, atol=1e-12, msg=lambda m, n=name: f"{n}: {m}")
    # against float64 FD of the first-order gradient
    h, D = 1e-5, torch.tensor(random_symmetric((3, 3), np.random.default_rng(6)))
    Hd = (grad(f)(X + h * D) - grad(f)(X - h * D)) / (2 * h)
    torch.testing.assert_close((H * D).sum(dim=(-2, -1)), Hd, rtol=0, atol=1e-8)
    with pytest.raises(NotImplementedError, match="nested forward-mode"):
        jacfwd(jacfwd(f))(X)
    batch = torch.stack([X, X + torch.eye(3, dtype=torch.float64)])
    torch.testing.assert_close(vmap(grad(f))(batch), torch.stack([grad(f)(b) for b in batch]), rtol=0, atol=1e-13)


def test_torch_compile_keeps_the_gradient() -> None:
    """Inside torch.compile(fullgraph=True) the matrix function stays differentiable (it once fell
    back to a detached result there, silently dropping its part of the gradient)."""
    torch = pytest.importorskip("torch")
    torch._dynamo.reset()
    X = torch.tensor(matrix_from_spectrum(np.array([1.0, 1.0, 3.0]), np.random.default_rng(9))).requires_grad_()
    W = torch.tensor(np.random.default_rng(10).standard_normal((3, 3)))
    loss = lambda Z: (eigdiff.logm(Z) * W).sum() + Z.sum()
    (G_eager,) = torch.autograd.grad(loss(X), X)  # first, eagerly: loads the torch adapter (no import in compiled code)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch's own, while inductor imports itself
        (G,) = torch.autograd.grad(torch.compile(loss, fullgraph=True)(X), X)
    torch.testing.assert_close(G, G_eager, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["sqrt", "inv_sqrt", "log", "exp", "power 1.7", "power -0.5", "power 3"])
def test_divided_differences_against_50_digit_arithmetic(name: str) -> None:
    """The docs' claim: the built-ins' Γ(a, b) to a few rounding errors (≤ 1e-14 relative) at gaps
    0, 1e-12, 1e-9, 1e-6 and O(1), against mpmath with 50 digits."""
    mp = pytest.importorskip("mpmath")
    import array_api_compat.numpy as xp

    from eigdiff import _functions

    mp.mp.dps = 50
    if name.startswith("power"):
        p = float(name.split()[1])
        spec, f = _functions.power(p), (lambda x, p=p: mp.power(x, p))
    else:
        spec = _functions.BUILTIN[name]
        f = {"sqrt": mp.sqrt, "inv_sqrt": lambda x: 1 / mp.sqrt(x), "log": mp.log, "exp": mp.exp}[name]
    for a, b in [
        (1.0, 1.0),
        (1.0, 1 + 1e-12),
        (7.0, 7 * (1 + 1e-9)),
        (1.0, 1 + 1e-6),
        (2.0, 3.0),
        (1e-3, 5.0),
        (0.5, 200.0),
    ]:
        A, B = mp.mpf(a), mp.mpf(b)
        exact = mp.diff(f, A) if a == b else (f(A) - f(B)) / (A - B)
        got = float(spec.divided_difference(np.array(a), np.array(b), xp))
        assert abs(got / float(exact) - 1) <= 1e-14, (a, b, got, float(exact))
