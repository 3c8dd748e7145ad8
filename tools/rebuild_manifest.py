"""Rebuild the training manifest (train/val split) of a shipped multi-source detector.

    python tools/rebuild_manifest.py general ../shared/data runs/general-manifest.csv

The split is seeded, so the recipe recorded in the bundle gives the same one; the image
counts are checked against the bundle's. The manifest lets anyone re-measure a shipped
detector on its own validation images (`fakescope evaluate MANIFEST --split val`,
`fakescope robustness MANIFEST --split val`) or refit its domain model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fakescope.bundle import read_meta, shipped_bundle_path
from fakescope.config import validate_recipe
from fakescope.training.run_manifest import prepare_split
from fakescope.training.trainer import open_training_source


def rebuilt_manifest(name: str, data_dir: Path, manifest: Path) -> Path:
    """The training manifest of shipped detector `name`, rebuilt from its recorded recipe
    into `manifest` (an existing file there is read back, not rebuilt)."""
    training = read_meta(shipped_bundle_path(name))["training"]
    recipe = validate_recipe(training["recipe"])
    manifest.parent.mkdir(parents=True, exist_ok=True)
    source = open_training_source(None, recipe, data_dir)
    items = prepare_split(source, recipe.data, seed=recipe.train.seed, manifest_path=manifest)
    counts = {s: sum(it.split == s for it in items) for s in ("train", "val")}
    if (counts["train"], counts["val"]) != (training["n_train"], training["n_val"]):
        raise SystemExit(
            f"{name}: the rebuilt split has {counts} images, the bundle was trained on "
            f"{training['n_train']} / {training['n_val']}: is {data_dir} the same data?"
        )
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("name", help="a shipped detector trained on data.sources (general, faces)")
    parser.add_argument("data", type=Path, help="the folder that holds its sources")
    parser.add_argument("out", type=Path, help="the manifest CSV to write")
    args = parser.parse_args()
    print(f"wrote {rebuilt_manifest(args.name, args.data, args.out)}")


if __name__ == "__main__":
    main()
