"""NumPy adapter: NumPy's LAPACK ``eigh`` (``syevd``) for the forward; the core for the rest."""

from __future__ import annotations

import numpy as np

from eigdiff.backends import ArrayAPIAdapter


class NumPyAdapter(ArrayAPIAdapter):
    name = "numpy"
    # np.linalg.eigh reads only one triangle; the core symmetrizes first, keeping ½(X + Xᵀ)
    # semantics. (It computes float32 input in float64 and rounds the results back.)
    native_solver = staticmethod(np.linalg.eigh)
    small_block = 8192
    backward_slice = 2**18


ADAPTER = NumPyAdapter()
