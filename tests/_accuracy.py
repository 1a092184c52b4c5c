"""Gradient accuracy on random symmetric matrices against torch's native autograd (issue #18).

Shared by ``tests/test_gap_threshold.py`` (small sizes) and ``benchmarks/gradient_accuracy.py``
(up to M = 4096). Both backwards share one forward (the same computed λ, Y), so the comparison
isolates the backward and its gap threshold. The loss L = Σ_j w_j y_jᵀ B y_j over the selected
eigenvectors (B symmetric, w random) does not depend on the eigenvectors' signs and is not
invariant inside any eigenspace, so every gap term of the gradient counts. The reference is
torch's native autograd in float64 on the same (upcast) input; error ‖G − G_ref‖_F / ‖G_ref‖_F.
"""

from __future__ import annotations

import math

import torch

import eigdiff


def loss_and_cotangent(Y: torch.Tensor, B: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    BY = B @ Y
    return (w * (Y * BY).sum(-2)).sum(), 2 * BY * w


def native_gradient(X: torch.Tensor, B: torch.Tensor, w: torch.Tensor, k: int) -> tuple[torch.Tensor, ...]:
    """Native autograd's dL/dX (symmetric part), with the forward's λ, Y and dL/dY_k."""
    X = X.detach().requires_grad_()
    lmd, Y = torch.linalg.eigh(X)
    loss, _ = loss_and_cotangent(Y[..., -k:], B, w)
    (G,) = torch.autograd.grad(loss, X)
    lmd, Y = lmd.detach(), Y.detach()
    return (G + G.mT) / 2, lmd, Y, loss_and_cotangent(Y[..., -k:], B, w)[1]


def eps_for(rule: str, lmd: torch.Tensor) -> float | None:
    """``default`` (eigdiff's), ``4M`` (the former 4·M·u·max|λ|), ``<c>u`` or ``<c>sqrtM`` (c·√M·u·max|λ|)."""
    if rule == "default":
        return None
    u = torch.finfo(lmd.dtype).eps
    M = lmd.shape[-1]
    scale = float(lmd.abs().max())
    if rule == "4M":
        return 4 * M * u * scale
    if rule.endswith("sqrtM"):
        return float(rule[:-5]) * math.sqrt(M) * u * scale
    if rule.endswith("u"):
        return float(rule[:-1]) * u * scale
    raise ValueError(rule)


def relative_error(G: torch.Tensor, G_ref: torch.Tensor) -> float:
    return float(torch.linalg.norm(G.double() - G_ref) / torch.linalg.norm(G_ref))


def measure(M: int, k: int, rules: list[str], seed: int) -> list[dict]:
    """One random matrix of size M: per dtype, native's error and each rule's, and the smallest gap."""
    gen = torch.Generator().manual_seed(seed)
    A = torch.randn(M, M, generator=gen, dtype=torch.float64)
    X = (A + A.T) / 2
    B = torch.randn(M, M, generator=gen, dtype=torch.float64)
    B = (B + B.T) / 2
    w = torch.randn(k, generator=gen, dtype=torch.float64)
    G_ref, *_ = native_gradient(X, B, w, k)
    rows = []
    for dtype in (torch.float32, torch.float64):
        Xd = X.to(dtype)
        G_native, lmd, Y, V = native_gradient(Xd, B.to(dtype), w.to(dtype), k)
        row = dict(M=M, k=k, dtype=str(dtype)[6:], native=relative_error(G_native, G_ref))
        for rule in rules:
            G = eigdiff.backward(lmd, Y, V, eps=eps_for(rule, lmd))
            row[rule] = relative_error(G, G_ref)
        gaps = torch.diff(lmd.double())
        row["smallest_gap_u"] = float(gaps.min() / (torch.finfo(dtype).eps * lmd.abs().max()))
        rows.append(row)
    return rows
