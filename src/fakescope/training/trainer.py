"""Train a detector: `train` (one run) and `train_folds` (k-fold, mean ± std), the run folder
they create or resume and the source they read. The loop itself is `Trainer`
(training/loop.py); an interrupted run raises `TrainingInterrupted` after its checkpoint."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import yaml

from fakescope.config import Recipe, validate_recipe
from fakescope.data.multi_source import MultiSource, SourceSpec
from fakescope.data.source_selection import Selection
from fakescope.data.sources import Item, Source, open_source
from fakescope.errors import ConfigError
from fakescope.metrics.shapes import BinaryMetrics
from fakescope.training import distributed
from fakescope.training.finish import TrainResult
from fakescope.training.loop import Trainer
from fakescope.training.resume import TrainingInterrupted
from fakescope.training.run_manifest import prepare_split, read_earlier_splits
from fakescope.training.state import FoldSummary, MeanStd

__all__ = [
    "TrainResult",
    "TrainingInterrupted",
    "open_training_source",
    "train",
    "train_folds",
]


def _prepare_run(run_dir: Path, recipe: Recipe | None, resume: bool) -> Recipe:
    """Create the run folder, or check a resumed one was made with the same recipe.

    On resume, `recipe=None` means "the recipe the run started with".
    """
    stored = run_dir / "recipe.yaml"
    if resume:
        if not stored.is_file():
            raise ConfigError(f"{run_dir}: nothing to resume (no recipe.yaml); drop --resume")
        previous = validate_recipe(yaml.safe_load(stored.read_text()), origin=str(stored))
        if recipe is not None and previous != recipe:
            raise ConfigError(
                f"{run_dir}: --resume with a recipe different from the one the run started with; "
                f"resume without --config/--set, or start a new --out"
            )
        return previous
    if recipe is None:
        raise ConfigError("a recipe is needed to start a run")
    if stored.exists():
        raise ConfigError(
            f"{run_dir} already holds a run; pass --resume to continue it or choose another --out"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    stored.write_text(yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False))
    return recipe


def open_training_source(
    source_spec: str | Path | None, recipe: Recipe, data_dir: str | Path | None = None
) -> Source:
    """The SOURCE given on the command line, or the recipe's `data.sources` combined (their
    relative paths under `data_dir`: --data-dir, else $FAKESCOPE_DATA_DIR, else here)."""
    listed = recipe.data.sources
    if listed and source_spec is not None:
        raise ConfigError(
            f"recipe {recipe.name!r} lists its sources ({', '.join(s.label for s in listed)}); "
            "drop SOURCE, or use a recipe without data.sources"
        )
    if not listed:
        if source_spec is None:
            raise ConfigError("give a SOURCE to train on, or a recipe that lists data.sources")
        return open_source(source_spec)
    root = data_dir or os.environ.get("FAKESCOPE_DATA_DIR") or "."
    specs = [
        SourceSpec(
            s.path,
            s.label,
            s.weight,
            s.max_items,
            Selection(
                None if s.generators is None else tuple(s.generators),
                tuple(s.exclude_generators),
                s.balance,
            ),
            f"data.sources[{i}] ({s.label})",
        )
        for i, s in enumerate(listed)
    ]
    return MultiSource(specs, data_dir=root, seed=recipe.train.seed)


def _earlier_splits(recipe: Recipe, run_dir: Path, folds: int | None) -> dict[str, str] | None:
    """The splits `data.keep_splits_of` names, while the run has no manifest of its own."""
    keep = recipe.data.keep_splits_of
    if keep is None or (run_dir / "manifest.csv").is_file():
        return None
    if folds:
        raise ConfigError("data.keep_splits_of and --folds exclude each other")
    return read_earlier_splits(keep)


def _open_run(
    source_spec: str | Path | None,
    recipe: Recipe | None,
    run_dir: Path,
    resume: bool,
    folds: int | None,
    progress: bool,
    data_dir: str | Path | None = None,
) -> tuple[Source, Recipe, list[Item]]:
    """Open the source, create (or check) the run folder and fix the split in its manifest.

    Under torchrun process 0 does this first; the others then find the run it created.
    """
    main = distributed.current().is_main

    def open_run() -> tuple[Source, Recipe, list[Item]]:
        # a bad data.keep_splits_of is refused before the run starts; a run resumed without a
        # recipe takes the one stored in its folder
        earlier = None if recipe is None else _earlier_splits(recipe, run_dir, folds)
        run_recipe = _prepare_run(run_dir, recipe, resume or not main)
        if recipe is None:
            earlier = _earlier_splits(run_recipe, run_dir, folds)
        source = open_training_source(source_spec, run_recipe, data_dir)
        items = prepare_split(
            source,
            run_recipe.data,
            seed=run_recipe.train.seed,
            manifest_path=run_dir / "manifest.csv",
            folds=folds,
            progress=progress,
            earlier=earlier,
        )
        return source, run_recipe, items

    return distributed.current().main_first(open_run)


@distributed.in_session  # launched by torchrun: the processes train one model together
def train(
    source_spec: str | Path | None,
    recipe: Recipe | None,
    run_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    command: str = "",
    stop_after_steps: int | None = None,
    data_dir: str | Path | None = None,
) -> TrainResult:
    """Train a detector on a source (None: the recipe's data.sources, under `data_dir`) and
    write RUN/bundle, RUN/metrics.json, checkpoints, logs."""
    run_dir = Path(run_dir)
    source, recipe, items = _open_run(
        source_spec, recipe, run_dir, resume, None, progress, data_dir
    )
    trainer = Trainer(
        recipe,
        run_dir,
        source=source,
        items=items,
        progress=progress,
        command=command,
        stop_after_steps=stop_after_steps,
    )
    return trainer.fit(resume=resume)


@distributed.in_session
def train_folds(
    source_spec: str | Path | None,
    recipe: Recipe | None,
    run_dir: str | Path,
    folds: int,
    *,
    resume: bool = False,
    progress: bool = True,
    command: str = "",
    data_dir: str | Path | None = None,
) -> FoldSummary:
    """K-fold: one bundle per fold in RUN/fold{i}/bundle and a mean ± std summary."""
    if folds < 2:
        raise ConfigError("--folds must be at least 2")
    run_dir = Path(run_dir)
    source, recipe, items = _open_run(
        source_spec, recipe, run_dir, resume, folds, progress, data_dir
    )
    results: list[BinaryMetrics] = []
    for k in range(folds):
        fold_dir = run_dir / f"fold{k}"
        if (fold_dir / "metrics.json").is_file() and resume:
            results.append(json.loads((fold_dir / "metrics.json").read_text())["val"])
            continue
        trainer = Trainer(
            recipe,
            fold_dir,
            source=source,
            items=items,
            val_split=f"fold{k}",
            progress=progress,
            command=command,
        )
        results.append(trainer.fit(resume=resume).val_metrics)

    def over_folds(key: str) -> MeanStd:
        found = [r.get(key) for r in results]
        values = np.array([v for v in found if v is not None], dtype=float)
        return {"mean": float(values.mean()), "std": float(values.std(ddof=1))}

    summary: FoldSummary = {
        "folds": folds,
        "per_fold": results,
        "accuracy": over_folds("accuracy"),
        "precision": over_folds("precision"),
        "recall": over_folds("recall"),
        "f1": over_folds("f1"),
        "roc_auc": over_folds("roc_auc"),
        "average_precision": over_folds("average_precision"),
    }
    if distributed.current().is_main:
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
