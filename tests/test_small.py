"""The batched small-matrix solver (``method="small"``): accuracy over the hard cases on every
backend, and the same gradients as the library's eigh through every route.

Accuracy bounds, per matrix, with u = eps/2 the unit roundoff of the dtype and ‖·‖ the 2-norm:
|λ − λ_ref| ≤ 16 u ‖X‖, ‖YᵀY − I‖ ≤ 16 u, ‖XY − YΛ‖ ≤ 16 u ‖X‖. The reference eigenvalues are
float64 LAPACK's for float32 input (its error is 2⁻²⁹ times smaller than the bound) and 40-digit
mpmath's for float64 input (LAPACK's own float64 error reaches 13u, so it cannot referee a
16u bound). Residual and orthogonality are evaluated in float64 on X scaled by a power of two,
so that the test's own arithmetic cannot overflow or underflow.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from _backends import EAGER_CPU, Backend
from _spectra import orthogonal
from hypothesis import given
from hypothesis import strategies as st

import eigdiff
from eigdiff import _small

C = 16  # the bound's constant, in units of u = eps/2

KINDS = (
    "random",
    "exact_pair_low",
    "exact_pair_high",
    "near_pair",
    "triple",
    "near_triple",
    "zero",
    "rank_one",
    "diagonal",
    "wide_entries",
    "tiny_scale",
    "huge_scale",
    "offset",
)


def hard_cases(kind: str, M: int, dtype: str, seed: int, B: int = 48) -> np.ndarray:
    """B symmetric M×M matrices of one hard kind, rounded to ``dtype`` (exactly symmetric)."""
    rng = np.random.default_rng(seed)
    info = np.finfo(dtype)

    def from_spectrum(lmd: np.ndarray) -> np.ndarray:
        Q = np.stack([orthogonal(M, rng) for _ in range(B)])
        return (Q * lmd[:, None, :]) @ np.swapaxes(Q, -1, -2)

    lmd = np.sort(rng.standard_normal((B, M)), axis=-1)
    if M == 1 and kind in ("exact_pair_low", "exact_pair_high", "near_pair"):
        kind = "random"  # no pair in a 1×1 matrix
    if kind == "random":
        A = rng.standard_normal((B, M, M))
    elif kind == "exact_pair_low":
        lmd[:, 1:2] = lmd[:, :1]
        A = from_spectrum(lmd)
    elif kind == "exact_pair_high":
        lmd[:, -1:] = lmd[:, -2:-1]
        A = from_spectrum(lmd)
    elif kind == "near_pair":
        lmd[:, -1] = lmd[:, -2] + 10.0 ** rng.uniform(-14, -2, B)
        A = from_spectrum(lmd)
    elif kind == "triple":
        A = from_spectrum(np.repeat(lmd[:, :1], M, axis=1))
    elif kind == "near_triple":
        A = from_spectrum(lmd[:, :1] + np.cumsum(10.0 ** rng.uniform(-15, -6, (B, M)), axis=1))
    elif kind == "zero":
        A = np.zeros((B, M, M))
    elif kind == "rank_one":
        v = rng.standard_normal((B, M))
        A = v[:, :, None] * v[:, None, :] * rng.choice([-1.0, 1.0], (B, 1, 1))
    elif kind == "diagonal":
        A = np.eye(M) * rng.standard_normal((B, 1, M)) * rng.integers(0, 2, (B, 1, M))
    elif kind == "wide_entries":  # entries spanning 1e±30 (float64) or 1e±15 (float32)
        span = 30 if dtype == "float64" else 15
        A = rng.standard_normal((B, M, M)) * 10.0 ** rng.uniform(-span, span, (B, M, M))
    elif kind == "tiny_scale":
        # as small as the bound can reach: ‖X‖ about 2⁴ smallest_normal / u, so that u‖X‖/16 is
        # itself normal. Below, results in the subnormal range carry fewer bits than u, and XLA
        # on the CPU flushes them to zero, an error of up to smallest_normal.
        E = rng.standard_normal((B, M, M))
        E = np.where(np.abs(E) < 2**-8, np.copysign(2**-8, E), E)
        A = E * (float(info.smallest_normal) / float(info.eps) * 2**4)
    elif kind == "huge_scale":
        A = rng.standard_normal((B, M, M)) * (float(info.max) / 64)
    elif kind == "offset":  # 1e4·I plus O(1): the eigenvalues' spread is 1e-4 of their size
        A = from_spectrum(lmd) + 1e4 * np.eye(M)
    else:
        raise ValueError(kind)
    A = np.triu(A) + np.swapaxes(np.triu(A, 1), -1, -2)  # exactly symmetric before rounding
    return A.astype(dtype)


def _exact_eigenvalues(X: np.ndarray) -> np.ndarray:
    mpmath = pytest.importorskip("mpmath", reason="float64's reference eigenvalues come from mpmath")
    mpmath.mp.dps = 40
    out = np.empty(X.shape[:-1])
    for i, A in enumerate(X):
        values = mpmath.eigsy(mpmath.matrix(A.tolist()), eigvals_only=True)
        out[i] = sorted(float(v) for v in values)
    return out


def check_accuracy(X: np.ndarray, lmd: np.ndarray, Y: np.ndarray) -> dict[str, float]:
    """The three errors of each matrix in units of u (and the bound's factors), asserted ≤ C."""
    u = float(np.finfo(X.dtype).eps) / 2
    assert np.isfinite(lmd).all() and np.isfinite(Y).all()
    assert (np.diff(lmd, axis=-1) >= 0).all(), "eigenvalues not ascending"
    assert lmd.dtype == Y.dtype == X.dtype
    # scale by a power of two per matrix (exact) so that the float64 checks stay in range
    big = np.max(np.abs(X.astype(np.float64)), axis=(-2, -1), keepdims=True)
    s = 2.0 ** np.floor(np.log2(np.where(big > 0, big, 1.0)))
    Xs, ls, Y64 = X / s, lmd / s[..., 0], Y.astype(np.float64)
    norm = np.maximum(np.linalg.norm(Xs.astype(np.float64), ord=2, axis=(-2, -1)), np.finfo(np.float64).tiny)
    ref = np.linalg.eigvalsh(X.astype(np.float64)) if X.dtype == np.float32 else _exact_eigenvalues(X)
    ref = ref / s[..., 0]
    errors = {
        "eigenvalues": np.max(np.abs(ls - ref), axis=-1) / norm / u,
        "orthogonality": np.linalg.norm(np.swapaxes(Y64, -1, -2) @ Y64 - np.eye(X.shape[-1]), ord=2, axis=(-2, -1)) / u,
        "residual": np.linalg.norm(Xs @ Y64 - Y64 * ls[..., None, :], ord=2, axis=(-2, -1)) / norm / u,
    }
    worst = {name: float(e.max()) for name, e in errors.items()}
    assert all(w <= C for w in worst.values()), worst
    return worst


@given(
    kind=st.sampled_from(KINDS),
    M=st.sampled_from([1, 2, 3]),
    dtype=st.sampled_from(["float32", "float64"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_accuracy_over_the_hard_cases(backend: Backend, kind: str, M: int, dtype: str, seed: int) -> None:
    X = hard_cases(kind, M, dtype, seed, B=48 if dtype == "float32" else 16)
    lmd, Y = eigdiff.eigh(backend.asarray(X), method="small")
    check_accuracy(X, backend.to_numpy(lmd), backend.to_numpy(Y))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("M", [2, 3])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_hard_case_on_numpy(kind: str, M: int, dtype: str) -> None:
    """Every kind at both sizes and dtypes, whatever hypothesis draws (NumPy, larger batches)."""
    X = hard_cases(kind, M, dtype, seed=M * 100 + len(kind), B=512 if dtype == "float32" else 64)
    check_accuracy(X, *eigdiff.eigh(X, method="small"))


def test_the_accuracy_check_can_fail() -> None:
    X = hard_cases("random", 3, "float32", seed=1)
    lmd, Y = eigdiff.eigh(X, method="small")
    Y_bad = Y.copy()
    Y_bad[0, 0, 0] += 3e-6  # about 25 u of float32 in one entry
    with pytest.raises(AssertionError, match="orthogonality"):
        check_accuracy(X, lmd, Y_bad)
    with pytest.raises(AssertionError, match="ascending"):
        check_accuracy(X, lmd[..., ::-1], Y)


def test_only_the_symmetric_part_is_used_and_the_input_is_kept() -> None:
    rng = np.random.default_rng(3)
    X = rng.standard_normal((40, 3, 3))
    before = X.copy()
    lmd, Y = eigdiff.eigh(X, method="small")
    np.testing.assert_array_equal(X, before)
    lmd_sym, _ = eigdiff.eigh((X + np.swapaxes(X, -1, -2)) / 2, method="small")
    np.testing.assert_array_equal(lmd, lmd_sym)


# --------------------------------------------------------------------------- gradients through it


def _invariant_loss_cotangents(Y: np.ndarray, W: np.ndarray) -> np.ndarray:
    """V for L = Σ_ij W_ij Y_ij²: sign-invariant, so both methods must give the same gradient."""
    return 2 * W * Y


@pytest.mark.parametrize("M", [2, 3])
@pytest.mark.parametrize("degeneracy", eigdiff.DEGENERACY_MODES)
def test_vjp_and_jvp_equal_the_full_methods(grad_backend: Backend, M: int, degeneracy: str) -> None:
    """Both methods give the same gradients of losses that do not depend on the eigenvectors'
    signs or, at the exact ties (every fourth matrix: λ₁ = λ₂), on the basis inside the tie."""
    rng = np.random.default_rng(M)
    X = hard_cases("random", M, "float64", seed=4, B=40)
    X[::4] = hard_cases("exact_pair_low", M, "float64", seed=5, B=10)
    W = rng.standard_normal((40, M, M))
    g = rng.standard_normal((40, M))
    W[::4, :, 1], g[::4, 1] = W[::4, :, 0], g[::4, 0]  # invariant inside the tie
    dX = rng.standard_normal((40, M, M))
    results = {}
    for method in ("full", "small"):
        Xb = grad_backend.asarray(X)
        (lmd, Y), pullback = eigdiff.vjp(Xb, method=method, degeneracy=degeneracy)
        V = _invariant_loss_cotangents(grad_backend.to_numpy(Y), W)
        grad = pullback(grad_backend.asarray(V), grad_backend.asarray(g))
        (_, Yj), (dlmd, dY) = eigdiff.jvp(Xb, grad_backend.asarray(dX), method=method, degeneracy=degeneracy)
        dlmd = np.array(grad_backend.to_numpy(dlmd))
        dlmd[::4, 0] += dlmd[::4, 1]  # the tie's total moves alike; its split depends on the basis
        dlmd[::4, 1] = 0
        # Σ W ∘ 2 Y ∘ dY: the loss's directional derivative, invariant as the loss is
        directional = np.sum(W * 2 * grad_backend.to_numpy(Yj) * grad_backend.to_numpy(dY), axis=(-2, -1))
        results[method] = [grad_backend.to_numpy(lmd), grad_backend.to_numpy(grad), dlmd, directional]
    for full, small in zip(results["full"], results["small"]):
        np.testing.assert_allclose(small, full, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("M", [2, 3])
def test_matrix_functions_through_the_small_solver(grad_backend: Backend, M: int) -> None:
    """f(X), its pullback and its jvp are basis-independent, so both methods agree to rounding;
    ties included (every fourth matrix has λ₁ = λ₂, where the divided difference is f′)."""
    rng = np.random.default_rng(20 + M)
    X = hard_cases("random", M, "float64", seed=21, B=40)
    X[::4] = hard_cases("exact_pair_low", M, "float64", seed=22, B=10)
    S = X @ np.swapaxes(X, -1, -2) + 0.5 * np.eye(M)  # positive definite, ties kept
    G = rng.standard_normal(S.shape)
    out = {}
    for method in ("full", "small"):
        Sb, Gb = grad_backend.asarray(S), grad_backend.asarray(G)
        F, pullback = eigdiff.matrix_function_vjp(Sb, "log", method=method)
        _, dF = eigdiff.matrix_function_jvp(Sb, Gb, "sqrt", method=method)
        out[method] = [grad_backend.to_numpy(a) for a in (F, pullback(Gb), dF, eigdiff.expm(Sb / 4, method=method))]
    for full, small in zip(out["full"], out["small"]):
        np.testing.assert_allclose(small, full, rtol=1e-11, atol=1e-11)


def test_torch_matrix_function_autograd_through_the_small_solver() -> None:
    torch = pytest.importorskip("torch")
    A = torch.from_numpy(hard_cases("random", 3, "float64", seed=23, B=6))
    S = (A @ A.mT + torch.eye(3, dtype=torch.float64)).requires_grad_()
    W = torch.randn(6, 3, 3, dtype=torch.float64)
    grads = [torch.autograd.grad((W * eigdiff.logm(S, method=m)).sum(), S)[0] for m in ("full", "small")]
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="method='small' solves"):
        eigdiff.sqrtm(torch.eye(4, dtype=torch.float64), method="small")


def test_gradient_against_finite_differences() -> None:
    X = hard_cases("random", 3, "float64", seed=6, B=4)
    W = np.random.default_rng(7).standard_normal((4, 3, 3))

    def loss(A: np.ndarray) -> float:
        lmd, Y = eigdiff.eigh(A, method="small")
        return float(np.sum(W * Y**2) + np.sum(lmd**2))

    (lmd, Y), pullback = eigdiff.vjp(X, method="small")
    grad = pullback(_invariant_loss_cotangents(Y, W), 2 * lmd)
    E = np.random.default_rng(8).standard_normal(X.shape)
    E = (E + np.swapaxes(E, -1, -2)) / 2
    h = 1e-6
    fd = (loss(X + h * E) - loss(X - h * E)) / (2 * h)
    assert abs(fd - np.sum(grad * E)) <= 1e-7 * max(1.0, abs(fd))


def test_torch_autograd_func_and_compile_through_the_small_solver() -> None:
    torch = pytest.importorskip("torch")
    X = torch.from_numpy(hard_cases("random", 3, "float64", seed=9, B=6)).requires_grad_()
    W = torch.randn(6, 3, 3, dtype=torch.float64)

    def loss(A: torch.Tensor, method: str) -> torch.Tensor:
        lmd, Y = eigdiff.eigh(A, method=method)
        return (W[: A.shape[0]] * Y**2).sum() + (lmd**2).sum()

    (g_small,) = torch.autograd.grad(loss(X, "small"), X)
    (g_full,) = torch.autograd.grad(loss(X, "full"), X)
    torch.testing.assert_close(g_small, g_full, rtol=1e-10, atol=1e-10)
    g_func = torch.func.grad(lambda A: loss(A, "small"))(X.detach())
    torch.testing.assert_close(g_func, g_full, rtol=1e-10, atol=1e-10)
    assert torch.autograd.gradcheck(lambda A: loss(A, "small"), (X[:2],))
    torch._dynamo.reset()
    with warnings.catch_warnings():  # torch's own deprecations while inductor imports itself
        warnings.simplefilter("ignore", DeprecationWarning)
        compiled = torch.compile(lambda A: loss(A, "small"), fullgraph=True)
        (g_compiled,) = torch.autograd.grad(compiled(X), X)
    torch.testing.assert_close(g_compiled, g_full, rtol=1e-10, atol=1e-10)


def test_jax_grad_and_jit_through_the_small_solver() -> None:
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    X = jnp.asarray(hard_cases("random", 3, "float64", seed=10, B=5))
    W = jnp.asarray(np.random.default_rng(11).standard_normal((5, 3, 3)))

    def loss(A: object, method: str) -> object:
        lmd, Y = eigdiff.eigh(A, method=method)
        return jnp.sum(W * Y**2) + jnp.sum(lmd**2)

    g_small = jax.jit(jax.grad(lambda A: loss(A, "small")))(X)
    g_full = jax.grad(lambda A: loss(A, "full"))(X)
    np.testing.assert_allclose(np.asarray(g_small), np.asarray(g_full), rtol=1e-10, atol=1e-10)


# --------------------------------------------------------------------------- choosing the method


def test_method_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match=r"method='small' solves M x M matrices for M in \(1, 2, 3\), got M = 4"):
        eigdiff.eigh(np.eye(4), method="small")
    with pytest.raises(
        ValueError, match=r"method must be one of \('auto', 'full', 'small', 'subset', 'krylov'\), got 'fast'"
    ):
        eigdiff.vjp(np.eye(3), method="fast")
    with pytest.raises(ValueError, match=r"method must be one of \('auto', 'full', 'small'\), got 'subset'"):
        eigdiff.sqrtm(np.eye(3), method="subset")  # matrix functions need the whole spectrum
    with pytest.raises(ValueError, match="method must be one of"):
        eigdiff.jvp(np.eye(3), np.eye(3), method=None)  # type: ignore[arg-type]


def test_auto_follows_the_measured_crossovers() -> None:
    big = np.zeros((_small.AUTO_MIN_BATCH["numpy"], 3, 3))
    assert _small.choose("auto", big, 3) == "small"
    assert _small.choose("auto", big[:-1], 3) == "full"  # below the crossover
    assert _small.choose("auto", np.zeros((10**4, 4, 4)), 4) == "full"  # M > 3
    assert _small.choose("full", big, 3) == "full" and _small.choose("small", big[:1], 3) == "small"


def test_auto_keeps_the_library_eigh_where_nothing_was_measured(backend: Backend) -> None:
    """Each measured route switches at its own threshold (the GPU ones far above the CPU ones);
    the others (JAX, array_api_strict) keep their library's eigh at any batch."""
    routes = {"numpy": "numpy", "numpy_readonly": "numpy", "torch:cpu": "torch", "torch:cuda": "torch:cuda"}
    key = routes.get(backend.name, backend.name)
    assert _small.route(backend.asarray(np.zeros((1, 3, 3)))) == key
    threshold = _small.AUTO_MIN_BATCH.get(key)
    if threshold is None:
        assert _small.choose("auto", backend.asarray(np.zeros((2**17, 3, 3))), 3) == "full"
        return
    # 1×1 stacks of the threshold's length: choose reads only the shape, and these stay small on a GPU
    assert _small.choose("auto", backend.asarray(np.zeros((threshold, 1, 1))), 1) == "small"
    assert _small.choose("auto", backend.asarray(np.zeros((threshold - 1, 1, 1))), 1) == "full"


def test_one_by_one_and_two_by_two_are_exact_where_they_can_be() -> None:
    X = np.array([[[2.5]], [[-1.0]]])
    lmd, Y = eigdiff.eigh(X, method="small")
    np.testing.assert_array_equal(lmd, [[2.5], [-1.0]]) and np.testing.assert_array_equal(Y, np.ones((2, 1, 1)))
    D = np.array([[[3.0, 0.0], [0.0, 1.0]]])
    lmd, Y = eigdiff.eigh(D, method="small")
    np.testing.assert_array_equal(lmd, [[1.0, 3.0]])
    np.testing.assert_array_equal(np.abs(Y), [[[0.0, 1.0], [1.0, 0.0]]])


@pytest.mark.parametrize("M", [2, 3])
def test_the_solver_in_slices_is_the_whole_batch_solver(backend: Backend, M: int) -> None:
    """``block`` (eager CPU code: the batch in slices that stay in cache) gives the whole-batch
    results bit for bit: slices of 64 of a (3, 50) batch, the last one short."""
    if backend.name not in EAGER_CPU:
        pytest.skip(f"slices are for eager CPU code, which {backend.name} is not")
    X = np.random.default_rng(M).standard_normal((3, 50, M, M))
    whole = [backend.to_numpy(a) for a in _small.eigh(backend.asarray(X), backend.xp)]
    sliced = [backend.to_numpy(a) for a in _small.eigh(backend.asarray(X), backend.xp, block=64)]
    assert sliced[0].shape == (3, 50, M) and sliced[1].shape == (3, 50, M, M)
    np.testing.assert_array_equal(sliced[0], whole[0])
    np.testing.assert_array_equal(sliced[1], whole[1])
