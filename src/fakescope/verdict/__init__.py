"""Verdicts: the `Prediction` and its field declarations (`prediction`), the one rule that
judges a pixel score with its evidence and domain (`rule`), the pipeline from bytes to
verdicts that every caller runs (`pipeline`), and the Parquet and API schemas derived from
the declarations (`schemas`, imported by its users: it needs pyarrow and pydantic)."""

# Nothing is imported here: `fakescope --help` loads `verdict.prediction` (light) and must not
# load the pipeline (torch); import from the submodules.
