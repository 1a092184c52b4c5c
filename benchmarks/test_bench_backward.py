"""pytest-benchmark suite: eigdiff and torch's native eigh at the target shapes (CPU).

Not collected by the unit-test run (``testpaths`` names tests/ and eigdiff/ only); run with
``python -m pytest benchmarks --benchmark-only``. No timing is asserted.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("pytest_benchmark")

from eigdiff.profiling import study  # noqa: E402

SHAPES = [(5, 32), (1000, 32), (64, 128), (8, 512)]
IDS = [f"B{b}xM{m}" for b, m in SHAPES]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize(("B", "M"), SHAPES, ids=IDS)
@pytest.mark.parametrize("method", ["eigdiff", "native"])
def test_backward(benchmark, method: str, B: int, M: int, dtype) -> None:
    benchmark.group = f"backward {B}x{M} {dtype}"
    benchmark(study.backward_call(method, study.make_input(B, M, dtype, "cpu"), None))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("method", ["eigdiff", "native"])
def test_backward_top8_of_512(benchmark, method: str, dtype) -> None:
    benchmark.group = f"top-8 backward 8x512 {dtype}"
    benchmark(study.backward_call(method, study.make_input(8, 512, dtype, "cpu"), 8))


@pytest.mark.parametrize(("B", "M"), SHAPES, ids=IDS)
@pytest.mark.parametrize("method", ["eigdiff", "native"])
def test_forward(benchmark, method: str, B: int, M: int) -> None:
    benchmark.group = f"forward {B}x{M} float32"
    benchmark(study.forward_call(method, study.make_input(B, M, torch.float32, "cpu"), None))
