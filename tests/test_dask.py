"""Dask arrays: lazy, one task per chunk per stage, equal to the NumPy path, on a real cluster.

The cluster tests start a `distributed.LocalCluster` of 2 worker processes with 1 thread each
and stop it themselves; every wait on it is bounded (`TIMEOUT`). Results are compared with
eigdiff's NumPy path on the same matrices: each chunk runs that very path, so the two agree
to rounding; the tolerance is 16 u times the reference's largest entry (a block's batched
matrix products may take another kernel than the whole batch's).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from typing import Any

import numpy as np
import pytest

da = pytest.importorskip("dask.array", reason="the Dask backend needs dask: pip install 'eigdiff[dask]'")
distributed = pytest.importorskip(
    "distributed", reason="the cluster tests need distributed: pip install 'eigdiff[dask]'"
)
import dask
from _spectra import matrix_from_spectrum

import eigdiff
from eigdiff.backends import SUPPORT

TIMEOUT = 120  # seconds: the longest any test waits on the cluster
pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")  # distributed's sockets, at shutdown


def _stack(B: int, M: int, seed: int, dtype: str = "float64") -> np.ndarray:
    """B symmetric M×M matrices: every third one random, the rest with exact ties (a triple, a
    pair) or a zero eigenvalue, so that every degeneracy mode has ties to act on."""
    rng = np.random.default_rng(seed)
    lmd = np.sort(rng.standard_normal((B, M)), axis=-1)
    lmd[1::3, : M // 2] = lmd[1::3, :1]  # a cluster of M/2 equal eigenvalues
    lmd[2::3, -2:] = lmd[2::3, -1:]  # the top two tied
    lmd[2::3, 0] = 0.0
    return matrix_from_spectrum(lmd, rng).astype(dtype)


def _close(result: Any, reference: np.ndarray) -> None:
    result = np.asarray(result)
    assert result.shape == reference.shape and result.dtype == reference.dtype
    scale = max(1.0, float(np.abs(reference).max(initial=0.0)))
    np.testing.assert_allclose(result, reference, rtol=0, atol=16 * np.finfo(reference.dtype).eps * scale)


def _refuse(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("eigdiff computed something before it was asked to")


@pytest.fixture(scope="module")
def client() -> Any:
    """A real cluster: 2 worker processes, 1 thread each, the dashboard on a free port."""
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=logging.ERROR
        ) as cluster,
        distributed.Client(cluster, timeout=TIMEOUT) as c,
    ):
        yield c


def _compute(client: Any, *arrays: Any) -> tuple[Any, ...]:
    futures = client.compute(list(arrays))
    return tuple(f.result(timeout=TIMEOUT) for f in futures)


# --------------------------------------------------------------------------- results on the cluster


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("top_k", [None, 2])
@pytest.mark.parametrize("degeneracy", eigdiff.DEGENERACY_MODES)
def test_vjp_jvp_backward_equal_numpy_on_a_cluster(client: Any, dtype: str, top_k: int | None, degeneracy: str) -> None:
    Xn = _stack(30, 5, seed=1, dtype=dtype)
    rng = np.random.default_rng(2)
    K = top_k or 5
    Vn, gn, dXn = (rng.standard_normal(s).astype(dtype) for s in [(30, 5, K), (30, K), (30, 5, 5)])
    X = da.from_array(Xn, chunks=(7, 5, 5))
    options = {"top_k": top_k, "degeneracy": degeneracy}

    (lmd, Y), pullback = eigdiff.vjp(X, **options)
    dX = pullback(da.from_array(Vn, chunks=(10, 5, K)), da.from_array(gn, chunks=(4, K)))  # other chunks: conformed
    (_, _), (dlmd, dY) = eigdiff.jvp(X, da.from_array(dXn, chunks=(7, 5, 5)), **options)
    full = eigdiff.eigh(X)
    dX_backward = eigdiff.backward(*full, da.from_array(Vn, chunks=(7, 5, K)), None, degeneracy=degeneracy)
    assert dX.chunks == X.chunks and lmd.chunks[0] == dlmd.chunks[0] == X.chunks[0]

    (lmd0, Y0), pullback0 = eigdiff.vjp(Xn, **options)
    (_, _), (dlmd0, dY0) = eigdiff.jvp(Xn, dXn, **options)
    reference = [
        lmd0,
        Y0,
        pullback0(Vn, gn),
        dlmd0,
        dY0,
        eigdiff.backward(*eigdiff.eigh(Xn), Vn, None, degeneracy=degeneracy),
    ]
    for result, expected in zip(_compute(client, lmd, Y, dX, dlmd, dY, dX_backward), reference):
        _close(result, expected)


def test_eigh_and_matrix_functions_equal_numpy_on_a_cluster(client: Any) -> None:
    Xn = _stack(20, 4, seed=3)
    Sn = Xn @ Xn.transpose(0, 2, 1) + np.eye(4)  # positive definite; ties survive
    Gn = np.random.default_rng(4).standard_normal(Xn.shape)
    X, S, G = (da.from_array(a, chunks=(6, 4, 4)) for a in (Xn, Sn, Gn))
    lmd, Y = eigdiff.eigh(X, top_k=3)
    F, pullback = eigdiff.matrix_function_vjp(S, "sqrt", floor=0.0)
    F_jvp, dF = eigdiff.matrix_function_jvp(X, G, np.tanh, lambda x: 1 - np.tanh(x) ** 2)
    expm = eigdiff.expm(X)
    F0, pullback0 = eigdiff.matrix_function_vjp(Sn, "sqrt", floor=0.0)
    F_jvp0, dF0 = eigdiff.matrix_function_jvp(Xn, Gn, np.tanh, lambda x: 1 - np.tanh(x) ** 2)
    reference = [*eigdiff.eigh(Xn, top_k=3), F0, pullback0(Gn), F_jvp0, dF0, eigdiff.expm(Xn)]
    for result, expected in zip(_compute(client, lmd, Y, F, pullback(G), F_jvp, dF, expm), reference):
        _close(result, expected)


def test_a_worker_killed_mid_computation_loses_nothing() -> None:
    """SIGKILL the worker holding the most finished chunks while the rest still run: the
    scheduler recomputes the lost chunks on the survivor (and the restarted worker), and the
    gradient is the NumPy path's. Each chunk is slowed by a 50 ms sleep (as if read from disk)
    so that the computation lasts long enough to be interrupted."""
    B, M, chunk = 48 * 40, 5, 40
    Xn = _stack(B, M, seed=5)
    Vn = np.random.default_rng(6).standard_normal((B, M, 2))
    X = da.from_array(Xn, chunks=(chunk, M, M)).map_blocks(_slow_identity, meta=np.empty((0, 0, 0)))
    (_, _), pullback = eigdiff.vjp(X, top_k=2)
    dX = pullback(da.from_array(Vn, chunks=(chunk, M, 2)), None)
    (_, _), pullback0 = eigdiff.vjp(Xn, top_k=2)
    expected = pullback0(Vn, None)

    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=logging.CRITICAL
        ) as cluster,
        distributed.Client(cluster, timeout=TIMEOUT) as client,
    ):
        pids = client.run(os.getpid)
        future = client.compute(dX)
        deadline = time.monotonic() + TIMEOUT
        while True:  # wait until a worker holds finished chunks of the gradient
            held = client.run_on_scheduler(_finished_chunks, name=dX.name)
            victim, count = max(held.items(), key=lambda item: item[1])
            if count >= 4 or future.done() or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        assert not future.done(), "the computation finished before a worker could be killed; slow the chunks down"
        assert count >= 4, held  # the victim's finished chunks are lost with it and must be recomputed
        os.kill(pids[victim], signal.SIGKILL)
        result = future.result(timeout=TIMEOUT)
        assert victim not in client.scheduler_info()["workers"]  # it was really lost (a new one replaced it)
    _close(result, expected)


def _slow_identity(block: np.ndarray) -> np.ndarray:
    time.sleep(0.05)
    return block


def _finished_chunks(dask_scheduler: Any, name: str) -> dict[str, int]:
    """How many finished chunks of the array ``name`` each worker holds."""
    return {address: sum(ts.key[0] == name for ts in ws.has_what) for address, ws in dask_scheduler.workers.items()}


def test_cupy_blocks_run_the_cupy_path() -> None:
    """A dask array of CuPy blocks computes on the GPU and matches eigdiff's CuPy path. Compared
    through basis-independent quantities (λ; the pullback of g_lmd = 1, the projector Y Yᵀ onto
    the top two eigenvectors, which contain whole ties), since cuSOLVER may pick other bases
    inside tied eigenspaces than for the whole batch."""
    from _backends import BACKENDS

    BACKENDS["cupy"].load()  # skips, with the reason, without CuPy or a GPU
    import cupy as cp

    Xn = _stack(12, 4, seed=15)
    Xc = cp.asarray(Xn)
    X = da.from_array(Xc, chunks=(5, 4, 4))
    (lmd, Y), pullback = eigdiff.vjp(X, top_k=2)
    dX = pullback(None, da.ones_like(lmd))
    assert type(dX._meta) is cp.ndarray and type(lmd._meta) is cp.ndarray
    lmd_c, dX_c = dask.compute(lmd, dX, scheduler="sync")
    assert type(dX_c) is cp.ndarray
    (lmd0, _), pullback0 = eigdiff.vjp(Xc, top_k=2)
    _close(cp.asnumpy(lmd_c), cp.asnumpy(lmd0))
    _close(cp.asnumpy(dX_c), cp.asnumpy(pullback0(None, cp.ones_like(lmd0))))


# --------------------------------------------------------------------------- laziness and graph shape


def _every_call(X: Any) -> dict[str, Any]:
    """Every eigdiff function on dask X, as lazy arrays."""
    (lmd, Y), pullback = eigdiff.vjp(X, top_k=2)
    V = da.ones(Y.shape, chunks=Y.chunks, dtype=X.dtype)
    full = eigdiff.eigh(X)
    (_, _), (dlmd, dY) = eigdiff.jvp(X, X, top_k=2)
    F, pullback_f = eigdiff.matrix_function_vjp(X, "exp")
    return {
        "eigh": eigdiff.eigh(X, top_k=2)[1],
        "vjp": pullback(V, None),
        "jvp": dY,
        "backward": eigdiff.backward(*full, V, None),
        "matrix_function": eigdiff.matrix_function(X, "exp"),
        "matrix_function_vjp": pullback_f(X),
        "matrix_function_jvp": eigdiff.matrix_function_jvp(X, X, "exp")[1],
    }


def test_nothing_computes_until_asked() -> None:
    evaluated = []

    def source(block: np.ndarray) -> np.ndarray:
        evaluated.append(block.shape)
        return block

    X = da.from_array(_stack(12, 4, seed=7), chunks=(3, 4, 4)).map_blocks(source, meta=np.empty((0, 0, 0)))
    with dask.config.set(scheduler=_refuse):  # any compute inside eigdiff would call it
        results = _every_call(X)
    assert evaluated == []
    computed = dask.compute(*results.values(), scheduler="sync")
    assert len(evaluated) > 0 and all(np.isfinite(r).all() for r in computed)


def test_one_task_per_chunk_per_stage_and_no_exchange_between_chunks() -> None:
    """Every layer of every result's graph has one task per chunk, and every task depends only on
    tasks of its own chunk of the batch (no all-to-all, no rechunking of X)."""
    X = da.from_array(_stack(12, 4, seed=8), chunks=(3, 4, 4))
    for name, result in _every_call(X).items():
        graph = result.__dask_graph__()
        for layer_name, layer in graph.layers.items():
            assert len(layer) == X.numblocks[0], (name, layer_name, len(layer))
        tasks = dict(graph)
        for key in tasks:
            for dependency in dask.core.get_dependencies(tasks, key):
                assert dependency[1] == key[1], (name, key, dependency)  # the same batch chunk


def test_results_keep_the_batch_chunks_and_block_type() -> None:
    X = da.from_array(_stack(10, 4, seed=9, dtype="float32"), chunks=(4, 4, 4))
    for name, result in _every_call(X).items():
        assert result.chunks[0] == X.chunks[0] and result.dtype == X.dtype, name
        assert type(result._meta) is np.ndarray, name
    batched = da.from_array(_stack(6, 3, seed=10).reshape(2, 3, 3, 3), chunks=(1, 2, 3, 3))
    lmd, Y = eigdiff.eigh(batched)
    assert lmd.chunks == ((1, 1), (2, 1), (3,)) and Y.chunks == batched.chunks
    _close(Y.compute(scheduler="sync"), eigdiff.eigh(batched.compute())[1])


# --------------------------------------------------------------------------- errors


def test_split_matrices_raise_and_say_how_to_rechunk() -> None:
    X = da.from_array(_stack(4, 4, seed=11), chunks=(2, 2, 4))
    with pytest.raises(ValueError, match=r"X's last two axes are split.*X.rechunk\(\{-2: -1, -1: -1\}\)"):
        eigdiff.eigh(X)
    lmd, Y = eigdiff.eigh(X.rechunk({-2: -1, -1: -1}))  # the advice works
    with pytest.raises(ValueError, match="Y's last two axes are split"):
        eigdiff.backward(lmd, Y.rechunk({-1: 2}), None, lmd)


def test_bad_inputs_raise_at_call_time() -> None:
    X = da.from_array(_stack(4, 3, seed=12), chunks=(2, 3, 3))
    (lmd, Y), pullback = eigdiff.vjp(X, top_k=2)
    with pytest.raises(TypeError, match="X must be a real float32 or float64 array, got dtype int64"):
        eigdiff.eigh(da.ones((2, 3, 3), dtype=int))
    with pytest.raises(ValueError, match="X must be square"):
        eigdiff.eigh(da.ones((2, 3, 4)))
    with pytest.raises(ValueError, match=r"X has unknown chunk sizes.*compute_chunk_sizes"):
        eigdiff.eigh(X[da.ones(4, chunks=2) > 0])
    with pytest.raises(TypeError, match="X is a dask array of blocks eigdiff refuses: block is a masked array"):
        eigdiff.eigh(da.from_array(np.ma.masked_array(np.eye(3)), chunks=(3, 3)))
    with pytest.raises(TypeError, match="lmd is a numpy.ndarray but the decomposition is dask"):
        eigdiff.backward(np.ones(3), da.eye(3))
    with pytest.raises(TypeError, match="V is a numpy.ndarray"):
        pullback(np.ones((4, 3, 2)), None)
    with pytest.raises(ValueError, match="top_k must be in"):
        eigdiff.eigh(X, top_k=4)
    with pytest.raises(ValueError, match="degeneracy must be one of"):
        eigdiff.vjp(X, degeneracy="nope")
    with pytest.raises(ValueError, match=r"the pullback takes cotangents for the 2 selected eigenpairs, got K = 3"):
        pullback(None, da.ones((4, 3)))
    with pytest.raises(ValueError, match="dX must have X's shape"):
        eigdiff.jvp(X, X[:2])
    with pytest.raises(ValueError, match="p is only for f='power'"):
        eigdiff.matrix_function(X, "exp", p=2)


def test_the_forward_method_reaches_every_chunk() -> None:
    """``method="small"`` runs in each chunk (equal to the NumPy path's small solver); a bad
    method raises at call time; "auto" is resolved per chunk, by the chunk's size."""
    Xn = _stack(40, 3, seed=16)
    X = da.from_array(Xn, chunks=(10, 3, 3))
    lmd, Y = eigdiff.eigh(X, method="small")
    lmd0, Y0 = eigdiff.eigh(Xn, method="small")
    _close(lmd.compute(scheduler="sync"), lmd0)
    _close(Y.compute(scheduler="sync"), Y0)
    (_, Yv), pullback = eigdiff.vjp(X, top_k=1, method="small")
    (_, dY) = eigdiff.jvp(X, X, method="small")[1]
    assert Yv.shape == (40, 3, 1) and dY.shape == (40, 3, 3)
    with pytest.raises(ValueError, match="method='small' solves M x M matrices"):
        eigdiff.eigh(da.eye(4), method="small")
    with pytest.raises(ValueError, match="method must be one of"):
        eigdiff.vjp(X, method="fast")


def test_bad_values_raise_when_their_chunk_is_computed() -> None:
    Xn = _stack(4, 3, seed=13)
    Xn[3, 0, 0] = np.nan
    X = da.from_array(Xn, chunks=(2, 3, 3))
    lmd, Y = eigdiff.eigh(X)  # lazy: no error yet
    assert np.isfinite(Y[:2].compute(scheduler="sync")).all()  # the clean chunk computes
    with pytest.raises(ValueError, match="X contains NaN or Inf"):
        Y.compute(scheduler="sync")
    with pytest.raises(ValueError, match="lmd must ascend"):
        good = da.from_array(_stack(2, 3, seed=14), chunks=(1, 3, 3))
        l_good, Y_good = eigdiff.eigh(good)
        eigdiff.backward(l_good[..., ::-1], Y_good, None, l_good).compute(scheduler="sync")
    with pytest.raises(ValueError, match="log needs positive eigenvalues"):
        eigdiff.matrix_function(da.from_array(-np.eye(3), chunks=(3, 3)), "log").compute(scheduler="sync")


def test_support_table_row() -> None:
    row = SUPPORT["dask"]
    assert row["autograd"].startswith("none")
    X = da.from_array(np.diag([1.0, 2.0, 3.0]).astype(np.float32), chunks=(3, 3))
    for dtype in row["dtypes"].split(", "):
        lmd, _ = eigdiff.eigh(X.astype(dtype), top_k=2)
        assert lmd.dtype == dtype and lmd.compute(scheduler="sync").dtype == dtype
