"""The matrix square root's gradient: eigdiff.sqrtm against the alternatives a user would pick.

Forward + backward of L = ⟨W, √A⟩ for batched SPD covariance matrices, torch on CPU:

- ``eigdiff``: `eigdiff.sqrtm` (Daleckii–Krein backward, exact at ties);
- ``eigh chain``: torch.linalg.eigh, then Y √Λ Yᵀ, differentiated by torch's own eigh autograd
  (1/(λ_j − λ_i): NaN at exactly repeated eigenvalues);
- ``Newton–Schulz n``: the coupled iteration of iSQRT-COV (Li et al., CVPR 2018) on A/‖A‖_F with
  n steps, differentiated through its matrix products, the route covariance-pooling papers take
  to avoid eigh's gradient.

Two kinds of input, each B matrices of size M:

- ``distinct``: covariance of 2M Gaussian samples plus 1e-3·I (distinct, spread eigenvalues);
- ``ties``: a rank-M/4 covariance plus I, so eigenvalue 1 repeats 3M/4 times (as in pooled
  features of low rank).

Gradient error: ‖G − G_ref‖_F/‖G_ref‖_F of the float32 gradient against eigdiff's float64 one
(eigdiff's float64 gradient is checked against finite differences in the test suite, ties
included; on ``distinct`` it also equals the float64 eigh chain, printed as a cross-check).
Times: medians of interleaved rounds, float32.

    python benchmarks/matrix_functions.py [--shapes 32x64,16x128,8x256] [--rounds 7] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

import eigdiff


def eigh_chain_sqrt(A: torch.Tensor) -> torch.Tensor:
    lmd, Y = torch.linalg.eigh(A)
    return (Y * lmd.clamp_min(0).sqrt()[..., None, :]) @ Y.mT


def newton_schulz_sqrt(A: torch.Tensor, steps: int) -> torch.Tensor:
    norm = torch.linalg.matrix_norm(A, keepdim=True)
    eye = torch.eye(A.shape[-1], dtype=A.dtype).expand_as(A)
    Y, Z = A / norm, eye
    for _ in range(steps):
        T = 0.5 * (3 * eye - Z @ Y)
        Y, Z = Y @ T, T @ Z
    return Y * norm.sqrt()


METHODS = {
    "eigdiff": eigdiff.sqrtm,
    "eigh chain": eigh_chain_sqrt,
    "Newton-Schulz 5": lambda A: newton_schulz_sqrt(A, 5),
    "Newton-Schulz 15": lambda A: newton_schulz_sqrt(A, 15),
}


def make_input(kind: str, B: int, M: int, gen: torch.Generator) -> torch.Tensor:
    if kind == "distinct":
        Z = torch.randn(B, M, 2 * M, generator=gen, dtype=torch.float64)
        return Z @ Z.mT / (2 * M) + 1e-3 * torch.eye(M, dtype=torch.float64)
    Z = torch.randn(B, M, M // 4, generator=gen, dtype=torch.float64)
    return Z @ Z.mT / M + torch.eye(M, dtype=torch.float64)


def gradient(method, A: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    A = A.detach().requires_grad_()
    (G,) = torch.autograd.grad((method(A) * W).sum(), A)
    return (G + G.mT) / 2


def relative_error(G: torch.Tensor, G_ref: torch.Tensor) -> float:
    return float(torch.linalg.norm(G.double() - G_ref) / torch.linalg.norm(G_ref))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shapes", default="32x64,16x128,8x256")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    gen = torch.Generator().manual_seed(0)
    rows = []
    for shape in args.shapes.split(","):
        B, M = (int(s) for s in shape.split("x"))
        for kind in ("distinct", "ties"):
            A64 = make_input(kind, B, M, gen)
            W64 = torch.randn(B, M, M, generator=gen, dtype=torch.float64)
            G_ref = gradient(eigdiff.sqrtm, A64, W64)
            A, W = A64.float(), W64.float()
            times: dict[str, list[float]] = {name: [] for name in METHODS}
            for _ in range(args.rounds):
                for name, method in METHODS.items():
                    start = time.perf_counter()
                    gradient(method, A, W)
                    times[name].append(time.perf_counter() - start)
            row = {"B": B, "M": M, "input": kind}
            if kind == "distinct":
                row["eigh chain float64 vs reference"] = relative_error(gradient(eigh_chain_sqrt, A64, W64), G_ref)
            for name, method in METHODS.items():
                row[f"{name} ms"] = 1e3 * statistics.median(times[name])
                row[f"{name} error"] = relative_error(gradient(method, A, W), G_ref)
            rows.append(row)
            print(
                f"{B}x{M} {kind:8s} "
                + "  ".join(f"{n}: {row[f'{n} ms']:.1f} ms, err {row[f'{n} error']:.1e}" for n in METHODS),
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(), "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
