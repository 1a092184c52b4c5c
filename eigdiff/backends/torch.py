"""Torch adapter: one ``torch.autograd.Function`` whose backward and jvp call the array-API core.

The Function is written in the modern style (``forward`` without ``ctx``, ``setup_context``)
with ``generate_vmap_rule = True``, so ``torch.func`` transforms (vmap, grad, jacrev, jacfwd,
hessian) and ``torch.compile`` work through it. Its backward is made of differentiable torch
operations on saved outputs, so double backward works too.

Importing this module without torch raises an ImportError that says what to install.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

try:
    import torch
except ImportError as exc:  # pragma: no cover - exercised only where torch is absent
    raise ImportError(
        "eigdiff's torch backend needs PyTorch: `pip install 'eigdiff[torch]'` "
        "(or `pip install torch==2.13.0` for the CPU build)"
    ) from exc

import array_api_compat.torch as xp_torch
from torch._C._functorch import TransformType

from eigdiff import _core
from eigdiff.backends import ArrayAPIAdapter

__all__ = ["EigenDecompositionFcn", "EighFunction"]


def _merge(top: Any, full: Any, k: int) -> Any:
    """Gradient of the full output from that of its last-k slice and of the full output."""
    if full is None:
        return top
    if top is None:
        return full
    M = full.shape[-1]
    pad = torch.zeros(*full.shape[:-1], M - k, dtype=full.dtype, device=full.device)
    return full + torch.cat([pad, top], dim=-1)


class EighFunction(torch.autograd.Function):
    """(lmd_k, Y_k[, lmd, Y]) = eigh(½(X + Xᵀ)) with eigdiff's backward and jvp.

    For ``k < M`` the full decomposition is returned as two extra outputs: they are what the
    backward needs (saved as outputs, so double backward differentiates through them), and
    `eigdiff.eigh` drops them. Inputs must already be validated (see `eigdiff.eigh`).

    ``apply(X, k, eps, degeneracy, check_invariance=False)``: X (..., M, M) float32/float64,
    k in [1, M]; returns (lmd (..., k), Y (..., M, k)) and, for k < M, the full lmd and Y.

    Examples
    --------
    >>> import torch
    >>> from eigdiff.backends.torch import EighFunction
    >>> X = torch.diag(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)).requires_grad_()
    >>> lmd, Y, lmd_all, Y_all = EighFunction.apply(X, 2, None, "mask")
    >>> lmd.sum().backward()  # d(λ₂ + λ₃)/dX = y₂y₂ᵀ + y₃y₃ᵀ
    >>> X.grad.diagonal().tolist()
    [0.0, 1.0, 1.0]
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(  # type: ignore[override]
        X: torch.Tensor, k: int, eps: float | None, degeneracy: str, check_invariance: bool = False
    ) -> tuple[torch.Tensor, ...]:
        lmd, Y = _core.decompose(X, xp=xp_torch)
        M = X.shape[-1]
        if k == M:
            return lmd, Y
        return lmd[..., M - k :].clone(), Y[..., M - k :].clone(), lmd, Y

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[torch.Tensor, ...]) -> None:
        _, k, eps, degeneracy, check_invariance = inputs
        lmd, Y = output[-2:]
        ctx.k, ctx.eps, ctx.degeneracy, ctx.check_invariance = k, eps, degeneracy, check_invariance
        ctx.save_for_backward(lmd, Y)
        ctx.save_for_forward(lmd, Y)
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor | None) -> tuple[torch.Tensor | None, None, None, None, None]:  # type: ignore[override]
        lmd, Y = ctx.saved_tensors
        k, M = ctx.k, Y.shape[-1]
        g_lmd, V = grads[0], grads[1]
        if len(grads) == 4:  # k < M: fold in gradients that reached the full outputs
            g_lmd, V = _merge(g_lmd, grads[2], k), _merge(V, grads[3], k)
            if grads[2] is not None or grads[3] is not None:
                k = M
        if g_lmd is None and V is None:
            return None, None, None, None, None
        dX = _core.backward_unchecked(
            lmd,
            Y,
            V,
            g_lmd,
            k,
            eps=ctx.eps,
            degeneracy=ctx.degeneracy,
            check_invariance=ctx.check_invariance,
            overwrite=ADAPTER.may_overwrite(lmd, Y, V, g_lmd),
            xp=xp_torch,
        )
        return dX, None, None, None, None

    @staticmethod
    def jvp(ctx: Any, dX: torch.Tensor, *_: Any) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        lmd, Y = ctx.saved_tensors
        k, M = ctx.k, Y.shape[-1]
        if k == M:
            return _core.jvp_unchecked(lmd, Y, dX, M, eps=ctx.eps, degeneracy=ctx.degeneracy, xp=xp_torch)
        # The full outputs need their tangents too; the top-k ones are their last k columns.
        dlmd, dY = _core.jvp_unchecked(lmd, Y, dX, M, eps=ctx.eps, degeneracy=ctx.degeneracy, xp=xp_torch)
        return dlmd[..., M - k :], dY[..., M - k :], dlmd, dY


class CompilableEighFunction(EighFunction):
    """`EighFunction` without its forward-mode rule, for use inside ``torch.compile``.

    Dynamo refuses to trace an autograd.Function that defines a custom ``jvp`` (torch 2.13,
    graph break gb0144), so under compilation `eigdiff.eigh` applies this subclass: the same
    forward, backward and vmap rule; forward-mode AD is not available inside compiled code.
    """

    jvp = torch.autograd.Function.jvp  # type: ignore[assignment]


def _transformed(*tensors: Any) -> bool:
    """Whether a torch.func transform wraps any of the tensors (None entries are ignored)."""
    return any(t is not None and torch._C._functorch.is_functorch_wrapped_tensor(t) for t in tensors)


def _refuse_nested_forward_mode() -> None:
    """NotImplementedError under two or more nested forward-mode torch.func transforms.

    torch 2.13 differentiates a custom ``autograd.Function`` under ``jacfwd(jacfwd(f))`` (or
    ``jvp`` of ``jvp``) to silent zeros: the inner level's jvp rule is not seen by the outer
    one, as a ten-line Function computing x² shows. Every other nesting (``hessian``,
    ``jacrev`` over ``jacfwd``, ``jacfwd`` over ``jacrev``, ``jacrev`` over ``jacrev``) is
    exact, so the error points there. (Nested ``forward_ad`` dual levels torch refuses itself.)
    """
    from torch._functorch.pyfunctorch import retrieve_all_functorch_interpreters

    jvp_levels = [i for i in retrieve_all_functorch_interpreters() if i.key() == TransformType.Jvp]
    if len(jvp_levels) >= 2:
        raise NotImplementedError(
            "eigdiff.eigh cannot be differentiated by nested forward-mode transforms (jacfwd of jacfwd, "
            "jvp of jvp): torch 2.13 returns zeros for custom autograd Functions there. Use "
            "torch.func.hessian (forward over reverse), jacrev(jacfwd(f)), jacfwd(jacrev(f)) or jacrev(jacrev(f))"
        )


def _differentiable(X: torch.Tensor) -> bool:
    """Whether any autograd (reverse, forward-mode dual numbers, torch.func) may track X."""
    return (
        (torch.is_grad_enabled() and X.requires_grad)
        or torch.autograd.forward_ad._current_level >= 0
        or _transformed(X)
    )


class TorchAdapter(ArrayAPIAdapter):
    name = "torch"

    def namespace(self, X: Any) -> ModuleType:
        return xp_torch  # skips array_namespace's cache, which Dynamo would trace through

    def check_values(self, X: Any) -> bool:
        # Value-dependent branches are not allowed inside torch.compile or torch.func transforms.
        return not (torch.compiler.is_compiling() or _transformed(X))

    def may_overwrite(self, *arrays: Any) -> bool:
        # In place only where autograd records nothing and no torch.func transform wraps a
        # tensor; compiled code is functionalized and fused by the compiler anyway.
        if torch.compiler.is_compiling() or _transformed(*arrays):
            return False
        return not (torch.is_grad_enabled() and any(a is not None and a.requires_grad for a in arrays))

    def decompose(self, X: Any, xp: ModuleType) -> tuple[Any, Any]:
        with torch.no_grad():
            return _core.decompose(X, xp=xp)

    def eigh(
        self, X: Any, k: int, *, eps: float | None, degeneracy: str, xp: ModuleType, check_invariance: bool = False
    ) -> tuple[Any, Any]:
        if torch.compiler.is_compiling():
            out = CompilableEighFunction.apply(X, k, eps, degeneracy, check_invariance)
            return out[0], out[1]
        if not _differentiable(X):  # no graph to build: skip the Function's per-call overhead
            lmd, Y = self.decompose(X, xp)
            return _core.top(lmd, Y, k, xp, copy=k < X.shape[-1])
        _refuse_nested_forward_mode()
        out = EighFunction.apply(X, k, eps, degeneracy, check_invariance)
        return out[0], out[1]


ADAPTER = TorchAdapter()


class EigenDecompositionFcn:
    """Drop-in for the seed tutorial's ``EigenDecompositionFcn``: returns only eigenvectors.

    ``EigenDecompositionFcn.apply(X, top_k=None)`` takes ``X`` of shape ``(..., M, M)`` (the
    tutorial's ``(B, M, M)``) and returns ``Y`` of shape ``(..., M, M)``, or the ``top_k``
    eigenvectors of largest eigenvalue, ``(..., M, top_k)``, ascending. It runs through the
    same `EighFunction` as `eigdiff.eigh`. The class attributes ``eps`` (None: the dtype-aware
    default; a float: the tutorial's absolute threshold) and ``degeneracy`` set the backward.

    Raises
    ------
    ValueError, TypeError
        As `eigdiff.eigh`: a bad shape, dtype, ``top_k``, or NaN/Inf in ``X``.

    Examples
    --------
    >>> import torch
    >>> from eigdiff.backends.torch import EigenDecompositionFcn
    >>> X = torch.randn(2, 5, 5, dtype=torch.float64, requires_grad=True)
    >>> Y = EigenDecompositionFcn.apply(X, 2)
    >>> tuple(Y.shape)
    (2, 5, 2)
    >>> Y.abs().sum().backward()
    >>> bool(torch.allclose(X.grad, X.grad.mT))
    True
    """

    eps: float | None = None
    degeneracy: str = "mask"

    @classmethod
    def apply(cls, X: torch.Tensor, top_k: int | None = None) -> torch.Tensor:
        from eigdiff import eigh

        return eigh(X, top_k=top_k, eps=cls.eps, degeneracy=cls.degeneracy)[1]
