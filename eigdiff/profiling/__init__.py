"""The ``eigdiff profile`` study: the seed tutorial's speed and memory comparison, and a sweep."""
