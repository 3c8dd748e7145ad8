"""Model registry, resnet_se, timm backbones and offline/URL/hub weight loading.

No test reaches the internet: a guard fails any connection that is not to loopback.
"""

from __future__ import annotations

import functools
import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import save_file
from torch import nn

from fakescope.errors import ConfigError
from fakescope.models import (
    backbone_parameters,
    classifier_parameters,
    create_model,
    embed,
    feature_module_names,
    list_models,
    load_weights,
    model_defaults,
    register_model,
)
from fakescope.models import registry as registry_module
from fakescope.models.backbones import OFFLINE_WEIGHTS, TIMM_BACKBONES, offline_weights_path
from fakescope.models.npr import npr_residual
from fakescope.models.resnet_se import ResNetSE

LITE_MODELS = ["tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_lite2"]
# ImageNet classes a good classifier gives Grace Hopper's portrait: military uniform (652),
# suit, bow tie, Windsor tie, academic gown, mortarboard, bearskin.
FORMAL_WEAR = {652, 834, 457, 906, 400, 667, 439}


@pytest.fixture(autouse=True)
def _no_internet(monkeypatch: pytest.MonkeyPatch) -> None:
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def is_local(host: object) -> bool:
        return host in (None, "localhost", "::1") or str(host).startswith("127.")

    def connect(self: socket.socket, address: object) -> None:
        if self.family != socket.AF_UNIX and not is_local(address[0]):  # type: ignore[index]
            raise OSError(f"tests must not reach the network ({address})")
        return real_connect(self, address)

    def getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
        if not is_local(host):
            raise socket.gaierror(f"tests must not resolve {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


pytestmark = pytest.mark.usefixtures("one_thread")


def _needs_offline(name: str) -> Path:
    path = offline_weights_path(name)
    if path is None:
        pytest.skip(f"pip package {OFFLINE_WEIGHTS[name].pip_name} is not installed")
    return path


# ----------------------------------------------------------------------------- registry


def test_all_models_registered() -> None:
    assert set(list_models()) == set(TIMM_BACKBONES) | {"resnet_se", "npr"}
    assert list_models() == sorted(list_models())


def test_defaults_come_from_timm() -> None:
    for name in TIMM_BACKBONES:
        cfg = timm.models.get_pretrained_cfg(name)
        defaults = model_defaults(name)
        assert defaults.default_input_size == cfg.input_size[-1]
        assert defaults.mean == tuple(cfg.mean) and defaults.std == tuple(cfg.std)
    assert model_defaults("tf_efficientnet_lite2").default_input_size == 260
    assert model_defaults("resnet_se").default_input_size == 32
    assert model_defaults("resnet_se").has_offline_weights is False
    assert model_defaults("resnet18").has_offline_weights is False


def test_unknown_model_suggests_close_names() -> None:
    with pytest.raises(ConfigError, match="resnet_se") as excinfo:
        create_model("resnet-se")
    assert "Did you mean" in str(excinfo.value) and "convnextv2_atto" in str(excinfo.value)
    with pytest.raises(ConfigError, match="unknown model"):
        model_defaults("vit_huge")


def test_register_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry_module, "_REGISTRY", dict(registry_module._REGISTRY))

    @register_model("tiny_test", default_input_size=16, family="test")
    def tiny(*, pretrained: bool, pretrained_path: str | None, drop_rate: float) -> nn.Module:
        return ResNetSE(widths=(8, 8, 8), blocks_per_stage=1, drop_rate=drop_rate)

    assert "tiny_test" in list_models()
    assert create_model("tiny_test", drop_rate=0.2).head_drop.p == 0.2
    assert model_defaults("tiny_test").mean == (0.485, 0.456, 0.406)
    with pytest.raises(ValueError, match="twice"):
        register_model("tiny_test", default_input_size=16, family="test")(tiny)


def test_path_and_url_are_exclusive() -> None:
    with pytest.raises(ConfigError, match="not both"):
        create_model("resnet_se", pretrained_path="a.pth", pretrained_url="http://127.0.0.1/a")


# ----------------------------------------------------------------------------- every model


@pytest.mark.parametrize("name", list_models())
def test_model_contract(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, drop_rate=0.1)
    x = torch.randn(2, 3, 32, 32)

    logits = model(x)
    assert logits.shape == (2, 1)
    loss = nn.functional.binary_cross_entropy_with_logits(logits, torch.tensor([[0.0], [1.0]]))
    loss.backward()
    params = list(model.parameters())
    assert all(p.grad is not None for p in params)
    assert params[0].grad.abs().sum() > 0  # reached the stem through the whole network
    head = classifier_parameters(model)
    assert head[0].grad.abs().sum() > 0
    assert [tuple(p.shape) for p in head] == [(1, model.num_features), (1,)]
    assert len(head) + len(backbone_parameters(model)) == len(params)

    model.eval()
    with torch.no_grad():
        features = embed(model, x)
    assert features.shape == (2, model.num_features)

    stages = feature_module_names(model)
    modules = dict(model.named_modules())
    assert len(stages) >= 3 and all(stage in modules for stage in stages)


# ----------------------------------------------------------------------------- resnet_se


def test_resnet_se_size_and_structure() -> None:
    model = create_model("resnet_se")
    n_params = sum(p.numel() for p in model.parameters())
    assert 1_900_000 <= n_params <= 2_300_000, n_params
    assert feature_module_names(model) == ["stage1", "stage2", "stage3"]
    assert [s["reduction"] for s in model.feature_info] == [1, 2, 4]
    # Zero-init of each residual branch's last BN: every block starts as the identity.
    assert all(block.bn2.weight.abs().sum() == 0 for block in model.stage1)


@pytest.mark.parametrize("size", [16, 48])
def test_resnet_se_other_input_sizes(size: int) -> None:
    model = create_model("resnet_se", widths=(16, 32, 64)).eval()
    assert model(torch.randn(1, 3, size, size)).shape == (1, 1)


def test_resnet_se_reset_classifier() -> None:
    model = create_model("resnet_se", widths=(16, 32, 64))
    model.reset_classifier(0)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 64)
    model.reset_classifier(2)
    assert model.get_classifier().out_features == 2


def test_resnet_se_channels_last_bf16_autocast() -> None:
    torch.manual_seed(0)
    model = create_model("resnet_se", drop_rate=0.3).to(memory_format=torch.channels_last)
    x = torch.randn(4, 3, 32, 32).to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(x)
    assert logits.shape == (4, 1) and logits.dtype == torch.bfloat16
    logits.float().sum().backward()
    assert model.stem[0].weight.grad.dtype == torch.float32

    model.eval()
    with torch.no_grad():
        reference = embed(model, x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = embed(model, x).float()
    assert (low - reference).norm() / reference.norm() < 0.05  # bf16 keeps ~3 digits


def test_resnet_se_has_no_imagenet_weights() -> None:
    with pytest.raises(ConfigError, match="pretrained_path"):
        create_model("resnet_se", pretrained=True)


# ----------------------------------------------------------------------------- local files


def _assert_same_weights(a: nn.Module, b: nn.Module, skip: str = "\0") -> None:
    sb = b.state_dict()
    for key, tensor in a.state_dict().items():
        if not key.startswith(skip):
            assert torch.equal(tensor, sb[key]), key


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_pretrained_path_roundtrip(tmp_path: Path, suffix: str) -> None:
    torch.manual_seed(1)
    source = create_model("resnet_se", widths=(16, 32, 64))
    path = tmp_path / f"w{suffix}"
    if suffix == ".safetensors":
        save_file(source.state_dict(), str(path))
    else:  # a training checkpoint, saved from a DataParallel-wrapped model
        state = {f"module.{k}": v for k, v in source.state_dict().items()}
        torch.save({"state_dict": state, "epoch": 3}, path)
    loaded = create_model("resnet_se", widths=(16, 32, 64), pretrained_path=str(path))
    _assert_same_weights(source, loaded)
    assert loaded.pretrained_report.ok


def test_pretrained_path_drops_other_classifier(tmp_path: Path) -> None:
    torch.manual_seed(2)
    imagenet = create_model("resnet18", num_classes=1000)
    path = tmp_path / "resnet18_in1k.safetensors"
    save_file(imagenet.state_dict(), str(path))
    model = create_model("resnet18", pretrained_path=str(path))
    report = model.pretrained_report
    assert report.ok and report.skipped_classifier == ["fc.bias", "fc.weight"]
    assert model.get_classifier().out_features == 1
    _assert_same_weights(imagenet, model, skip="fc.")


def test_pretrained_path_for_another_model_fails(tmp_path: Path) -> None:
    path = tmp_path / "se.pth"
    torch.save(create_model("resnet_se", widths=(16, 32, 64)).state_dict(), path)
    with pytest.raises(ConfigError, match="do not fit"):
        create_model("resnet18", pretrained_path=str(path))
    with pytest.raises(ConfigError, match="not found"):
        create_model("resnet18", pretrained_path=str(tmp_path / "nope.pth"))


def test_partial_weights_warn_with_key_names(tmp_path: Path) -> None:
    model = create_model("resnet_se", widths=(16, 32, 64))
    state = model.state_dict()
    state.pop("stage3.1.conv2.weight")
    state["extra.weight"] = torch.zeros(1)
    with pytest.warns(UserWarning, match=r"missing: 1 \[stage3.1.conv2.weight\]"):
        report = load_weights(model, state, source="test")
    assert report.unexpected == ["extra.weight"]
    with pytest.raises(ConfigError, match="incomplete"):
        load_weights(model, state, source="test", require_all=True)


# ----------------------------------------------------------------------------- offline packages


def _bn_stats_are_trained(model: nn.Module) -> bool:
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    fresh = [torch.all(m.running_mean == 0) and torch.all(m.running_var == 1) for m in bns]
    return len(bns) > 10 and not any(fresh)


@functools.cache
def _grace_hopper() -> Image.Image:
    cbook = pytest.importorskip("matplotlib.cbook")
    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    image = Image.open(path).convert("RGB")
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return image.crop((left, top, left + side, top + side))


def _imagenet_top5(model: nn.Module, name: str) -> set[int]:
    defaults = model_defaults(name)
    size = defaults.default_input_size
    pixels = np.asarray(_grace_hopper().resize((size, size), Image.BICUBIC), dtype=np.float32)
    x = torch.from_numpy(pixels / 255).permute(2, 0, 1)
    x = (x - torch.tensor(defaults.mean)[:, None, None]) / torch.tensor(defaults.std)[:, None, None]
    with torch.no_grad():
        return set(model.eval()(x[None])[0].topk(5).indices.tolist())


@pytest.mark.parametrize("name", [*LITE_MODELS, "mobilenetv2_100"])
def test_offline_weights_load_completely(name: str) -> None:
    _needs_offline(name)
    assert model_defaults(name).has_offline_weights
    model = create_model(name, pretrained=True)
    report = model.pretrained_report
    assert report.missing == [] and report.unexpected == [] and report.mismatched == []
    assert report.skipped_classifier == ["classifier.bias", "classifier.weight"]
    assert len(report.loaded) == len(model.state_dict()) - 2
    assert _bn_stats_are_trained(model)
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 1)


@pytest.mark.parametrize("name", [*LITE_MODELS, "mobilenetv2_100"])
def test_offline_weights_recognise_an_image(name: str) -> None:
    _needs_offline(name)
    torch.manual_seed(0)
    trained = create_model(name, pretrained=True, num_classes=1000)
    assert trained.pretrained_report.ok and not trained.pretrained_report.skipped_classifier
    top5 = _imagenet_top5(trained, name)
    # A random network hits 3 of these 7 classes in its top 5 about once in 10^6 tries.
    assert 652 in top5 and len(top5 & FORMAL_WEAR) >= 3, top5
    assert len(_imagenet_top5(create_model(name, num_classes=1000), name) & FORMAL_WEAR) < 3


def test_mobilenetv2_matches_torchvision_reference() -> None:
    path = _needs_offline("mobilenetv2_100")
    torchvision = pytest.importorskip("torchvision")
    reference = torchvision.models.mobilenet_v2()
    reference.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    model = create_model("mobilenetv2_100", pretrained=True, num_classes=1000)
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        assert torch.allclose(model.eval()(x), reference.eval()(x), atol=1e-5)


def test_packaged_layout_accepted_as_pretrained_path() -> None:
    path = _needs_offline("tf_efficientnet_lite0")
    model = create_model("tf_efficientnet_lite0", pretrained_path=str(path))
    assert model.pretrained_report.ok
    packaged = create_model("tf_efficientnet_lite0", pretrained=True)
    _assert_same_weights(packaged, model, skip="classifier.")


# ----------------------------------------------------------------------------- URL and hub


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def weights_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_pretrained_url_downloads_once(
    weights_server: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base_url, root = weights_server
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    torch.manual_seed(3)
    source = create_model("resnet18", num_classes=1000)
    torch.save(source.state_dict(), root / "resnet18_test.pth")
    url = f"{base_url}/resnet18_test.pth"

    model = create_model("resnet18", pretrained_url=url)
    _assert_same_weights(source, model, skip="fc.")
    assert model.pretrained_report.skipped_classifier == ["fc.bias", "fc.weight"]
    cached = list((tmp_path / "torch_home" / "hub" / "checkpoints").glob("*resnet18_test.pth"))
    assert len(cached) == 1

    (root / "resnet18_test.pth").unlink()  # a second build must come from the cache
    _assert_same_weights(source, create_model("resnet18", pretrained_url=url), skip="fc.")

    small = create_model("resnet_se", widths=(16, 32, 64))
    save_file(small.state_dict(), str(root / "se.safetensors"))
    from_url = create_model(
        "resnet_se", widths=(16, 32, 64), pretrained_url=f"{base_url}/se.safetensors"
    )
    _assert_same_weights(small, from_url)

    with pytest.raises(ConfigError, match="could not fetch"):
        create_model("resnet18", pretrained_url=f"{base_url}/missing.pth")


def test_hub_download_offline_gives_actionable_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    # huggingface_hub reads its environment at import: patch the live values too, and point
    # the cache at an empty folder so weights cached by an earlier online run don't count.
    constants = pytest.importorskip("huggingface_hub.constants")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf_cache"))
    assert not model_defaults("resnet18").has_offline_weights
    with pytest.raises(ConfigError, match="no offline ImageNet weights for resnet18") as excinfo:
        create_model("resnet18", pretrained=True)
    assert "pretrained_path=FILE" in str(excinfo.value)


def test_resnet_se_unshuffle_stem_keeps_every_pixel_at_half_resolution() -> None:
    model = create_model("resnet_se", widths=[8, 16, 32], stem="unshuffle").eval()
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    features = model.forward_features(x)
    assert features.shape == (2, 32, 4, 4)
    assert model.feature_info[-1]["reduction"] == 8
    with torch.no_grad():  # switch on the zero-initialised residual branches, as training does
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.fill_(1.0)
    model(x).sum().backward()
    assert (x.grad.abs().sum(dim=(0, 1)) > 0).all()  # every input pixel reaches the logit
    with pytest.raises(ConfigError, match="stem"):
        create_model("resnet_se", stem="maxpool")


# ----------------------------------------------------------------------------- npr


def test_npr_residual_is_zero_on_nearest_upsampled_images() -> None:
    torch.manual_seed(0)
    small = torch.randn(2, 3, 8, 8)
    upsampled = nn.functional.interpolate(small, scale_factor=2.0, mode="nearest")
    assert npr_residual(upsampled).abs().max().item() == 0.0
    photo = torch.randn(2, 3, 16, 16)
    residual = npr_residual(photo)
    assert residual.abs().mean().item() > 0.5
    # each 2x2 cell's anchor (top-left) is the reference, so it is exactly zero
    assert residual[..., ::2, ::2].abs().max().item() == 0.0
    assert torch.allclose(residual[..., 0, 1], photo[..., 0, 1] - photo[..., 0, 0])


def test_npr_sees_only_the_residual() -> None:
    """Adding any nearest-upsampled image leaves the residual, hence the output, unchanged."""
    torch.manual_seed(1)
    model = create_model("npr", widths=(8, 16, 32)).eval()
    x = torch.randn(3, 3, 32, 32)
    content = nn.functional.interpolate(torch.randn(3, 3, 16, 16) * 3, scale_factor=2.0)
    with torch.no_grad():
        features = model.forward_features(x)
        assert torch.allclose(features, model.forward_features(x + content), atol=1e-4)
        other = model.forward_features(torch.randn(3, 3, 32, 32))
        assert (features - other).abs().mean().item() > 1e-2


def test_npr_rejects_odd_sizes_and_other_stems() -> None:
    model = create_model("npr", widths=(8, 16, 32))
    with pytest.raises(ConfigError, match="divisible by 2"):
        model(torch.randn(1, 3, 31, 31))
    with pytest.raises(ConfigError, match="stem"):
        create_model("npr", stem="unshuffle")
    with pytest.raises(ConfigError, match="no ImageNet weights"):
        create_model("npr", pretrained=True)


def test_bundle_folder_is_accepted_as_pretrained_path(tmp_path: Path) -> None:
    """Fine-tuning starts from a trained detector: pretrained_path may name its bundle."""
    source = create_model("resnet_se", widths=(16, 32, 64))
    folder = tmp_path / "bundle"
    folder.mkdir()
    save_file(source.state_dict(), str(folder / "model.safetensors"))
    loaded = create_model("resnet_se", widths=(16, 32, 64), pretrained_path=str(folder))
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
