"""Writing a matplotlib figure as PNG, the one way every plot in fakescope is saved (evaluation,
robustness and video timelines alike). Figures are drawn on the Agg canvas through `Figure`
directly (no pyplot), so nothing touches the global backend."""

from __future__ import annotations

import os
from pathlib import Path

from matplotlib.figure import Figure

DPI = 110


def save_figure(fig: Figure, path: str | os.PathLike) -> Path:
    """Lay out and write a figure as PNG, creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=DPI)
    return path
