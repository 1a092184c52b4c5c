"""The docs' backends table (`eigdiff.backends.SUPPORT`) is true of the code, backend by backend."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from _backends import Backend

import eigdiff
from eigdiff.backends import SUPPORT, support_table


def _name(backend: Backend) -> str:
    return backend.name.split(":")[0].replace("numpy_readonly", "numpy")


def test_every_backend_under_test_has_a_row(backend: Backend) -> None:
    assert _name(backend) in SUPPORT


def test_claimed_dtypes_run_forward_backward_and_jvp(backend: Backend) -> None:
    row = SUPPORT[_name(backend)]
    assert row["forward (eigh, top-k)"] == row["backward (backward, vjp)"] == row["forward mode (jvp)"] == "yes"
    for dtype in row["dtypes"].split(", "):
        X = backend.asarray(np.diag([1.0, 2.0, 3.0]).astype(dtype))
        lmd, Y = eigdiff.eigh(X, top_k=2)
        (_, _), pullback = eigdiff.vjp(X, top_k=2)
        dX = pullback(None, backend.asarray(np.ones(2, dtype=dtype)))
        (_, _), (dlmd, _) = eigdiff.jvp(X, X, top_k=2)
        assert dX.dtype == X.dtype == lmd.dtype == dlmd.dtype
        np.testing.assert_allclose(backend.to_numpy(dlmd), [2.0, 3.0], rtol=1e-6)
        assert row["matrix functions"].startswith("yes")
        F, pullback_f = eigdiff.matrix_function_vjp(X, "sqrt")
        _, dF = eigdiff.matrix_function_jvp(X, X, "log")
        assert F.dtype == pullback_f(X).dtype == dF.dtype == X.dtype
        np.testing.assert_allclose(backend.to_numpy(dF), np.eye(3), rtol=1e-6)  # D log(X)[X] = I for diagonal X


def test_claimed_devices(backend: Backend) -> None:
    devices = SUPPORT[_name(backend)]["devices"]
    if backend.name.startswith("torch"):
        assert backend.name.split(":")[1] in devices
    elif backend.name == "cupy":
        assert devices == "cuda"
    else:
        assert devices.startswith("cpu")


def test_autograd_claims() -> None:
    for name, row in SUPPORT.items():
        assert (row["autograd"].startswith("none")) == (name not in ("torch", "jax"))
    # torch's claims are each tested in tests/test_torch.py; this checks the words name them.
    for feature in ("reverse", "forward", "double backward", "torch.func", "torch.compile"):
        assert feature in SUPPORT["torch"]["autograd"]


def test_table_renders_every_backend() -> None:
    table = support_table()
    assert all(f"| {name} |" in table for name in SUPPORT) and table.count("\n") == len(SUPPORT) + 1


def test_partial_spectra_claims(backend: Backend) -> None:
    """Every backend selects windows with "full"; "subset" works exactly where claimed."""
    claim = SUPPORT[_name(backend)]["partial spectra (methods)"]
    assert claim.startswith("top_k, bottom_k, subset_by_index: full")
    X = backend.asarray(np.diag([1.0, 2.0, 3.0, 4.0]))
    lmd, _ = eigdiff.eigh(X, subset_by_index=(1, 3))
    np.testing.assert_allclose(backend.to_numpy(lmd), [2.0, 3.0])
    methods = claim.split(": ", 1)[1]
    if "subset" in methods and not backend.name.endswith("cuda"):
        lmd, _ = eigdiff.eigh(X, bottom_k=2, method="subset")
        np.testing.assert_allclose(backend.to_numpy(lmd), [1.0, 2.0])
    else:
        with pytest.raises(ValueError, match="method='subset' runs LAPACK through SciPy"):
            eigdiff.eigh(X, bottom_k=2, method="subset")
    Z = backend.asarray(np.diag(np.arange(1.0, 21.0)))  # room for a Krylov space
    if "krylov" in methods:
        lmd, _ = eigdiff.eigh(Z, top_k=2, method="krylov")
        np.testing.assert_allclose(backend.to_numpy(lmd), [19.0, 20.0], rtol=1e-10)
    else:
        with pytest.raises(ValueError, match="method='krylov' is not wired into"):
            eigdiff.eigh(Z, top_k=2, method="krylov")


def test_sparse_input_claims(backend: Backend) -> None:
    """Sparse input works for the libraries that claim it (SciPy's for NumPy), and nowhere else."""
    claim = SUPPORT[_name(backend)]["sparse input"]
    if claim == "none":
        return
    name = _name(backend)
    if name == "numpy":
        sparse = pytest.importorskip("scipy.sparse")
        A = sparse.diags_array(np.arange(1.0, 21.0)).tocsr()
    elif name == "torch":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torch's note that CSR support is in beta
            A = backend.asarray(np.diag(np.arange(1.0, 21.0))).to_sparse_csr()
    else:
        cupyx = pytest.importorskip("cupyx.scipy.sparse", reason="CuPy sparse needs CuPy and an NVIDIA GPU")
        A = cupyx.csr_matrix(backend.asarray(np.diag(np.arange(1.0, 21.0))))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch's note that CSR support is in beta
        (lmd, _), pullback = eigdiff.vjp(A, top_k=2)
        G = pullback(None, backend.asarray(np.ones(2)) if name != "numpy" else np.ones(2))
    np.testing.assert_allclose(backend.to_numpy(lmd), [19.0, 20.0], rtol=1e-10)
    assert type(G) is type(A)
