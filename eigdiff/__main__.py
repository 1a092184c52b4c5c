"""Command line: ``eigdiff profile`` (also ``python -m eigdiff profile``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from eigdiff.profiling import STUDY_METHODS


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eigdiff", description="eigdiff command line tools")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "profile",
        help="speed and memory of eigdiff's backward against the tutorial's variants and torch's eigh",
        description="Reproduce the seed tutorial's profiling study (default: CPU, B=5, M=32, float32, "
        "1000 iterations; on CUDA the tutorial used --batch 1000). Needs torch, matplotlib and tqdm.",
    )
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where to run (default: cpu)")
    p.add_argument("--batch", type=int, default=None, help="batch size B (default: 5 on cpu, 1000 on cuda)")
    p.add_argument("--size", type=int, default=32, help="matrix size M (default: 32)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"], help="default: float32")
    p.add_argument("--top-k", type=int, default=None, help="differentiate only the top k eigenvectors")
    p.add_argument("--iters", type=int, default=1000, help="calls per method (default: 1000)")
    p.add_argument("--quick", action="store_true", help="a short run: 50 calls per method (sweep: fewer sizes)")
    p.add_argument("--methods", default=",".join(STUDY_METHODS), help="comma-separated subset of the methods")
    p.add_argument("--json", metavar="PATH", help="write the results and the machine's description as JSON")
    p.add_argument("--plot", metavar="PATH", help="write the chart as a PNG")
    p.add_argument("--sweep", action="store_true", help="how cost grows with M (8..1024) and batch size, log-log")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _need(module: str, extra: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise SystemExit(f"eigdiff profile needs {module}: pip install 'eigdiff[{extra}]'")


def profile(args: argparse.Namespace) -> int:
    for module, extra in (("torch", "torch"), ("tqdm", "profile"), ("matplotlib", "profile")):
        _need(module, extra)
    import torch

    from eigdiff.profiling import study

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("eigdiff profile --device cuda: no CUDA device is available to torch here")
    dtype = getattr(torch, args.dtype)
    batch = args.batch if args.batch is not None else (1000 if args.device == "cuda" else 5)
    for name, value in (("--batch", batch), ("--size", args.size), ("--iters", args.iters)):
        if value < 1:
            raise SystemExit(f"eigdiff profile: {name} must be at least 1, got {value}")
    if args.top_k is not None and not 1 <= args.top_k <= args.size:
        raise SystemExit(f"eigdiff profile: --top-k must be in [1, --size] = [1, {args.size}], got {args.top_k}")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(STUDY_METHODS))
    if unknown or "forward" not in methods:
        raise SystemExit(f"eigdiff profile: --methods takes 'forward' and any of {STUDY_METHODS[1:]}, got {methods}")
    methods = ["forward"] + [m for m in methods if m != "forward"]
    iters = 50 if args.quick else args.iters
    machine = study.machine()
    where = f"{args.device} ({machine.get('cpu', machine['processor'])}; torch {machine['torch']}, {machine['threads']} threads)"
    if args.sweep:
        sizes = (8, 32, 128, 512) if args.quick else study.SWEEP_SIZES
        rows = study.run_sweep(
            dtype=dtype, device=args.device, top_k=args.top_k or 8, sizes=sizes, show_progress=not args.no_progress
        )
        print(f"sweep on {where}, {args.dtype}; median ms per call")
        for r in rows:
            print(f"B={r['batch']:<5} M={r['size']:<5} {r['series']:<28} {r['median_ms']:10.4f}")
        payload = {"machine": machine, "dtype": args.dtype, "device": args.device, "rows": rows}
        if args.plot:
            study.plot_sweep(rows, args.plot, f"eigdiff vs torch eigh, {args.dtype}, {where}")
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
        )
        k = "" if args.top_k is None else f", top-{args.top_k}"
        title = f"B={batch}, M={args.size}, {args.dtype}{k}, {iters} calls on {where}"
        print(title)
        print(study.format_table(results))
        payload = {
            "machine": machine,
            "batch": batch,
            "size": args.size,
            "dtype": args.dtype,
            "top_k": args.top_k,
            "device": args.device,
            "iters": iters,
            "results": [r.__dict__ for r in results],
        }
        if args.plot:
            study.plot_study(results, args.plot, f"Differentiable eigendecomposition on {args.device}\n{title}")
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
