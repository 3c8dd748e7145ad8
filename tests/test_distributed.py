"""Distributed training: sharding, batch norm over the global batch, and torchrun runs that
must reproduce a single-process run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tiny import tiny_model, tiny_recipe_file
from torch import nn

from fakescope.training.distributed import (
    DistContext,
    GlobalBatchNorm1d,
    GlobalBatchNorm2d,
    synchronize_batchnorm,
)

SRC = Path(__file__).resolve().parents[1] / "src"
# Two processes on CPU, fp32: float summation order is the only difference from one process.
WEIGHT_ATOL = 1e-4


# -- unit tests ----------------------------------------------------------------------------
@pytest.mark.parametrize(("n", "world"), [(8, 2), (7, 2), (10, 3), (3, 3)])
def test_shards_cover_the_global_batch_and_weights_restore_its_mean(n: int, world: int) -> None:
    images = torch.arange(n).view(n, 1, 1, 1).float()
    labels = torch.arange(n).float()
    losses = torch.rand(n, dtype=torch.float64)
    pieces, weighted = [], []
    for rank in range(world):
        part_images, part_labels, weight = DistContext(rank, world).shard(images, labels)
        assert torch.equal(part_images.view(-1), part_labels)
        pieces.append(part_labels)
        local = losses[part_labels.long()]
        weighted.append(float(local.mean()) * weight)
    assert torch.equal(torch.cat(pieces), labels)  # contiguous, in order, nothing repeated
    # DDP averages the processes' gradients: the average of the weighted local mean losses
    # must be the mean loss over the whole global batch
    assert sum(weighted) / world == pytest.approx(float(losses.mean()), rel=1e-12)
    single = DistContext().shard(images, labels)
    assert single[0] is images and single[2] == 1.0


@pytest.mark.parametrize("momentum", [0.1, None])
def test_global_batch_norm_matches_batch_norm_on_the_whole_batch(momentum: float | None) -> None:
    """With one process the "sum over processes" is the identity: the result must be torch's
    batch norm exactly (outputs, gradients, running statistics, both momentum modes)."""
    torch.manual_seed(0)
    reference = nn.BatchNorm2d(5, momentum=momentum)
    with torch.no_grad():
        reference.weight.uniform_(0.5, 1.5)
        reference.bias.uniform_(-0.5, 0.5)
    # no conv bias: before a batch norm its true gradient is zero, so it would compare noise
    model = nn.Sequential(nn.Conv2d(3, 5, 3, bias=False), reference)
    ours = synchronize_batchnorm(
        nn.Sequential(nn.Conv2d(3, 5, 3, bias=False), nn.BatchNorm2d(5)), torch.device("cpu")
    )
    ours.load_state_dict(model.state_dict())
    ours[1].momentum = momentum
    bn = ours[1]
    assert isinstance(bn, GlobalBatchNorm2d)
    for step in range(3):
        x = torch.randn(6, 3, 8, 8) * (step + 1) + step
        expected = model(x)
        got = ours[1].normalize_over(ours[0](x), lambda t: t)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
        (expected * torch.linspace(-1, 1, expected.numel()).view_as(expected)).sum().backward()
        (got * torch.linspace(-1, 1, got.numel()).view_as(got)).sum().backward()
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(bn, name), getattr(reference, name), msg=name)
    for (name, p), q in zip(model.named_parameters(), ours.parameters(), strict=True):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-5, msg=name)


def test_global_batch_norm_1d_on_feature_vectors() -> None:
    reference = nn.BatchNorm1d(4)
    ours = GlobalBatchNorm1d(4)
    x = torch.randn(9, 4) * 3
    torch.testing.assert_close(ours.normalize_over(x, lambda t: t), reference(x))
    torch.testing.assert_close(ours.running_var, reference.running_var)


def test_converting_batch_norms_keeps_parameters_and_state_dict() -> None:
    model = tiny_model(seed=None)
    before = model.state_dict()
    params = {name: id(p) for name, p in model.named_parameters()}
    synchronize_batchnorm(model, torch.device("cpu"))
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert norms and all(isinstance(m, GlobalBatchNorm2d) for m in norms)
    assert {name: id(p) for name, p in model.named_parameters()} == params  # optimizer-safe
    assert model.state_dict().keys() == before.keys()  # bundles load into plain BatchNorm

    class OwnNorm(nn.BatchNorm2d):
        pass

    odd = nn.Sequential(nn.Conv2d(3, 4, 1), OwnNorm(4))
    with pytest.warns(UserWarning, match="OwnNorm layers keep per-process"):
        synchronize_batchnorm(odd, torch.device("cpu"))
    with pytest.raises(TypeError):
        synchronize_batchnorm(nn.BatchNorm2d(3), torch.device("cpu"))


def test_without_torchrun_everything_is_one_process() -> None:
    from fakescope.training.distributed import current, session

    with session() as ctx:
        assert ctx == current() == DistContext()
        assert ctx.from_main(lambda: 42) == 42 and ctx.any(False, True) == (False, True)
        assert ctx.average(2.5) == 2.5 and ctx.gather_rng_states() == {}


# -- torchrun runs -------------------------------------------------------------------------


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]))
    env.pop("WORLD_SIZE", None)
    return env


def _run(args: list[str], cwd: Path, expect: int = 0) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == expect, done.stdout + done.stderr
    return done


TORCHRUN = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


@pytest.fixture(scope="module")
def single_process_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(data, recipe, run) of a one-process CLI run: the reference for the torchrun runs."""
    from imagegen import make_dataset

    root = tmp_path_factory.mktemp("ddp")
    data = make_dataset(root, layout="folder")
    recipe = tiny_recipe_file(root)
    _run(
        ["-m", "fakescope", "train", str(data), "--config", str(recipe), "--out", "one", "-q"], root
    )
    return data, recipe, root / "one"


def _assert_same_training(reference: Path, run: Path) -> None:
    a = load_file(str(reference / "checkpoints" / "last" / "model.safetensors"))
    b = load_file(str(run / "checkpoints" / "last" / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=WEIGHT_ATOL, msg=key)
    ma = json.loads((reference / "metrics.json").read_text())
    mb = json.loads((run / "metrics.json").read_text())
    assert len(mb["history"]) == len(ma["history"]) == 2
    for h1, h2 in zip(ma["history"], mb["history"], strict=True):
        assert h2["train_loss"] == pytest.approx(h1["train_loss"], abs=1e-5)
        assert h2["val_loss"] == pytest.approx(h1["val_loss"], abs=1e-5)
        assert h2["val_accuracy"] == h1["val_accuracy"]
    for key in ("accuracy", "roc_auc", "f1"):
        assert mb["val"][key] == pytest.approx(ma["val"][key], abs=1e-6), key
    assert mb["val"]["threshold"] == pytest.approx(ma["val"]["threshold"], abs=1e-4)


@pytest.mark.slow
def test_torchrun_two_processes_match_one_process(
    single_process_run: tuple[Path, Path, Path],
) -> None:
    data, recipe, one = single_process_run
    root = one.parent
    done = _run(
        [*TORCHRUN, "-m", "fakescope", "train", str(data), "--config", str(recipe)]
        + ["--out", "two", "-q"],
        root,
    )
    _assert_same_training(one, root / "two")
    # process 0 alone reports and writes: one results table, one TensorBoard event file
    assert (done.stdout + done.stderr).count("bundle: two/bundle") == 1
    assert done.stdout.count("validation") == 1
    assert len(list((root / "two" / "tensorboard").iterdir())) == 1
    assert (root / "two" / "bundle" / "bundle.json").is_file()
    bundle = json.loads((root / "two" / "bundle" / "bundle.json").read_text())
    assert bundle["training"]["n_train"] == 30


@pytest.mark.slow
def test_torchrun_run_interrupted_and_resumed_matches_one_process(
    single_process_run: tuple[Path, Path, Path],
) -> None:
    """Interrupted mid-epoch twice, then resumed: all processes continue from process 0's
    checkpoint and the run ends where the uninterrupted single-process run ended."""
    data, recipe, one = single_process_run
    root = one.parent
    script = root / "interrupt.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            from fakescope.config import load_recipe
            from fakescope.training.trainer import TrainingInterrupted, train

            resume = sys.argv[1] == "resume"
            stop = int(sys.argv[2]) or None
            try:
                train({str(data)!r}, None if resume else load_recipe({str(recipe)!r}),
                      "resumed", resume=resume, progress=False, stop_after_steps=stop)
            except TrainingInterrupted:
                sys.exit(130)
            """
        )
    )
    _run([*TORCHRUN, str(script), "start", "2"], root, expect=1)  # torchrun: a worker failed
    checkpoint = json.loads((root / "resumed/checkpoints/last/state.json").read_text())
    assert (checkpoint["epoch"], checkpoint["step_in_epoch"]) == (0, 2)
    _run([*TORCHRUN, str(script), "resume", "2"], root, expect=1)
    checkpoint = json.loads((root / "resumed/checkpoints/last/state.json").read_text())
    assert (checkpoint["epoch"], checkpoint["step_in_epoch"]) == (1, 1)
    _run([*TORCHRUN, str(script), "resume", "0"], root)
    _assert_same_training(one, root / "resumed")


@pytest.mark.slow
def test_torchrun_with_a_batch_smaller_than_the_process_count_is_refused(
    single_process_run: tuple[Path, Path, Path],
) -> None:
    data, recipe, one = single_process_run
    done = _run(
        [*TORCHRUN, "-m", "fakescope", "train", str(data), "--config", str(recipe)]
        + ["--set", "train.batch_size=1", "--out", "tiny_batch", "-q"],
        one.parent,
        expect=1,
    )
    assert "train.batch_size 1 is smaller than the number of processes (2)" in done.stderr
