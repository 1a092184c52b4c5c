"""Gradient properties of the backward, drawn by hypothesis, on every backend.

References are independent of eigdiff: float64 central finite differences of the loss
through NumPy's eigh, and torch's native ``torch.linalg.eigh`` autograd.
"""

from __future__ import annotations

import numpy as np
import pytest
from _backends import EAGER_CPU, Backend
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


@pytest.mark.parametrize("degeneracy", eigdiff.DEGENERACY_MODES)
@pytest.mark.parametrize("window", [(4, None), (2, None), (2, 1)])
@pytest.mark.parametrize("cotangents", ["both", "vectors", "values"])
def test_the_backward_in_slices_is_the_whole_batch_backward(
    backend: Backend, degeneracy: str, window: tuple[int, int | None], cotangents: str
) -> None:
    """`_core.backward_unchecked` with ``block`` (eager CPU code: the batch in slices, to stay in
    cache) returns the whole-batch backward bit for bit: the same operations on each matrix, in
    slices of 64 of a (3, 50) batch (the last slice short), with ties in every fourth matrix so
    that each mode's regularization is reached. Inputs stay as they were."""
    from eigdiff import _core

    if backend.name not in EAGER_CPU:
        pytest.skip(f"slices are for eager CPU code, which {backend.name} is not")
    rng = np.random.default_rng(3)
    K, lo = window
    lmd = np.sort(rng.standard_normal((3, 50, 4)), axis=-1)
    lmd[:, ::4, 2] = lmd[:, ::4, 1]  # exact ties
    Y = np.linalg.qr(rng.standard_normal((3, 50, 4, 4)))[0]
    V = rng.standard_normal((3, 50, 4, K)) if cotangents != "values" else None
    g = rng.standard_normal((3, 50, K)) if cotangents != "vectors" else None
    a = lambda x: None if x is None else backend.asarray(x)
    args = (a(lmd), a(Y), a(V), a(g), K)
    options = {"eps": None, "degeneracy": degeneracy, "overwrite": True, "xp": backend.xp, "lo": lo}
    whole = backend.to_numpy(_core.backward_unchecked(*args, **options))
    sliced = backend.to_numpy(_core.backward_unchecked(*args, block=64, **options))
    assert sliced.shape == (3, 50, 4, 4)
    np.testing.assert_array_equal(sliced, whole)
    for before, after in zip((lmd, Y, V, g), args):
        if before is not None:
            np.testing.assert_array_equal(backend.to_numpy(after), before)


def test_eager_cpu_backwards_take_slices_where_they_were_measured_to_pay(monkeypatch: pytest.MonkeyPatch) -> None:
    """The adapters hand the backward a slice (`backward_options`) on eager NumPy and torch CPU
    arrays, and none where autograd records or for M whose slice would hold fewer than 64
    matrices; the core slices only a batch with more matrices than a slice holds."""
    from eigdiff import _core
    from eigdiff.backends import MIN_BACKWARD_SLICE, adapter_for

    calls = []
    original = _core.in_slices
    monkeypatch.setattr(
        _core,
        "in_slices",
        lambda fn, arrays, batch, block, xp: calls.append(block) or original(fn, arrays, batch, block, xp),
    )
    rng = np.random.default_rng(0)
    X = rng.standard_normal((5000, 8, 8))
    (lmd, Y), pullback = eigdiff.vjp(X)
    V = rng.standard_normal(Y.shape)
    G = pullback(V, None)
    block = adapter_for(X).backward_slice // 64
    assert calls == [block] and 5000 > block >= MIN_BACKWARD_SLICE
    eigdiff.vjp(X[:100])[1](V[:100], None)  # a batch that fits in one slice is computed whole
    assert calls == [block]
    monkeypatch.setattr(type(adapter_for(X)), "backward_slice", None)
    np.testing.assert_array_equal(pullback(V, None), G)  # the whole batch, the same values
    assert calls == [block]
    monkeypatch.undo()
    assert adapter_for(X).backward_options(lmd, np.zeros((10, 256, 256)), None, None)["block"] is None
    assert adapter_for(X).backward_options(lmd, np.zeros((1, 64, 64)), None, None)["block"] == MIN_BACKWARD_SLICE
    assert adapter_for(X).backward_options(lmd, np.zeros((1, 65, 65)), None, None)["block"] is None
    torch = pytest.importorskip("torch")
    T = torch.zeros((10, 8, 8))
    ad = adapter_for(T)
    eager = {"overwrite": True, "block": ad.backward_slice // 64, "host_reads": True}
    assert ad.backward_options(T[0, 0], T, None, None) == eager
    with torch.enable_grad():  # create_graph: autograd records the backward
        R = T.clone().requires_grad_()
        assert ad.backward_options(T[0, 0], T, R, None) == {"overwrite": False, "block": None, "host_reads": False}


@st.composite
def _near_tied_spectra(draw: st.DrawFn) -> tuple[np.ndarray, int, int, float | None]:
    """Ascending spectra (2, M), float32 or float64, on a grid of steps of 0, 1, 2 or 3 units of
    a "tick" around the mask's threshold, so that ties, gaps exactly at the threshold and gaps
    just past it all occur; a window (k, lo); and eps (None: the default, or an explicit one)."""
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    M = draw(st.integers(1, 7))
    k = draw(st.integers(1, M))
    lo = draw(st.integers(0, M - k))
    eps = draw(st.sampled_from([None, 0.0, 1e-3]))
    base = draw(st.sampled_from([1.0, -3.0, 1e30, 1e-30]))
    threshold = 1e-3 if eps is not None else 8 * np.sqrt(M) * np.finfo(dtype).eps * abs(base)
    tick = draw(st.sampled_from([threshold / 2, threshold, threshold * (1 + 2**-40)]))
    steps = np.array([[draw(st.integers(0, 3)) for _ in range(M)] for _ in range(2)])
    lmd = (
        base + np.cumsum(steps, axis=-1) * tick
        if eps is not None
        else base * (1 + np.cumsum(steps, axis=-1) * tick / abs(base))
    )
    return np.sort(lmd, axis=-1).astype(dtype), k, lo, eps


@given(case=_near_tied_spectra())
def test_the_tie_test_read_on_the_host_is_the_mask_beyond_the_own_entries(backend: Backend, case) -> None:
    """`_gaps.ties_beyond_own` (which reads O(k) consecutive gaps) says whether the mask has any
    entry besides each column's own, exactly as the full (M, k) mask does, on spectra whose gaps
    sit at, just below and just past the threshold, for every window, the default threshold and
    explicit ones (0 included)."""
    from eigdiff import _gaps

    if backend.name not in EAGER_CPU:
        pytest.skip(f"the tie test is read on the host, for eager CPU code, which {backend.name} is not")
    lmd, k, lo, eps = case
    x = backend.asarray(lmd)
    M = lmd.shape[-1]
    mask = backend.to_numpy(_gaps.degenerate(x, k, eps, backend.xp, lo)).astype(bool)
    expected = bool(np.any(mask & (np.eye(M, k, k=-lo) == 0)))
    half_threshold = _gaps.gap_threshold(x, eps, backend.xp) / 2
    assert _gaps.ties_beyond_own(x, k, half_threshold, backend.xp, lo) is expected


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("eps", [None, 1e-3])
def test_the_tie_test_read_on_the_host_agrees_at_the_threshold_to_the_last_bit(
    backend: Backend, dtype: str, eps: float | None
) -> None:
    """A half-gap exactly equal to the mask's threshold (in the array's dtype) is a tie, one ulp
    more is not, and `_gaps.ties_beyond_own` (its own half-gaps, on the window's neighbours only)
    says the same in both cases, for an exact and a rounded threshold."""
    from eigdiff import _gaps

    if backend.name not in EAGER_CPU:
        pytest.skip(f"the tie test is read on the host, for eager CPU code, which {backend.name} is not")
    for lmd_max in (4.0, 3.0):  # max|λ| = 4: a power of two; 3: the default threshold rounds
        probe = backend.asarray(np.array([-lmd_max, 0.0, 0.0], dtype=dtype))
        half = _gaps.gap_threshold(probe, eps, backend.xp) / 2  # as the device's mask computes it
        T = np.asarray(backend.to_numpy(half) if hasattr(half, "shape") else half, dtype=dtype).reshape(())
        for gap, tied in ((T, True), (np.nextafter(T, np.asarray(np.inf, dtype=dtype)), False)):
            lmd = np.array([-lmd_max, 0.0, 2 * gap], dtype=dtype)  # half-gap λ₃/2 − λ₂/2 = gap exactly
            x = backend.asarray(lmd)
            mask = backend.to_numpy(_gaps.degenerate(x, 1, eps, backend.xp, 2)).astype(bool)
            assert bool(mask[1, 0]) is tied, (lmd_max, gap, tied)  # the construction is right
            half_threshold = _gaps.gap_threshold(x, eps, backend.xp) / 2
            assert _gaps.ties_beyond_own(x, 1, half_threshold, backend.xp, 2) is tied


@pytest.mark.parametrize("window", [(4, None), (2, None), (2, 1), (1, 0)])
@pytest.mark.parametrize("cotangents", ["both", "vectors"])
def test_the_mask_read_on_the_host_is_the_same_backward(
    backend: Backend, window: tuple[int, int | None], cotangents: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`_core.backward_unchecked` with ``host_reads`` (eager CPU code: the mask's passes skipped
    where the host reads that nothing but the own entries is masked) returns the backward
    without it bit for bit: on a batch with no tie (the skip taken, as a spy on
    `_gaps.own_entries` sees), a tie outside the window's reach (taken where the window does not
    border it), and ties in it (not taken). Inputs stay as they were."""
    from eigdiff import _core, _gaps

    if backend.name not in EAGER_CPU:
        pytest.skip(f"host reads are for eager CPU code, which {backend.name} is not")
    monkeypatch.setattr(_gaps, "TIE_TEST_MIN", 0)  # small batches here: take the test at any size
    skips = []
    own_entries = _gaps.own_entries
    monkeypatch.setattr(_gaps, "own_entries", lambda C, lo, xp: skips.append(lo) or own_entries(C, lo, xp))
    rng = np.random.default_rng(5)
    K, lo = window
    first = 4 - K if lo is None else lo
    for tie in (None, 0, first):  # λ_tie = λ_{tie+1}: none; at the bottom; at the window's first column
        lmd = np.sort(rng.standard_normal((3, 4)), axis=-1)
        if tie is not None:
            lmd[:, tie + 1] = lmd[:, tie]
        Y = np.linalg.qr(rng.standard_normal((3, 4, 4)))[0]
        V = rng.standard_normal((3, 4, K))
        g = rng.standard_normal((3, K)) if cotangents == "both" else None
        a = lambda x: None if x is None else backend.asarray(x)
        args = (a(lmd), a(Y), a(V), a(g), K)
        options = {"eps": None, "degeneracy": "mask", "overwrite": True, "xp": backend.xp, "lo": lo}
        plain = backend.to_numpy(_core.backward_unchecked(*args, **options))
        skips.clear()
        read = backend.to_numpy(_core.backward_unchecked(*args, host_reads=True, **options))
        np.testing.assert_array_equal(read, plain)
        assert np.all(np.isfinite(read))
        borders = tie is not None and first - 1 <= tie < first + K  # the tie touches the window
        assert skips == ([] if borders else [first]), (tie, skips)
        for before, after in zip((lmd, Y, V, g), args):
            if before is not None:
                np.testing.assert_array_equal(backend.to_numpy(after), before)


@pytest.mark.parametrize("window", [(5, 0), (3, 2), (2, 0), (1, 4), (1, 0)])
def test_adding_to_the_own_entries_touches_exactly_those(backend: Backend, window: tuple[int, int]) -> None:
    """`_core.add_to_own` (the eigenvalue cotangent's in-place diagonal, one strided slice) equals
    the broadcast C + E diag(d) for every window of a 5-column spectrum, including the window at
    the top, where a slice one step too long would run into the next row; and for a transposed
    (non-contiguous) C, where reshaping copies."""
    from eigdiff import _core
    from eigdiff._gaps import own_columns

    if backend.name not in ("numpy", "torch:cpu", "array_api_strict"):
        pytest.skip(f"in-place work is for eager code on writable arrays, which {backend.name} are not")
    K, lo = window
    rng = np.random.default_rng(K + lo)
    C, d = rng.standard_normal((2, 3, 5, K)), rng.standard_normal((2, 3, K))
    expected = C + np.eye(5, K, k=-lo) * d[..., None, :]
    np.testing.assert_array_equal(
        backend.to_numpy(_core.add_to_own(backend.asarray(C.copy()), backend.asarray(d), lo, backend.xp)), expected
    )
    T = backend.asarray(np.swapaxes(C, -1, -2).copy()).mT  # non-contiguous where the library has strides
    np.testing.assert_array_equal(backend.to_numpy(_core.add_to_own(T, backend.asarray(d), lo, backend.xp)), expected)
    ref = backend.to_numpy(own_columns(5, K, backend.asarray(C), backend.xp, lo))
    np.testing.assert_array_equal(ref, np.eye(5, K, k=-lo))


def test_the_backward_in_slices_keeps_its_peak_memory_near_the_output() -> None:
    """NumPy, traced by tracemalloc: in slices the backward's peak is the output plus one slice's
    temporaries (at most 1.5× the output for 64 slices), where the whole batch's temporaries
    take about 3× (the test checks that contrast too, so that it can fail)."""
    import tracemalloc

    import array_api_compat.numpy as xp

    from eigdiff import _core

    rng = np.random.default_rng(0)
    A = rng.standard_normal((4096, 4, 4))
    lmd, Y = np.linalg.eigh(A + np.swapaxes(A, -1, -2))
    V, g = rng.standard_normal(Y.shape), rng.standard_normal(lmd.shape)
    peaks = {}
    for block in (None, 64):
        tracemalloc.start()
        _core.backward_unchecked(lmd, Y, V, g, 4, eps=None, degeneracy="mask", overwrite=True, xp=xp, block=block)
        peaks[block] = tracemalloc.get_traced_memory()[1] / Y.nbytes
        tracemalloc.stop()
    assert peaks[64] <= 1.5 < 2.5 <= peaks[None], peaks


@pytest.mark.parametrize("degeneracy", ["mask", "lorentzian"])
@pytest.mark.parametrize("case", ["no ties", "a tie", "eigenvalue cotangent", "top 3"])
def test_the_eager_backward_writes_its_products_into_dead_temporaries(
    degeneracy: str, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch, eager (``overwrite``): of the full backward's three matrix products and G + Gᵀ, only
    Yᵀ V makes a new array; Y C, the product with Yᵀ and the sum are written into temporaries that
    are no longer needed (the half-gaps or F, then C, then Y C: `_core._into`), where each made one
    before (from `_core.INTO_MIN` elements on; below it, each still does). The values are the same
    bit for bit as with every product in a new array, the result is exactly symmetric, and the
    inputs are unchanged. A window of k < M columns has no temporary
    of the (M, M) result's shape: there only Y C is written into one."""
    torch = pytest.importorskip("torch")
    import array_api_compat.torch as xp
    from torch.utils._python_dispatch import TorchDispatchMode

    from eigdiff import _core, _gaps

    monkeypatch.setattr(_gaps, "TIE_TEST_MIN", 0)
    rng = np.random.default_rng(3)
    small = _core.INTO_MIN
    monkeypatch.setattr(_core, "INTO_MIN", 0)  # a small batch here: take the spare arrays at any size
    A = rng.standard_normal((6, 8, 8))
    lmd, Y = np.linalg.eigh(A + np.swapaxes(A, -1, -2))
    if case == "a tie":
        lmd[:, 4] = lmd[:, 3]
    K = 3 if case == "top 3" else 8
    V = rng.standard_normal((6, 8, K))
    g = rng.standard_normal((6, K)) if case == "eigenvalue cotangent" else None
    args = [None if a is None else torch.from_numpy(a) for a in (lmd, Y, V, g)]
    options = {"eps": None, "degeneracy": degeneracy, "overwrite": True, "xp": xp, "host_reads": True}

    class NewStorages(TorchDispatchMode):
        """Counts the matrix products and sums whose result is in a storage none of their arguments has."""

        made = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            out = func(*args, **(kwargs or {}))
            tensors = [t for t in torch.utils._pytree.tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
            seen = [t.untyped_storage().data_ptr() for t in tensors]
            products = (torch.ops.aten.bmm, torch.ops.aten.mm)
            symmetric_sum = (
                func.overloadpacket is torch.ops.aten.add and len(seen) >= 2 and seen[0] == seen[1]
            )  # G + Gᵀ
            if func.overloadpacket in products or symmetric_sum:
                self.made += out.untyped_storage().data_ptr() not in seen
            return out

    counter = NewStorages()
    with counter:
        dX = _core.backward_unchecked(*args, K, **options)
    monkeypatch.setattr(_core, "INTO_MIN", small)  # below it, every result is a new array
    below = NewStorages()
    with below:
        assert torch.equal(_core.backward_unchecked(*args, K, **options), dX)
    assert below.made == 4, below.made
    monkeypatch.setattr(_core, "_into", lambda op, a, b, spare, xp: a @ b if op == "matmul" else a + b)
    fresh = NewStorages()
    with fresh:
        expected = _core.backward_unchecked(*args, K, **options)
    assert torch.equal(dX, expected)
    assert torch.equal(dX, dX.mT)
    # K = M: only Yᵀ V, against four; K < M: Yᵀ V, G and G + Gᵀ (the two are (M, M), C is (M, K))
    assert (counter.made, fresh.made) == ((1, 4) if K == 8 else (3, 4)), (counter.made, fresh.made)
    for before, after in zip((lmd, Y, V, g), args):
        if before is not None:
            np.testing.assert_array_equal(after.numpy(), before)


@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_the_tiled_transpose_sum_writes_into_a_spare_array(library: str) -> None:
    """`_core.add_transpose` tiled (``blocked``, M = 4 tiles) into a spare array: exactly G + Gᵀ,
    in the spare's memory; a spare of another shape or dtype is left alone (a new array)."""
    from eigdiff import _core

    rng = np.random.default_rng(2)
    G = rng.standard_normal((4 * _core.TRANSPOSE_TILE,) * 2).astype(np.float32)
    if library == "torch":
        torch = pytest.importorskip("torch")
        import array_api_compat.torch as xp

        wrap, ptr = torch.from_numpy, lambda a: a.data_ptr()
    else:
        import array_api_compat.numpy as xp

        wrap, ptr = (lambda a: a), (lambda a: a.__array_interface__["data"][0])
    spare = wrap(np.zeros_like(G))
    out = _core.add_transpose(wrap(G), xp, blocked=True, spare=spare)
    np.testing.assert_array_equal(np.asarray(out), G + G.T)
    assert ptr(out) == ptr(spare)
    other = wrap(np.zeros_like(G, dtype=np.float64))
    out = _core.add_transpose(wrap(G), xp, blocked=True, spare=other)
    np.testing.assert_array_equal(np.asarray(out), G + G.T)
    assert ptr(out) != ptr(other) and not np.asarray(other).any()


def test_the_whole_batch_backward_drops_each_temporary_once_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """NumPy, traced by tracemalloc, the whole batch at once (no slices), V only, no ties: at its
    peak the backward holds G and the result, about 2× the output (2.09× measured; 3.0× when
    Yᵀ V, C and Y C stayed referenced until the end)."""
    import tracemalloc

    import array_api_compat.numpy as xp

    from eigdiff import _core, _gaps

    monkeypatch.setattr(_gaps, "TIE_TEST_MIN", 0)
    rng = np.random.default_rng(1)
    A = rng.standard_normal((512, 16, 16))
    lmd, Y = np.linalg.eigh(A + np.swapaxes(A, -1, -2))
    V = rng.standard_normal(Y.shape)
    tracemalloc.start()
    _core.backward_unchecked(lmd, Y, V, None, 16, eps=None, degeneracy="mask", overwrite=True, xp=xp, host_reads=True)
    peak = tracemalloc.get_traced_memory()[1] / Y.nbytes
    tracemalloc.stop()
    assert peak <= 2.25, peak
