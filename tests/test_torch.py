"""The torch adapter: autograd, the tutorial's gradcheck protocol, torch.func, compile, forward mode."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from _spectra import matrix_from_spectrum
from torch.autograd import gradcheck, gradgradcheck
from torch.func import grad, hessian, jacfwd, jacrev, jvp, vmap

import eigdiff
from eigdiff.backends.torch import EagerEighFunction, EigenDecompositionFcn, EighFunction

DEVICES = ["cpu", "cuda"]


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> str:
    """cpu, and cuda where a GPU exists (skipped with the reason elsewhere, never dropped)."""
    if request.param == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device available")
    return request.param


def _separated(batch: tuple[int, ...], M: int, seed: int = 0, device: str = "cpu") -> torch.Tensor:
    """Float64 matrices with gaps ≥ 0.5, plus a skew part that ½(X + Xᵀ) discards."""
    rng = np.random.default_rng(seed)
    lmd = np.cumsum(0.5 + rng.random(batch + (M,)), axis=-1) - M / 2
    X = matrix_from_spectrum(lmd, rng) + 0.1 * np.triu(rng.standard_normal(batch + (M, M)), 1)
    return torch.tensor(X, device=device)


_WEIGHTS = {
    (M, k): tuple(torch.tensor(np.random.default_rng(M * 100 + k).standard_normal(s)) for s in [(M, k), (k,)])
    for M in range(1, 9)
    for k in range(1, M + 1)
}  # made here, not inside vmap or compile, where random generation is restricted


def _loss_weights(M: int, k: int, dtype=torch.float64, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    W, c = _WEIGHTS[M, k]
    return W.to(dtype=dtype, device=device), c.to(dtype=dtype, device=device)


def _loss(eigh_fn, X: torch.Tensor, k: int | None) -> torch.Tensor:
    """Sign-invariant: Σ W ∘ Y∘Y + c·λ over the top k."""
    lmd, Y = eigh_fn(X, k)
    W, c = _loss_weights(X.shape[-1], Y.shape[-1], X.dtype, X.device)
    return (W * Y * Y).sum() + (c * lmd).sum()


def _ours(X: torch.Tensor, k: int | None):
    return eigdiff.eigh(X, top_k=k)


def _native(X: torch.Tensor, k: int | None):
    lmd, Y = torch.linalg.eigh((X + X.mT) / 2)
    k = X.shape[-1] if k is None else k
    return lmd[..., -k:], Y[..., -k:]


# ---------------------------------------------------------------- the tutorial's protocol


@pytest.mark.parametrize("m", [5, 8, 16])
def test_tutorial_gradcheck_protocol(m: int) -> None:
    """float64, m in {5, 8, 16}, top_k None and every value 1..m, eps=1e-6, atol=1e-3, rtol=1e-6."""
    X = torch.randn(2, m, m, dtype=torch.float64, generator=torch.Generator().manual_seed(m), requires_grad=True)
    for top_k in [None, *range(1, m + 1)]:
        Y = EigenDecompositionFcn.apply(X, top_k)
        assert Y.shape == (2, m, m if top_k is None else top_k)
        # The tutorial's check: gradients of Y itself (the sign is fixed by the forward).
        assert gradcheck(lambda Z, k=top_k: EigenDecompositionFcn.apply(Z, k), (X,), eps=1e-6, atol=1e-3, rtol=1e-6)


@pytest.mark.parametrize("batch", [(), (3,), (2, 2)], ids=lambda b: f"batch{b}")
@pytest.mark.parametrize("top_k", [None, 1, 3])
def test_gradcheck_both_outputs(device: str, batch: tuple[int, ...], top_k: int | None) -> None:
    X = _separated(batch, 4, device=device).requires_grad_()
    assert gradcheck(lambda Z: eigdiff.eigh(Z, top_k=top_k), (X,), eps=1e-6, atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize("top_k", [None, 2])
def test_empty_batch(top_k: int | None) -> None:
    X = torch.zeros(0, 4, 4, dtype=torch.float64, requires_grad=True)
    lmd, Y = eigdiff.eigh(X, top_k=top_k)
    assert Y.shape == (0, 4, top_k or 4)
    (lmd.sum() + Y.sum()).backward()
    assert X.grad.shape == (0, 4, 4)


def test_one_by_one() -> None:
    X = torch.tensor([[[2.0]]], dtype=torch.float64, requires_grad=True)
    lmd, Y = eigdiff.eigh(X)
    (lmd.sum() + Y.sum()).backward()
    assert X.grad.tolist() == [[[1.0]]]  # dλ/dX = 1; Y = ±1 has no derivative


@pytest.mark.parametrize("top_k", [None, 2])
def test_matches_native_autograd(device: str, top_k: int | None) -> None:
    X = _separated((3,), 6, device=device).requires_grad_()
    (G,) = torch.autograd.grad(_loss(_ours, X, top_k), X)
    (G_native,) = torch.autograd.grad(_loss(_native, X, top_k), X)
    torch.testing.assert_close(G, G_native, rtol=0, atol=1e-9)
    assert G.device == X.device and G.dtype == X.dtype


def test_outputs_and_gradients_stay_on_device_and_dtype(device: str) -> None:
    for dtype in (torch.float32, torch.float64):
        X = _separated((2,), 4, device=device).to(dtype).requires_grad_()
        lmd, Y = eigdiff.eigh(X, top_k=2)
        assert lmd.device.type == device and Y.device.type == device and lmd.dtype == dtype == Y.dtype
        (lmd.sum() + (Y * Y).sum()).backward()
        assert X.grad.device.type == device and X.grad.dtype == dtype
        (_, _), (dlmd, dY) = eigdiff.jvp(X.detach(), X.detach(), top_k=2)
        assert dlmd.device.type == device and dY.dtype == dtype


def test_meta_tensors_infer_shapes_and_krylov_says_why_not() -> None:
    """A meta tensor (shape inference, deferred initialization) holds no values: the NaN/Inf
    check is skipped as under a transform, and the forward, backward, jvp and matrix functions
    give meta results of the right shapes, as torch's own eigh does. The Krylov method iterates
    on values, so it raises a ValueError saying so (before, an opaque `.item()` RuntimeError)."""
    meta = {"device": "meta", "dtype": torch.float64}
    X = torch.empty(4, 5, 5, **meta)
    shapes = lambda *ts: [(tuple(t.shape), t.device.type) for t in ts]
    assert shapes(*eigdiff.eigh(X, top_k=2)) == [((4, 2), "meta"), ((4, 5, 2), "meta")]
    assert shapes(*eigdiff.eigh(torch.empty(6, 3, 3, **meta), method="small")) == [
        ((6, 3), "meta"),
        ((6, 3, 3), "meta"),
    ]
    Xg = X.clone().requires_grad_()
    lmd, Y = eigdiff.eigh(Xg, bottom_k=3)
    (lmd.sum() + Y.sum()).backward()
    assert shapes(Xg.grad) == [((4, 5, 5), "meta")]
    dX = eigdiff.backward(torch.empty(4, 5, **meta), torch.empty(4, 5, 5, **meta), torch.empty(4, 5, 2, **meta))
    assert shapes(dX) == [((4, 5, 5), "meta")]
    (_, _), (dlmd, dY) = eigdiff.jvp(X, X, top_k=2)
    assert shapes(dlmd, dY) == [((4, 2), "meta"), ((4, 5, 2), "meta")]
    assert shapes(eigdiff.sqrtm(X), eigdiff.logm(X)) == [((4, 5, 5), "meta")] * 2
    with pytest.raises(ValueError, match="meta tensor"):
        eigdiff.eigh(torch.empty(60, 60, **meta), top_k=2, method="krylov")


def test_no_graph_without_requires_grad() -> None:
    lmd, Y = eigdiff.eigh(_separated((2,), 4))
    assert lmd.grad_fn is None and Y.grad_fn is None and not Y.requires_grad
    X = _separated((2,), 4).requires_grad_()
    with torch.no_grad():
        lmd, Y = eigdiff.eigh(X)
    assert Y.grad_fn is None


def test_top_k_backward_does_not_pad_to_full(monkeypatch: pytest.MonkeyPatch) -> None:
    """The adapter hands the core V with k columns, never zero-padded to M (O(M²k) backward)."""
    import eigdiff._core as core

    seen = []
    original = core.backward_unchecked

    def spy(lmd, Y, V, g_lmd, K, **kw):
        seen.append((tuple(V.shape), K))
        return original(lmd, Y, V, g_lmd, K, **kw)

    monkeypatch.setattr(core, "backward_unchecked", spy)
    X = _separated((2,), 7).requires_grad_()
    _loss(_ours, X, 2).backward()
    assert seen == [((2, 7, 2), 2)]


def test_degenerate_input_gives_finite_gradient_unlike_native() -> None:
    """Exactly repeated eigenvalues: native eigh gives NaN, eigdiff a finite, FD-exact gradient."""
    X = torch.diag(torch.tensor([1.0, 2.0, 2.0, 3.0], dtype=torch.float64)).requires_grad_()
    A = torch.tensor(np.random.default_rng(0).standard_normal((4, 4)))
    A = A + A.T

    def proj(eigh_fn):  # ⟨A, projector onto the top-3 space⟩: invariant inside the tie
        _, Y = eigh_fn(X, 3)
        return (A * (Y @ Y.mT)).sum()

    (G,) = torch.autograd.grad(proj(_ours), X)
    (G_native,) = torch.autograd.grad(proj(_native), X)
    assert torch.isnan(G_native).any() and torch.isfinite(G).all()
    # Reference: the projector's derivative only couples the bottom eigenvector with the rest.
    expected = torch.zeros(4, 4, dtype=torch.float64)
    for j, lam in zip(range(1, 4), [2.0, 2.0, 3.0]):
        expected[0, j] = expected[j, 0] = A[0, j] / (lam - 1.0)
    torch.testing.assert_close(G, expected, rtol=0, atol=1e-12)


def test_check_invariance_in_the_autograd_backward() -> None:
    X = torch.diag(torch.tensor([0.0, 1.0, 1.0], dtype=torch.float64)).requires_grad_()
    _, Y = eigdiff.eigh(X, top_k=2, check_invariance=True)
    with pytest.warns(eigdiff.DegenerateGradientWarning) as caught:
        (Y[1, 0] * Y[2, 0]).backward()  # changes at first order under a rotation inside the tie
    assert caught[0].filename == __file__  # this line, past torch's autograd engine and eigdiff's layers


@pytest.mark.parametrize("degeneracy", eigdiff.DEGENERACY_MODES)
def test_autograd_degenerate_finite_any_mode(degeneracy: str) -> None:
    X = torch.eye(5, dtype=torch.float32).requires_grad_()
    lmd, Y = eigdiff.eigh(X, top_k=2, degeneracy=degeneracy)
    (Y.sum() + lmd.sum()).backward()
    assert torch.isfinite(X.grad).all()


# ---------------------------------------------------------------- double backward, forward mode


@pytest.mark.parametrize("top_k", [None, 1, 3])
def test_gradgradcheck(top_k: int | None) -> None:
    X = _separated((2,), 4).requires_grad_()
    f = lambda Z: (eigdiff.eigh(Z, top_k=top_k)[0], eigdiff.eigh(Z, top_k=top_k)[1] ** 2)
    assert gradgradcheck(f, (X,), eps=1e-6, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("top_k", [None, 1, 3])
def test_forward_mode_gradcheck(top_k: int | None) -> None:
    X = _separated((2,), 4).requires_grad_()
    assert gradcheck(
        lambda Z: eigdiff.eigh(Z, top_k=top_k),
        (X,),
        eps=1e-6,
        atol=1e-7,
        rtol=1e-6,
        check_forward_ad=True,
        check_backward_ad=False,
        check_undefined_grad=False,
        check_batched_grad=False,
    )


def test_forward_ad_dual_numbers_match_core_jvp() -> None:
    import torch.autograd.forward_ad as fwAD

    X, dX = _separated((2,), 5), _separated((2,), 5, seed=1)
    with fwAD.dual_level():
        lmd, Y = eigdiff.eigh(fwAD.make_dual(X, dX), top_k=2)
        dlmd, dY = fwAD.unpack_dual(lmd).tangent, fwAD.unpack_dual(Y).tangent
    (_, _), (dlmd_ref, dY_ref) = eigdiff.jvp(X, dX, top_k=2)
    torch.testing.assert_close(dlmd, dlmd_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(dY, dY_ref, rtol=0, atol=1e-12)


# ---------------------------------------------------------------- torch.func


@pytest.mark.parametrize("top_k", [None, 2])
def test_func_transforms_match_native(top_k: int | None) -> None:
    X = _separated((3,), 4)
    ours, native = (lambda Z: _loss(_ours, Z, top_k)), (lambda Z: _loss(_native, Z, top_k))
    close = lambda a, b: torch.testing.assert_close(a, b, rtol=0, atol=1e-8)
    close(vmap(grad(ours))(X), vmap(grad(native))(X))
    close(jacrev(ours)(X[0]), jacrev(native)(X[0]))
    close(jacfwd(ours)(X[0]), jacrev(native)(X[0]))
    close(hessian(ours)(X[0]), hessian(native)(X[0]))
    close(vmap(jacrev(ours))(X), vmap(jacfwd(native))(X))
    t_ours = jvp(ours, (X[0],), (X[1],))[1]
    t_native = jvp(native, (X[0],), (X[1],))[1]
    close(t_ours, t_native)


def test_vmap_nested_and_in_dims() -> None:
    X = _separated((2, 3), 4)
    f = lambda Z: eigdiff.eigh(Z, top_k=2)[1] ** 2
    ref = f(X)
    torch.testing.assert_close(vmap(vmap(f))(X), ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(vmap(f, in_dims=1)(X.movedim(0, 1)), ref, rtol=0, atol=1e-12)
    # a batch axis in the middle, and the gradient under nested vmap
    g = vmap(vmap(grad(lambda Z: _loss(_ours, Z, 2))))(X)
    g_native = vmap(vmap(grad(lambda Z: _loss(_native, Z, 2))))(X)
    torch.testing.assert_close(g, g_native, rtol=0, atol=1e-9)


def test_compile_fullgraph_matches_eager() -> None:
    """torch.compile(fullgraph=True) of eigh + loss, then backpropagation; no graph break."""
    torch._dynamo.reset()
    X = _separated((3,), 5).requires_grad_()
    loss = lambda Z: _loss(_ours, Z, 2)
    with warnings.catch_warnings():
        # torch's own deprecations raised while inductor imports itself are not ours to fix
        warnings.simplefilter("ignore", DeprecationWarning)
        value = torch.compile(loss, fullgraph=True)(X)
        (G,) = torch.autograd.grad(value, X)
    (G_eager,) = torch.autograd.grad(loss(X), X)
    torch.testing.assert_close(value, loss(X), rtol=0, atol=1e-12)
    torch.testing.assert_close(G, G_eager, rtol=0, atol=1e-12)


def test_one_function_serves_eigh_and_the_drop_in(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    original = EagerEighFunction.apply  # the eager twin of EighFunction, applied outside torch.func
    monkeypatch.setattr(EagerEighFunction, "apply", lambda *a: calls.append(a[1]) or original(*a))
    X = _separated((), 4).requires_grad_()
    eigdiff.eigh(X, top_k=2)
    EigenDecompositionFcn.apply(X, 3)
    assert calls == [2, 3]
    # Without anything to differentiate the Function is skipped; the outputs are the same.
    lmd, Y = eigdiff.eigh(X.detach(), top_k=2)
    lmd_g, Y_g = eigdiff.eigh(X, top_k=2)
    assert calls == [2, 3, 2] and Y.grad_fn is None
    torch.testing.assert_close(lmd, lmd_g, rtol=0, atol=0)
    torch.testing.assert_close(Y, Y_g, rtol=0, atol=0)


def test_the_eager_twin_computes_what_the_modern_function_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside torch.func transforms `eigdiff.eigh` applies `EagerEighFunction` (the original
    autograd.Function style, cheaper to apply); under them, `EighFunction`. Both give the same
    values, gradients, second derivatives and forward-mode tangents, bit for bit."""
    import torch.autograd.forward_ad as fwAD

    applied = []
    for cls in (EighFunction, EagerEighFunction):
        original = cls.apply
        monkeypatch.setattr(cls, "apply", lambda *a, c=cls, f=original: applied.append(c) or f(*a))
    X = _separated((2,), 5)
    W = torch.randn(X.shape, dtype=X.dtype, generator=torch.Generator().manual_seed(0))

    def loss(A: torch.Tensor, function: type) -> torch.Tensor:
        lmd, Y = function.apply(A, 5, None, "mask", False, "full", None)
        return (W * Y * Y).sum() + (lmd**3).sum()

    results = []
    for function in (EighFunction, EagerEighFunction):
        A = X.clone().requires_grad_()
        (G,) = torch.autograd.grad(loss(A, function), A, create_graph=True)
        (H,) = torch.autograd.grad((G * W).sum(), A)
        with fwAD.dual_level():
            lmd, Y = function.apply(fwAD.make_dual(X, W), 5, None, "mask", False, "full", None)
            tangents = (fwAD.unpack_dual(lmd).tangent, fwAD.unpack_dual(Y).tangent)
        results.append((G, H, *tangents))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    applied.clear()
    A = X.clone().requires_grad_()
    eigdiff.eigh(A)[1].sum().backward()
    torch.func.grad(lambda A: eigdiff.eigh(A)[0].sum())(X)
    assert applied[0] is EagerEighFunction and set(applied[1:]) == {EighFunction}  # (torch.func re-applies inside)


def test_the_library_eigh_in_slices_keeps_values_and_gradients(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where torch's eigh takes slices of the batch (`EIGH_SLICE`: CUDA, whose batched eigh fails
    from 65,536 small matrices on), values and gradients are the whole batch's: eagerly (slices
    written into preallocated outputs), under vmap∘grad and under torch.compile(fullgraph=True)
    (slices concatenated, no in-place writes). Here the CPU is given slices of 64; LAPACK solves
    each matrix alone either way, so the results are equal bit for bit."""
    from eigdiff.backends import torch as adapter

    X = _separated((2, 150), 4)
    W = torch.randn(X.shape, dtype=X.dtype, generator=torch.Generator().manual_seed(1))
    loss = lambda Z, k: (lambda out: (W[0, ..., : out[1].shape[-1]] * out[1] ** 2).sum() + out[0].sum())(
        eigdiff.eigh(Z, top_k=k, method="full")
    )
    per_sample = vmap(grad(lambda Z: loss(Z, 2)))  # the batch it sees: 150 matrices
    results, taken = [], []
    original = adapter._core.in_slices
    monkeypatch.setattr(
        adapter._core,
        "in_slices",
        lambda *a, **kw: (
            taken.append(("in place" if kw.get("in_place", True) else "concatenated", a[3])) or original(*a, **kw)
        ),
    )
    for slices in ({}, {"cpu": 64}):
        monkeypatch.setattr(adapter, "EIGH_SLICE", slices)
        taken.clear()
        for k in (None, 2):
            Xg = X[0].clone().requires_grad_()
            value = loss(Xg, k)
            (G,) = torch.autograd.grad(value, Xg)
            results.append((value, G))
        assert taken == ([("in place", 64)] * 2 if slices else [])
        taken.clear()
        results.append((per_sample(X),) * 2)
        assert taken == ([("concatenated", 64)] if slices else [])
        torch._dynamo.reset()
        Xg = X[0].clone().requires_grad_()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch's own, while inductor imports
            value = torch.compile(lambda Z: loss(Z, 2), fullgraph=True)(Xg)
        results.append((value, torch.autograd.grad(value, Xg)[0]))
        assert taken == ([("concatenated", 64)] * 2 if slices else [])  # vmap's, then the compiled call's
    half = len(results) // 2
    for (v0, G0), (v1, G1) in zip(results[:half], results[half:]):
        torch.testing.assert_close(v1, v0, rtol=0, atol=0)
        torch.testing.assert_close(G1, G0, rtol=0, atol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device available")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_stacks_beyond_cusolvers_batch_limit(dtype: torch.dtype) -> None:
    """65,536 8 × 8 matrices on CUDA, where torch's own batched eigh raised (torch 2.11 + CUDA 13):
    eigdiff.eigh and its gradient work, with residual and orthogonality within 64·M u and the
    gradient equal to native autograd on slices within 1e3 u relative (separated spectra)."""
    B, M = 65536, 8
    X = _separated((B,), M, device="cuda").to(dtype)
    Xg = X.clone().requires_grad_()
    lmd, Y = eigdiff.eigh(Xg, method="full")
    (G,) = torch.autograd.grad((Y**2 * torch.arange(M, device="cuda", dtype=dtype)).sum() + lmd.sum(), Xg)
    lmd, Y = lmd.detach(), Y.detach()
    u = torch.finfo(dtype).eps / 2
    S = (X + X.mT) / 2
    norm = torch.linalg.matrix_norm(S, ord=2)
    assert float(((S @ Y - Y * lmd[..., None, :]).norm(dim=(-2, -1)) / norm).max()) <= 64 * M * u
    assert float((Y.mT @ Y - torch.eye(M, device="cuda", dtype=dtype)).norm(dim=(-2, -1)).max()) <= 64 * M * u
    part = X[:16384].clone().requires_grad_()
    l2, Y2 = torch.linalg.eigh((part + part.mT) / 2)
    (G2,) = torch.autograd.grad((Y2**2 * torch.arange(M, device="cuda", dtype=dtype)).sum() + l2.sum(), part)
    assert float((G[:16384] - G2).norm() / G2.norm()) <= 1e3 * u


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("window", [(6, None), (2, None), (2, 1), (1, 0)])
def test_small_eager_cpu_backwards_run_on_numpy_views_with_numpys_values(
    dtype: torch.dtype, window: tuple[int, int | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Up to `HOST_BACKWARD_MAX` elements of P and M up to `HOST_BACKWARD_MAX_ORDER`, eager CPU
    backwards (the autograd Function's and `eigdiff.backward`'s) run the core on NumPy views of
    the tensors: the result is then NumPy eigdiff's bit for bit (the same operations on the same
    values), with ties inside the batch, both cotangents, windows anywhere and every degeneracy
    mode, the inputs untouched. Larger work or larger M, recorded backwards (create_graph) and
    tensor subclasses keep torch's operations (a spy on `host_view` sees which). (The route's
    speed is measured in ``benchmarks/host_route.py``, not here.)"""
    from eigdiff.backends import HOST_BACKWARD_MAX, HOST_BACKWARD_MAX_ORDER
    from eigdiff.backends.torch import ADAPTER

    views: list[tuple[int, ...]] = []  # the shapes of the tensors given a NumPy view
    host_view = type(ADAPTER).host_view

    def spy(self: object, t: torch.Tensor) -> object:
        view = host_view(self, t)
        if view is not None:
            views.append(tuple(t.shape))
        return view

    monkeypatch.setattr(type(ADAPTER), "host_view", spy)
    K, lo = window
    selection = {"top_k": K} if lo is None else {"subset_by_index": (lo, lo + K)}
    window_of = {} if lo is None else selection  # `backward`'s window: the top K unless given
    rng = np.random.default_rng(11)
    X = rng.standard_normal((5, 6, 6))
    X[1] = np.diag([1.0, 1.0, 2.0, 3.0, 3.0, 3.0])  # ties inside the window and across its edges
    Xt = torch.tensor(X, dtype=dtype)
    lmd, Y = eigdiff.eigh(Xt)
    V, g = (
        torch.tensor(rng.standard_normal((5, 6, K)), dtype=dtype),
        torch.tensor(rng.standard_normal((5, K)), dtype=dtype),
    )
    kept = [t.clone() for t in (lmd, Y, V, g)]
    G = eigdiff.backward(lmd, Y, V, g, **window_of)
    reference = eigdiff.backward(*(t.numpy() for t in (lmd, Y, V, g)), **window_of)
    assert isinstance(G, torch.Tensor) and G.dtype == dtype and len(views) == 4
    np.testing.assert_array_equal(G.numpy(), reference)
    for before, after in zip(kept, (lmd, Y, V, g)):
        assert torch.equal(before, after)
    for mode in ("lorentzian", "taylor"):  # the other degeneracy modes, with an explicit eps too
        for eps in (None, 1e-3):
            options = {"degeneracy": mode, "eps": eps, **window_of}
            np.testing.assert_array_equal(
                eigdiff.backward(lmd, Y, V, g, **options).numpy(),
                eigdiff.backward(*(t.numpy() for t in (lmd, Y, V, g)), **options),
            )
    # The autograd Function (which keeps the same full lmd and Y) gives the same values.
    Xg = Xt.clone().requires_grad_()
    lmd_k, Y_k = eigdiff.eigh(Xg, **selection)
    views.clear()
    (grad_X,) = torch.autograd.grad((lmd_k, Y_k), Xg, (g, V))
    assert len(views) == 4
    np.testing.assert_array_equal(grad_X.numpy(), reference)
    # Where torch's operations stay: above the size, above the order (where a multithreaded BLAS
    # would contend with torch's threads), a recorded backward, a tensor subclass.
    views.clear()
    monkeypatch.setattr("eigdiff.backends.HOST_BACKWARD_MAX", 5 * 6 * K - 1)
    eigdiff.backward(lmd, Y, V, g, **window_of)
    monkeypatch.setattr("eigdiff.backends.HOST_BACKWARD_MAX", 2**14)
    monkeypatch.setattr("eigdiff.backends.HOST_BACKWARD_MAX_ORDER", 5)
    eigdiff.backward(lmd, Y, V, g, **window_of)
    monkeypatch.undo()
    monkeypatch.setattr(type(ADAPTER), "host_view", spy)
    lmd_k, Y_k = eigdiff.eigh(Xg, **selection)
    torch.autograd.grad((lmd_k, Y_k), Xg, (g, V), create_graph=True)

    class Tagged(torch.Tensor):
        pass

    tagged = eigdiff.backward(*(t.as_subclass(Tagged) for t in (lmd, Y, V, g)), **window_of)
    assert views == [] and isinstance(tagged, Tagged), views
    assert 5 * 6 * 6 <= HOST_BACKWARD_MAX and 6 <= HOST_BACKWARD_MAX_ORDER


@pytest.mark.parametrize("batch", [(), (3,), (2, 2)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_eager_forward_writes_the_eigenvectors_into_the_halved_input(
    device: str, batch: tuple[int, ...], dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eager `eigdiff.eigh` (full method, from `_core.INTO_MIN` elements of X on) makes two arrays
    of X's size, X/2 and ½(X + Xᵀ), and torch's eigh writes the eigenvectors over the first
    (`backends.torch._decompose_into_half`), where it made three; the pairs are torch's eigh of
    ½(X + Xᵀ) bit for bit, with the same strides, and the gradient is unchanged. Under vmap (a
    torch.func transform) the outputs stay functional."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from eigdiff import _core

    monkeypatch.setattr(_core, "INTO_MIN", 0)  # small matrices here: take the path at any size
    X = _separated(batch, 6, seed=len(batch), device=device).to(dtype)
    size = X.untyped_storage().nbytes()

    class NewStorages(TorchDispatchMode):
        """Counts op results in a storage of X's size that none of the op's arguments has."""

        made = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            out = func(*args, **(kwargs or {}))
            leaves = torch.utils._pytree.tree_leaves((args, kwargs))
            seen = {t.untyped_storage().data_ptr() for t in leaves if isinstance(t, torch.Tensor)}
            for t in torch.utils._pytree.tree_leaves(out):
                if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in seen:
                    self.made += t.untyped_storage().nbytes() >= size
            return out

    counter = NewStorages()
    with counter:
        lmd, Y = eigdiff.eigh(X, method="full")
    H = X / 2
    expected = torch.linalg.eigh(H + H.mT)
    assert torch.equal(lmd, expected[0]) and torch.equal(Y, expected[1])
    assert Y.stride() == expected[1].stride()
    assert counter.made == 2, counter.made
    Xg = X.clone().requires_grad_()
    W = torch.randn(Y.shape, dtype=dtype, generator=torch.Generator().manual_seed(0)).to(device)
    (eigdiff.eigh(Xg, method="full")[1] * W).sum().backward()
    Xn = X.clone().requires_grad_()
    (torch.linalg.eigh((Xn + Xn.mT) / 2)[1] * W).sum().backward()
    tol = 1e3 * torch.finfo(dtype).eps
    torch.testing.assert_close(Xg.grad, Xn.grad, rtol=tol, atol=tol)
    if not batch:
        mapped = vmap(lambda x: eigdiff.eigh(x, method="full")[1])(X[None].expand(2, 6, 6))
        assert torch.equal(mapped[0], Y)
