"""CuPy adapter: cuSOLVER's ``eigh`` (batched ``syevj`` for stacks) on the GPU; the core for the rest.

Outputs stay on the input's device. Importing this module without CuPy raises an ImportError
that says what to install.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

try:
    import cupy
except ImportError as exc:  # pragma: no cover - exercised only where CuPy is absent
    raise ImportError(
        "eigdiff's CuPy backend needs CuPy and an NVIDIA GPU: install the wheel for your CUDA, "
        "for example `pip install cupy-cuda12x` (see https://docs.cupy.dev/en/stable/install.html)"
    ) from exc

from eigdiff.backends import ArrayAPIAdapter


class CuPyAdapter(ArrayAPIAdapter):
    name = "cupy"

    def on_device(self, X: Any) -> Any:
        # array-api-compat's creation functions ignore device= for CuPy and use the current
        # device; X.device (a cupy.cuda.Device) as a context makes it X's.
        return X.device

    native_solver = staticmethod(cupy.linalg.eigh)

    def decompose(self, X: Any, xp: ModuleType, method: str = "full") -> tuple[Any, Any]:
        with self.on_device(X):
            return super().decompose(X, xp, method)


ADAPTER = CuPyAdapter()
