"""eigdiff: the differentiable symmetric eigendecomposition, written once for every array library.

Public API: `eigh`, `backward`, `vjp`, `jvp`; the torch autograd adapter lives in
`eigdiff.backends.torch`. ``import eigdiff`` imports neither torch nor cupy.
"""

from eigdiff._api import backward, eigh, jvp, vjp
from eigdiff._checks import DEGENERACY_MODES
from eigdiff._core import DegenerateGradientWarning

__all__ = ["DEGENERACY_MODES", "DegenerateGradientWarning", "backward", "eigh", "jvp", "vjp"]
__version__ = "0.1.0"

from eigdiff.backends import load_present_adapters as _load_present_adapters

_load_present_adapters()
