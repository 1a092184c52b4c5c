"""Doctest collection: adapter modules of libraries that are not installed are not imported."""

import importlib.util

collect_ignore = [
    f"eigdiff/backends/{name}.py" for name in ("cupy", "torch", "jax", "dask") if importlib.util.find_spec(name) is None
]
if importlib.util.find_spec("torch") is None:  # the profiling study and its variants are torch code
    collect_ignore += ["eigdiff/profiling/study.py", "eigdiff/profiling/variants.py", "tests/_accuracy.py"]
