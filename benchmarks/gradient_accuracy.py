"""Gradient accuracy on random symmetric matrices: eigdiff against torch's native eigh autograd.

The target: for random symmetric matrices (entries N(0, 1), symmetrized), float32 and
float64, full and top-k, eigdiff's relative error against a float64 reference is at most twice
torch's native error in the same dtype, plus 1e-6. Both backwards here share one forward (the
same computed λ, Y), so the comparison isolates the backward and its gap threshold.

The loss is L = Σ_j w_j y_jᵀ B y_j over the selected eigenvectors (B symmetric, w random): it
does not depend on the eigenvectors' signs and is not invariant inside any eigenspace, so every
gap term of the gradient counts. The reference is torch's native autograd in float64 on the same
(upcast) input. Error: ‖G − G_ref‖_F / ‖G_ref‖_F.

    python benchmarks/gradient_accuracy.py [--sizes 128,512,1024,2048,4096] [--top-k 8]
                                           [--rules default,4M] [--json out.json]

``--rules`` compares gap thresholds: ``default`` (eigdiff's), ``4M`` (the former
4·M·u·max|λ|), ``<c>u`` (c·u·max|λ|) and ``<c>sqrtM`` (c·√M·u·max|λ|).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _accuracy import measure  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="128,512,1024,2048,4096")
    parser.add_argument("--top-k", type=int, default=8)
    parser.add_argument("--rules", default="default,4M")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    rules = args.rules.split(",")
    results = []
    print(f"{'M':>5} {'k':>5} {'dtype':>8} {'native':>9} " + " ".join(f"{r:>9}" for r in rules) + "  min gap/u·‖X‖")
    for M in (int(s) for s in args.sizes.split(",")):
        for k in (M, min(args.top_k, M)):
            start = time.perf_counter()
            for row in measure(M, k, rules, args.seed + M):
                results.append(row)
                ratios = " ".join(f"{row[r]:9.2e}" for r in rules)
                print(
                    f"{M:5d} {k:5d} {row['dtype']:>8} {row['native']:9.2e} {ratios}  {row['smallest_gap_u']:9.1f}"
                    f"   ({time.perf_counter() - start:.0f} s)",
                    flush=True,
                )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
