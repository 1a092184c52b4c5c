"""The forward methods of `eigdiff.eigh`, `vjp` and `jvp`, and how ``"auto"`` picks one.

- ``"full"``: the array library's own eigh (LAPACK, cuSOLVER), then the selected window;
- ``"small"``: eigdiff's batched solver for M ≤ 3 (`eigdiff._small`);
- ``"subset"``: LAPACK's tridiagonal subset route through SciPy for a window of k < M
  eigenpairs (`eigdiff._subset`), with the projected-solve backward (`eigdiff._partial`):
  NumPy arrays and CPU torch tensors;
- ``"krylov"``: restarted block Krylov iteration in the array API (`eigdiff._krylov`) for a
  window at either end of the spectrum, with the same backward: every library but JAX and Dask;
- ``"auto"``: `choose`.
"""

from __future__ import annotations

from typing import Any

from eigdiff import _small
from eigdiff._checks import _index, library, real_scalar

Array = Any

METHODS = ("auto", "full", "small", "subset", "krylov")

#: The methods that compute a window without the full decomposition.
PARTIAL = ("subset", "krylov")

#: ``"auto"`` takes ``"subset"`` for one matrix (or a batch) of order M ≥ ``min_M`` when the
#: window holds at most ``max_fraction`` of the spectrum, per library, on the CPU. Measured by
#: ``benchmarks/partial_spectra.py --crossover`` (2-core AMD EPYC, CPU torch, top 8, 2026-11-30;
#: the partial-spectra docs page has the table): eigdiff "full" over "subset" fwd + bwd was
#: 0.72 / 0.63 at M = 256 (float64 / float32), 2.2 / 2.1 at 1024 and 2.6 / 2.1 at 2048; M = 512
#: measured both 3.0 and 0.7 in two runs, so the threshold sits at 1024. NumPy runs the same
#: LAPACK calls (torch reaches them through NumPy views). The fraction bound is a guess, not a
#: measurement: the backward's O(M²k) terms grow with k while the full eigh's cost does not.
AUTO_SUBSET = {"numpy": (1024, 0.1), "torch": (1024, 0.1)}


def _subset_applies(X: Array) -> bool:
    return library(X) in ("numpy", "torch") and _small.on_cpu(X)


def choose(
    method: object,
    X: Array,
    M: int,
    k: int,
    *,
    lo: int | None = None,
    traced: bool = False,
    degeneracy: object = "mask",
) -> str:
    """Resolve ``method`` for a window of k of M eigenpairs of X (..., M, M) to "full", "small"
    or "subset", or raise a ValueError that names the methods that apply. ``traced``: X is
    inside a transform or compiled code, where ``"auto"`` never picks ``"subset"`` (nor for
    ``degeneracy="taylor"``, which it does not take)."""
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if method == "subset":
        if not _subset_applies(X):
            raise ValueError(
                f"method='subset' runs LAPACK through SciPy on NumPy arrays and CPU torch tensors, got a "
                f"{library(X)} array on {getattr(X, 'device', 'its device')}; use method='full' or 'auto' "
                f"(or 'small' for M <= 3)"
            )
        return "full" if k == M else "subset"
    if method == "krylov":
        return _choose_krylov(X, M, k, M - k if lo is None else lo)
    if method != "auto":
        return _small.choose(method, X, M)
    chosen = _small.choose("auto", X, M)
    if chosen != "full" or k == M or traced or degeneracy == "taylor":  # the cheap tests first (hot path)
        return chosen
    bound = AUTO_SUBSET.get(library(X))
    if bound is not None and M >= bound[0] and k <= bound[1] * M and _subset_applies(X) and _scipy_present():
        return "subset"
    return chosen


def _choose_krylov(X: Array, M: int, k: int, lo: int) -> str:
    from eigdiff import _krylov

    if getattr(getattr(X, "device", None), "type", None) == "meta":
        raise ValueError(
            "method='krylov' iterates on X's values, which a meta tensor does not hold; use method='full' "
            "or 'auto' (they infer shapes on meta tensors)"
        )
    if library(X) in ("jax", "dask"):
        raise ValueError(
            f"method='krylov' is not wired into {library(X)} arrays (their adapters differentiate the full "
            f"decomposition); use method='full' or 'auto'"
        )
    if k == M:
        return "full"
    if lo != 0 and lo + k != M:
        raise ValueError(
            f"method='krylov' finds windows at either end of the spectrum (top_k, bottom_k, or subset_by_index "
            f"starting at 0 or ending at M = {M}), got the interior window ({lo}, {lo + k}); use method='subset' "
            f"(NumPy, CPU torch) or 'full'"
        )
    return "krylov" if _krylov.fits(M, k) else "full"


def _scipy_present() -> bool:
    try:
        import scipy.linalg  # noqa: F401
    except ImportError:
        return False
    return True


def check_solver_options(tol: object, maxiter: object) -> tuple[float | None, int | None]:
    """``tol`` a real in (0, 1) or None; ``maxiter`` a positive integer or None."""
    if tol is not None:
        tol = real_scalar(tol, "tol", positive=True)
        if not 0 < tol < 1:
            raise ValueError(f"tol must be in (0, 1) (a relative residual), got {tol}")
    if maxiter is not None:
        maxiter = _index(maxiter, "maxiter")
        if maxiter < 1:
            raise ValueError(f"maxiter must be a positive integer, got {maxiter}")
    return tol, maxiter  # type: ignore[return-value]


__all__ = ["AUTO_SUBSET", "METHODS", "PARTIAL", "choose", "check_solver_options"]
