"""Speed and memory of eigdiff's backward against the tutorial's variants and torch's native eigh.

Timing protocol: every method is timed in interleaved rounds (method A, B, C, ..., then again),
each round a block of calls, so that drift and noise on a shared machine hit all methods alike;
the reported time per call is the median over rounds, the spread the interquartile range.
Peak memory is the largest live allocation during one call above what existed before it: on
CPU the peak of the bytes of tensor storages that the call's aten operations create and that
are still referenced (a dispatch mode sees every operation, native backward formulas included);
on CUDA ``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

import dataclasses
import math
import platform
import statistics
import time
from collections.abc import Callable, Iterable
from typing import Any

import torch

import eigdiff
from eigdiff.profiling import STUDY_METHODS
from eigdiff.profiling.variants import VARIANTS


@dataclasses.dataclass
class Result:
    method: str
    median_ms: float
    q1_ms: float
    q3_ms: float
    peak_bytes: int | None = None
    times_forward: float | None = None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_input(batch: int, size: int, dtype: torch.dtype, device: str | torch.device, seed: int = 0) -> torch.Tensor:
    """A (batch, size, size) random symmetric matrix stack (Gaussian, a.s. simple spectrum)."""
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(batch, size, size, generator=g, dtype=torch.float64)
    return ((A + A.mT) / 2).to(dtype=dtype, device=device)


def native_eigh(X: torch.Tensor, top_k: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """torch's own route: eigh of ½(X + Xᵀ) with autograd through torch.linalg.eigh, then a slice."""
    lmd, Y = torch.linalg.eigh((X + X.mT) / 2)
    k = X.shape[-1] if top_k is None else top_k
    return lmd[..., -k:], Y[..., -k:]


def backward_call(method: str, X: torch.Tensor, top_k: int | None, solver: str = "auto") -> Callable[[], Any]:
    """A closure running one backward of ``method`` (dL/dX from dL/dY = V) on a graph built once;
    ``solver`` is eigdiff's forward method ("auto", "full", "small")."""
    Xg = X.detach().requires_grad_()
    if method == "eigdiff":
        Y = eigdiff.eigh(Xg, top_k=top_k, method=solver)[1]
    elif method == "native":
        Y = native_eigh(Xg, top_k)[1]
    else:
        Y = VARIANTS[method].eigenvectors(Xg, top_k)
    V = torch.randn(Y.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(Y)
    return lambda: torch.autograd.grad(Y, Xg, V, retain_graph=True)


def forward_call(method: str, X: torch.Tensor, top_k: int | None, solver: str = "auto") -> Callable[[], Any]:
    """A closure running one forward (no graph) of eigdiff (by its ``solver`` method) or of the native route."""
    X = X.detach()
    if method == "native":
        return lambda: native_eigh(X, top_k)
    return lambda: eigdiff.eigh(X, top_k=top_k, method=solver)


def time_interleaved(
    calls: dict[str, Callable[[], Any]], device: torch.device, *, iters: int, rounds: int, progress: Any = None
) -> dict[str, list[float]]:
    """Per-call milliseconds of each call, one entry per round; rounds interleave the calls, in
    reverse order every other round, so that no call always runs just after the same one (on a
    shared CPU, what ran before changes the allocator's and the caches' state by up to 10 %)."""
    per_round = max(1, iters // rounds)
    for fn in calls.values():  # warm-up: first-call allocations and kernel selection
        fn()
    _sync(device)
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for r in range(rounds):
        for name, fn in list(calls.items())[:: -1 if r % 2 else 1]:
            _sync(device)
            start = time.perf_counter()
            for _ in range(per_round):
                fn()
            _sync(device)
            samples[name].append((time.perf_counter() - start) * 1e3 / per_round)
            if progress is not None:
                progress.update(per_round)
    return samples


def time_repeated(
    calls: dict[str, Callable[[], Any]], device: torch.device, *, rounds: int, seconds: float = 0.05
) -> dict[str, list[float]]:
    """Per-call milliseconds of each call, one entry per round, as `time_interleaved` takes them,
    but each sample repeats its call for about ``seconds`` (the count fixed by one timed call
    first): single calls of cheap functions would be dominated by the allocator's page faults
    after expensive ones (up to ±10 % per median on the project's shared CPU)."""
    reps = {}
    for name, fn in calls.items():
        start = time.perf_counter()
        fn()
        reps[name] = max(1, int(seconds / max(time.perf_counter() - start, 1e-6)))

    def repeat(fn: Callable[[], Any], n: int) -> Callable[[], Any]:
        return lambda: [fn() for _ in range(n)]

    repeated = {name: repeat(fn, reps[name]) for name, fn in calls.items()}
    samples = time_interleaved(repeated, device, iters=rounds, rounds=rounds)
    return {name: [t / reps[name] for t in s] for name, s in samples.items()}


class _LiveTensorBytes:
    """A dispatch mode that tracks the bytes of storages created under it and still referenced.

    An output that shares its storage with one of the operation's tensor arguments (a view such
    as ``detach`` or ``mT``, an in-place result) allocated nothing and is not counted: its
    storage either existed before the call or was counted when it was made."""

    def __init__(self) -> None:
        from torch.utils._python_dispatch import TorchDispatchMode

        tracker = self

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
                out = func(*args, **(kwargs or {}))
                tracker.record(out, (args, kwargs))
                return out

        self.mode = Mode()
        self.live = self.peak = 0
        self.refs: dict[int, list[int]] = {}  # storage address -> [tensors alive, bytes]

    def record(self, out: Any, inputs: Any = ()) -> None:
        import weakref

        from torch.utils._pytree import tree_leaves

        shared = {t.untyped_storage().data_ptr() for t in tree_leaves(inputs) if isinstance(t, torch.Tensor)}
        for t in tree_leaves(out):
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            key = storage.data_ptr()
            if key == 0 or (key in shared and key not in self.refs):
                continue
            entry = self.refs.get(key)
            if entry is None:
                entry = self.refs[key] = [0, storage.nbytes()]
                self.live += entry[1]
                self.peak = max(self.peak, self.live)
            entry[0] += 1
            weakref.finalize(t, self.release, key)

    def release(self, key: int) -> None:
        entry = self.refs[key]
        entry[0] -= 1
        if entry[0] == 0:
            self.live -= entry[1]
            del self.refs[key]


def peak_memory(fn: Callable[[], Any], device: torch.device) -> int:
    """Bytes: the peak of memory allocated during one ``fn()`` above the level before it.

    On CUDA, the caching allocator's peak. On the CPU, the peak of the tensor storages ``fn``
    makes (a dispatch mode sees each) plus the peak that `tracemalloc` sees, which holds NumPy's
    array data (eigdiff's torch backward runs small work on NumPy views) and Python's own
    objects (a few KiB): a sum of two peaks, so an upper bound where both
    kinds of memory are used, exact where only one is."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - base)
    import tracemalloc

    tracker = _LiveTensorBytes()
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        with tracker.mode:
            fn()
        host = tracemalloc.get_traced_memory()[1] - base
    finally:
        if started:
            tracemalloc.stop()
    return int(tracker.peak + host)


def summarize(name: str, samples: list[float]) -> Result:
    q = statistics.quantiles(samples, n=4, method="inclusive") if len(samples) > 1 else [samples[0]] * 3
    return Result(name, statistics.median(samples), q[0], q[2])


def run_study(
    *,
    batch: int,
    size: int,
    dtype: torch.dtype,
    device: str,
    top_k: int | None,
    iters: int,
    methods: Iterable[str] = STUDY_METHODS,
    rounds: int = 10,
    show_progress: bool = True,
    solver: str = "auto",
) -> list[Result]:
    """The tutorial's comparison at one workload; the first result is eigdiff's forward (by its
    ``solver`` method: "auto", "full" or "small")."""
    dev = torch.device(device)
    X = make_input(batch, size, dtype, dev)
    calls = {
        m: (forward_call("eigdiff", X, top_k, solver) if m == "forward" else backward_call(m, X, top_k, solver))
        for m in methods
    }
    rounds = max(1, min(rounds, iters))
    progress = None
    if show_progress:
        from tqdm.auto import tqdm

        progress = tqdm(total=(iters // rounds) * rounds * len(calls), desc="profile", unit="call", leave=False)
    try:
        samples = time_interleaved(calls, dev, iters=iters, rounds=rounds, progress=progress)
    finally:
        if progress is not None:
            progress.close()
    results = [summarize(m, samples[m]) for m in calls]
    fwd = results[0].median_ms if results[0].method == "forward" else math.nan
    for r in results:
        r.peak_bytes = peak_memory(calls[r.method], dev)
        r.times_forward = r.median_ms / fwd
    return results


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        if names:
            info["cpu"] = f"{names[0]} x{len(names)}"
    except OSError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def format_table(results: list[Result]) -> str:
    header = f"{'method':<10} {'median ms':>11} {'IQR ms':>17} {'x forward':>10} {'peak MiB':>9}"
    lines = [header, "-" * len(header)]
    for r in results:
        peak = "" if r.peak_bytes is None else f"{r.peak_bytes / 2**20:9.2f}"
        lines.append(
            f"{r.method:<10} {r.median_ms:11.4f} {r.q1_ms:8.4f}-{r.q3_ms:<8.4f} {r.times_forward or math.nan:10.2f} {peak}"
        )
    return "\n".join(lines)


#: Bar colours of the study chart, by kind of method, with the legend's words.
STUDY_COLOURS = {
    "forward": ("tab:red", "forward (eigh)"),
    "tutorial": ("tab:gray", "backward: the tutorial's variants v1-v3"),
    "eigdiff": ("tab:blue", "backward: eigdiff"),
    "native": ("tab:green", "backward: torch's eigh autograd"),
}


def plot_study(results: list[Result], path: str, title: str) -> Any:
    """The tutorial's chart: log-scale bars with interquartile whiskers, each annotated with its
    multiple of the forward; x labels are the table's method names. Returns the figure (closed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    kind = {"forward": "forward", "eigdiff": "eigdiff", "native": "native"}
    kinds = [kind.get(r.method, "tutorial") for r in results]
    fig, ax = plt.subplots(figsize=(8, 4.8))
    heights = [r.median_ms for r in results]
    whiskers = [[r.median_ms - r.q1_ms for r in results], [r.q3_ms - r.median_ms for r in results]]
    bars = ax.bar(
        range(len(results)),
        heights,
        log=True,
        color=[STUDY_COLOURS[k][0] for k in kinds],
        yerr=whiskers,
        capsize=4,
        error_kw={"elinewidth": 1},
    )
    ax.set_xticks(range(len(results)), [r.method for r in results])
    for bar, r in zip(bars, results):
        ax.text(bar.get_x() + bar.get_width() / 2, r.q3_ms, f"{r.times_forward:0.1f}x", ha="center", va="bottom")
    ax.set_ylabel("time per call (ms, log scale)")
    ax.grid(True)
    ax.grid(True, which="minor", axis="y", ls="--")
    present = dict.fromkeys(kinds)
    ax.legend(
        handles=[Patch(color=STUDY_COLOURS[k][0], label=STUDY_COLOURS[k][1]) for k in present],
        fontsize=8,
        loc="upper right",
    )
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return fig


# ---------------------------------------------------------------- sweep


SWEEP_SIZES = (8, 16, 32, 64, 128, 256, 512, 1024)
SWEEP_BATCHES = (1, 16)
SWEEP_MAX_WORK = 2 * 1024**3  # skip (B, M) with B·M³ above this: one call would take seconds


def run_sweep(
    *,
    dtype: torch.dtype,
    device: str,
    top_k: int,
    sizes: Iterable[int] = SWEEP_SIZES,
    batches: Iterable[int] = SWEEP_BATCHES,
    rounds: int = 5,
    target_ms: float = 30.0,
    show_progress: bool = True,
) -> list[dict[str, Any]]:
    """Forward and backward, eigdiff and native, full and top-k, over sizes and batch sizes."""
    dev = torch.device(device)
    plan = [(b, m) for b in batches for m in sizes if b * m**3 <= SWEEP_MAX_WORK]
    rows: list[dict[str, Any]] = []
    progress = None
    if show_progress:
        from tqdm.auto import tqdm

        progress = tqdm(plan, desc="sweep", unit="shape", leave=False)
    for b, m in plan:
        X = make_input(b, m, dtype, dev)
        k = min(top_k, m)
        calls = {
            "forward eigdiff": forward_call("eigdiff", X, None),
            "forward native": forward_call("native", X, None),
            "backward eigdiff": backward_call("eigdiff", X, None),
            "backward native": backward_call("native", X, None),
            f"backward eigdiff top-{top_k}": backward_call("eigdiff", X, k),
            f"backward native top-{top_k}": backward_call("native", X, k),
        }
        start = time.perf_counter()
        calls["backward native"]()
        once_ms = (time.perf_counter() - start) * 1e3
        iters = max(1, int(target_ms / max(once_ms, 1e-3))) * rounds
        samples = time_interleaved(calls, dev, iters=iters, rounds=rounds)
        for name, s in samples.items():
            r = summarize(name, s)
            rows.append(
                {
                    "batch": b,
                    "size": m,
                    "top_k": k,
                    "series": name,
                    "median_ms": r.median_ms,
                    "q1_ms": r.q1_ms,
                    "q3_ms": r.q3_ms,
                }
            )
        if progress is not None:
            progress.update(1)
    if progress is not None:
        progress.close()
    return rows


def plot_sweep(rows: list[dict[str, Any]], path: str, title: str) -> Any:
    """Log-log time against M, one panel per batch size on a shared y range. Colour: eigdiff
    blue, native green, forward (the same eigh for both) red; full backward solid, top-k
    backward dashed, forward dotted. Returns the figure (closed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    batches = sorted({r["batch"] for r in rows})
    fig, axes = plt.subplots(len(batches), 1, figsize=(7, 4.2 * len(batches)), squeeze=False, sharey=True)

    def style(series: str) -> dict[str, Any]:
        colour = "tab:blue" if "eigdiff" in series else "tab:green"
        if series.startswith("forward"):
            return {"color": "tab:red" if "eigdiff" in series else "tab:orange", "ls": ":", "marker": "s"}
        if "top-" in series:
            return {"color": colour, "ls": "--", "marker": "^"}
        return {"color": colour, "ls": "-", "marker": "o"}

    for ax, b in zip(axes[:, 0], batches):
        for series in dict.fromkeys(r["series"] for r in rows):
            pts = sorted((r["size"], r["median_ms"]) for r in rows if r["batch"] == b and r["series"] == series)
            ax.loglog([p[0] for p in pts], [p[1] for p in pts], ms=4, label=series, **style(series))
        ax.set_xlabel("matrix size M")
        ax.set_ylabel("time per call (ms)")
        ax.set_title(f"batch {b}", fontsize=11)
        ax.grid(True, which="both", ls=":")
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return fig
