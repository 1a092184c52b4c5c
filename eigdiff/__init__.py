"""eigdiff: the differentiable symmetric eigendecomposition, written once for every array library.

Public API: `eigh`, `backward`, `vjp`, `jvp`; matrix functions with exact gradients at ties
(`matrix_function`, `sqrtm`, `inv_sqrtm`, `logm`, `expm`, `powm`, and `matrix_function_vjp` /
`matrix_function_jvp` for NumPy and CuPy); the torch autograd adapter lives in
`eigdiff.backends.torch`. ``import eigdiff`` imports neither torch nor cupy.
"""

from eigdiff._api import (
    backward,
    eigh,
    expm,
    inv_sqrtm,
    jvp,
    logm,
    matrix_function,
    matrix_function_jvp,
    matrix_function_vjp,
    powm,
    sqrtm,
    vjp,
)
from eigdiff._checks import DEGENERACY_MODES
from eigdiff._core import DegenerateGradientWarning
from eigdiff._partial import ConvergenceError

__all__ = [
    "DEGENERACY_MODES",
    "ConvergenceError",
    "DegenerateGradientWarning",
    "backward",
    "eigh",
    "expm",
    "inv_sqrtm",
    "jvp",
    "logm",
    "matrix_function",
    "matrix_function_jvp",
    "matrix_function_vjp",
    "powm",
    "sqrtm",
    "vjp",
]
__version__ = "0.1.0"

from eigdiff.backends import load_present_adapters as _load_present_adapters

_load_present_adapters()
