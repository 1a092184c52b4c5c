"""Torch adapter: one ``torch.autograd.Function`` whose backward and jvp call the array-API core.

The Function is written in the modern style (``forward`` without ``ctx``, ``setup_context``)
with ``generate_vmap_rule = True``, so ``torch.func`` transforms (vmap, grad, jacrev, jacfwd,
hessian) and ``torch.compile`` work through it. Its backward is made of differentiable torch
operations on saved outputs, so double backward works too.

Importing this module without torch raises an ImportError that says what to install.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

try:
    import torch
except ImportError as exc:  # pragma: no cover - exercised only where torch is absent
    from eigdiff.backends import TORCH_INSTALL

    raise ImportError(f"eigdiff's torch backend needs PyTorch: {TORCH_INSTALL}") from exc

import array_api_compat.torch as xp_torch
from torch._C._functorch import TransformType

from eigdiff import _core, _functions, _methods
from eigdiff.backends import ArrayAPIAdapter

__all__ = [
    "EigenDecompositionFcn",
    "EighFunction",
    "FrechetFunction",
    "MatrixFunction",
    "PartialEighFunction",
    "SparseEighFunction",
]


def _merge(window: Any, full: Any, k: int, lo: int) -> Any:
    """Gradient of the full output from that of its slice of k from ``lo`` and of the full output."""
    if full is None:
        return window
    if window is None:
        return full
    M = full.shape[-1]
    before = torch.zeros(*full.shape[:-1], lo, dtype=full.dtype, device=full.device)
    after = torch.zeros(*full.shape[:-1], M - lo - k, dtype=full.dtype, device=full.device)
    return full + torch.cat([before, window, after], dim=-1)


class EighFunction(torch.autograd.Function):
    """(lmd_k, Y_k[, lmd, Y]) = eigh(½(X + Xᵀ)) with eigdiff's backward and jvp.

    For ``k < M`` the full decomposition is returned as two extra outputs: they are what the
    backward needs (saved as outputs, so double backward differentiates through them), and
    `eigdiff.eigh` drops them. Inputs must already be validated (see `eigdiff.eigh`).

    ``apply(X, k, eps, degeneracy, check_invariance=False, method="full", lo=None)``: X (..., M, M)
    float32/float64, k in [1, M]; returns the k eigenpairs from index ``lo`` (None: the top k),
    (lmd (..., k), Y (..., M, k)), and, for k < M, the full lmd and Y.

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
        X: torch.Tensor,
        k: int,
        eps: float | None,
        degeneracy: str,
        check_invariance: bool = False,
        method: str = "full",
        lo: int | None = None,
    ) -> tuple[torch.Tensor, ...]:
        lmd, Y = ArrayAPIAdapter.decompose(ADAPTER, X, xp_torch, method)  # already without grad here
        M = X.shape[-1]
        if k == M:
            return lmd, Y
        lo = M - k if lo is None else lo
        return lmd[..., lo : lo + k].clone(), Y[..., lo : lo + k].clone(), lmd, Y

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[torch.Tensor, ...]) -> None:
        X, k, eps, degeneracy, check_invariance = inputs[:5]
        lo = inputs[6] if len(inputs) > 6 else None
        lmd, Y = output[-2:]
        ctx.k, ctx.eps, ctx.degeneracy, ctx.check_invariance = k, eps, degeneracy, check_invariance
        ctx.lo = X.shape[-1] - k if lo is None else lo
        ctx.save_for_backward(lmd, Y)
        ctx.save_for_forward(lmd, Y)
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(
        ctx: Any, *grads: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, None, None, None, None, None, None]:  # type: ignore[override]
        lmd, Y = ctx.saved_tensors
        k, M, lo = ctx.k, Y.shape[-1], ctx.lo
        g_lmd, V = grads[0], grads[1]
        if len(grads) == 4:  # k < M: fold in gradients that reached the full outputs
            g_lmd, V = _merge(g_lmd, grads[2], k, lo), _merge(V, grads[3], k, lo)
            if grads[2] is not None or grads[3] is not None:
                k, lo = M, 0
        if g_lmd is None and V is None:
            return None, None, None, None, None, None, None
        dX = ADAPTER.backward(
            lmd,
            Y,
            V,
            g_lmd,
            k,
            eps=ctx.eps,
            degeneracy=ctx.degeneracy,
            check_invariance=ctx.check_invariance,
            xp=xp_torch,
            lo=lo,
        )
        return dX, None, None, None, None, None, None

    @staticmethod
    def jvp(ctx: Any, dX: torch.Tensor, *_: Any) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        lmd, Y = ctx.saved_tensors
        k, M, lo = ctx.k, Y.shape[-1], ctx.lo
        if k == M:
            return _core.jvp_unchecked(lmd, Y, dX, M, eps=ctx.eps, degeneracy=ctx.degeneracy, xp=xp_torch)
        # The full outputs need their tangents too; the window's are their columns lo..lo+k-1.
        dlmd, dY = _core.jvp_unchecked(lmd, Y, dX, M, eps=ctx.eps, degeneracy=ctx.degeneracy, xp=xp_torch)
        return dlmd[..., lo : lo + k], dY[..., lo : lo + k], dlmd, dY


def _numpy(t: torch.Tensor | None) -> Any:
    """A NumPy view of a CPU tensor's memory (detached: saved outputs require grad even where a
    backward records nothing), or None."""
    return None if t is None else t.detach().numpy()


class TorchWindow:
    """A `eigdiff._partial.Window` computed on NumPy views of CPU tensors, seen as tensors."""

    def __init__(self, window: Any) -> None:
        self.window, self.method = window, window.method
        self.lmd, self.Y = torch.from_numpy(window.lmd), torch.from_numpy(window.Y)

    def backward(self, V: Any, g_lmd: Any, *, check_invariance: bool = False) -> torch.Tensor:
        return torch.from_numpy(self.window.backward(_numpy(V), _numpy(g_lmd), check_invariance=check_invariance))

    def jvp(self, dX: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dlmd, dY = self.window.jvp(_numpy(dX))
        return torch.from_numpy(dlmd), torch.from_numpy(dY)


class FullWindow:
    """The window's pairs from a full decomposition (a partial method's fallback where the window's
    edge cuts a cluster), with `TorchWindow`'s interface: the core's full-path backward and jvp."""

    method = "full"

    def __init__(self, lmd: Any, Y: Any, k: int, lo: int, eps: float | None, degeneracy: str) -> None:
        self.all, self.k, self.lo = (lmd, Y), k, lo
        self.options: dict[str, Any] = {"eps": eps, "degeneracy": degeneracy}
        self.lmd, self.Y = _core.top(lmd, Y, k, xp_torch, copy=True, lo=lo)

    def backward(self, V: Any, g_lmd: Any, *, check_invariance: bool = False) -> torch.Tensor:
        return _core.backward_unchecked(
            *self.all, V, g_lmd, self.k, lo=self.lo, check_invariance=check_invariance, xp=xp_torch, **self.options
        )

    def jvp(self, dX: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _core.jvp_unchecked(*self.all, dX, self.k, lo=self.lo, xp=xp_torch, **self.options)


class PartialEighFunction(torch.autograd.Function):
    """(lmd_W, Y_W, window) of a window computed by a partial method (``"subset"``, ``"krylov"``),
    with the projected-solve backward and jvp (`eigdiff._partial`).

    ``apply(X, k, lo, method, options, check_invariance)``; ``options`` holds ``eps``,
    ``degeneracy``, ``tol`` and ``maxiter``. The forward computes the window from X (unwrapped
    under torch.func transforms) and keeps it: the tridiagonal form (``"subset"``) or ½(X + Xᵀ)
    (``"krylov"``) and the k pairs, O(M² + Mk) memory, no full Y. Where the window's edge cuts a
    cluster it keeps a full decomposition instead (`FullWindow`, with a warning). The backward
    and jvp run in `_WindowPullback` and `_WindowPushforward`, so reverse mode, forward mode,
    gradcheck and ``torch.func.grad``/``vjp``/``jvp``/``jacrev``/``jacfwd`` work (their vmap over
    cotangents or tangents loops over the slices), and inside ``torch.compile`` it runs eagerly
    (a graph break); a second derivative and ``vmap`` over X raise, naming ``method="full"``.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        X: torch.Tensor, k: int, lo: int, method: str, options: dict[str, Any], check_invariance: bool
    ) -> tuple[Any, ...]:
        window = ADAPTER.window(X, xp_torch, k, lo, method=method, **options)
        if window is None:  # the edge cuts a cluster: the full path (warned)
            lmd, Y = ArrayAPIAdapter.decompose(ADAPTER, X, xp_torch, "full")
            window = FullWindow(lmd, Y, k, lo, options["eps"], options["degeneracy"])
        return window.lmd.clone(), window.Y.clone(), window

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        ctx.window, ctx.check_invariance = output[2], inputs[5]
        ctx.save_for_backward(inputs[0])
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx: Any, g_lmd: Any, V: Any, *_: Any) -> tuple[Any, ...]:  # type: ignore[override]
        if g_lmd is None and V is None:
            return (None,) * 6
        (X,) = ctx.saved_tensors  # an input of the pullback, so that differentiating it again reaches its error
        return (_WindowPullback.apply(V, g_lmd, X, ctx.window, ctx.check_invariance),) + (None,) * 5

    @staticmethod
    def jvp(ctx: Any, dX: torch.Tensor, *_: Any) -> tuple[Any, ...]:  # type: ignore[override]
        dlmd, dY = _WindowPushforward.apply(dX, ctx.window)
        return dlmd, dY, None

    @staticmethod
    def vmap(info: Any, in_dims: Any, *args: Any) -> Any:
        raise NotImplementedError(_PARTIAL_LIMITS.format(method=args[3]))


class _WindowPullback(torch.autograd.Function):
    """dL/dX of a window's pairs (`PartialEighFunction`'s backward), not differentiable again."""

    @staticmethod
    def forward(V: Any, g_lmd: Any, X: torch.Tensor, window: Any, check_invariance: bool) -> torch.Tensor:  # type: ignore[override]
        return window.backward(V, g_lmd, check_invariance=check_invariance)  # type: ignore[no-any-return]

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        ctx.method = inputs[3].method

    @staticmethod
    def backward(ctx: Any, *_: Any) -> Any:  # type: ignore[override]
        raise NotImplementedError(_PARTIAL_LIMITS.format(method=ctx.method))

    @staticmethod
    def jvp(ctx: Any, *_: Any) -> Any:  # type: ignore[override]
        raise NotImplementedError(_PARTIAL_LIMITS.format(method=ctx.method))

    @staticmethod
    def vmap(info: Any, in_dims: Any, V: Any, g_lmd: Any, X: Any, window: Any, check_invariance: bool) -> Any:
        # vmap over cotangents (jacrev, vmap of a vjp): one pullback per slice, the same window
        out = [
            window.backward(_slice(V, in_dims[0], i), _slice(g_lmd, in_dims[1], i), check_invariance=check_invariance)
            for i in range(info.batch_size)
        ]
        return torch.stack(out), 0


def _slice(t: Any, dim: int | None, i: int) -> Any:
    return t if t is None or dim is None else t.select(dim, i)


class _WindowPushforward(torch.autograd.Function):
    """(dλ_W, dY_W) of a window along dX (`PartialEighFunction`'s jvp), not differentiable again."""

    @staticmethod
    def forward(dX: torch.Tensor, window: Any) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        return window.jvp(dX)  # type: ignore[no-any-return]

    setup_context = staticmethod(lambda ctx, inputs, output: setattr(ctx, "method", inputs[1].method))
    backward = _WindowPullback.backward
    jvp = _WindowPullback.jvp

    @staticmethod
    def vmap(info: Any, in_dims: Any, dX: Any, window: Any) -> Any:
        # vmap over tangents (jacfwd): one pushforward per slice, the same window
        pairs = [window.jvp(_slice(dX, in_dims[0], i)) for i in range(info.batch_size)]
        return (torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])), (0, 0)


_PARTIAL_LIMITS = (
    "method={method!r} computes its window and its backward's projected solve with iterations that stop on "
    "the values reached (and, for 'subset', LAPACK through SciPy on NumPy views), so it supports first "
    "derivatives in reverse and forward mode (backward, autograd.grad, gradcheck, forward_ad, torch.func.grad, "
    "vjp, jvp, jacrev, jacfwd; inside torch.compile it runs eagerly, a graph break) but not second derivatives "
    "(double backward, hessian) or vmap over X; use method='full' there"
)


class SparseEighFunction(torch.autograd.Function):
    """(lmd_W, Y_W) of a torch sparse A's window, computed by `eigdiff._sparse` before ``apply``,
    with the backward dL/dA at A's stored entries, in A's layout (COO or CSR) and pattern.

    ``apply(A, source, window, check_invariance)``: ``source`` the `eigdiff._sparse.SparseInput`
    of A, ``window`` its `eigdiff._partial.Window`. Reverse mode only: a backward with
    ``create_graph=True`` raises NotImplementedError, and there is no forward-mode rule.
    """

    @staticmethod
    def forward(A: Any, source: Any, window: Any, check_invariance: bool) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        return window.lmd.clone(), window.Y.clone()

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Any) -> None:
        ctx.source, ctx.window, ctx.check_invariance = inputs[1], inputs[2], inputs[3]
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx: Any, g_lmd: Any, V: Any) -> tuple[Any, ...]:  # type: ignore[override]
        if g_lmd is None and V is None:
            return (None,) * 4
        if torch.is_grad_enabled():  # create_graph=True: the result would be a constant, silently
            raise NotImplementedError(
                "eigdiff's gradient with respect to a sparse tensor is not differentiable again (a second "
                "derivative through sparse input would silently miss its terms); call backward or autograd.grad "
                "without create_graph=True, or use a dense tensor"
            )
        grad = ctx.source.gradient(ctx.window, V, g_lmd, check_invariance=ctx.check_invariance)
        return grad, None, None, None


class CompilableEighFunction(EighFunction):
    """`EighFunction` without its forward-mode rule, for use inside ``torch.compile``.

    Dynamo refuses to trace an autograd.Function that defines a custom ``jvp`` (torch 2.13,
    graph break gb0144), so under compilation `eigdiff.eigh` applies this subclass: the same
    forward, backward and vmap rule; forward-mode AD is not available inside compiled code.
    """

    jvp = torch.autograd.Function.jvp  # type: ignore[assignment]


def _original_style(function: Any) -> Any:
    """``function``, a modern-style autograd.Function (``setup_context``), in the original style
    (``ctx`` as the forward's first argument): the same forward, saved tensors, backward and jvp.

    Applied where no torch.func transform is active: there torch's ``Function.apply`` binds a
    modern-style Function's arguments through ``inspect.signature`` on every call, which the
    original style skips. Measured (torch 2.13, 2-core AMD EPYC, 5 × 32 × 32 float32): a bare
    Function of two products took 84.5 µs to apply in the modern style against 24.6 µs in the
    original one, and 191 against 123 µs with its backward. torch.func transforms need the
    modern style, and get it.
    """

    def forward(ctx: Any, *inputs: Any) -> Any:
        output = function.forward(*inputs)
        function.setup_context(ctx, inputs, output)
        return output

    namespace = {
        "__doc__": f"`{function.__name__}` in the original autograd.Function style (see `_original_style`).",
        "forward": staticmethod(forward),
        "backward": staticmethod(function.backward),
        "jvp": staticmethod(function.jvp),
    }
    return type(f"Eager{function.__name__}", (torch.autograd.Function,), namespace)


def _for_eager(modern: Any, eager: Any) -> Any:
    """The Function class to apply now: the modern one under torch.func transforms, else ``eager``."""
    return modern if torch._C._are_functorch_transforms_active() else eager


def _transformed(*tensors: Any) -> bool:
    """Whether a torch.func transform wraps any of the tensors (None entries are ignored)."""
    return any(t is not None and torch._C._functorch.is_functorch_wrapped_tensor(t) for t in tensors)


class MatrixFunction(torch.autograd.Function):
    """(F, lmd, Y) = (Y f(Λ) Yᵀ, Λ, Y) of ½(X + Xᵀ), with the Daleckii–Krein backward and jvp.

    ``apply(X, spec, check)``: ``spec`` an `eigdiff._functions.SpectralFunction`, ``check``
    whether to check f's domain (ValueError). ``lmd`` and ``Y`` are returned as
    non-differentiable outputs (`eigdiff.matrix_function` drops them) so that the backward and
    jvp can hand them to `FrechetFunction`, whose own backward and jvp are the second-order
    Daleckii–Krein formula: double backward, hessian and every nesting of torch.func transforms
    but forward over forward are exact, also at tied eigenvalues. Inputs must be validated.

    Examples
    --------
    >>> import torch, eigdiff
    >>> X = torch.eye(2, dtype=torch.float64, requires_grad=True)  # a tie: exact, not NaN
    >>> eigdiff.sqrtm(X).trace().backward()
    >>> X.grad  # d tr √X / dX = ½ X^{-1/2}
    tensor([[0.5000, 0.0000],
            [0.0000, 0.5000]], dtype=torch.float64)
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(X: torch.Tensor, spec: Any, check: bool, method: str = "full") -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        lmd, Y = ArrayAPIAdapter.decompose(ADAPTER, X, xp_torch, method)
        if check:
            _functions.check_domain(lmd, spec, xp_torch)
        return _functions.apply(lmd, Y, spec, xp_torch), lmd, Y

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[torch.Tensor, ...]) -> None:
        X, ctx.spec = inputs[0], inputs[1]
        ctx.mark_non_differentiable(output[1], output[2])
        ctx.save_for_backward(X, output[1], output[2])
        ctx.save_for_forward(X, output[1], output[2])
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx: Any, g_F: Any, *_: Any) -> tuple[Any, None, None, None]:  # type: ignore[override]
        X, lmd, Y = ctx.saved_tensors
        return (None if g_F is None else FrechetFunction.apply(X, g_F, ctx.spec, lmd, Y)), None, None, None

    @staticmethod
    def jvp(ctx: Any, dX: torch.Tensor, *_: Any) -> tuple[Any, None, None]:  # type: ignore[override]
        X, lmd, Y = ctx.saved_tensors
        return FrechetFunction.apply(X, dX, ctx.spec, lmd, Y), None, None


class CompilableMatrixFunction(MatrixFunction):
    """`MatrixFunction` without its forward-mode rule, for use inside ``torch.compile`` (Dynamo
    refuses a Function with a custom ``jvp``, as for `CompilableEighFunction`)."""

    jvp = torch.autograd.Function.jvp  # type: ignore[assignment]


EagerEighFunction = _original_style(EighFunction)
EagerMatrixFunction = _original_style(MatrixFunction)


class FrechetFunction(torch.autograd.Function):
    """D = Df(X)[S] = Y (Γ ∘ Yᵀ sym(S) Y) Yᵀ, differentiable in X and S (once).

    ``apply(X, S, spec, lmd, Y)`` with ``lmd``, ``Y`` the decomposition of ½(X + Xᵀ). Its
    backward and jvp use the second divided differences (`eigdiff._functions.frechet_second`,
    O(M³) memory); a third derivative raises.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(X: torch.Tensor, S: torch.Tensor, spec: Any, lmd: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return _functions.frechet(lmd, Y, S, spec, xp_torch)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        _, S, ctx.spec, lmd, Y = inputs
        ctx.save_for_backward(S, lmd, Y)
        ctx.save_for_forward(S, lmd, Y)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, W: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        S, lmd, Y = ctx.saved_tensors
        dX = _functions.frechet_second(lmd, Y, S, W, ctx.spec, xp_torch) if ctx.needs_input_grad[0] else None
        dS = _functions.frechet(lmd, Y, W, ctx.spec, xp_torch) if ctx.needs_input_grad[1] else None
        return dX, dS, None, None, None

    @staticmethod
    def jvp(ctx: Any, dX: Any, dS: Any, *_: Any) -> torch.Tensor:  # type: ignore[override]
        S, lmd, Y = ctx.saved_tensors
        out = _functions.frechet_second(lmd, Y, S, dX, ctx.spec, xp_torch) if dX is not None else None
        if dS is not None:
            tangent = _functions.frechet(lmd, Y, dS, ctx.spec, xp_torch)
            out = tangent if out is None else out + tangent
        return out if out is not None else torch.zeros_like(S)


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
            "eigdiff cannot be differentiated by nested forward-mode transforms (jacfwd of jacfwd, "
            "jvp of jvp): torch 2.13 returns zeros for custom autograd Functions there. Use "
            "torch.func.hessian (forward over reverse), jacrev(jacfwd(f)), jacfwd(jacrev(f)) or jacrev(jacrev(f))"
        )


def _refuse_nested_differentiation(method: str) -> None:
    """NotImplementedError under two or more nested torch.func differentiation transforms
    (``hessian``, ``jacfwd(jacrev(f))``, ...) for a partial method, whose first derivative is
    not differentiable again: there torch would otherwise return a silent zero second derivative."""
    from torch._functorch.pyfunctorch import retrieve_all_functorch_interpreters

    levels = [i for i in retrieve_all_functorch_interpreters() if i.key() in (TransformType.Grad, TransformType.Jvp)]
    if len(levels) >= 2:
        raise NotImplementedError(_PARTIAL_LIMITS.format(method=method))


def _differentiable(X: torch.Tensor) -> bool:
    """Whether any autograd (reverse, forward-mode dual numbers, torch.func) may track X."""
    return (
        (torch.is_grad_enabled() and X.requires_grad)
        or torch.autograd.forward_ad._current_level >= 0
        or _transformed(X)
    )


#: The most matrices torch's eigh is handed at once, per device type (see `TorchAdapter.eigh_slice`);
#: device types not listed hand it the whole batch.
EIGH_SLICE = {"cuda": 16384}


class TorchAdapter(ArrayAPIAdapter):
    small_block = 65536
    backward_slice = 2**20
    name = "torch"

    def host_view(self, t: Any) -> Any:
        # Plain tensors only: a subclass's own dispatch (__torch_function__) must see its operations.
        return _numpy(t) if type(t) is torch.Tensor else None

    def from_host(self, a: Any) -> torch.Tensor:
        return torch.from_numpy(a)

    def namespace(self, X: Any) -> ModuleType:
        return xp_torch  # skips array_namespace's cache, which Dynamo would trace through

    def check_values(self, X: Any) -> bool:
        # Value-dependent branches are not allowed inside torch.compile or torch.func transforms,
        # and a meta tensor (shape inference, deferred initialization) holds no values to read.
        return not (torch.compiler.is_compiling() or _transformed(X) or X.device.type == "meta")

    def may_overwrite(self, *arrays: Any) -> bool:
        # In place only where autograd records nothing and no torch.func transform wraps a
        # tensor; compiled code is functionalized and fused by the compiler anyway.
        if torch.compiler.is_compiling() or _transformed(*arrays):
            return False
        return not (torch.is_grad_enabled() and any(a is not None and a.requires_grad for a in arrays))

    def eigh_slice(self, X: Any) -> int | None:
        # torch's batched eigh on CUDA (cusolverDnXsyevBatched, torch 2.11 + CUDA 13, H200) fails
        # from 65,536 matrices on for every M ≤ 32 measured (4 to 32, float32 and float64:
        # CUSOLVER_STATUS_INTERNAL_ERROR, or a workspace request of 140-730 GiB), and works in
        # slices of 16,384 with residuals of 20-68 u (docs/_static/cuda_batched_eigh_h200.json;
        # the table is on the backends page).
        # Under torch.func transforms the batch seen here excludes the vmapped dimensions.
        return EIGH_SLICE.get(X.device.type)

    def full_decompose(self, X: Any, xp: ModuleType) -> tuple[Any, Any]:
        # Eager only: traced and transformed code keeps functional outputs.
        small = X.numel() < _core.INTO_MIN  # from the heap's free lists anyway (see `_core._into`)
        if small or torch.compiler.is_compiling() or _transformed(X) or X.device.type == "meta":
            return super().full_decompose(X, xp)
        return _decompose_into_half(X)

    def decompose(self, X: Any, xp: ModuleType, method: str = "full") -> tuple[Any, Any]:
        with torch.no_grad():
            return super().decompose(X, xp, method)

    def window(self, X: Any, xp: ModuleType, k: int, lo: int | None, *, method: str, **options: Any) -> Any:
        if torch.compiler.is_compiling() or _transformed(X):  # PartialEighFunction unwraps X first
            raise NotImplementedError(_PARTIAL_LIMITS.format(method=method))
        with torch.no_grad():
            window = super().window(X.detach(), xp, k, lo, method=method, **options)
        if window is None or method == "krylov":  # krylov: torch operations, the Window holds tensors
            return window
        return TorchWindow(window)  # subset: computed on NumPy views of X's memory

    def eigh(
        self,
        X: Any,
        k: int,
        *,
        eps: float | None,
        degeneracy: str,
        xp: ModuleType,
        check_invariance: bool = False,
        method: str = "full",
        lo: int | None = None,
        tol: float | None = None,
        maxiter: int | None = None,
    ) -> tuple[Any, Any]:
        if method in _methods.PARTIAL:
            options: dict[str, Any] = {"eps": eps, "degeneracy": degeneracy, "tol": tol, "maxiter": maxiter}
            lo = X.shape[-1] - k if lo is None else lo
            return _partial_eigh(X, k, lo, method, options, check_invariance)  # type: ignore[no-any-return]
        if torch.compiler.is_compiling():
            out = CompilableEighFunction.apply(X, k, eps, degeneracy, check_invariance, method, lo)
            return out[0], out[1]
        if not _differentiable(X):  # no graph to build: skip the Function's per-call overhead
            lmd, Y = self.decompose(X, xp, method)
            return _core.top(lmd, Y, k, xp, copy=k < X.shape[-1], lo=lo)
        _refuse_nested_forward_mode()
        out = _for_eager(EighFunction, EagerEighFunction).apply(X, k, eps, degeneracy, check_invariance, method, lo)
        return out[0], out[1]

    def matrix_function(self, X: Any, spec: Any, xp: ModuleType, method: str = "full") -> Any:
        if torch.compiler.is_compiling():  # differentiable, unchecked (no value branches in compiled code)
            return CompilableMatrixFunction.apply(X, spec, False, method)[0]
        if not _differentiable(X):
            return super().matrix_function(X, spec, xp, method)
        _refuse_nested_forward_mode()
        return _for_eager(MatrixFunction, EagerMatrixFunction).apply(X, spec, self.check_values(X), method)[0]


def _decompose_into_half(X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`eigdiff._core.decompose` (torch's eigh of `_core.symmetrize`'s H + Hᵀ, H = X/2, the same
    values) with H formed in the memory that the eigenvectors then take: eager code only.

    Y is allocated first, with the column-major strides torch's eigh gives its result; H is its
    transposed view, no longer needed once H + Hᵀ exists, when eigh writes Y over it. One array
    of X's size fewer per forward (on what an allocation can cost, see `_core._into`)."""
    *batch, M, _ = X.shape
    strides = [M * M * math.prod(batch[i + 1 :]) for i in range(len(batch))] + [1, M]
    Y = torch.empty_strided(X.shape, strides, dtype=X.dtype, device=X.device)
    H = torch.div(X, 2, out=Y.mT)
    lmd = torch.empty(X.shape[:-1], dtype=X.dtype, device=X.device)
    return torch.linalg.eigh(H + H.mT, out=(lmd, Y))  # type: ignore[no-any-return]


@torch.compiler.disable  # a graph break: the iterations run eagerly inside compiled code
def _partial_eigh(X: Any, k: int, lo: int, method: str, options: dict[str, Any], check_invariance: bool) -> Any:
    """`TorchAdapter.eigh` for a partial method: through `PartialEighFunction` where autograd may
    track X, else the window directly; the full path where the window's edge cuts a cluster."""
    if _differentiable(X):
        _refuse_nested_differentiation(method)
        out = PartialEighFunction.apply(X, k, lo, method, options, check_invariance)
        return out[0], out[1]
    return ArrayAPIAdapter.eigh(ADAPTER, X, k, xp=xp_torch, method=method, lo=lo, **options)  # nothing to track


ADAPTER = TorchAdapter()


class EigenDecompositionFcn:
    """Drop-in for the ``EigenDecompositionFcn`` of S. Gould's eigendecomposition tutorial: returns only eigenvectors.

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
