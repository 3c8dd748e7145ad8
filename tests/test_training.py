"""Recipes, the training loop, checkpoints and exact resume, k-fold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tiny import tiny_model, tiny_recipe, tiny_recipe_data

from fakescope.bundle import read_meta, update_meta
from fakescope.config import apply_overrides, load_recipe, validate_recipe
from fakescope.errors import ConfigError
from fakescope.training.budget import chain_seconds_of
from fakescope.training.checkpoint import flatten_optimizer, unflatten_optimizer
from fakescope.training.finish import Finishing
from fakescope.training.loop import Trainer
from fakescope.training.schedule import cosine_factor, schedule_position
from fakescope.training.trainer import TrainingInterrupted, train, train_folds


# -- recipes -------------------------------------------------------------------------------
def test_recipe_defaults_validate() -> None:
    recipe = validate_recipe({})
    assert recipe.model.name == "resnet_se"
    assert recipe.train.epochs >= 1


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"train": {"epochs": 0}}, "train.epochs"),
        ({"train": {"lr": -1}}, "train.lr"),
        ({"train": {"epochs": 2, "freeze_epochs": 2}}, "freeze_epochs"),
        ({"trian": {}}, "trian"),
        ({"model": {"name": "resnet_sse"}}, "resnet_se"),
        ({"data": {"cache": "ram"}}, "data.cache"),
    ],
)
def test_bad_recipes_are_rejected_with_the_key(data: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        validate_recipe(data)


def test_recipe_file_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("name: x\ntrain:\n  epochs: 4\n")
    recipe = load_recipe(path, ["train.epochs=7", "model.kwargs={widths: [8, 16, 32]}"])
    assert recipe.train.epochs == 7
    assert recipe.model.kwargs == {"widths": [8, 16, 32]}
    with pytest.raises(ConfigError, match="section.key=value"):
        apply_overrides({}, ["epochs"])
    with pytest.raises(ConfigError, match="not found"):
        load_recipe(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_recipe(tmp_path / "list.yaml")


def test_a_recipe_extends_another_and_holds_only_what_differs(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(
        "name: base\ndescription: the base\n"
        "data:\n  input_size: 96\n  sources:\n    - {path: a.zip, weight: 1.0}\n"
        "    - {path: b.zip, weight: 1.0}\n  augment:\n    hflip: false\n"
        "    degrade: {p_jpeg: 0.5, jpeg_min: 40}\n"
        "train:\n  epochs: 9\n  lr: 0.001\n"
        "card: {title: base card, limits: never saw video}\n"
    )
    (tmp_path / "child.yaml").write_text(
        "extends: base\nname: child\n"
        "data:\n  sources:\n    - {path: c.zip}\n  augment:\n    degrade: {jpeg_min: 60}\n"
        "train:\n  lr: 0.0003\n"
    )
    recipe = load_recipe(tmp_path / "child.yaml", ["train.epochs=2"])
    assert recipe.name == "child" and recipe.description == "the base"
    # sections merge key by key: inherited values stay, the child's replace them
    assert recipe.data.input_size == 96 and recipe.data.augment.hflip is False
    assert recipe.data.augment.degrade.p_jpeg == 0.5
    assert recipe.data.augment.degrade.jpeg_min == 60
    assert recipe.train.lr == 0.0003 and recipe.train.epochs == 2  # --set comes last
    assert recipe.card is not None and recipe.card.title == "base card"
    # a list is replaced whole, never appended to
    assert [s.path for s in recipe.data.sources] == ["c.zip"]
    # a chain of three, and a path relative to the child
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "grandchild.yaml").write_text("extends: ../child.yaml\nname: g\n")
    grandchild = load_recipe(tmp_path / "sub" / "grandchild.yaml")
    assert grandchild.name == "g" and grandchild.train.lr == 0.0003
    assert grandchild.data.input_size == 96
    # a shipped recipe by name, when no file of that name lies beside the child
    (tmp_path / "quicker.yaml").write_text("extends: quick\nname: quicker\n")
    assert load_recipe(tmp_path / "quicker.yaml").train == load_recipe("quick").train


def test_bad_extends_is_rejected_before_work_starts(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("extends: b\nname: a\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\nname: b\n")
    with pytest.raises(ConfigError, match="circle"):
        load_recipe(tmp_path / "a.yaml")
    (tmp_path / "orphan.yaml").write_text("extends: no_such_recipe\n")
    with pytest.raises(ConfigError, match="orphan.yaml: extends 'no_such_recipe'.*not found"):
        load_recipe(tmp_path / "orphan.yaml")
    (tmp_path / "two.yaml").write_text("extends: [quick, default]\n")
    with pytest.raises(ConfigError, match="name or path of one recipe"):
        load_recipe(tmp_path / "two.yaml")
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    (tmp_path / "on_broken.yaml").write_text("extends: broken\n")
    with pytest.raises(ConfigError, match="broken.yaml: not valid YAML"):
        load_recipe(tmp_path / "on_broken.yaml")
    (tmp_path / "bad_child.yaml").write_text("extends: quick\ntrain: {epochs: 0}\n")
    with pytest.raises(ConfigError, match="train.epochs"):
        load_recipe(tmp_path / "bad_child.yaml")


def test_shipped_recipes_validate() -> None:
    recipes = Path(__file__).resolve().parents[1] / "configs"
    files = sorted(recipes.glob("*.yaml"))
    assert {f.stem for f in files} >= {"default", "quick"}
    for file in files:
        load_recipe(file)
    assert load_recipe("quick").name == "quick"  # a shipped recipe by name


def test_cosine_schedule_warms_up_and_decays() -> None:
    factors = [cosine_factor(s, 100, 10, 0.01) for s in range(100)]
    assert factors[0] == pytest.approx(0.1)
    assert max(factors) == pytest.approx(1.0)
    assert factors[-1] == pytest.approx(0.01, abs=0.01)
    assert all(a >= b for a, b in zip(factors[10:], factors[11:], strict=False))


def test_time_budget_moves_the_schedule_on_a_slow_machine() -> None:
    assert schedule_position(10, 100, elapsed=30.0, budget=None) == 10
    assert schedule_position(10, 100, elapsed=30.0, budget=60.0) == 50  # half the time: mid-way
    assert schedule_position(80, 100, elapsed=30.0, budget=60.0) == 80  # fast: steps lead
    assert schedule_position(10, 100, elapsed=90.0, budget=60.0) == 100


def test_class_imbalance_weights_the_loss(toy_folder: Path, tmp_path: Path) -> None:
    from fakescope.data.sources import open_source
    from fakescope.training.loop import Trainer
    from fakescope.training.run_manifest import prepare_split

    source = open_source(toy_folder)
    recipe = tiny_recipe(epochs=1)
    items = prepare_split(
        source, recipe.data, seed=0, manifest_path=tmp_path / "m.csv", progress=False
    )
    train_fakes = [it for it in items if it.label == 1 and it.split == "train"]
    items = [it for it in items if it not in train_fakes[: len(train_fakes) * 2 // 3]]
    trainer = Trainer(recipe, tmp_path / "run", source=source, items=items, progress=False)
    trainer._load_data()
    trainer._build()
    n_real, n_fake = trainer.class_counts["real"], trainer.class_counts["fake"]
    assert n_real > 2 * n_fake
    assert trainer.loss_fn.pos_weight.item() == pytest.approx(n_real / n_fake)


def test_optimizer_state_round_trips_without_pickle() -> None:
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    tensors, info = flatten_optimizer(opt.state_dict())
    restored = unflatten_optimizer(tensors, json.loads(json.dumps(info)))
    fresh = torch.optim.AdamW(model.parameters(), lr=0.1)
    fresh.load_state_dict(restored)
    for key in ("exp_avg", "exp_avg_sq", "step"):
        assert torch.equal(fresh.state_dict()["state"][0][key], opt.state_dict()["state"][0][key])


# -- training ------------------------------------------------------------------------------
@pytest.mark.slow
def test_training_learns_the_toy_task_and_writes_a_run(toy_folder: Path, tmp_path: Path) -> None:
    result = train(toy_folder, tiny_recipe(epochs=8), tmp_path / "run", progress=False)
    assert result.val_metrics["accuracy"] >= 0.9
    run = tmp_path / "run"
    for name in ("bundle/model.safetensors", "bundle/bundle.json", "metrics.json", "manifest.csv"):
        assert (run / name).is_file(), name
    assert any((run / "tensorboard").iterdir())
    history = json.loads((run / "metrics.json").read_text())["history"]
    assert len(history) == result.epochs_run and history[0]["images_per_second"] > 0


def test_the_end_of_a_run_reuses_the_best_epochs_validation_scores(
    toy_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Validation images are scored once per epoch, not again at the end: the best epoch's
    logits are those its restored weights give."""
    calls = {"n": 0}
    predict = Trainer.predict_logits

    def counted(self: Trainer, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        calls["n"] += 1
        return predict(self, images, batch_size)

    final_metrics = Finishing._final_metrics

    def checked(self: Trainer) -> object:
        reused = self.best_val_logits
        assert reused is not None
        torch.testing.assert_close(reused, predict(self, self.val_set.images))
        return final_metrics(self)

    monkeypatch.setattr(Trainer, "predict_logits", counted)
    monkeypatch.setattr(Finishing, "_final_metrics", checked)
    result = train(toy_folder, tiny_recipe(epochs=3), tmp_path / "run", progress=False)
    assert calls["n"] == result.epochs_run == 3
    best = max(result.history, key=lambda r: (r["val_roc_auc"] or 0.0, -r["val_loss"]))
    assert result.val_metrics["roc_auc"] == pytest.approx(best["val_roc_auc"])


def test_training_gives_the_callers_denormal_floats_back(toy_folder: Path, tmp_path: Path) -> None:
    """Training flushes denormals to zero (fast on x86) and must not leave the process so:
    other code in it (hypothesis, face detection) needs IEEE subnormals."""
    tiny = torch.tensor([1e-39], dtype=torch.float32)
    assert (tiny * 1.0).item() != 0.0
    train(toy_folder, tiny_recipe(epochs=1), tmp_path / "run", progress=False)
    assert (tiny * 1.0).item() != 0.0


def test_existing_run_needs_resume(toy_folder: Path, tmp_path: Path) -> None:
    train(toy_folder, tiny_recipe(epochs=1), tmp_path / "run", progress=False)
    with pytest.raises(ConfigError, match="--resume"):
        train(toy_folder, tiny_recipe(epochs=1), tmp_path / "run", progress=False)
    with pytest.raises(ConfigError, match="nothing to resume"):
        train(toy_folder, None, tmp_path / "other", resume=True, progress=False)
    with pytest.raises(ConfigError, match="different"):
        train(toy_folder, tiny_recipe(epochs=5), tmp_path / "run", resume=True, progress=False)


def test_missing_starting_weights_are_refused_before_any_decoding(
    toy_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fakescope.training import batches

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded images before refusing")

    monkeypatch.setattr(batches, "load_or_decode", no_decoding)
    data = tiny_recipe_data(epochs=1)
    data["model"]["pretrained_path"] = str(tmp_path / "runs" / "stage1" / "bundle")
    with pytest.raises(ConfigError, match=r"model.pretrained_path: .*stage1/bundle does not exist"):
        train(toy_folder, validate_recipe(data), tmp_path / "run", progress=False)


def test_a_chain_of_stages_shares_one_training_budget(
    toy_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fakescope.training import batches

    train(toy_folder, tiny_recipe(epochs=1), tmp_path / "s1", progress=False)
    stage1 = read_meta(tmp_path / "s1" / "bundle")["training"]
    # started from nothing: its chain is its own training
    assert stage1["chain_train_seconds"] == stage1["train_seconds"]
    assert stage1["max_minutes"] is None
    # as if stage 1 had trained for 10 minutes
    update_meta(tmp_path / "s1" / "bundle", training=stage1 | {"chain_train_seconds": 600.0})

    data = tiny_recipe_data(epochs=1, total_minutes=25, max_minutes=30)
    data["model"]["pretrained_path"] = str(tmp_path / "s1" / "bundle")
    train(toy_folder, validate_recipe(data), tmp_path / "s2", progress=False)
    stage2 = read_meta(tmp_path / "s2" / "bundle")["training"]
    assert stage2["max_minutes"] == pytest.approx(15.0)  # 25 minus stage 1's 10
    assert stage2["chain_train_seconds"] == pytest.approx(600.0 + stage2["train_seconds"], abs=0.2)
    assert (
        f"{stage2['chain_train_seconds'] / 60:.1f} min in all"
        in (tmp_path / "s2" / "bundle" / "MODEL_CARD.md").read_text()
    )

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded images before refusing")

    monkeypatch.setattr(batches, "load_or_decode", no_decoding)
    spent = tiny_recipe_data(epochs=1, total_minutes=10)
    spent["model"]["pretrained_path"] = str(tmp_path / "s2" / "bundle")
    with pytest.raises(ConfigError, match=r"already trained 10\.\d minutes; nothing .* is left"):
        train(toy_folder, validate_recipe(spent), tmp_path / "s3", progress=False)
    # a later stage that does not record its chain (made before chains were recorded)
    update_meta(tmp_path / "s2" / "bundle", training=stage2 | {"chain_train_seconds": None})
    spent["train"]["total_minutes"] = 90
    with pytest.raises(ConfigError, match="do not record how long"):
        train(toy_folder, validate_recipe(spent), tmp_path / "s4", progress=False)


def test_chain_seconds_come_from_the_bundle_or_a_fresh_start() -> None:
    fresh = {"train_seconds": 120.0, "recipe": {"model": {"pretrained_path": None}}}
    assert chain_seconds_of(fresh) == 120.0
    later = {"train_seconds": 120.0, "recipe": {"model": {"pretrained_path": "runs/s1/bundle"}}}
    assert chain_seconds_of(later) is None
    assert chain_seconds_of(later | {"chain_train_seconds": 400.0}) == 400.0
    downloaded = {"train_seconds": 120.0, "recipe": {"model": {"pretrained_url": "http://x/w"}}}
    assert chain_seconds_of(downloaded) is None


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoints" / "last" / "model.safetensors"))


def test_resume_after_interrupt_gives_the_same_weights(toy_folder: Path, tmp_path: Path) -> None:
    recipe = tiny_recipe(epochs=2)
    straight = train(toy_folder, recipe, tmp_path / "straight", progress=False)

    # 30 training images, batch 8: 3 steps an epoch. Interrupted mid-epoch 1 (after 2 steps),
    # then again mid-epoch 2 (after 2 more), then run to the end.
    with pytest.raises(TrainingInterrupted, match="checkpoint saved"):
        train(toy_folder, recipe, tmp_path / "resumed", progress=False, stop_after_steps=2)
    with pytest.raises(TrainingInterrupted):
        train(
            toy_folder, None, tmp_path / "resumed", resume=True, progress=False, stop_after_steps=2
        )
    resumed = train(toy_folder, None, tmp_path / "resumed", resume=True, progress=False)

    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)
    assert resumed.val_metrics == straight.val_metrics

    def without_speed(history: list[dict]) -> list[dict]:
        return [{k: v for k, v in h.items() if k != "images_per_second"} for h in history]

    assert without_speed(resumed.history) == without_speed(straight.history)


def test_unreadable_training_images_are_skipped_and_reported(
    toy_folder: Path, bad_files: dict[str, Path], tmp_path: Path
) -> None:
    import shutil

    data = tmp_path / "data"
    shutil.copytree(toy_folder, data)
    shutil.copy(bad_files["truncated.jpg"], data / "fake" / "broken.jpg")
    shutil.copy(bad_files["text.jpg"], data / "real" / "notes.jpg")
    result = train(data, tiny_recipe(epochs=1), tmp_path / "run", progress=False)
    skipped = json.loads((tmp_path / "run" / "metrics.json").read_text())["skipped"]
    assert {Path(s["path"]).name for s in skipped} == {"broken.jpg", "notes.jpg"}
    assert all(s["reason"] for s in skipped)
    assert result.bundle_dir.is_dir()


def test_two_phase_transfer_freezes_the_backbone_first(toy_folder: Path, tmp_path: Path) -> None:
    recipe = tiny_recipe(epochs=2, freeze_epochs=1, finetune_lr_scale=0.1)
    # phase 1 only: stop at the end of epoch 1 (3 steps)
    with pytest.raises(TrainingInterrupted):
        train(toy_folder, recipe, tmp_path / "run", progress=False, stop_after_steps=3)
    after = _weights(tmp_path / "run")
    initial = tiny_model(0)  # the trainer seeds with train.seed=0 before building the model
    names = [n for n, _ in initial.named_parameters()]
    head = [n for n in names if n.startswith("fc.")]
    body = [n for n in names if not n.startswith("fc.")]
    assert head and body
    for name in head:
        assert not torch.equal(after[name], initial.state_dict()[name]), name
    for name in body:  # no gradient, no weight decay: exactly the initial values
        assert torch.equal(after[name], initial.state_dict()[name]), name


@pytest.mark.slow
def test_kfold_writes_one_bundle_per_fold_and_a_summary(toy_folder: Path, tmp_path: Path) -> None:
    summary = train_folds(toy_folder, tiny_recipe(epochs=1), tmp_path / "cv", 3, progress=False)
    assert summary["folds"] == 3 and len(summary["per_fold"]) == 3
    assert set(summary["accuracy"]) == {"mean", "std"}
    for k in range(3):
        assert (tmp_path / "cv" / f"fold{k}" / "bundle" / "bundle.json").is_file()
    manifest = (tmp_path / "cv" / "manifest.csv").read_text()
    assert "fold2" in manifest


def test_disk_cache_round_trips(toy_folder: Path, tmp_path: Path) -> None:
    from fakescope.data.cache import load_or_decode
    from fakescope.data.sources import open_source
    from fakescope.data.transforms import Preprocessing

    source = open_source(toy_folder)
    pre = Preprocessing(input_size=16)
    kwargs = {"fingerprint": source.fingerprint(), "mode": "disk", "cache_dir": tmp_path}
    first = load_or_decode(source.items, source.read_bytes, pre, progress=False, **kwargs)
    second = load_or_decode(source.items, source.read_bytes, pre, progress=False, **kwargs)
    assert torch.equal(first.images, second.images) and first.paths == second.paths
    assert first.images.shape == (len(source.items), 3, 16, 16)


def test_adversarial_and_degraded_training_resume_exactly(toy_folder: Path, tmp_path: Path) -> None:
    """The attack's eps and start and the degradations are drawn from the checkpointed
    augmentation generator, so an interrupted robust run resumes bit-for-bit."""
    recipe = tiny_recipe(epochs=2, adversarial={"ratio": 0.5, "attack": "pgd", "steps": 2})
    recipe.data.augment.degrade.p_jpeg = 0.5
    recipe.data.augment.degrade.p_blur = 0.5
    straight = train(toy_folder, recipe, tmp_path / "straight", progress=False)
    with pytest.raises(TrainingInterrupted):
        train(toy_folder, recipe, tmp_path / "resumed", progress=False, stop_after_steps=4)
    resumed = train(toy_folder, None, tmp_path / "resumed", resume=True, progress=False)
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)
    assert resumed.val_metrics == straight.val_metrics

    plain = tiny_recipe(epochs=2)
    train(toy_folder, plain, tmp_path / "plain", progress=False)
    c = _weights(tmp_path / "plain")
    assert any(not torch.equal(a[k], c[k]) for k in a if k.endswith("weight"))


def test_adversarial_recipe_is_validated() -> None:
    with pytest.raises(ConfigError, match="eps"):
        validate_recipe({"train": {"adversarial": {"ratio": 0.3, "eps": [0.0]}}})
    with pytest.raises(ConfigError, match="ratio"):
        validate_recipe({"train": {"adversarial": {"ratio": 1.5}}})
    with pytest.raises(ConfigError, match="jpeg_min"):
        validate_recipe({"data": {"augment": {"degrade": {"jpeg_min": 90, "jpeg_max": 50}}}})


def test_auto_precision_uses_bf16_only_where_the_cpu_computes_it(monkeypatch) -> None:
    """torch's capability string says "AVX512" on every AVX-512 CPU; bf16 emulated on one
    without AVX512_BF16 trains slower than fp32, so 'auto' asks for the bf16 units."""
    from fakescope.training import device as device_module

    cpu = torch.device("cpu")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert device_module.resolve_precision("auto", cpu) == "fp32"
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert device_module.resolve_precision("auto", cpu) == "bf16"
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert device_module.resolve_precision("auto", cpu) == "bf16"
    assert device_module.resolve_precision("fp32", cpu) == "fp32"
