"""
A differentiable PCA layer inside a torch model, trained for a few steps.
=========================================================================

A small model maps inputs through a learned linear feature map, projects the features onto
their top-k principal directions (eigdiff.eigh of the batch covariance, top_k=k) and
classifies from the projection. Gradients flow through the eigenvectors into the feature map.

::

    python examples/pca_layer.py [--steps 200] [--quick] [--plot pca.png]
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

import eigdiff


class PCALayer(torch.nn.Module):
    """Project a batch (N, D) onto the top-k eigenvectors of its covariance: (N, k)."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k

    def forward(self, Z: torch.Tensor) -> torch.Tensor:
        Zc = Z - Z.mean(dim=0)
        cov = Zc.mT @ Zc / (Z.shape[0] - 1)
        _, Y = eigdiff.eigh(cov, top_k=self.k)
        # Fix each eigenvector's sign (largest entry positive): the projection is then a
        # function of the subspace and the data, not of the solver's sign choice.
        sign = torch.sign(Y.gather(0, Y.abs().argmax(dim=0, keepdim=True)))
        return Zc @ (Y * sign)


def make_data(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Two classes that differ along a low-variance direction hidden among noisy ones."""
    labels = torch.randint(0, 2, (n,), generator=generator)
    X = torch.randn(n, 8, generator=generator) * torch.tensor([3.0, 3.0, 2.5, 2.0, 0.3, 0.3, 0.3, 0.3])
    X[:, 5] += 1.5 * (2 * labels - 1)
    return X, labels


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description="A differentiable PCA layer inside a torch model, trained for a few steps."
    )
    parser.add_argument("--steps", type=int, default=200, help="Adam steps (default 200)")
    parser.add_argument("--quick", action="store_true", help="20 steps on a small batch")
    parser.add_argument("--plot", metavar="PATH", help="save the training curve as a PNG")
    args = parser.parse_args(argv)
    steps, n = (20, 128) if args.quick else (args.steps, 512)
    g = torch.Generator().manual_seed(0)
    X, labels = make_data(n, g)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), PCALayer(k=2), torch.nn.Linear(2, 2))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(X), labels)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        accuracy = (model(X).argmax(dim=1) == labels).float().mean().item()
    print(f"PCA layer: cross-entropy {losses[0]:.3g} -> {losses[-1]:.3g} in {steps} steps; accuracy {accuracy:.3f}")
    figure = None
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        plt.figure(figsize=(5, 3.5))
        plt.plot(losses)
        plt.xlabel("step")
        plt.ylabel("cross-entropy")
        plt.title("training through a top-2 PCA layer")
        plt.tight_layout()
        plt.savefig(args.plot, dpi=110)
        figure = plt.gcf()
        print(f"wrote {args.plot}")
    result = {"before": losses[0], "after": losses[-1], "accuracy": accuracy}
    if args.plot:
        result["figure"] = figure  # for the tests, which read its labels
    return result


if __name__ == "__main__":
    main()
