"""
ZCA whitening with gradients flowing through the eigendecomposition.
====================================================================

W = Y (Λ + ε)^(-1/2) Yᵀ whitens a batch of features; a linear model on the whitened features is
trained together with the feature map in front of the whitening, so the gradient passes
through eigdiff's backward (eigenvalues and eigenvectors). At the end the whitened features'
covariance is checked against the identity.

::

    python examples/zca_whitening.py [--steps 150] [--quick] [--plot zca.png]
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

import eigdiff


def zca(Z: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Whiten rows of Z (N, D): returns (Z − mean) W with W = Y (Λ + ε)^(-1/2) Yᵀ."""
    Zc = Z - Z.mean(dim=0)
    cov = Zc.mT @ Zc / (Z.shape[0] - 1)
    lmd, Y = eigdiff.eigh(cov)
    W = (Y * (lmd.clamp_min(0) + eps).rsqrt()) @ Y.mT
    return Zc @ W


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description="ZCA whitening with gradients flowing through the eigendecomposition.")
    parser.add_argument("--steps", type=int, default=150, help="Adam steps (default 150)")
    parser.add_argument("--quick", action="store_true", help="15 steps on a small batch")
    parser.add_argument("--plot", metavar="PATH", help="save the feature covariances before and after as a PNG")
    args = parser.parse_args(argv)
    steps, n = (15, 256) if args.quick else (args.steps, 1024)
    g = torch.Generator().manual_seed(1)
    mixing = torch.randn(6, 6, generator=g) * torch.tensor([5.0, 2.0, 1.0, 0.5, 0.2, 0.1])
    sources = torch.randn(n, 6, generator=g)
    X = sources @ mixing.T  # strongly correlated, badly scaled inputs
    target = sources[:, :2].sum(dim=1, keepdim=True) ** 2  # needs the whitened sources
    torch.manual_seed(1)
    features = torch.nn.Linear(6, 6, dtype=torch.float64)
    head = torch.nn.Sequential(
        torch.nn.Linear(6, 32, dtype=torch.float64), torch.nn.Tanh(), torch.nn.Linear(32, 1, dtype=torch.float64)
    )
    X, target = X.double(), target.double()
    opt = torch.optim.Adam([*features.parameters(), *head.parameters()], lr=0.02)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(head(zca(features(X))), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        Zw = zca(features(X))
        cov = Zw.mT @ Zw / (n - 1)
        off_identity = (cov - torch.eye(6, dtype=cov.dtype)).abs().max().item()
    print(
        f"ZCA whitening: MSE {losses[0]:.3g} -> {losses[-1]:.3g} in {steps} steps; "
        f"max |cov(whitened) - I| = {off_identity:.2e}"
    )
    figure = None
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        raw = torch.cov(features(X).detach().T)
        fig, axes = plt.subplots(1, 2, figsize=(8, 3.6))
        for ax, M, title in zip(axes, (raw, cov), ("features", "whitened features")):
            limit = float(M.abs().max())  # a diverging map centred at 0: white is zero covariance
            image = ax.imshow(M.numpy(), cmap="coolwarm", vmin=-limit, vmax=limit)
            ax.set_xlabel("feature")
            ax.set_ylabel("feature")
            ax.set_title(f"covariance of the {title}", fontsize=9)
            fig.colorbar(image, ax=ax)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=110)
        figure = fig
        print(f"wrote {args.plot}")
    result = {"before": losses[0], "after": losses[-1], "off_identity": off_identity}
    if args.plot:
        result["figure"] = figure  # for the tests, which read its labels
    return result


if __name__ == "__main__":
    main()
