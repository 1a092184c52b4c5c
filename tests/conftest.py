"""Backends under test, hypothesis profiles.

``EIGDIFF_TEST_BACKENDS`` (comma-separated, e.g. ``numpy,torch``) narrows the backends; by
default every one is collected, and one that cannot run here is skipped with its reason.
``HYPOTHESIS_PROFILE`` picks ``ci`` (default: derandomized) or ``dev`` (random, more examples).
Under pytest-xdist (``-n auto``, as CI runs the suite) each worker's math libraries get one
thread, unless the environment already says otherwise (see `pytest_configure`).
"""

from __future__ import annotations

import os

import pytest
from _backends import BACKENDS, Backend
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    deadline=None,
    derandomize=True,
    max_examples=25,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "dev",
    deadline=None,
    max_examples=100,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_configure(config: pytest.Config) -> None:
    """With pytest-xdist workers, one thread each for OpenMP (torch), OpenBLAS and MKL.

    Set in the controlling process before it starts the workers, which inherit the environment.
    N workers that each spread their operations over all N cores oversubscribe them, and idle
    OpenMP threads spin while they wait: the suite (2 cores, ``-n auto --dist worksteal``) took
    343 and 366 s with one thread per worker against 421 s with the default pools of two
    (2026-12-02; 683 s in one process). A variable already set is left as it is.
    """
    if getattr(config.option, "numprocesses", None) and "PYTEST_XDIST_WORKER" not in os.environ:
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(name, "1")


def _selected() -> list[str]:
    wanted = os.environ.get("EIGDIFF_TEST_BACKENDS")
    if not wanted:
        return list(BACKENDS)
    names = [n.strip() for n in wanted.split(",") if n.strip()]
    unknown = sorted(set(names) - set(BACKENDS))
    if unknown:
        raise pytest.UsageError(f"EIGDIFF_TEST_BACKENDS names unknown backends {unknown}; known: {sorted(BACKENDS)}")
    return names


@pytest.fixture(params=_selected())
def backend(request: pytest.FixtureRequest) -> Backend:
    """Every array backend: numpy, numpy_readonly, array_api_strict, torch, torch:cuda, cupy."""
    return BACKENDS[request.param].load()


@pytest.fixture(params=[b for b in _selected() if b != "numpy_readonly"])
def grad_backend(request: pytest.FixtureRequest) -> Backend:
    """Backends for gradient properties (read-only NumPy is covered by the input tests)."""
    return BACKENDS[request.param].load()
