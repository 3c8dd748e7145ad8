"""Batch scoring of very large folders, archives and manifests on a Ray cluster, into Parquet.

The driver lists the inputs (item paths only, never pixels) and hands them to Ray Data in
blocks; a pool of actors, each holding one Detector, reads, decodes and scores a batch at a
time; the verdicts stream back to the driver, which appends them to one Parquet file. Memory
stays bounded by the blocks in flight, whatever the number of images. A file that cannot be
read or decoded becomes a row with an `error`, never a failed job.

Every node reads the inputs itself, so they must be at the same path on every node (shared
storage); the detector travels to the actors through Ray's object store and the Parquet file
is written by the driver.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pyarrow as pa
import pyarrow.parquet as pq

from fakescope.atomic import atomic_path
from fakescope.data.sources import collect_inputs
from fakescope.detectors import Detector, load_detector
from fakescope.errors import ScoringError
from fakescope.verdict.pipeline import predict_inputs
from fakescope.verdict.schemas import arrow_rows, arrow_schema

SCHEMA = arrow_schema()
"""The Parquet columns: the Prediction's, as declared in `fakescope.verdict.prediction`."""
PATHS_PER_BLOCK = 4096  # a block is the unit Ray schedules; an actor scores it batch by batch


@dataclass
class ScoreSummary:
    out: Path
    n: int
    n_errors: int
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.n / self.seconds if self.seconds > 0 else 0.0


def score_paths(detector: Detector, paths: Sequence[str]) -> pa.Table:
    """Verdict rows (SCHEMA) for item paths, in their order, exactly as `predict` gives them
    (pixels, domain and provenance); bad files get an `error`."""
    predictions = predict_inputs(detector, list(paths), batch_size=max(1, len(paths)))
    return pa.Table.from_pylist(arrow_rows(predictions), schema=SCHEMA)


class DetectorActor:
    """A Ray Data actor: one Detector, reused for every batch it is given."""

    def __init__(self, detector: Detector) -> None:
        import torch  # in the Ray worker process, where the actor is built

        torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
        self.detector = detector

    def __call__(self, batch: pa.Table) -> pa.Table:
        return score_paths(self.detector, batch.column("path").to_pylist())


def _problem_rows(problems: Iterable[tuple[str, str]]) -> pa.Table:
    return pa.Table.from_pylist(
        [{"path": path, "error": reason} for path, reason in problems], schema=SCHEMA
    )


def _blocks(paths: list[str], size: int) -> Iterator[pa.Table]:
    for start in range(0, len(paths), size):
        yield pa.table({"path": paths[start : start + size]})


def connect(address: str | None, num_cpus: int | None = None) -> None:
    """Join a Ray cluster ('auto' or HOST:PORT) or start a local one; reuse a running one."""
    import ray  # Ray: heavy, loaded only when a job runs

    if ray.is_initialized():
        return
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    except Exception as exc:  # Ray raises bare Exceptions for start-up timeouts
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise ScoringError(
            f"cannot start or join {where} ({exc}); start a cluster with `ray start --head` "
            f"and pass --ray-address auto, or leave out --ray-address to run on this machine"
        ) from exc


def score_to_parquet(
    inputs: Sequence[str],
    out: str | os.PathLike,
    *,
    detector: Detector | None = None,
    bundle: str | os.PathLike | None = None,
    ray_address: str | None = None,
    batch_size: int = 256,
    workers: int | None = None,
    progress: bool = True,
) -> ScoreSummary:
    """Score every image in `inputs` on Ray and write one Parquet file of verdicts.

    `workers` actors (default: one per CPU of the cluster) each score `batch_size` images at
    a time. Rows arrive in completion order, not input order: join or sort on `path`.
    """
    if batch_size < 1:
        raise ScoringError(f"--batch-size must be at least 1, got {batch_size}")
    out = Path(out)
    if out.suffix.lower() != ".parquet":
        raise ScoringError(f"{out}: the output must be a .parquet file")
    started = time.perf_counter()
    paths, problems = collect_inputs([os.fspath(p) for p in inputs])
    if not paths:
        reasons = "; ".join(f"{path}: {reason}" for path, reason in problems) or "no inputs given"
        raise ScoringError(f"no images to score ({reasons})")
    detector = detector or load_detector(bundle, device="cpu")
    import ray  # Ray: heavy, loaded only when a job runs
    import ray.data

    connect(ray_address, num_cpus=None if ray_address else workers)
    if workers is None:
        workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = progress
    context.enable_operator_progress_bars = progress

    n = n_errors = 0
    try:
        with atomic_path(out) as tmp, pq.ParquetWriter(tmp, SCHEMA) as writer:
            if problems:
                writer.write_table(_problem_rows(problems))
                n, n_errors = len(problems), len(problems)
            block = max(batch_size, min(PATHS_PER_BLOCK, -(-len(paths) // (4 * workers))))
            dataset = ray.data.from_arrow(list(_blocks(paths, block))).map_batches(
                DetectorActor,
                fn_constructor_args=(detector,),
                batch_size=batch_size,
                batch_format="pyarrow",
                compute=ray.data.ActorPoolStrategy(size=workers),
                num_cpus=1,
            )
            # batch_format="pyarrow" yields Arrow tables (ray types every batch format)
            batches = dataset.iter_batches(batch_format="pyarrow", batch_size=None)
            for table in cast("Iterator[pa.Table]", batches):
                writer.write_table(table.cast(SCHEMA))
                n += table.num_rows
                n_errors += table.num_rows - table.column("error").null_count
    except OSError as exc:
        raise ScoringError(f"cannot write {out}: {exc}") from exc
    return ScoreSummary(out=out, n=n, n_errors=n_errors, seconds=time.perf_counter() - started)
