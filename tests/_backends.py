"""The array backends the suite runs on, each convertible to and from NumPy float64."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np
import pytest


@dataclasses.dataclass(frozen=True)
class Backend:
    name: str
    xp: ModuleType
    asarray: Callable[[np.ndarray], Any]
    to_numpy: Callable[[Any], np.ndarray]
    array_type: type

    def dtype(self, name: str) -> Any:
        return getattr(self.xp, name)


#: The backends whose arrays eigdiff computes eagerly on the CPU and may write into (its slices
#: of the batch, in-place steps): not JAX (immutable, traced), not GPU arrays.
EAGER_CPU = ("numpy", "numpy_readonly", "torch:cpu", "array_api_strict")


@dataclasses.dataclass(frozen=True)
class Spec:
    name: str
    loader: Callable[[], Backend]

    def load(self) -> Backend:
        return self.loader()


def _numpy(readonly: bool = False) -> Backend:
    import array_api_compat.numpy as xp

    def asarray(a: np.ndarray) -> np.ndarray:
        out = np.array(a)
        if readonly:
            out.setflags(write=False)
        return out

    return Backend("numpy_readonly" if readonly else "numpy", xp, asarray, np.asarray, np.ndarray)


def _strict() -> Backend:
    xp = pytest.importorskip("array_api_strict")
    return Backend("array_api_strict", xp, xp.asarray, lambda a: np.asarray(a), type(xp.asarray(0.0)))


def _torch(device: str) -> Backend:
    torch = pytest.importorskip("torch")
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device available")
    import array_api_compat.torch as xp

    return Backend(
        f"torch:{device}",
        xp,
        lambda a: torch.as_tensor(np.array(a), device=device),
        lambda a: a.detach().cpu().numpy(),
        torch.Tensor,
    )


def _jax() -> Backend:
    jax = pytest.importorskip("jax", reason="JAX is not installed (pip install 'eigdiff[jax]')")
    jax.config.update("jax_enable_x64", True)  # float64 arrays, as on every other backend
    import jax.numpy as jnp

    return Backend("jax", jnp, lambda a: jnp.asarray(np.array(a)), lambda a: np.asarray(a), jax.Array)


def _cupy() -> Backend:
    cupy = pytest.importorskip("cupy", reason="CuPy is not installed (it needs an NVIDIA GPU)")
    try:
        if cupy.cuda.runtime.getDeviceCount() == 0:
            pytest.skip("no CUDA device available for CuPy")
    except cupy.cuda.runtime.CUDARuntimeError:
        pytest.skip("no CUDA device available for CuPy")
    import array_api_compat.cupy as xp

    return Backend("cupy", xp, cupy.asarray, cupy.asnumpy, cupy.ndarray)


BACKENDS: dict[str, Spec] = {
    "numpy": Spec("numpy", _numpy),
    "numpy_readonly": Spec("numpy_readonly", lambda: _numpy(readonly=True)),
    "array_api_strict": Spec("array_api_strict", _strict),
    "torch": Spec("torch", lambda: _torch("cpu")),
    "torch:cuda": Spec("torch:cuda", lambda: _torch("cuda")),
    "jax": Spec("jax", _jax),
    "cupy": Spec("cupy", _cupy),
}
