"""The ``eigdiff profile`` study: the seed tutorial's speed and memory comparison, and a sweep."""

#: The bar chart's methods, in the tutorial's order (here so that ``--help`` needs no torch).
STUDY_METHODS = ("forward", "v1", "v2", "v3", "eigdiff", "native")
