"""NumPy adapter: NumPy's LAPACK ``eigh`` (``syevd``) for the forward; the core for the rest."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from eigdiff import _core
from eigdiff.backends import ArrayAPIAdapter


class NumPyAdapter(ArrayAPIAdapter):
    name = "numpy"

    def decompose(self, X: Any, xp: ModuleType) -> tuple[Any, Any]:
        # np.linalg.eigh reads only one triangle; symmetrizing first keeps ½(X + Xᵀ) semantics.
        # (It computes float32 input in float64 and rounds the results back.)
        return _core.decompose(X, xp=xp, solver=np.linalg.eigh)


ADAPTER = NumPyAdapter()
