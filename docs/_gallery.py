"""sphinx-gallery helpers, importable by name so that Sphinx can cache the configuration."""

from __future__ import annotations

import tempfile
from pathlib import Path


def quick_argv(gallery_conf: dict, script_vars: dict) -> list[str]:
    """Run each example as the test suite does: ``--quick``, with its figure drawn to a scratch file."""
    name = Path(script_vars["src_file"]).stem
    return ["--quick", "--plot", str(Path(tempfile.gettempdir()) / f"eigdiff-gallery-{name}.png")]
