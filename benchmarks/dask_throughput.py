"""Throughput of eigdiff on a Dask `LocalCluster`, and peak memory per worker against chunk size.

The workload is a training step's worth of work on a stack of 3×3 float64 matrices (a
diffusion-tensor volume, say): the forward (`eigdiff.vjp`, all eigenpairs) and the backward
(the pullback of random cotangents for Y and λ), both lazy, generated chunk by chunk on the
workers (no data moves from the client), and reduced to small sums so that the result
transfer does not count. Each configuration gets a fresh cluster of worker processes with one
thread each, so that a worker's peak resident memory (``ru_maxrss``) belongs to that run; it is
reported with the worker's memory before the run (Python, NumPy, Dask, distributed) and as a
multiple of one chunk's input (B × 9 × 8 bytes).

    python benchmarks/dask_throughput.py [--matrices 10_000_000] [--chunk 250_000] [--memory] [--json out.json]

Without ``--memory`` it measures throughput (matrices per second) with 1 and 2 workers at one
chunk size; with it, the peak memory per worker for several chunk sizes and two batch sizes.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import time
from typing import Any

import dask
import dask.array as da
import distributed
import numpy as np

import eigdiff

M = 3


def _block(seed: int, block_info: dict[Any, Any] | None = None) -> np.ndarray:
    """One chunk of random symmetric matrices, made on the worker from the chunk's index."""
    info = block_info[None]
    A = np.random.default_rng([seed, *info["chunk-location"]]).standard_normal(info["chunk-shape"])
    return A + np.swapaxes(A, -1, -2)


def random_stack(B: int, chunk: int, seed: int) -> da.Array:
    """A lazy (B, 3, 3) stack of random symmetric matrices in chunks of ``chunk`` matrices."""
    template = da.empty((B, M, M), chunks=(chunk, M, M))
    return da.map_blocks(_block, seed, chunks=template.chunks, dtype=np.float64, meta=np.empty((0, 0, 0)))


def workload(B: int, chunk: int) -> list[Any]:
    """The lazy forward + backward over B 3×3 matrices in chunks of ``chunk`` matrices, reduced."""
    X, V = random_stack(B, chunk, 0), random_stack(B, chunk, 1)
    (lmd, _), pullback = eigdiff.vjp(X)
    dX = pullback(V, V[..., 0])
    return [lmd.sum(axis=0), dX.sum(axis=0)]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def run(B: int, chunk: int, workers: int) -> dict[str, float]:
    with (
        distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, dashboard_address=":0", silence_logs=logging.ERROR
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        before = client.run(_peak_rss_mb)
        graph = workload(B, chunk)
        start = time.perf_counter()
        dask.compute(*graph)
        seconds = time.perf_counter() - start
        peak = client.run(_peak_rss_mb)
    chunk_mb = chunk * M * M * 8 / 2**20
    return {
        "matrices": B,
        "chunk": chunk,
        "workers": workers,
        "seconds": seconds,
        "matrices_per_second": B / seconds,
        "worker_rss_before_mb": max(before.values()),
        "worker_peak_mb": max(peak.values()),
        "chunk_input_mb": chunk_mb,
        "peak_increase_per_chunk": (max(peak.values()) - max(before.values())) / chunk_mb,
    }


def main(argv: list[str] | None = None) -> list[dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matrices", type=lambda s: int(s.replace("_", "")), default=10_000_000)
    parser.add_argument("--chunk", type=lambda s: int(s.replace("_", "")), default=250_000)
    parser.add_argument("--memory", action="store_true", help="peak memory per worker against chunk size")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    rows = []
    if args.memory:
        configs = [(args.matrices, c, 2) for c in (62_500, 250_000, 1_000_000)]
        configs.append((args.matrices // 5, 250_000, 2))  # the same chunks, a fifth of the batch
    else:
        configs = [(args.matrices, args.chunk, w) for w in (1, 2)]
    for B, chunk, workers in configs:
        row = run(B, chunk, workers)
        rows.append(row)
        print(
            f"B={B:>11,} chunk={chunk:>9,} ({row['chunk_input_mb']:6.1f} MB) workers={workers}: "
            f"{row['seconds']:6.2f} s, {row['matrices_per_second']:>12,.0f} matrices/s; worker RSS "
            f"{row['worker_rss_before_mb']:.0f} MB before, peak {row['worker_peak_mb']:.0f} MB "
            f"(+{row['peak_increase_per_chunk']:.1f} x chunk)",
            flush=True,
        )
    if not args.memory:
        print(f"speed-up with 2 workers: {rows[1]['matrices_per_second'] / rows[0]['matrices_per_second']:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
