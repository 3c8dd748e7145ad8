"""The main job: audit CIFAKE, train the quick recipe, evaluate on held-out images."""

from __future__ import annotations

import json
import os
import time
from importlib import resources
from pathlib import Path

from rich.console import Console

from fakescope.errors import SourceError

CIFAKE_NAME = "cifake_train.zip"
CIFAKE_HELP = (
    "CIFAKE was not found. Get it (CIFAKE: Real and AI-Generated Synthetic Images, Bird & Lotfi "
    "2023; on Kaggle as birdy654/cifake-real-and-ai-generated-synthetic-images) and pass it with "
    "--data PATH or the FAKESCOPE_DATA environment variable. fakescope expects a folder, .zip or "
    ".tar holding one folder per class, e.g. real/*.jpg and fake/*.jpg (REAL/FAKE, "
    "authentic/generated and similar names work too)."
)


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def find_demo_data(explicit: str | None = None) -> Path:
    """--data, then $FAKESCOPE_DATA, then ../shared/data/cifake_train.zip next to the checkout."""
    for candidate in (explicit, os.environ.get("FAKESCOPE_DATA")):
        if candidate:
            path = Path(candidate)
            if not path.exists():
                raise SourceError(f"{path}: does not exist. {CIFAKE_HELP}")
            return path
    for base in (Path.cwd(), repo_root()):
        path = base.parent / "shared" / "data" / CIFAKE_NAME
        if path.is_file():
            return path
    raise SourceError(CIFAKE_HELP)


def quick_recipe_path() -> Path:
    return Path(str(resources.files("fakescope") / "recipes" / "quick.yaml"))


def run_demo(data: str | None, run_dir: Path, *, console: Console) -> dict:
    """Audit, train, evaluate; print where the bundle, logs and metrics are."""
    # heavy: torch, pydantic, yaml; `fakescope --help` imports this module (cli.demo)
    from fakescope.config import load_recipe
    from fakescope.data.audit import audit_source, print_audit
    from fakescope.data.sources import open_source
    from fakescope.detectors import Detector
    from fakescope.evaluation.evaluate import evaluate
    from fakescope.training.trainer import train

    source_path = find_demo_data(data)
    recipe = load_recipe(quick_recipe_path())
    run_dir = Path(run_dir)
    if (run_dir / "train" / "recipe.yaml").exists():
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = run_dir.with_name(f"{run_dir.name}-{stamp}")
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    console.rule(f"1/3 audit {source_path}")
    report = audit_source(open_source(source_path), progress=True)
    (run_dir / "audit.json").write_text(json.dumps(report, indent=2))
    print_audit(report, console)

    console.rule(f"2/3 train recipe '{recipe.name}'")
    result = train(
        source_path, recipe, run_dir / "train", command=f"fakescope demo --data {source_path}"
    )

    console.rule("3/3 evaluate on the held-out test split")
    metrics = evaluate(
        Detector.load(result.bundle_dir),
        run_dir / "train" / "manifest.csv",
        run_dir / "eval",
        split="test",
    )
    minutes = (time.perf_counter() - started) / 60
    console.print(
        f"\n[bold]done in {minutes:.1f} min[/]\n"
        f"  validation accuracy {result.val_metrics['accuracy']:.4f}, "
        f"ROC-AUC {result.val_metrics['roc_auc']:.4f}\n"
        f"  test accuracy       {metrics['accuracy']:.4f}, ROC-AUC {metrics['roc_auc']:.4f} "
        f"(n={metrics['n']})\n"
        f"  audit report  {run_dir / 'audit.json'}\n"
        f"  bundle        {result.bundle_dir}\n"
        f"  metrics       {run_dir / 'eval' / 'metrics.json'}\n"
        f"  TensorBoard   tensorboard --logdir {run_dir / 'train' / 'tensorboard'}\n"
        f"  try it        fakescope predict --bundle {result.bundle_dir} some_image.jpg"
    )
    return {"val": result.val_metrics, "test": metrics, "minutes": minutes, "run_dir": str(run_dir)}
