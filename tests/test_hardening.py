"""Never silently wrong (issue #9): scale equivariance over the float range, non-finite and
out-of-order arguments, aliasing, the input types users hand us, and M = 0, on every backend.
Second derivatives and nested transforms, which need torch, are in ``test_torch_higher_order.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from _backends import Backend
from _spectra import clustered_spectra, matrix_from_spectrum, orthogonal, random_symmetric
from hypothesis import given
from hypothesis import strategies as st

import eigdiff

MODES = eigdiff.DEGENERACY_MODES
DTYPES = ["float32", "float64"]


def _exponent_range(dtype: str) -> tuple[int, int]:
    """Powers of two s = 2^e that keep s·λ, the thresholds and the gradient (~‖V‖/(s Δ)) normal.

    λ and V are O(1) with gaps down to ~1e-9 relative (masked below eps), so the results span
    about 2^±40 around 1/s; the range leaves that much room at both ends.
    """
    info = np.finfo(dtype)
    return int(info.minexp) + info.nmant + 40, int(info.maxexp) - 40


# ---------------------------------------------------------------- 1. scale equivariance


@pytest.mark.parametrize("degeneracy", MODES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(spectrum=clustered_spectra(), data=st.data())
def test_backward_and_jvp_are_scale_equivariant(
    grad_backend: Backend, degeneracy: str, dtype: str, spectrum: tuple[np.ndarray, np.ndarray], data: st.DataObject
) -> None:
    """backward(sλ, Y, V) = backward(λ, Y, V)/s for the eigenvector part and is s-free for the
    eigenvalue part; the core's jvp: dλ is s-free and dY scales as 1/s. For every power of two s
    in the range (both ends included), every mode, full and top-k.

    Every operation on the scaled path is the unscaled one times a power of two, so the two agree
    to a few rounding errors (4u relative to the largest entry), never by luck of the range.
    """
    from eigdiff.backends import adapter_for

    lmd, _ = spectrum
    lmd = lmd / (np.abs(lmd).max() or 1.0)
    lo, hi = _exponent_range(dtype)
    e = data.draw(st.one_of(st.sampled_from([lo, hi]), st.integers(lo, hi)), label="exponent")
    s = 2.0**e
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    M = len(lmd)
    k = data.draw(st.integers(1, M), label="k")
    Y = orthogonal(M, rng)
    V, g, dX = rng.standard_normal((M, k)), rng.standard_normal(k), random_symmetric((M, M), rng)
    a = lambda x: grad_backend.asarray(np.asarray(x, dtype=dtype))
    n = grad_backend.to_numpy
    u = np.finfo(dtype).eps

    def close(scaled: np.ndarray, reference: np.ndarray, factor: float) -> None:
        reference = reference.astype(np.float64) * factor
        np.testing.assert_allclose(scaled.astype(np.float64), reference, rtol=0, atol=4 * u * np.abs(reference).max())

    G_v = n(eigdiff.backward(a(lmd), a(Y), a(V), degeneracy=degeneracy))
    G_v_scaled = n(eigdiff.backward(a(lmd * s), a(Y), a(V), degeneracy=degeneracy))
    assert np.all(np.isfinite(G_v_scaled))
    close(G_v_scaled, G_v, 1 / s)
    G_g = n(eigdiff.backward(a(lmd), a(Y), g_lmd=a(g), degeneracy=degeneracy))
    close(n(eigdiff.backward(a(lmd * s), a(Y), g_lmd=a(g), degeneracy=degeneracy)), G_g, 1.0)

    # The core's jvp as eigdiff.jvp runs it for the library (compiled on JAX, where operation by
    # operation it would compile each step for each drawn shape).
    options = {"eps": None, "degeneracy": degeneracy, "xp": grad_backend.xp, "lo": None}
    adapter = adapter_for(a(Y))
    dlmd, dY = adapter.jvp(a(lmd), a(Y), a(dX), k, **options)
    dlmd_s, dY_s = adapter.jvp(a(lmd * s), a(Y), a(dX), k, **options)
    close(n(dlmd_s), n(dlmd), 1.0)
    close(n(dY_s), n(dY), 1 / s)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("where", ["low", "high"])
def test_end_to_end_scale_equivariance_at_the_range_ends(backend: Backend, dtype: str, where: str) -> None:
    """eigh, vjp and jvp of sX against X at the two ends of the range: eigh(sX) = (sλ, ±Y), the
    eigenvector gradient scales as 1/s, eigenvalue tangents are s-free. LAPACK rescales such input
    internally by factors that are not powers of two, hence a tolerance of 100 u (gaps ≥ 0.5)."""
    lo, hi = _exponent_range(dtype)
    s = 2.0 ** (lo if where == "low" else hi)
    rng = np.random.default_rng(5)
    X = matrix_from_spectrum(np.array([-1.0, -0.25, 0.5, 1.0]), rng)
    V, dX = rng.standard_normal((4, 2)), random_symmetric((4, 4), rng)
    a = lambda x: backend.asarray(np.asarray(x, dtype=dtype))
    n = lambda x: backend.to_numpy(x).astype(np.float64)
    tol = 100 * np.finfo(dtype).eps
    (lmd, Y), pullback = eigdiff.vjp(a(X), top_k=2)
    (lmd_s, Y_s), pullback_s = eigdiff.vjp(a(X * s), top_k=2)
    np.testing.assert_allclose(n(lmd_s) / s, n(lmd), rtol=tol)
    signs = np.sign(np.sum(n(Y) * n(Y_s), axis=0))
    np.testing.assert_allclose(n(Y_s) * signs, n(Y), atol=tol)
    G, G_s = n(pullback(a(V))), n(pullback_s(a(V * signs)))
    assert np.all(np.isfinite(G_s))
    np.testing.assert_allclose(G_s * s, G, atol=tol * np.abs(G).max())
    (_, _), (dlmd, _) = eigdiff.jvp(a(X), a(dX), top_k=2)
    (_, _), (dlmd_s, _) = eigdiff.jvp(a(X * s), a(dX), top_k=2)
    np.testing.assert_allclose(n(dlmd_s), n(dlmd), atol=tol * np.abs(n(dlmd)).max())


def test_issue_cases_at_the_range_edges() -> None:
    """The reported cases: Lorentzian at 1e±200, Taylor at tiny scale, 2λ and X + Xᵀ overflow."""
    rng = np.random.default_rng(0)
    lmd, Y, V = np.array([-1.0, 0.5, 1.0, 2.0]), np.eye(4), rng.standard_normal((4, 4))
    for mode in MODES:
        G = eigdiff.backward(lmd, Y, V, degeneracy=mode)
        for s in (1e200, 1e-200):
            np.testing.assert_allclose(eigdiff.backward(lmd * s, Y, V, degeneracy=mode) * s, G, rtol=1e-13)
    lmd_pos = np.array([1.0, 2.0, 3.0])
    G = eigdiff.backward(lmd_pos, np.eye(3), V[:3, :3], degeneracy="taylor")
    np.testing.assert_allclose(
        eigdiff.backward(lmd_pos * 1e-170, np.eye(3), V[:3, :3], degeneracy="taylor") * 1e-170, G
    )
    (_, _), pullback = eigdiff.vjp(np.full((2, 2), 0.9e38, np.float32))
    assert np.all(np.isfinite(pullback(np.ones((2, 2), np.float32), np.ones(2, np.float32))))
    X = np.array([[2e38, 1e38], [1e38, 0.0]], np.float32)
    np.testing.assert_allclose(eigdiff.eigh(X)[0], np.linalg.eigvalsh(X), rtol=1e-6)


# ---------------------------------------------------------------- 4, 5. values of every argument


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_named(backend: Backend, bad: float) -> None:
    a = backend.asarray
    lmd, Y = np.array([0.0, 1.0, 2.0]), np.eye(3)
    V, g = np.ones((3, 2)), np.ones(2)

    def spoiled(x: np.ndarray) -> np.ndarray:
        x = x.copy()
        x.flat[-1] = bad
        return x

    calls = {
        "lmd": lambda: eigdiff.backward(a(spoiled(lmd)), a(Y), a(V), a(g)),
        "Y": lambda: eigdiff.backward(a(lmd), a(spoiled(Y)), a(V), a(g)),
        "V": lambda: eigdiff.backward(a(lmd), a(Y), a(spoiled(V)), a(g)),
        "g_lmd": lambda: eigdiff.backward(a(lmd), a(Y), a(V), a(spoiled(g))),
        "dX": lambda: eigdiff.jvp(a(np.eye(3)), a(spoiled(np.eye(3)))),
        "X": lambda: eigdiff.eigh(a(spoiled(np.eye(3)))),
    }
    (_, _), pullback = eigdiff.vjp(a(np.diag(lmd)), top_k=2)
    calls["V (pullback)"] = lambda: pullback(a(spoiled(V)), a(g))
    calls["g_lmd (pullback)"] = lambda: pullback(a(V), a(spoiled(g)))
    for name, call in calls.items():
        with pytest.raises(ValueError, match=rf"^{name.split()[0]} contains NaN or Inf"):
            call()


def test_lmd_must_ascend(backend: Backend) -> None:
    """A reversed decomposition is refused (Taylor's signs follow index order: it was off by 2.0)."""
    a = backend.asarray
    lmd, Y = np.array([3.0, 2.0, 1.0]), np.eye(3)
    for mode in MODES:
        with pytest.raises(ValueError, match="lmd must ascend"):
            eigdiff.backward(a(lmd), a(Y), a(np.ones((3, 1))), degeneracy=mode)
    eigdiff.backward(a(lmd[::-1].copy()), a(Y), a(np.ones((3, 1))))  # ascending ties are fine too
    eigdiff.backward(a(np.array([1.0, 1.0, 2.0])), a(Y), a(np.ones((3, 1))))


# ---------------------------------------------------------------- 6. aliasing


def test_pullback_keeps_its_own_arrays() -> None:
    """Editing the returned eigenpairs in place leaves the pullback's answer unchanged."""
    rng = np.random.default_rng(2)
    X = random_symmetric((5, 5), rng)
    V, g = rng.standard_normal((5, 5)), rng.standard_normal(2)
    for k in (2, 5):
        (lmd, Y), pullback = eigdiff.vjp(X, top_k=k)
        before = pullback(V[:, :k])
        Y *= -3.0
        lmd += 1.0
        np.testing.assert_array_equal(before, pullback(V[:, :k]))
    (lmd, Y), pullback = eigdiff.vjp(X, top_k=2)
    before = pullback(None, g)
    lmd[:] = 0
    np.testing.assert_array_equal(before, pullback(None, g))


def test_top_k_results_are_compact(backend: Backend) -> None:
    """Top-k eigenpairs own compact memory: they do not keep the full M × M arrays alive."""
    X = backend.asarray(random_symmetric((64, 64), np.random.default_rng(3)))
    outputs = [eigdiff.eigh(X, top_k=2), eigdiff.vjp(X, top_k=2)[0], eigdiff.jvp(X, X, top_k=2)[0]]
    for lmd, Y in outputs:
        for arr, size in ((lmd, 2), (Y, 64 * 2)):
            if isinstance(arr, np.ndarray):
                assert arr.base is None or arr.base.size == size
            elif backend.name.startswith("torch"):
                assert arr.untyped_storage().nbytes() == size * arr.element_size()


# ---------------------------------------------------------------- 7. the inputs users hand us


@pytest.mark.parametrize("name", ["V", "g_lmd", "dX"])
@pytest.mark.parametrize("value", [[[1.0, 0.0], [0.0, 1.0]], 1.0], ids=["list", "scalar"])
def test_non_arrays_are_refused_by_name(name: str, value: object) -> None:
    lmd, Y = np.array([0.0, 1.0]), np.eye(2)
    (_, _), pullback = eigdiff.vjp(np.eye(2))
    calls = {
        "V": [lambda: eigdiff.backward(lmd, Y, value), lambda: pullback(value)],
        "g_lmd": [lambda: eigdiff.backward(lmd, Y, None, value), lambda: pullback(None, value)],
        "dX": [lambda: eigdiff.jvp(np.eye(2), value)],
    }[name]
    for call in calls:
        with pytest.raises(TypeError, match=rf"^{name} must be an array .* got (list|float)"):
            call()


def test_eps_accepts_real_scalars_of_any_library(backend: Backend) -> None:
    X = backend.asarray(np.diag([1.0, 1.0 + 1e-6, 3.0]))
    V = backend.asarray(np.ones((3, 3)))
    lmd, Y = eigdiff.eigh(X)
    reference = backend.to_numpy(eigdiff.backward(lmd, Y, V, eps=1e-5))
    scalars = [np.float32(1e-5), np.float64(1e-5), np.array(1e-5), backend.asarray(np.array(1e-5))]
    for eps in scalars:
        np.testing.assert_allclose(backend.to_numpy(eigdiff.backward(lmd, Y, V, eps=eps)), reference, rtol=1e-6)
        eigdiff.eigh(X, eps=eps)
    eigdiff.backward(lmd, Y, V, eps=np.finfo(np.float32).eps)


@pytest.mark.parametrize(
    ("eps", "error", "match"),
    [
        (10**400, ValueError, "overflows a float"),
        (np.array([1e-5, 1e-5]), ValueError, r"eps must be a scalar, got an array of shape \(2,\)"),
        (np.array(True), TypeError, "dtype bool"),
        (1j, TypeError, "got complex"),
        (np.complex128(1), TypeError, "eps must be a real"),
    ],
)
def test_bad_eps(eps: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        eigdiff.eigh(np.eye(2), eps=eps)


def test_degeneracy_must_be_a_mode_name() -> None:
    with pytest.raises(ValueError, match="degeneracy must be one of .* got 'numpy.ndarray'"):
        eigdiff.eigh(np.eye(2), degeneracy=np.array(["mask", "taylor"]))


def test_big_endian_numpy_is_accepted() -> None:
    rng = np.random.default_rng(4)
    X = random_symmetric((4, 4), rng)
    V = rng.standard_normal((4, 4))
    (lmd, Y), pullback = eigdiff.vjp(X.astype(">f8"))
    np.testing.assert_allclose(lmd, np.linalg.eigvalsh(X), rtol=1e-12)
    assert lmd.dtype == np.float64 and lmd.dtype.isnative
    np.testing.assert_allclose(pullback(V.astype(">f8")), eigdiff.vjp(X)[1](V), rtol=1e-12)
    np.testing.assert_allclose(eigdiff.backward(lmd.astype(">f8"), Y.astype(">f8"), V), pullback(V), rtol=1e-12)


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
def test_np_matrix_and_masked_arrays_are_refused() -> None:
    with pytest.raises(TypeError, match=r"X is an np.matrix; pass np.asarray\(X\)"):
        eigdiff.eigh(np.asmatrix(np.eye(2)))
    with pytest.raises(TypeError, match="X is a masked array, whose mask eigdiff would ignore"):
        eigdiff.eigh(np.ma.masked_array(np.eye(2), mask=[[0, 1], [1, 0]]))
    lmd, Y = np.linalg.eigh(np.eye(2))
    with pytest.raises(TypeError, match="V is an np.matrix"):
        eigdiff.backward(lmd, Y, np.asmatrix(np.ones((2, 2))))


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta state:UserWarning")
def test_torch_sparse_is_refused_where_a_dense_tensor_is_needed() -> None:
    """Sparse input is for eigh, vjp and jvp (tests/test_sparse.py); elsewhere it is refused."""
    torch = pytest.importorskip("torch")
    dense = torch.eye(3, dtype=torch.float64)
    for sparse in (dense.to_sparse(), dense.to_sparse_csr()):
        with pytest.raises(TypeError, match="X is a sparse tensor .*layout torch.sparse_c(oo|sr).*eigh, vjp and jvp"):
            eigdiff.matrix_function(sparse, "exp")
        with pytest.raises(TypeError, match="Y is a sparse tensor"):
            eigdiff.backward(torch.ones(3, dtype=torch.float64), sparse)


def test_scipy_sparse_is_refused_where_a_dense_array_is_needed() -> None:
    sparse = pytest.importorskip("scipy.sparse")
    with pytest.raises(TypeError, match=r"X is a sparse array \(scipy.sparse.*eigh, vjp and jvp"):
        eigdiff.expm(sparse.eye_array(3))


# ---------------------------------------------------------------- 8, 9. M = 0, eigenvalue-only backward


@pytest.mark.parametrize("batch", [(), (2,), (0,)], ids=lambda b: f"batch{b}")
def test_empty_matrices(backend: Backend, batch: tuple[int, ...]) -> None:
    X = backend.asarray(np.zeros(batch + (0, 0)))
    lmd, Y = eigdiff.eigh(X)
    assert tuple(lmd.shape) == batch + (0,) and tuple(Y.shape) == batch + (0, 0)
    (lmd, Y), pullback = eigdiff.vjp(X)
    assert tuple(
        pullback(backend.asarray(np.zeros(batch + (0, 0))), backend.asarray(np.zeros(batch + (0,)))).shape
    ) == (batch + (0, 0))
    (_, _), (dlmd, dY) = eigdiff.jvp(X, X)
    assert tuple(dlmd.shape) == batch + (0,) and tuple(dY.shape) == batch + (0, 0)
    assert tuple(eigdiff.backward(lmd, Y, Y, lmd).shape) == batch + (0, 0)
    with pytest.raises(ValueError, match="M = 0 .* top_k must be None, got 1"):
        eigdiff.eigh(X, top_k=1)


def test_eigenvalue_only_backward_by_keyword(backend: Backend) -> None:
    X = np.array([[2.0, 1.0], [1.0, 3.0]])
    lmd, Y = np.linalg.eigh(X)
    dX = eigdiff.backward(backend.asarray(lmd), backend.asarray(Y), g_lmd=backend.asarray(np.ones(2)))
    np.testing.assert_allclose(backend.to_numpy(dX), np.eye(2), atol=1e-12)  # d trace / dX = I


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"method": "small"},
        {"top_k": 2},
        {"method": "krylov", "top_k": 3},
        {"method": "krylov", "bottom_k": 2},
    ],
    ids=["full", "small", "top-2", "krylov-top", "krylov-bottom"],
)
def test_every_route_keeps_a_non_default_device(options: dict) -> None:
    """Every array a route creates is placed on X's device: array_api_strict refuses to mix its
    devices, so a CPU run catches what would mix host and GPU arrays (an index made with
    ``arange`` and no device crashed the sparse Krylov forward on CUDA; found on a GPU)."""
    xp = pytest.importorskip("array_api_strict")
    device = xp.Device("device1")
    M = 3 if options.get("method") == "small" else (60 if "method" in options else 6)
    A = np.random.default_rng(M).standard_normal((2, M, M))
    X = xp.asarray(A, device=device)
    (lmd, Y), pullback = eigdiff.vjp(X, **options)
    G = pullback(xp.ones_like(Y), xp.ones_like(lmd))
    _, (dlmd, dY) = eigdiff.jvp(X, X, **options)
    assert {a.device for a in (lmd, Y, G, dlmd, dY)} == {device}


def test_the_filtered_iteration_keeps_a_non_default_device() -> None:
    """The sparse forward's Chebyshev-filtered iteration, through a product on that device."""
    xp = pytest.importorskip("array_api_strict")
    from eigdiff import _krylov

    device = xp.Device("device1")
    S = random_symmetric((80, 80), np.random.default_rng(0))
    Sx = xp.asarray(S, device=device)
    like = xp.zeros((80, 1), dtype=xp.float64, device=device)
    for lo, hi in ((0, 3), (77, 80)):
        lmd, Y, guards, ends, (U, AU) = _krylov.filtered(
            lambda B: Sx @ B, 80, like, lo, hi, None, tol=1e-10, maxiter=None, xp=xp
        )
        assert {a.device for a in (lmd, Y, guards, ends, U, AU)} == {device}
        np.testing.assert_allclose(
            np.asarray(lmd.to_device(xp.Device("CPU_DEVICE"))),
            np.linalg.eigvalsh(S)[lo:hi],
            atol=1e-9 * np.abs(S).sum(1).max(),
        )
