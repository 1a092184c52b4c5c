"""The slower backward variants of S. Gould's eigendecomposition tutorial, rewritten from its math for the profile study.

Each is a torch ``autograd.Function`` with the same forward (``torch.linalg.eigh`` of
½(X + Xᵀ), top-k columns) and the tutorial's absolute gap threshold 1e-9:

- v1: a pseudo-inverse of (X − λ_k I) per eigenvector (O(K M³), with an SVD each);
- v2: the spectral pseudo-inverse Y (Λ − λ_k I)† Yᵀ, looped over eigenvectors;
- v3: the vectorized form before the last rearrangement, e_jᵀ Y (Λ̃ ∘ VᵀY) Yᵀ e_i.

They exist to be timed against eigdiff's backward, not to be used; the tests check that each
gives eigdiff's gradient on well-separated spectra.
"""

from __future__ import annotations

from typing import Any

import torch

TUTORIAL_EPS = 1.0e-9


class _TutorialForward(torch.autograd.Function):
    """Shared forward: the top-k eigenvectors (plus S, lmd, Y, kept for the backward)."""

    @staticmethod
    def forward(X: torch.Tensor, top_k: int | None) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        S = (X + X.mT) / 2
        lmd, Y = torch.linalg.eigh(S)
        k = X.shape[-1] if top_k is None else top_k
        return Y[..., X.shape[-1] - k :].clone(), S, lmd, Y

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[torch.Tensor, ...]) -> None:
        ctx.mark_non_differentiable(*output[1:])
        ctx.save_for_backward(*output[1:])

    @classmethod
    def eigenvectors(cls, X: torch.Tensor, top_k: int | None = None) -> torch.Tensor:
        """The top-k eigenvectors, differentiable through this variant's backward."""
        return cls.apply(X, top_k)[0]


class _PerEigenvector(_TutorialForward):
    """dX = Σ_k sym(w_k y_kᵀ) with w_k = −½ (X − λ_k I)† v_k, one eigenvector at a time."""

    @staticmethod
    def pinv_times(S: torch.Tensor, lmd: torch.Tensor, Y: torch.Tensor, i: int, v: torch.Tensor) -> torch.Tensor:
        """(X − λ_i I)† v for one column v (..., M, 1)."""
        raise NotImplementedError

    @classmethod
    def backward(cls, ctx: Any, V: torch.Tensor, *_: Any) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        S, lmd, Y = ctx.saved_tensors
        M, K = Y.shape[-1], V.shape[-1]
        dX = torch.zeros_like(S)
        for j in range(K):
            i = M - K + j
            w = -0.5 * cls.pinv_times(S, lmd, Y, i, V[..., j : j + 1])
            y = Y[..., i : i + 1]
            dX = dX + w @ y.mT + y @ w.mT
        return dX, None


class V1(_PerEigenvector):
    """v1: a numerical pseudo-inverse of (X − λ_k I) per eigenvector (an SVD each)."""

    @staticmethod
    def pinv_times(S: torch.Tensor, lmd: torch.Tensor, Y: torch.Tensor, i: int, v: torch.Tensor) -> torch.Tensor:
        eye = torch.eye(S.shape[-1], dtype=S.dtype, device=S.device)
        return torch.linalg.pinv(S - lmd[..., i, None, None] * eye, atol=TUTORIAL_EPS) @ v


class V2(_PerEigenvector):
    """v2: (X − λ_k I)† = Y (Λ − λ_k I)† Yᵀ from the saved decomposition, still in a loop."""

    @staticmethod
    def pinv_times(S: torch.Tensor, lmd: torch.Tensor, Y: torch.Tensor, i: int, v: torch.Tensor) -> torch.Tensor:
        L = lmd - lmd[..., i, None]
        L = torch.where(L.abs() < TUTORIAL_EPS, torch.zeros_like(L), 1.0 / L)
        return (Y * L[..., None, :]) @ (Y.mT @ v)


class V3(_TutorialForward):
    """(dX)_ij = −½ sym(e_jᵀ Y (Λ̃ ∘ VᵀY) Yᵀ e_i), Λ̃_kl = 1/(λ_l − λ_k); V zero-padded to M columns."""

    @staticmethod
    def backward(ctx: Any, V: torch.Tensor, *_: Any) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        _, lmd, Y = ctx.saved_tensors
        M, K = Y.shape[-1], V.shape[-1]
        if K < M:
            V = torch.cat([torch.zeros(*V.shape[:-1], M - K, dtype=V.dtype, device=V.device), V], dim=-1)
        L = lmd[..., None, :] - lmd[..., :, None]
        L = torch.where(L.abs() < TUTORIAL_EPS, torch.zeros_like(L), 1.0 / L)
        w = (L * (V.mT @ Y)) @ Y.mT
        dX = torch.einsum("...ik,...kj->...ji", Y, w)
        return -0.5 * (dX + dX.mT), None


VARIANTS = {"v1": V1, "v2": V2, "v3": V3}
