"""Where the time of one small eigdiff call goes: the per-call overhead, piece by piece.

At (B, M) = (5, 32) a call is mostly overhead: eigh itself takes ~0.3 ms and each torch
operation ~2-5 µs of dispatch. Every piece of `eigdiff.eigh`'s path and of the torch backward is
timed on its own (median of interleaved rounds, µs per call), next to torch's native route, so
that the breakdown table on the performance page can be regenerated:

    python benchmarks/overhead.py [--batch 5] [--size 32] [--dtype float32] [--rounds 15] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

import torch

import eigdiff
from eigdiff import _checks, _core, _small
from eigdiff.backends import adapter_for
from eigdiff.backends import torch as torch_backend
from eigdiff.profiling import study


def pieces(X: torch.Tensor) -> dict[str, Callable[[], Any]]:
    """The forward's and backward's pieces, each a closure (the native route's alongside)."""
    xp = _checks.namespace(X)
    adapter = adapter_for(X)
    Xg = X.detach().requires_grad_()
    M = X.shape[-1]
    lmd, Y = _core.decompose(X, xp=xp)
    V = torch.randn_like(Y)
    Y_eigdiff = eigdiff.eigh(Xg)[1]
    Y_native = study.native_eigh(Xg, None)[1]
    return {
        # the forward, native
        "native: torch.linalg.eigh alone": lambda: torch.linalg.eigh(X),
        "native: eigh of (X + Xᵀ)/2 with grad": lambda: study.native_eigh(Xg, None),
        # the forward, eigdiff, piece by piece
        "eigdiff.eigh with grad (total)": lambda: eigdiff.eigh(Xg),
        "  as_array + adapter_for": lambda: adapter_for(_checks.as_array(Xg, "X")),
        "  namespace (array-api-compat)": lambda: adapter.namespace(Xg),
        "  check_options + check_top_k": lambda: (_checks.check_options(None, "mask"), _checks.check_top_k(None, M)),
        "  check_matrix: shape, dtype": lambda: _checks.check_matrix(Xg, xp, check_finite=False),
        "  check_finite_values (one host read)": lambda: _checks.check_finite_values(Xg, "X", xp),
        "  method choice": lambda: _small.choose("auto", Xg, M),
        "  autograd-state checks": lambda: (
            torch_backend._differentiable(Xg),
            torch_backend._refuse_nested_forward_mode(),
        ),
        "  EagerEighFunction.apply (total, what eigdiff.eigh applies)": lambda: torch_backend.EagerEighFunction.apply(
            Xg, M, None, "mask", False, "full", None
        ),
        "  EighFunction.apply (the modern style, under torch.func)": lambda: torch_backend.EighFunction.apply(
            Xg, M, None, "mask", False, "full", None
        ),
        "    symmetrize (2 passes)": lambda: _core.symmetrize(X, xp),
        "    torch.linalg.eigh": lambda: torch.linalg.eigh(X),
        # the backward
        "native: backward (autograd.grad)": lambda: torch.autograd.grad(Y_native, Xg, V, retain_graph=True),
        "eigdiff: backward (autograd.grad)": lambda: torch.autograd.grad(Y_eigdiff, Xg, V, retain_graph=True),
        "  the adapter's backward (what autograd runs; NumPy views up to 2^14 elements)": lambda: adapter.backward(
            lmd, Y, V, None, M, eps=None, degeneracy="mask", xp=xp
        ),
        "  the core's backward_unchecked alone, through torch": lambda: _core.backward_unchecked(
            lmd, Y, V, None, M, eps=None, degeneracy="mask", overwrite=True, xp=xp
        ),
        "  its three matrix products alone": lambda: (Y @ ((Y.mT @ V) * 1.0)) @ Y.mT,
    }


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=5)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    X = study.make_input(args.batch, args.size, getattr(torch, args.dtype), "cpu")
    calls = pieces(X)
    samples = study.time_interleaved(calls, torch.device("cpu"), iters=200 * args.rounds, rounds=args.rounds)
    rows = []
    print(f"B={args.batch}, M={args.size}, {args.dtype}: µs per call (median of {args.rounds} interleaved rounds)")
    for name, s in samples.items():
        us = study.summarize(name, s).median_ms * 1e3
        rows.append({"piece": name, "us": us})
        print(f"{name:<60} {us:9.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"batch": args.batch, "size": args.size, "dtype": args.dtype, "rows": rows}, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
