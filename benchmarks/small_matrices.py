"""Millions of tiny matrices: eigdiff's small solver (``method="small"``) against LAPACK's eigh.

For (B, M, M) stacks of random symmetric matrices, M = 2 and 3, float32 and float64, side by side
in one run (interleaved rounds, median per call):

- NumPy: ``eigdiff.eigh(X, method="small")`` against ``np.linalg.eigh``, and the forward's peak
  memory (``tracemalloc``) as a multiple of the input's size;
- torch (CPU): the forward against ``torch.linalg.eigh``, and forward + backward of
  L = Σ W ∘ Y∘Y + Σ λ through ``eigdiff.eigh(X, method="small")`` against torch's native eigh
  autograd.

``--blocks`` times the small solver on (B, 3, 3) for the slice sizes it can work in (the numbers
behind the adapters' ``small_block``: 8,192 for NumPy, 65,536 for torch on the CPU).

``--backward-slices`` times the core's backward (eager, in place) on NumPy arrays and CPU tensors
for the slices of the batch it can work in, in elements of an (M, M) array per slice, on
(B, 2, 2), (B, 3, 3), (B/16, 8, 8) and (B/128, 32, 32) stacks: the numbers behind the adapters'
``backward_slice`` (2¹⁸ for NumPy, 2²⁰ for torch).

``--compiled`` adds, for torch, the small solver under ``torch.compile(fullgraph=True)``: the
forward alone, and the forward with the loss (whose backward AOTAutograd compiles with it),
with the time of the first, compiling call.

``--crossover`` instead times small stacks (B = 1 to 4096) to find from which batch the small
solver wins: the numbers behind ``eigdiff._small.AUTO_MIN_BATCH``.

``--gpu`` times the same comparisons on an NVIDIA GPU, for torch CUDA tensors and CuPy arrays
(each call followed by a device synchronization): the forward against the library's batched eigh
for B = 1 to ``--batch`` (the crossover), and for torch forward + backward against native autograd
at ``--batch``.

    python benchmarks/small_matrices.py [--batch 1_000_000] [--rounds 5] [--compiled] [--blocks | --backward-slices | --crossover | --gpu] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

import eigdiff


def _median_times(fns: dict[str, Callable[[], Any]], rounds: int) -> dict[str, float]:
    """Median seconds per call of each function, in interleaved rounds (after one warm-up each),
    every other round in reverse order (a call pays for the state the one before it left)."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(rounds):
        for name, fn in list(fns.items())[:: -1 if r % 2 else 1]:
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def _stack(B: int, M: int, dtype: str, seed: int = 0) -> np.ndarray:
    A = np.random.default_rng(seed).standard_normal((B, M, M))
    return ((A + np.swapaxes(A, -1, -2)) / 2).astype(dtype)


def numpy_row(B: int, M: int, dtype: str, rounds: int) -> dict[str, Any]:
    X = _stack(B, M, dtype)
    t = _median_times({"small": lambda: eigdiff.eigh(X, method="small"), "lapack": lambda: np.linalg.eigh(X)}, rounds)
    tracemalloc.start()
    eigdiff.eigh(X, method="small")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {
        "library": "numpy",
        "B": B,
        "M": M,
        "dtype": dtype,
        "forward_small_s": t["small"],
        "forward_lapack_s": t["lapack"],
        "forward_speedup": t["lapack"] / t["small"],
        "forward_peak_over_input": peak / X.nbytes,
    }


def torch_row(B: int, M: int, dtype: str, rounds: int, compiled: bool = False) -> dict[str, Any]:
    """Forward, and forward + backward of the loss, eigdiff's small solver against torch's eigh;
    with ``compiled``, also both under ``torch.compile(fullgraph=True)`` (the forward alone, and
    the forward with the loss, whose backward AOTAutograd compiles too), and the compile times."""
    import torch

    X = torch.from_numpy(_stack(B, M, dtype))
    W = torch.randn(X.shape, dtype=X.dtype)

    def small(A: Any) -> Any:
        return eigdiff.eigh(A, method="small")

    def loss(eigh: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def value(A: Any) -> Any:
            lmd, Y = eigh(A)
            return (W * Y * Y).sum() + lmd.sum()

        return value

    def step(value: Callable[[Any], Any]) -> Callable[[], Any]:
        def run() -> Any:
            Xg = X.detach().requires_grad_()
            return torch.autograd.grad(value(Xg), Xg)

        return run

    fns = {
        "forward_small": lambda: small(X),
        "forward_native": lambda: torch.linalg.eigh(X),
        "step_small": step(loss(small)),
        "step_native": step(loss(torch.linalg.eigh)),
    }
    row: dict[str, Any] = {"library": "torch", "B": B, "M": M, "dtype": dtype}
    if compiled:
        forward = torch.compile(small, fullgraph=True)
        fns["forward_compiled"] = lambda: forward(X)
        fns["step_compiled"] = step(torch.compile(loss(small), fullgraph=True))
        for name in ("forward_compiled", "step_compiled"):
            start = time.perf_counter()
            fns[name]()  # compiles
            row[f"{name}_compile_s"] = time.perf_counter() - start
    t = _median_times(fns, rounds)
    row.update({f"{name}_s": seconds for name, seconds in t.items()})
    row["forward_speedup"] = t["forward_native"] / t["forward_small"]
    row["step_speedup"] = t["step_native"] / t["step_small"]
    if compiled:
        row["forward_compiled_speedup"] = t["forward_native"] / t["forward_compiled"]
        row["step_compiled_speedup"] = t["step_native"] / t["step_compiled"]
    return row


def blocks(B: int, rounds: int) -> list[dict[str, Any]]:
    import array_api_compat.numpy as xp_numpy
    import array_api_compat.torch as xp_torch
    import torch

    from eigdiff import _small

    rows = []
    for dtype in ("float32", "float64"):
        X = _stack(B, 3, dtype)
        T = torch.from_numpy(X)
        sizes = (None, 4096, 8192, 16384, 65536)
        t = _median_times(
            {
                **{f"numpy {b}": lambda b=b, X=X: _small.eigh(X, xp_numpy, block=b) for b in sizes},
                **{f"torch {b}": lambda b=b, T=T: _small.eigh(T, xp_torch, block=b) for b in sizes},
            },
            rounds,
        )
        for name, seconds in t.items():
            library, block = name.split()
            rows.append({"library": library, "dtype": dtype, "block": block, "ms": seconds * 1e3})
            print(f"({B:,}, 3, 3) {dtype} {library:<5} block {block:>6}: {seconds * 1e3:7.1f} ms", flush=True)
    return rows


def backward_slices(B: int, rounds: int) -> list[dict[str, Any]]:
    import array_api_compat.numpy as xp_numpy
    import array_api_compat.torch as xp_torch
    import torch

    from eigdiff import _core

    rows = []
    for n, M in ((B, 2), (B, 3), (B // 16, 8), (B // 128, 32)):
        for dtype in ("float32", "float64"):
            rng = np.random.default_rng(0)
            lmd, Y = np.linalg.eigh(_stack(n, M, dtype))
            V, g = rng.standard_normal(Y.shape).astype(dtype), rng.standard_normal(lmd.shape).astype(dtype)
            arrays = {
                "numpy": (xp_numpy, (lmd, Y, V, g)),
                "torch": (xp_torch, tuple(map(torch.from_numpy, (lmd, Y, V, g)))),
            }
            calls = {}
            for library, (xp, args) in arrays.items():
                for elements in (None, 2**16, 2**18, 2**20):
                    block = None if elements is None else max(1, elements // (M * M))
                    calls[f"{library} {elements}"] = lambda xp=xp, args=args, block=block, M=M: (
                        _core.backward_unchecked(
                            *args, M, eps=None, degeneracy="mask", overwrite=True, xp=xp, block=block
                        )
                    )
            t = _median_times(calls, rounds)
            for name, seconds in t.items():
                library, elements = name.split()
                whole = t[f"{library} None"]
                rows.append(
                    {"library": library, "B": n, "M": M, "dtype": dtype, "elements": elements, "ms": seconds * 1e3}
                )
                print(
                    f"({n:,}, {M}, {M}) {dtype} {library:<5} slice {elements:>7}: {seconds * 1e3:7.1f} ms "
                    f"({seconds / whole:.2f} of the whole batch's)",
                    flush=True,
                )
    return rows


def crossover(rounds: int) -> list[dict[str, Any]]:
    import torch

    rows = []
    for B in (1, 4, 16, 64, 256, 1024, 4096):
        for M in (2, 3):
            X = _stack(B, M, "float64")
            T = torch.from_numpy(X)
            t = _median_times(
                {
                    "numpy_small": lambda X=X: eigdiff.eigh(X, method="small"),
                    "numpy_full": lambda X=X: eigdiff.eigh(X, method="full"),
                    "torch_small": lambda T=T: eigdiff.eigh(T, method="small"),
                    "torch_full": lambda T=T: eigdiff.eigh(T, method="full"),
                },
                rounds,
            )
            row = {"B": B, "M": M, **{k: v * 1e6 for k, v in t.items()}}
            rows.append(row)
            print(
                f"B={B:>5} M={M}: numpy small {row['numpy_small']:8.1f} us, full {row['numpy_full']:8.1f} us; "
                f"torch small {row['torch_small']:8.1f} us, full {row['torch_full']:8.1f} us",
                flush=True,
            )
    return rows


def gpu(B_max: int, rounds: int, sizes: tuple[int, ...] = (1, 64, 1024, 16384, 262144)) -> list[dict[str, Any]]:
    """The small solver against the library's eigh on the GPU, torch CUDA and CuPy, for each
    batch in ``sizes`` up to B_max and B_max itself (forward + backward there, for torch)."""
    import torch

    libraries: dict[str, tuple[Callable[[np.ndarray], Any], Callable[[], None]]] = {
        "torch:cuda": (lambda a: torch.as_tensor(a, device="cuda"), torch.cuda.synchronize)
    }
    try:
        import cupy

        libraries["cupy"] = (cupy.asarray, lambda: cupy.cuda.Device().synchronize())
    except ImportError:
        print("CuPy is not installed: torch CUDA only", flush=True)

    def synced(fn: Callable[[], Any], sync: Callable[[], None]) -> Callable[[], Any]:
        def run() -> Any:
            out = fn()
            sync()
            return out

        return run

    rows = []
    sizes = tuple(sorted({b for b in (*sizes, B_max) if b <= B_max}))
    for library, (convert, sync) in libraries.items():
        for M in (3, 2):
            for dtype in ("float32", "float64"):
                for B in sizes:
                    X = convert(_stack(B, M, dtype))
                    fns = {
                        "small": synced(lambda X=X: eigdiff.eigh(X, method="small"), sync),
                        "full": synced(lambda X=X: eigdiff.eigh(X, method="full"), sync),
                    }
                    if library == "torch:cuda" and B == B_max:
                        W = torch.randn(X.shape, dtype=X.dtype, device=X.device)

                        def step(
                            eigh: Callable[[Any], Any], X: Any = X, W: Any = W, sync: Any = sync
                        ) -> Callable[[], Any]:
                            def run() -> Any:
                                Xg = X.detach().requires_grad_()
                                lmd, Y = eigh(Xg)
                                return torch.autograd.grad((W * Y * Y).sum() + lmd.sum(), Xg)

                            return synced(run, sync)

                        fns["step_small"] = step(lambda A: eigdiff.eigh(A, method="small"))
                        fns["step_native"] = step(torch.linalg.eigh)
                    row = {"library": library, "B": B, "M": M, "dtype": dtype}
                    try:
                        fns["full"]()
                    except RuntimeError as error:  # cuSOLVER refuses some large batches
                        row["full_error"] = str(error).splitlines()[0][:200]
                        print(f"{library} ({B:,}, {M}, {M}) {dtype}: the library's eigh failed: {row['full_error']}")
                        fns = {name: fn for name, fn in fns.items() if name not in ("full", "step_native")}
                    t = _median_times(fns, rounds)
                    row.update({f"{k}_s": v for k, v in t.items()})
                    rows.append(row)
                    line = f"{library:<10} ({B:>9,}, {M}, {M}) {dtype}: small {t['small'] * 1e3:8.3f} ms"
                    if "full" in t:
                        line += f", library eigh {t['full'] * 1e3:8.3f} ms: {t['full'] / t['small']:7.2f}x"
                    if "step_native" in t:
                        line += (
                            f"; forward+backward {t['step_small'] * 1e3:8.3f} ms vs native "
                            f"{t['step_native'] * 1e3:8.3f} ms: {t['step_native'] / t['step_small']:.2f}x"
                        )
                    print(line, flush=True)
    return rows


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=lambda s: int(s.replace("_", "")), default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--crossover", action="store_true", help="small stacks: where the small solver starts to win")
    parser.add_argument("--blocks", action="store_true", help="the small solver's time per slice size")
    parser.add_argument("--backward-slices", action="store_true", help="the backward's time per slice size")
    parser.add_argument("--gpu", action="store_true", help="torch CUDA and CuPy against their own eigh")
    parser.add_argument("--sizes", help="--gpu: the batches, comma-separated (default 1,64,1024,16384,262144)")
    parser.add_argument("--no-torch", action="store_true", help="NumPy only")
    parser.add_argument("--compiled", action="store_true", help="also torch under torch.compile(fullgraph=True)")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    if args.gpu:
        sizes = (
            tuple(int(b.replace("_", "")) for b in args.sizes.split(","))
            if args.sizes
            else (1, 64, 1024, 16384, 262144)
        )
        rows = gpu(args.batch, args.rounds, sizes)
    elif args.blocks:
        rows = blocks(args.batch, args.rounds)
    elif args.backward_slices:
        rows = backward_slices(args.batch, args.rounds)
    elif args.crossover:
        rows = crossover(max(args.rounds, 21))
    else:
        rows = []
        for M in (3, 2):
            for dtype in ("float32", "float64"):
                row = numpy_row(args.batch, M, dtype, args.rounds)
                rows.append(row)
                print(
                    f"numpy ({args.batch:,}, {M}, {M}) {dtype}: small {row['forward_small_s'] * 1e3:7.1f} ms, "
                    f"np.linalg.eigh {row['forward_lapack_s'] * 1e3:7.1f} ms: {row['forward_speedup']:.2f}x; "
                    f"forward peak {row['forward_peak_over_input']:.1f}x the input",
                    flush=True,
                )
                if not args.no_torch:
                    row = torch_row(args.batch, M, dtype, args.rounds, compiled=args.compiled)
                    rows.append(row)
                    print(
                        f"torch ({args.batch:,}, {M}, {M}) {dtype}: forward {row['forward_small_s'] * 1e3:7.1f} ms vs "
                        f"{row['forward_native_s'] * 1e3:7.1f} ms: {row['forward_speedup']:.2f}x; forward+backward "
                        f"{row['step_small_s'] * 1e3:7.1f} ms vs {row['step_native_s'] * 1e3:7.1f} ms: "
                        f"{row['step_speedup']:.2f}x",
                        flush=True,
                    )
                    if args.compiled:
                        print(
                            f"  compiled: forward {row['forward_compiled_s'] * 1e3:7.1f} ms: "
                            f"{row['forward_compiled_speedup']:.2f}x (compile {row['forward_compiled_compile_s']:.1f} s); "
                            f"forward+backward {row['step_compiled_s'] * 1e3:7.1f} ms: "
                            f"{row['step_compiled_speedup']:.2f}x (compile {row['step_compiled_compile_s']:.1f} s)",
                            flush=True,
                        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
