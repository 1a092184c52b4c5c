"""Command line: ``eigdiff profile`` (also ``python -m eigdiff profile``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from eigdiff.backends import TORCH_INSTALL
from eigdiff.profiling import STUDY_METHODS, legend

#: A timing whose interquartile range exceeds this fraction of its median is flagged as unreliable.
SPREAD_WARNING = 0.5


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eigdiff", description="eigdiff command line tools")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "profile",
        help="speed and memory of eigdiff's backward against the tutorial's variants and torch's eigh",
        description="Reproduce the profiling study of S. Gould's deep declarative networks tutorial on "
        "differentiating the eigendecomposition (default: CPU, B=5, M=32, float32, 1000 calls per method; "
        "on CUDA the tutorial used --batch 1000). Every row after 'forward' is a backward time. "
        "Needs torch; the progress bar needs tqdm and --plot needs matplotlib.",
        epilog="methods:\n" + legend(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where to run (default: cpu)")
    p.add_argument("--batch", type=int, default=None, help="batch size B (default: 5 on cpu, 1000 on cuda)")
    p.add_argument("--size", type=int, default=32, help="matrix size M (default: 32)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"], help="default: float32")
    p.add_argument("--top-k", type=int, default=None, help="differentiate only the top k eigenvectors")
    p.add_argument(
        "--method",
        default="auto",
        choices=["auto", "full", "small", "subset", "krylov"],
        help="eigdiff's forward eigensolver: torch's eigh (full), the batched solver for M <= 3 (small), "
        "the partial-spectrum methods for --top-k (subset: LAPACK's tridiagonal route; krylov: block "
        "Krylov iteration), or the measured choice (auto, the default)",
    )
    p.add_argument("--iters", type=int, default=1000, help="calls per method (default: 1000)")
    p.add_argument("--quick", action="store_true", help="a short run: 50 calls per method (sweep: fewer sizes)")
    p.add_argument(
        "--methods",
        default=",".join(STUDY_METHODS),
        help=f"comma-separated subset of {', '.join(STUDY_METHODS)} (forward is always timed: "
        "the other rows are shown as multiples of it; default: all)",
    )
    p.add_argument("--json", metavar="PATH", help="write the results and the machine's description as JSON")
    p.add_argument("--plot", metavar="PATH", help="write the chart as a PNG")
    p.add_argument("--sweep", action="store_true", help="how cost grows with M (8..1024) and batch size, log-log")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--from-json", metavar="PATH", help="measure nothing: redraw --plot from a JSON file an earlier run wrote"
    )
    return parser


def _check_requirements(args: argparse.Namespace) -> None:
    """Every missing package this run needs, reported at once, before anything is measured."""
    import importlib.util

    wanted = [("torch", TORCH_INSTALL)]
    if not args.no_progress:
        wanted.append(("tqdm", "pip install tqdm (or run with --no-progress)"))
    if args.plot:
        wanted.append(("matplotlib", "pip install matplotlib (or run without --plot)"))
    missing = [f"  {module}: {how}" for module, how in wanted if importlib.util.find_spec(module) is None]
    if missing:
        raise SystemExit("eigdiff profile needs packages that are not installed:\n" + "\n".join(missing))


def _check_output_paths(args: argparse.Namespace) -> None:
    """A --plot or --json path whose folder does not exist fails now, not after the measurement."""
    import os

    for flag, path in (("--plot", args.plot), ("--json", args.json)):
        if path:
            folder = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(folder):
                raise SystemExit(f"eigdiff profile {flag} {path}: the folder {folder} does not exist")
            if not os.access(folder, os.W_OK):
                raise SystemExit(f"eigdiff profile {flag} {path}: the folder {folder} is not writable")


def spread_warnings(rows: list[tuple[str, float, float, float]]) -> list[str]:
    """Warnings for (name, median, q1, q3) rows whose interquartile range exceeds SPREAD_WARNING × median."""
    return [
        f"warning: {name} timings vary widely (IQR {q1:.4g}-{q3:.4g} ms around a median of {median:.4g} ms): "
        "the machine was probably busy; rerun on a quiet machine or with more --iters"
        for name, median, q1, q3 in rows
        if median > 0 and (q3 - q1) > SPREAD_WARNING * median
    ]


def _where(machine: dict, device: str) -> str:
    return (
        f"{device} ({machine.get('cpu', machine['processor'])}; torch {machine['torch']}, {machine['threads']} threads)"
    )


def _titles(payload: dict) -> tuple[str, str]:
    """(study title, sweep title) of a run, from what its JSON holds."""
    where = _where(payload["machine"], payload["device"])
    if "rows" in payload:
        return "", f"eigdiff vs torch eigh, {payload['dtype']}, {where}"
    k = "" if payload.get("top_k") is None else f", top-{payload['top_k']}"
    method = payload.get("method", "auto")
    solver = "" if method == "auto" else f", method={method}"
    workload = (
        f"B={payload['batch']}, M={payload['size']}, {payload['dtype']}{k}{solver}, {payload['iters']} calls on {where}"
    )
    return f"Differentiable eigendecomposition: forward and backward\n{workload}", ""


def redraw(args: argparse.Namespace) -> int:
    """``--from-json``: draw the chart of an earlier run without measuring."""
    from eigdiff.profiling import study

    if not args.plot:
        raise SystemExit("eigdiff profile --from-json needs --plot PATH")
    with open(args.from_json) as f:
        payload = json.load(f)
    study_title, sweep_title = _titles(payload)
    if "rows" in payload:
        study.plot_sweep(payload["rows"], args.plot, sweep_title)
    else:
        study.plot_study([study.Result(**r) for r in payload["results"]], args.plot, study_title)
    print(f"wrote {args.plot}")
    return 0


def profile(args: argparse.Namespace) -> int:
    if args.from_json:
        args.no_progress = True
        _check_requirements(args)
        _check_output_paths(args)
        return redraw(args)
    _check_requirements(args)
    _check_output_paths(args)
    import torch

    from eigdiff.profiling import study

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("eigdiff profile --device cuda: no CUDA device is available to torch here")
    dtype = getattr(torch, args.dtype)
    batch = args.batch if args.batch is not None else (1000 if args.device == "cuda" else 5)
    for name, value in (("--batch", batch), ("--size", args.size), ("--iters", args.iters)):
        if value < 1:
            raise SystemExit(f"eigdiff profile: {name} must be at least 1, got {value}")
    if args.method == "small" and args.size > 3:
        raise SystemExit(f"eigdiff profile: --method small solves M <= 3, got --size {args.size}")
    if args.method in ("subset", "krylov") and args.top_k is None:
        raise SystemExit(f"eigdiff profile: --method {args.method} computes a window of eigenpairs; give --top-k")
    if args.top_k is not None and not 1 <= args.top_k <= args.size:
        raise SystemExit(f"eigdiff profile: --top-k must be in [1, --size] = [1, {args.size}], got {args.top_k}")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(STUDY_METHODS))
    if unknown:
        raise SystemExit(f"eigdiff profile: --methods takes any of {', '.join(STUDY_METHODS)}; unknown: {unknown}")
    methods = ["forward"] + [m for m in STUDY_METHODS[1:] if m in methods]  # forward always, in the table's order
    iters = 50 if args.quick else args.iters
    machine = study.machine()
    where = _where(machine, args.device)
    if args.sweep:
        sizes = (8, 32, 128, 512) if args.quick else study.SWEEP_SIZES
        rows = study.run_sweep(
            dtype=dtype, device=args.device, top_k=args.top_k or 8, sizes=sizes, show_progress=not args.no_progress
        )
        print(f"sweep on {where}, {args.dtype}; median ms per call")
        for r in rows:
            print(f"B={r['batch']:<5} M={r['size']:<5} {r['series']:<28} {r['median_ms']:10.4f}")
        for line in spread_warnings(
            [(f"B={r['batch']} M={r['size']} {r['series']}", r["median_ms"], r["q1_ms"], r["q3_ms"]) for r in rows]
        ):
            print(line)
        payload = {"machine": machine, "dtype": args.dtype, "device": args.device, "rows": rows}
        if args.plot:
            study.plot_sweep(rows, args.plot, _titles(payload)[1])
    else:
        results = study.run_study(
            batch=batch,
            size=args.size,
            dtype=dtype,
            device=args.device,
            top_k=args.top_k,
            iters=iters,
            methods=methods,
            show_progress=not args.no_progress,
            solver=args.method,
        )
        payload = {
            "machine": machine,
            "batch": batch,
            "size": args.size,
            "dtype": args.dtype,
            "top_k": args.top_k,
            "method": args.method,
            "device": args.device,
            "iters": iters,
            "results": [r.__dict__ for r in results],
        }
        title = _titles(payload)[0]
        print(title.split("\n")[1])
        print(study.format_table(results))
        print("rows after 'forward' are backward times per call:")
        print(legend([r.method for r in results]))
        for line in spread_warnings([(r.method, r.median_ms, r.q1_ms, r.q3_ms) for r in results]):
            print(line)
        if args.plot:
            study.plot_study(results, args.plot, title)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(payload, f, indent=2)
    for path in (args.plot, args.json):
        if path:
            print(f"wrote {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "profile":
        return profile(args)
    return 2  # pragma: no cover - argparse rejects other commands


if __name__ == "__main__":
    sys.exit(main())
