"""Forward semantics, shapes, namespaces, validation and the no-import rule, on every backend."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from _backends import Backend
from _spectra import matrix_from_spectrum, orthogonal

import eigdiff

RNG = np.random.default_rng(1234)


def _random(shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(7).standard_normal(shape)


@pytest.mark.parametrize("batch", [(), (3,), (2, 3), (0,)], ids=lambda b: f"batch{b}")
@pytest.mark.parametrize("M", [1, 2, 5])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_eigh_shapes_values_namespace(backend: Backend, batch: tuple[int, ...], M: int, dtype: str) -> None:
    X_np = _random(batch + (M, M)).astype(dtype)
    X = backend.asarray(X_np)
    lmd, Y = eigdiff.eigh(X)
    assert isinstance(lmd, backend.array_type) and isinstance(Y, backend.array_type)
    assert lmd.dtype == backend.dtype(dtype) and Y.dtype == backend.dtype(dtype)
    assert tuple(lmd.shape) == batch + (M,) and tuple(Y.shape) == batch + (M, M)
    lmd_np, Y_np = backend.to_numpy(lmd).astype(np.float64), backend.to_numpy(Y).astype(np.float64)
    S = (X_np + np.swapaxes(X_np, -1, -2)).astype(np.float64) / 2
    tol = 50 * M * np.finfo(dtype).eps * max(1.0, np.abs(S).max(initial=0.0))
    np.testing.assert_allclose(lmd_np, np.linalg.eigvalsh(S), atol=tol)
    assert np.all(np.diff(lmd_np, axis=-1) >= 0)
    np.testing.assert_allclose(np.swapaxes(Y_np, -1, -2) @ Y_np, np.broadcast_to(np.eye(M), batch + (M, M)), atol=tol)
    np.testing.assert_allclose((Y_np * lmd_np[..., None, :]) @ np.swapaxes(Y_np, -1, -2), S, atol=tol)


@pytest.mark.parametrize("k", [1, 2, 4])
def test_top_k_is_the_last_columns(backend: Backend, k: int) -> None:
    lmd_true = np.array([-2.0, -0.5, 1.0, 3.0])
    X = backend.asarray(matrix_from_spectrum(np.tile(lmd_true, (2, 1)), RNG))
    lmd, Y = eigdiff.eigh(X)
    lmd_k, Y_k = eigdiff.eigh(X, top_k=k)
    assert tuple(lmd_k.shape) == (2, k) and tuple(Y_k.shape) == (2, 4, k)
    np.testing.assert_allclose(backend.to_numpy(lmd_k), lmd_true[-k:][None].repeat(2, 0), atol=1e-12)
    # Eigenvectors agree up to sign with the full decomposition's last k columns.
    overlap = np.einsum("bij,bij->bj", backend.to_numpy(Y_k), backend.to_numpy(Y)[..., -k:])
    np.testing.assert_allclose(np.abs(overlap), 1.0, atol=1e-12)


def test_vjp_and_jvp_outputs_match_eigh(backend: Backend) -> None:
    X = backend.asarray(_random((2, 4, 4)))
    lmd, Y = eigdiff.eigh(X, top_k=2)
    (lmd_v, Y_v), pullback = eigdiff.vjp(X, top_k=2)
    (lmd_j, Y_j), (dlmd, dY) = eigdiff.jvp(X, X, top_k=2)
    for a, b in [(lmd, lmd_v), (lmd, lmd_j)]:
        np.testing.assert_allclose(backend.to_numpy(a), backend.to_numpy(b), atol=1e-12)
    for a, b in [(Y, Y_v), (Y, Y_j)]:
        np.testing.assert_allclose(np.abs(backend.to_numpy(a)), np.abs(backend.to_numpy(b)), atol=1e-12)
    assert tuple(dlmd.shape) == (2, 2) and tuple(dY.shape) == (2, 4, 2)
    dX = pullback(None, None)
    assert tuple(dX.shape) == (2, 4, 4) and not np.any(backend.to_numpy(dX))


def test_inputs_are_not_modified(backend: Backend) -> None:
    X_np = _random((2, 4, 4))
    X = backend.asarray(X_np)
    (lmd, Y), pullback = eigdiff.vjp(X, top_k=2)
    V = backend.asarray(_random((2, 4, 2)))
    g = backend.asarray(_random((2, 2)))
    before = [backend.to_numpy(a).copy() for a in (X, V, g, lmd, Y)]
    eigdiff.eigh(X)
    pullback(V, g)
    eigdiff.jvp(X, X)
    full_lmd, full_Y = eigdiff.eigh(X)
    full_before = [backend.to_numpy(a).copy() for a in (full_lmd, full_Y)]
    eigdiff.backward(full_lmd, full_Y, V, g)
    for old, new in zip(before + full_before, [X, V, g, lmd, Y, full_lmd, full_Y]):
        np.testing.assert_array_equal(old, backend.to_numpy(new))


def test_readonly_numpy_works() -> None:
    X = _random((3, 3))
    X.setflags(write=False)
    (lmd, Y), pullback = eigdiff.vjp(X)
    V = np.ones((3, 3))
    V.setflags(write=False)
    assert pullback(V).shape == (3, 3)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ((3,), r"at least 2 dimensions, got shape \(3,\)"),
        ((2, 3), r"square .* got shape \(2, 3\)"),
        ((4, 2, 3), r"got shape \(4, 2, 3\)"),
    ],
)
def test_bad_shapes(backend: Backend, shape: tuple[int, ...], match: str) -> None:
    X = backend.asarray(np.ones(shape))
    for call in (lambda: eigdiff.eigh(X), lambda: eigdiff.vjp(X), lambda: eigdiff.jvp(X, X)):
        with pytest.raises(ValueError, match=match):
            call()


@pytest.mark.parametrize("dtype", ["int64", "bool", "float16", "complex128"])
def test_bad_dtypes(backend: Backend, dtype: str) -> None:
    if backend.name == "array_api_strict" and dtype == "float16":
        pytest.skip("array_api_strict has no float16")
    X = backend.asarray(np.eye(3).astype(dtype))
    with pytest.raises(
        TypeError, match=f"float32 or float64 array, got dtype .*{dtype.replace('float16', 'float16|half')}"
    ):
        eigdiff.eigh(X)


def test_bfloat16_is_refused() -> None:
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="bfloat16"):
        eigdiff.eigh(torch.eye(3, dtype=torch.bfloat16))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite(backend: Backend, bad: float) -> None:
    X_np = np.eye(3)
    X_np[1, 2] = bad
    with pytest.raises(ValueError, match="NaN or Inf"):
        eigdiff.eigh(backend.asarray(X_np))


@pytest.mark.parametrize(
    ("top_k", "error", "match"),
    [
        (0, ValueError, r"\[1, 3\], got 0"),
        (4, ValueError, r"\[1, 3\], got 4"),
        (-1, ValueError, "got -1"),
        (1.5, TypeError, "got float 1.5"),
        ("2", TypeError, "got str"),
        (True, TypeError, "got bool"),
    ],
)
def test_bad_top_k(backend: Backend, top_k: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        eigdiff.eigh(backend.asarray(np.eye(3)), top_k=top_k)


def test_numpy_integer_top_k_is_accepted() -> None:
    assert eigdiff.eigh(np.eye(3), top_k=np.int64(2))[0].shape == (2,)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"degeneracy": "clip"}, ValueError, "degeneracy must be one of"),
        ({"eps": -1.0}, ValueError, "non-negative"),
        ({"eps": float("nan")}, ValueError, "finite"),
        ({"eps": "1e-9"}, TypeError, "eps must be"),
    ],
)
def test_bad_options(backend: Backend, kwargs: dict, error: type, match: str) -> None:
    X = backend.asarray(np.eye(3))
    with pytest.raises(error, match=match):
        eigdiff.eigh(X, **kwargs)
    lmd, Y = eigdiff.eigh(X)
    with pytest.raises(error, match=match):
        eigdiff.backward(lmd, Y, Y, **kwargs)


def test_backward_shape_errors(backend: Backend) -> None:
    lmd, Y = eigdiff.eigh(backend.asarray(_random((2, 4, 4))))
    a = backend.asarray
    cases = [
        ((lmd[..., :3], Y, a(np.ones((2, 4, 1)))), r"lmd must have shape \(\.\.\., M\) = \(2, 4\)"),
        ((lmd, Y, a(np.ones((2, 3, 1)))), r"V must have shape .* got \(2, 3, 1\)"),
        ((lmd, Y, a(np.ones((2, 4, 5)))), r"0 <= K <= M = 4 .* got \(2, 4, 5\)"),
        ((lmd, Y, a(np.ones((3, 4, 2)))), r"got \(3, 4, 2\)"),
        ((lmd, Y, a(np.ones((2, 4, 2))), a(np.ones((2, 3)))), "V has K = 2 columns but g_lmd has 3"),
        ((lmd, Y, None, a(np.ones((2, 5)))), r"g_lmd must have shape .* got \(2, 5\)"),
        ((lmd, Y[..., :2]), r"square in its last two dimensions, got shape \(2, 4, 2\)"),
    ]
    for args, match in cases:
        with pytest.raises(ValueError, match=match):
            eigdiff.backward(*args) if len(args) > 2 else eigdiff.backward(*args, None)


def test_backward_dtype_errors() -> None:
    lmd, Y = np.linalg.eigh(np.eye(3))
    with pytest.raises(TypeError, match="V must have Y's dtype float64, got float32"):
        eigdiff.backward(lmd, Y, np.ones((3, 1), dtype=np.float32))
    with pytest.raises(TypeError, match="lmd and Y must share a dtype"):
        eigdiff.backward(lmd.astype(np.float32), Y, None, np.ones(3))


def test_pullback_errors() -> None:
    (_, Y), pullback = eigdiff.vjp(np.eye(4), top_k=2)
    with pytest.raises(ValueError, match="the 2 selected eigenpairs, got K = 3"):
        pullback(np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"V must have shape .* got \(3, 2\)"):
        pullback(np.ones((3, 2)))


def test_jvp_tangent_errors() -> None:
    with pytest.raises(ValueError, match=r"dX must have X's shape \(3, 3\), got \(2, 2\)"):
        eigdiff.jvp(np.eye(3), np.eye(2))
    with pytest.raises(TypeError, match="dX must have X's dtype float64, got float32"):
        eigdiff.jvp(np.eye(3), np.eye(3, dtype=np.float32))


def test_mixed_libraries_are_refused() -> None:
    torch = pytest.importorskip("torch")
    lmd, Y = np.linalg.eigh(np.eye(3))
    with pytest.raises(TypeError, match=r"V is a torch.Tensor but the decomposition is numpy.ndarray"):
        eigdiff.backward(lmd, Y, torch.ones(3, 3, dtype=torch.float64))
    (_, _), pullback = eigdiff.vjp(np.eye(3))
    with pytest.raises(TypeError, match=r"g_lmd is a torch.Tensor but .* numpy.ndarray: .* one library"):
        pullback(None, torch.ones(3, dtype=torch.float64))
    with pytest.raises(TypeError, match=r"dX is a numpy.ndarray but .* torch.Tensor"):
        eigdiff.jvp(torch.eye(3, dtype=torch.float64), np.eye(3))


def test_non_array_is_refused() -> None:
    with pytest.raises(TypeError, match="X must be an array .* got list"):
        eigdiff.eigh([[1.0, 0.0], [0.0, 1.0]])


# ---------------------------------------------------------------- imports


def test_import_eigdiff_imports_neither_torch_nor_cupy() -> None:
    code = (
        "import sys, numpy as np, eigdiff\n"
        "eigdiff.vjp(np.eye(3))[1](np.ones((3, 3)))\n"
        "bad = sorted(m for m in ('torch', 'cupy', 'jax', 'dask') if m in sys.modules)\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_first_call_inside_torch_compile_after_importing_eigdiff_first() -> None:
    """eigdiff imported before torch, then its first call inside torch.compile(fullgraph=True):
    the torch adapter is imported while Dynamo traces (an import statement, which Dynamo runs,
    not importlib, which it refuses as a graph break). Fresh interpreter: nothing loaded yet."""
    pytest.importorskip("torch")
    code = (
        "import sys, eigdiff, torch\n"
        "assert 'eigdiff.backends.torch' not in sys.modules\n"
        "f = torch.compile(lambda X: eigdiff.eigh(X)[0], fullgraph=True)\n"
        "X = torch.tensor([[2.0, 1.0], [1.0, 3.0]], dtype=torch.float64)\n"
        "torch.testing.assert_close(f(X), torch.linalg.eigvalsh(X))\n"
    )
    subprocess.run([sys.executable, "-W", "ignore::FutureWarning", "-c", code], check=True)


def test_missing_backend_error_says_what_to_install() -> None:
    code = (
        "import sys\n"
        "sys.modules['cupy'] = None\n"  # makes `import cupy` fail as when it is not installed
        "try:\n"
        "    import eigdiff.backends.cupy\n"
        "except ImportError as e:\n"
        "    assert 'pip install cupy-cuda12x' in str(e), e\n"
        "else:\n"
        "    raise SystemExit('no ImportError')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_dask_error_says_what_to_install() -> None:
    code = (
        "import sys\n"
        "sys.modules['dask'] = None\n"
        "try:\n"
        "    import eigdiff.backends.dask\n"
        "except ImportError as e:\n"
        "    assert \"pip install 'eigdiff[dask]'\" in str(e), e\n"
        "else:\n"
        "    raise SystemExit('no ImportError')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_orthogonal_helper_is_orthogonal() -> None:
    Q = orthogonal(5, RNG)
    np.testing.assert_allclose(Q.T @ Q, np.eye(5), atol=1e-13)
