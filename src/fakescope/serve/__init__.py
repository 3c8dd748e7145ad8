"""HTTP serving of a detector: a FastAPI app (``create_app``), its settings and web page."""

from __future__ import annotations

from fakescope.serve.app import create_app
from fakescope.serve.settings import ServeSettings

__all__ = ["ServeSettings", "create_app"]
