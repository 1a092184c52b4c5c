"""The ``eigdiff profile`` study: the speed and memory comparison of S. Gould's
eigendecomposition tutorial (deep declarative networks), and a sweep."""

#: The bar chart's methods, in the tutorial's order (here so that ``--help`` needs no torch).
STUDY_METHODS = ("forward", "v1", "v2", "v3", "eigdiff", "native")

#: What each method's row measures: one line each, for the table's legend and ``--help``.
METHOD_LEGEND = {
    "forward": "eigdiff's forward: eigh of ½(X + Xᵀ), the reference for the 'x forward' column",
    "v1": "backward, the tutorial's first variant: a pseudo-inverse of X − λI per eigenvector",
    "v2": "backward, its second variant: the spectral pseudo-inverse, still one eigenvector at a time",
    "v3": "backward, its third variant: vectorized over all eigenvectors",
    "eigdiff": "backward, eigdiff: the vectorized formula (top-k aware), degenerate gaps masked",
    "native": "backward, torch's own eigh autograd",
}


def legend(methods: tuple[str, ...] | list[str] = STUDY_METHODS) -> str:
    """The methods' one-line meanings, as printed under the profile table."""
    return "\n".join(f"  {m:<8} {METHOD_LEGEND[m]}" for m in methods)
