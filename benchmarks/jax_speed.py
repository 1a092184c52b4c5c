"""eigdiff's JAX path against JAX's own eigh derivative: forward + backward under jit.

For each shape, ``jax.jit(jax.grad(L))`` with L = Σ W ∘ Y∘Y + Σ λ over the top k eigenpairs,
once through `eigdiff.eigh` and once through ``jnp.linalg.eigh`` (sliced for top-k), compiled
first, then timed in interleaved rounds (median per call, ``block_until_ready``). Ratios are
eigdiff / native, measured side by side in one run.

    python benchmarks/jax_speed.py [--rounds 15] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import jax

jax.config.update("jax_enable_x64", True)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import eigdiff  # noqa: E402

SHAPES = [(5, 32, None), (1000, 32, None), (64, 128, None), (8, 512, None), (8, 512, 8)]


def losses(k: int | None, M: int, W: jnp.ndarray):
    kk = M if k is None else k

    def ours(X):
        lmd, Y = eigdiff.eigh(X, top_k=k)
        return jnp.sum(W[..., M - kk :] * Y * Y) + jnp.sum(lmd)

    def native(X):
        lmd, Y = jnp.linalg.eigh(X)
        return jnp.sum(W[..., M - kk :] * Y[..., M - kk :] ** 2) + jnp.sum(lmd[..., M - kk :])

    return ours, native


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    rows = []
    print(f"{'B':>5} {'M':>4} {'k':>4} {'dtype':>8} {'eigdiff ms':>11} {'native ms':>10} {'ratio':>6}")
    for B, M, k in SHAPES:
        for dtype in (jnp.float32, jnp.float64):
            rng = np.random.default_rng(M)
            A = rng.standard_normal((B, M, M))
            X = jnp.asarray((A + np.swapaxes(A, -1, -2)) / 2, dtype=dtype)
            W = jnp.asarray(rng.standard_normal((B, M, M)), dtype=dtype)
            fns = {name: jax.jit(jax.grad(f)) for name, f in zip(("eigdiff", "native"), losses(k, M, W))}
            for f in fns.values():
                f(X).block_until_ready()  # compile
            once = time.perf_counter()
            fns["native"](X).block_until_ready()
            reps = max(1, int(0.05 / max(time.perf_counter() - once, 1e-6)))
            times: dict[str, list[float]] = {name: [] for name in fns}
            for _ in range(args.rounds):
                for name, f in fns.items():
                    start = time.perf_counter()
                    for _ in range(reps):
                        out = f(X)
                    out.block_until_ready()
                    times[name].append((time.perf_counter() - start) / reps)
            ours, native = (1e3 * statistics.median(times[n]) for n in ("eigdiff", "native"))
            row = dict(
                B=B, M=M, k=k, dtype=jnp.dtype(dtype).name, eigdiff_ms=ours, native_ms=native, ratio=ours / native
            )
            rows.append(row)
            print(
                f"{B:5d} {M:4d} {k or 'all':>4} {row['dtype']:>8} {ours:11.3f} {native:10.3f} {ours / native:6.2f}",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"jax": jax.__version__, "devices": str(jax.devices()), "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
