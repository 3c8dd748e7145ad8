"""MTCNN on onnxruntime (fakescope.mtcnn_onnx) gives facenet-pytorch's answers: the area
resize and the NMS equal PyTorch's and torchvision's, the boxes, probabilities and landmarks
on real photos match facenet-pytorch's, the export is cached and checked, and a warm cache
finds faces without importing torch."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.nn.functional import interpolate
from videogen import cartoon_face

from fakescope import mtcnn_onnx
from fakescope.errors import ConfigError
from fakescope.faces import MtcnnFaceFinder, _search_copy, mtcnn_available

pytestmark = pytest.mark.skipif(not mtcnn_available(), reason="facenet-pytorch is not installed")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _one_thread(one_thread: None) -> None:
    """torch on one thread (the shared `one_thread` fixture)."""


# -- the numpy pieces against PyTorch's and torchvision's ---------------------------------------


@pytest.mark.parametrize(
    ("size", "out"),
    [((37, 53), (11, 17)), ((13, 9), (24, 24)), ((191, 255), (97, 129)), ((48, 50), (48, 48))],
)
def test_area_resize_equals_torch_interpolate_area(
    size: tuple[int, int], out: tuple[int, int]
) -> None:
    rng = np.random.default_rng(sum(size) + sum(out))
    images = rng.integers(0, 256, size=(3, *size, 3), dtype=np.uint8)
    # channels-last, as facenet-pytorch's permuted batch is
    reference = interpolate(
        torch.as_tensor(images).permute(0, 3, 1, 2).float(), size=out, mode="area"
    )
    ours = mtcnn_onnx.area_resize(images, out)
    assert ours.dtype == np.float32
    assert np.array_equal(ours, reference.permute(0, 2, 3, 1).numpy())  # bit for bit
    # a crop (stage 2's slice: a non-contiguous view)
    crop = torch.as_tensor(images).permute(0, 3, 1, 2).float()[1:2, :, 2:-1, 1:-2]
    reference = interpolate(crop, size=(24, 24), mode="area").permute(0, 2, 3, 1).numpy()
    assert np.array_equal(mtcnn_onnx.area_resize(images[1:2, 2:-1, 1:-2], (24, 24)), reference)


def _random_boxes(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Boxes on a coarse grid (many equal IoUs) and scores from few values (many ties)."""
    xy = rng.integers(0, 16, size=(count, 2)).astype(np.float32)
    wh = rng.integers(4, 20, size=(count, 2)).astype(np.float32)
    boxes = np.concatenate([xy, xy + wh], axis=1)
    scores = rng.choice(np.float32([0.5, 0.6, 0.7, 0.8, 0.9, 0.95]), size=count)
    return boxes, scores


@pytest.mark.parametrize("count", [0, 1, 40, 400, 1000, 1500])  # > 1000: NMS per group
@pytest.mark.parametrize("threshold", [0.5, 0.7])
def test_batched_nms_equals_torchvision(count: int, threshold: float) -> None:
    from torchvision.ops import batched_nms

    rng = np.random.default_rng(count)
    boxes, scores = _random_boxes(rng, count)
    groups = rng.integers(0, 4, size=count)
    reference = batched_nms(
        torch.as_tensor(boxes), torch.as_tensor(scores), torch.as_tensor(groups), threshold
    ).numpy()
    ours = mtcnn_onnx.batched_nms(boxes, scores, groups, threshold)
    if count <= 1000:  # one NMS over shifted boxes: the same indices in the same order
        assert ours.tolist() == reference.tolist()
    else:
        # One NMS per group, then torchvision sorts the kept boxes by score with PyTorch's
        # unstable sort: the same boxes, in the same order of scores (ties in its order).
        assert sorted(ours.tolist()) == sorted(reference.tolist())
        assert scores[ours].tolist() == scores[reference].tolist()
    if count >= 40:
        assert len(ours) < count  # some boxes were suppressed: the comparison is not vacuous


def test_min_nms_equals_facenet_pytorchs() -> None:
    from facenet_pytorch.models.utils.detect_face import batched_nms_numpy

    rng = np.random.default_rng(7)
    boxes, scores = _random_boxes(rng, 300)
    groups = rng.integers(0, 3, size=300)
    reference = batched_nms_numpy(
        torch.as_tensor(boxes), torch.as_tensor(scores), torch.as_tensor(groups), 0.7, "Min"
    )
    ours = mtcnn_onnx.batched_nms_min(boxes, scores, groups, 0.7)
    assert ours.tolist() == reference.tolist() and 0 < len(ours) < 300


# -- the whole search on real photos --------------------------------------------------------


def _archive_images(archive: Path, count: int) -> list[Image.Image]:
    """``count`` images spread over an archive (both classes), decoded as RGB."""
    with zipfile.ZipFile(archive) as zf:
        names = sorted(n for n in zf.namelist() if n.lower().endswith((".jpg", ".jpeg", ".png")))
        names = names[:: max(1, len(names) // count)][:count]
        return [Image.open(io.BytesIO(zf.read(n))).convert("RGB") for n in names]


def _same_size_batches(arrays: list[np.ndarray]) -> list[np.ndarray]:
    groups: dict[tuple[int, ...], list[np.ndarray]] = {}
    for array in arrays:
        groups.setdefault(array.shape, []).append(array)
    return [np.stack(g) for g in groups.values()]


SETS = [
    ("stylegan_faces.zip", 40),
    ("faceswap_lfw.zip", 40),
    ("dfdc_faces.zip", 40),
    ("modern_photos.zip", 20),
    ("cifake_train.zip", 10),
]


@pytest.fixture(scope="module")
def nets() -> mtcnn_onnx.MtcnnNets:
    return mtcnn_onnx.shared_mtcnn_nets()


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize(("archive", "count"), SETS)
def test_onnx_boxes_match_facenet_pytorch_on_real_images(
    shared_data: Path, nets: mtcnn_onnx.MtcnnNets, archive: str, count: int
) -> None:
    """The first pass (faces from 40 px on a 192 px copy, and from 20 px on a 640 px one) and
    a border retry (a mirrored border of 25 %, faces of half the short side): the same faces,
    boxes within 1e-2 px, probabilities within 1e-4, landmarks within 1e-2 px."""
    from facenet_pytorch import MTCNN

    images = _archive_images(shared_data / archive, count)
    found = compared = 0
    for search_size, min_face, border in [(192, 40, 0.0), (640, 20, 0.0), (192, None, 0.25)]:
        copies = [_search_copy(image, search_size)[0] for image in images]
        for batch in _same_size_batches(copies):
            height, width = batch.shape[1:3]
            face = min_face or round(0.5 * min(height, width))
            pad = round(border * max(height, width))
            if pad:
                batch = np.pad(batch, ((0, 0), (pad, pad), (pad, pad), (0, 0)), "reflect")
            if min(batch.shape[1:3]) < face:
                continue  # facenet-pytorch's pyramid would be empty (the finder skips these)
            reference = MTCNN(min_face_size=face, select_largest=True, keep_all=True)
            boxes, probs, points = reference.detect(batch, landmarks=True)
            ours = mtcnn_onnx.detect_faces(nets, batch, face, (0.6, 0.7, 0.7), 0.709)
            for ref_boxes, ref_probs, ref_points, (our_boxes, our_points) in zip(
                boxes, probs, points, ours, strict=True
            ):
                compared += 1
                if ref_boxes is None:
                    assert len(our_boxes) == 0
                    continue
                # (object arrays when every image of the batch has as many faces)
                ref_boxes, ref_probs, ref_points = (
                    np.asarray(v, dtype=np.float64) for v in (ref_boxes, ref_probs, ref_points)
                )
                assert len(our_boxes) == len(ref_boxes)
                found += len(ref_boxes)
                np.testing.assert_allclose(our_boxes[:, :4], ref_boxes, rtol=0, atol=1e-2)
                np.testing.assert_allclose(our_boxes[:, 4], ref_probs, rtol=0, atol=1e-4)
                np.testing.assert_allclose(our_points, ref_points, rtol=0, atol=1e-2)
    assert compared >= 2 * count
    if "faces" in archive or "lfw" in archive:
        assert found >= count  # faces were found, so the comparison is not vacuous


@pytest.mark.integration
@pytest.mark.slow
def test_the_finder_gives_the_same_faces_on_both_backends(shared_data: Path) -> None:
    """The face route's finder (192 px, faces of half the short side, one border retry) and
    the default finder: the same integer boxes and eyes, whichever backend."""
    images = [
        *_archive_images(shared_data / "dfdc_faces.zip", 20),
        *_archive_images(shared_data / "stylegan_faces.zip", 10),
        *_archive_images(shared_data / "modern_photos.zip", 10),
    ]
    route = {"min_face_size": 40, "search_size": 192, "border_retries": (0.25,)}
    for options in [{**route, "min_face_share": 0.5}, {}]:
        onnx = MtcnnFaceFinder(backend="onnx", **options)
        reference = MtcnnFaceFinder(backend="torch", **options)
        assert onnx.backend == "onnx" and reference.backend == "torch"
        ours, theirs = onnx.find(images), reference.find(images)
        assert sum(map(len, theirs)) >= 25
        for our_faces, their_faces in zip(ours, theirs, strict=True):
            assert [f.xywh for f in our_faces] == [f.xywh for f in their_faces]
            for our, their in zip(our_faces, their_faces, strict=True):
                assert our.confidence == pytest.approx(their.confidence, abs=1e-4)
                assert np.allclose(our.eyes, their.eyes, atol=1e-2)


# -- the cache, the fallback, and no torch at all -------------------------------------------


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache root holding an export made here (once for the module)."""
    root = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FAKESCOPE_CACHE", str(root))
        assert mtcnn_onnx.load_mtcnn_nets().exported
    return root


@pytest.mark.slow
def test_the_export_is_reused_and_a_damaged_one_is_made_again(
    warm_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKESCOPE_CACHE", str(warm_cache))
    folder = mtcnn_onnx.export_dir()
    assert folder.parent == warm_cache / "onnx" and folder.name.startswith("mtcnn-")
    again = mtcnn_onnx.load_mtcnn_nets()
    assert again.folder == folder and not again.exported  # reused, not exported again
    onet = folder / "onet.onnx"
    data = bytearray(onet.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside the weights: still parses
    onet.write_bytes(bytes(data))
    repaired = mtcnn_onnx.load_mtcnn_nets()
    assert repaired.exported and onet.read_bytes() != bytes(data)
    (folder / "pnet.onnx").write_bytes(b"not an onnx file")
    assert mtcnn_onnx.load_mtcnn_nets().exported
    assert not mtcnn_onnx.load_mtcnn_nets().exported
    face = cartoon_face(240)[None]
    ((boxes, points),) = mtcnn_onnx.detect_faces(repaired, face, 20, (0.6, 0.7, 0.7), 0.709)
    assert len(boxes) == 1 and points.shape == (1, 5, 2)


@pytest.mark.slow
def test_a_warm_cache_finds_faces_without_torch(warm_cache: Path) -> None:
    script = (
        "import json, sys\n"
        "from PIL import Image\n"
        "from videogen import cartoon_face\n"
        "from fakescope.faces import make_face_finder\n"
        "finder = make_face_finder('auto', min_face_size=40, search_size=192,"
        " border_retries=(0.25,), min_face_share=0.5)\n"
        "faces = finder.find([Image.fromarray(cartoon_face(240))])\n"
        "print(json.dumps({'backend': finder.backend, 'faces': len(faces[0]),"
        " 'loaded': [m for m in ('torch', 'torchvision', 'facenet_pytorch')"
        " if m in sys.modules]}))\n"
    )
    env = {
        **os.environ,
        "FAKESCOPE_CACHE": str(warm_cache),
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO / "tests")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"backend": "onnx", "faces": 1, "loaded": []}


def test_the_finder_falls_back_to_facenet_pytorch_and_says_why(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(mtcnn_onnx, "_shared", {})
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` fails
    with caplog.at_level("WARNING", logger="fakescope.faces"):
        finder = MtcnnFaceFinder()
    assert finder.backend == "torch" and finder.backend_note is not None
    assert "onnxruntime" in finder.backend_note and finder.backend_note in caplog.text
    assert finder.note is None  # the same answers: nothing for a verdict to say
    assert len(finder.find_one(Image.fromarray(cartoon_face(240)))) == 1


def test_an_unknown_backend_is_refused() -> None:
    with pytest.raises(ConfigError, match="MTCNN backend must be one of onnx, torch"):
        MtcnnFaceFinder(backend="tflite")
    with pytest.raises(ConfigError, match="CPU only"):
        MtcnnFaceFinder(backend="onnx", device="cuda")
