"""eigdiff's JAX path against JAX's own eigh derivative: forward + backward under jit.

For each shape, ``jax.jit(jax.grad(L))`` with L = Σ W ∘ Y∘Y + Σ λ over the top k eigenpairs,
once through `eigdiff.eigh` and once through ``jnp.linalg.eigh`` (sliced for top-k), compiled
first, then timed in interleaved rounds (median per call, ``block_until_ready``). Ratios are
eigdiff / native, measured side by side in one run.

``--eager``: the same shapes called eagerly (no jit around them), ``eigdiff.vjp`` and its
pullback against ``jax.vjp`` of ``jnp.linalg.eigh``: the first call at each shape (JAX compiles
for every new shape; eigdiff's adapter compiles its forward and backward whole) and the median
of interleaved rounds after it.

    python benchmarks/jax_speed.py [--rounds 15] [--eager] [--json out.json]
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


def _eager_calls(X: jnp.ndarray, V: jnp.ndarray, g: jnp.ndarray, k: int | None) -> dict:
    """eigdiff's vjp and pullback, and JAX's own, as eager calls that return dL/dX."""
    first = X.shape[-1] - V.shape[-1]

    def ours() -> jnp.ndarray:
        _, pullback = eigdiff.vjp(X, top_k=k)
        return pullback(V, g)

    def native() -> jnp.ndarray:
        _, pullback = jax.vjp(lambda Z: tuple(a[..., first:] for a in jnp.linalg.eigh(Z)), X)
        return pullback((g, V))[0]

    return {"eigdiff": ours, "native": native}


def _eager(rounds: int) -> list[dict]:
    rows = []
    print(
        f"{'B':>5} {'M':>4} {'k':>4} {'dtype':>8} {'first: eigdiff s':>17} {'native s':>9} {'eigdiff ms':>11} "
        f"{'native ms':>10} {'ratio':>6}"
    )
    for B, M, k in SHAPES:
        kk = M if k is None else k
        for dtype in (jnp.float32, jnp.float64):
            rng = np.random.default_rng(M)
            X = jnp.asarray(rng.standard_normal((B, M, M)), dtype=dtype)
            V = jnp.asarray(rng.standard_normal((B, M, kk)), dtype=dtype)
            g = jnp.ones((B, kk), dtype=dtype)

            fns = _eager_calls(X, V, g, k)
            first, times = {}, {name: [] for name in fns}
            for name, f in fns.items():
                start = time.perf_counter()
                f().block_until_ready()
                first[name] = time.perf_counter() - start
            for _ in range(rounds):
                for name, f in fns.items():
                    start = time.perf_counter()
                    f().block_until_ready()
                    times[name].append(time.perf_counter() - start)
            ms = {n: 1e3 * statistics.median(t) for n, t in times.items()}
            row = dict(
                B=B, M=M, k=k, dtype=jnp.dtype(dtype).name, first_s=first, ms=ms, ratio=ms["eigdiff"] / ms["native"]
            )
            rows.append(row)
            print(
                f"{B:5d} {M:4d} {k or 'all':>4} {row['dtype']:>8} {first['eigdiff']:17.2f} {first['native']:9.2f} "
                f"{ms['eigdiff']:11.3f} {ms['native']:10.3f} {row['ratio']:6.2f}",
                flush=True,
            )
    return rows


def _jitted(rounds: int) -> list[dict]:
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
            for _ in range(rounds):
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
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--json", default=None)
    parser.add_argument("--eager", action="store_true", help="eager calls: first call and steady state")
    args = parser.parse_args()
    rows = _eager(args.rounds) if args.eager else _jitted(args.rounds)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"jax": jax.__version__, "devices": str(jax.devices()), "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
