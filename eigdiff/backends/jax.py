"""JAX adapter: ``jax.custom_jvp`` rules that call the core's forward-mode formula.

Every rule is the core's jvp (`eigdiff._core.jvp_unchecked`, `eigdiff._functions.frechet`),
which is linear in the tangent, so JAX derives reverse mode by transposing it: ``jax.grad``,
``vjp``, ``jacrev``, ``jacfwd``, ``hessian``, ``jit`` and ``vmap`` all go through one formula.
Inside each rule the full decomposition comes from `eigh_full`, itself a ``custom_jvp``
function, so that a derivative of a derivative (jvp of jvp, ``hessian``, any nesting) uses
eigdiff's rule again rather than JAX's own eigh derivative, which is NaN at ties.

Arrays are immutable here, so the core never writes in place (`JaxAdapter.may_overwrite`).
Value checks (NaN/Inf, ascending eigenvalues, a function's domain) run on concrete arrays and
are skipped on tracers, inside ``jit``, ``vmap`` and the differentiation transforms.

Importing this module without JAX raises an ImportError that says what to install.
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any

try:
    import jax
    import jax.numpy as jnp
except ImportError as exc:  # pragma: no cover - exercised only where JAX is absent
    raise ImportError(
        "eigdiff's JAX backend needs JAX: pip install 'eigdiff[jax]' (CPU; see JAX's docs for GPUs)"
    ) from exc

from eigdiff import _core, _functions, _small
from eigdiff.backends import ArrayAPIAdapter

__all__ = ["eigh_full", "eigh_top", "matrix_function"]

_SOLVER = functools.partial(jnp.linalg.eigh, symmetrize_input=False)  # the core symmetrizes once


@functools.partial(jax.jit, static_argnums=1)
def _decompose(X: Any, method: str = "full") -> tuple[Any, Any]:
    return _small.eigh(X, jnp) if method == "small" else _core.decompose(X, xp=jnp, solver=_SOLVER)


# Eager calls run the core compiled, one XLA computation per shape and options, not operation by
# operation: eagerly, JAX compiles each operation for each new shape (45 compilations, 2.2 s for
# one vjp and pullback of a (2, 4, 4) stack, 2-core AMD EPYC), and dispatches each one after.
@functools.partial(jax.jit, static_argnames=("K", "eps", "degeneracy", "lo"))
def _backward_half(lmd: Any, Y: Any, V: Any, g_lmd: Any, K: int, eps: float | None, degeneracy: str, lo: Any) -> Any:
    return _core.backward_half(lmd, Y, V, g_lmd, K, eps=eps, degeneracy=degeneracy, xp=jnp, lo=lo)


@jax.jit
def _add_transpose(G: Any) -> Any:  # its own computation: nothing to fuse its sums with
    return G + G.mT


@jax.jit
def all_finite(a: Any) -> Any:
    """Whether every entry of ``a`` is finite, as a 0-d boolean array (compiled: see above)."""
    return jnp.all(jnp.isfinite(a))


@functools.partial(jax.jit, static_argnames=("k", "eps", "degeneracy", "lo"))
def _jvp(lmd: Any, Y: Any, dX: Any, k: int, eps: float | None, degeneracy: str, lo: Any) -> tuple[Any, Any]:
    return _core.jvp_unchecked(lmd, Y, dX, k, eps=eps, degeneracy=degeneracy, xp=jnp, lo=lo)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2, 3))
def eigh_full(X: Any, eps: float | None, degeneracy: str, method: str = "full") -> tuple[Any, Any]:
    """(lmd, Y) of ½(X + Xᵀ), X (..., M, M), with eigdiff's jvp rule (``eps``, ``degeneracy``);
    ``method``: "full" (``jnp.linalg.eigh``) or "small" (M ≤ 3)."""
    return _decompose(X, method)


# The rules take dS = ½(dX + dXᵀ) operation by operation, then the compiled tangents (`_jvp`, which
# symmetrizes again: dS itself, exactly): reverse mode transposes the rule, so the gradient's last
# step is that sum, formed outside the compiled code and exactly symmetric (inside it, XLA's FMAs
# left 50 of 180 eager jax.grad draws over M ∈ {2, 3, 5}, K ∈ {1, 2} asymmetric by rounding).
@eigh_full.defjvp
def _eigh_full_jvp(eps: float | None, degeneracy: str, method: str, primals: tuple, tangents: tuple) -> tuple:
    (X,), (dX,) = primals, tangents
    lmd, Y = eigh_full(X, eps, degeneracy, method)  # differentiable by this rule again
    return (lmd, Y), _jvp(lmd, Y, _core.symmetrize(dX, jnp), Y.shape[-1], eps, degeneracy, None)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2, 3, 4, 5))
def eigh_top(
    X: Any, k: int, eps: float | None, degeneracy: str, method: str = "full", lo: int | None = None
) -> tuple[Any, Any]:
    """The k largest eigenpairs (or the k from index ``lo``), ascending: (..., k) and (..., M, k);
    the jvp costs O(M²k)."""
    lmd, Y = _decompose(X, method)
    return _core.top(lmd, Y, k, jnp, lo=lo)


@eigh_top.defjvp
def _eigh_top_jvp(
    k: int, eps: float | None, degeneracy: str, method: str, lo: int | None, primals: tuple, tangents: tuple
) -> tuple:
    (X,), (dX,) = primals, tangents
    lmd, Y = eigh_full(X, eps, degeneracy, method)
    tangent = _jvp(lmd, Y, _core.symmetrize(dX, jnp), k, eps, degeneracy, lo)
    return _core.top(lmd, Y, k, jnp, lo=lo), tangent


def _in_domain(lmd: Any, spec: Any) -> None:
    if not _traced(lmd):
        _functions.check_domain(lmd, spec, jnp)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def matrix_function(X: Any, spec: Any, method: str = "full") -> Any:
    """Y f(Λ) Yᵀ for a `eigdiff._functions.SpectralFunction`, with the Daleckii–Krein jvp.

    First derivatives are exact at ties. Higher ones differentiate that rule through
    `eigh_full`, i.e. through the (Λ, Y) chain with its gap mask: exact on separated spectra,
    not inside a tied cluster (torch's `MatrixFunction` has the exact second-order rule).
    """
    lmd, Y = _decompose(X, method)
    _in_domain(lmd, spec)
    return _functions.apply(lmd, Y, spec, jnp)


@matrix_function.defjvp
def _matrix_function_jvp(spec: Any, method: str, primals: tuple, tangents: tuple) -> tuple:
    (X,), (dX,) = primals, tangents
    lmd, Y = eigh_full(X, None, "mask", method)
    _in_domain(lmd, spec)
    return _functions.apply(lmd, Y, spec, jnp), _functions.frechet(lmd, Y, dX, spec, jnp)


def _traced(*arrays: Any) -> bool:
    """Whether a transformation traces this computation: an array is a tracer, or (inside jit, on
    constants) an operation on a fresh scalar yields one."""
    return any(isinstance(a, jax.core.Tracer) for a in arrays if a is not None) or isinstance(
        jnp.zeros(()) + 0, jax.core.Tracer
    )


class JaxAdapter(ArrayAPIAdapter):
    name = "jax"

    def namespace(self, X: Any) -> ModuleType:
        return jnp

    def check_values(self, X: Any) -> bool:
        # A tracer (jit, vmap, grad, ...) has no value to branch on.
        return not _traced(X)

    def may_overwrite(self, *arrays: Any) -> bool:
        return False  # JAX arrays are immutable

    def decompose(self, X: Any, xp: ModuleType, method: str = "full") -> tuple[Any, Any]:
        return _decompose(X, method)

    def backward(self, lmd: Any, Y: Any, V: Any, g_lmd: Any, K: int, **options: Any) -> Any:
        """The core's backward compiled (`_backward_half`), then G + Gᵀ outside the compiled
        code, so that the result is exactly symmetric (XLA fuses the last product with the sum
        into FMAs otherwise, rounding (i, j) and (j, i) differently). ``check_invariance`` reads
        values: that call runs operation by operation."""
        if options.get("check_invariance"):
            return super().backward(lmd, Y, V, g_lmd, K, **options)
        G = _backward_half(lmd, Y, V, g_lmd, K, options["eps"], options["degeneracy"], options.get("lo"))
        return _add_transpose(G)

    def jvp(self, lmd: Any, Y: Any, dX: Any, k: int, *, eps: float | None, degeneracy: str, **options: Any) -> Any:
        return _jvp(lmd, Y, dX, k, eps, degeneracy, options.get("lo"))  # compiled, as the backward

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
    ) -> tuple[Any, Any]:  # tol and maxiter: only the partial methods', which JAX arrays do not take
        if check_invariance:
            raise ValueError(
                "check_invariance needs the cotangent, which a JAX forward-mode rule never sees: "
                "pass it to eigdiff.vjp or eigdiff.backward (outside jit) instead"
            )
        if k == X.shape[-1]:
            return eigh_full(X, eps, degeneracy, method)
        return eigh_top(X, k, eps, degeneracy, method, lo)

    def matrix_function(self, X: Any, spec: Any, xp: ModuleType, method: str = "full") -> Any:
        return matrix_function(X, spec, method)  # checks f's domain where the eigenvalues are concrete


ADAPTER = JaxAdapter()
