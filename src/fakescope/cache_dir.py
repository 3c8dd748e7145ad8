"""Where fakescope keeps what it makes once and reuses (decoded data sets, ONNX exports).

Its own module at the bottom of the layers, without PyTorch, so that scoring on onnxruntime and
the face search (fakescope.mtcnn_onnx) find their cached exports without importing the data set
cache (`fakescope.data.cache`, which is built on torch).
"""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """$FAKESCOPE_CACHE, else $XDG_CACHE_HOME/fakescope, else ~/.cache/fakescope."""
    if env := os.environ.get("FAKESCOPE_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fakescope"
