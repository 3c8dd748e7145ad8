"""The predict table as a person reads it: an unsure verdict's headline is "unsure"."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from fakescope.cli.predict import _prediction_table
from fakescope.inference import OUT_OF_DOMAIN, Prediction


def _rendered(*results: Prediction) -> list[str]:
    console = Console(width=160, record=True, file=io.StringIO())
    console.print(_prediction_table(results))
    return console.export_text().splitlines()


def _lines_of(lines: list[str], name: str) -> tuple[str, str]:
    """The table line naming `name` and the line beneath it (a cell's second line)."""
    index = next(i for i, line in enumerate(lines) if name in line)
    return lines[index], lines[index + 1]


def test_unsure_is_the_headline_and_the_leaning_is_beneath() -> None:
    band = "p(fake) is inside the unsure band around the threshold"
    lines = _rendered(
        Prediction("sure.png", 0.97, "fake", False),
        Prediction("band.png", 0.45, "real", True, unsure_reason=band),
        Prediction("odd.png", 0.91, "fake", True, unsure_reason=OUT_OF_DOMAIN, in_domain=False),
        Prediction("gone.png", None, None, None, error="does not exist"),
    )
    assert "verdict" in lines[1] and "unsure" not in lines[1]  # one column: the verdict
    first, _ = _lines_of(lines, "sure.png")
    assert "│ fake " in first
    first, beneath = _lines_of(lines, "band.png")
    assert "│ unsure " in first and "real" not in first and "fake" not in first
    assert "leans real" in beneath
    first, beneath = _lines_of(lines, "odd.png")
    assert "│ unsure " in first and "fake" not in first
    assert "out of domain" in beneath and "leans" not in beneath
    first, _ = _lines_of(lines, "gone.png")
    assert "does not exist" in first


@pytest.mark.parametrize("module", ["fakescope.cli.common", "fakescope.kinds.ensemble.cli"])
def test_results_tables_are_wide_in_a_log_and_follow_columns(module: str) -> None:
    """Piped to a file, results tables get FILE_WIDTH columns instead of rich's 80 (which
    crushed a robustness table of 15 sources into '0.8…' cells); COLUMNS still decides. The
    kinds' own commands (here `fakescope ensemble`'s table) print on the same console."""
    import os
    import subprocess
    import sys

    from fakescope.consoles import FILE_WIDTH

    code = f"from {module} import out; print(out.width)"
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    piped = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert int(piped.stdout) == FILE_WIDTH > 80, piped.stderr
    env["COLUMNS"] = "100"
    narrow = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert int(narrow.stdout) == 100
