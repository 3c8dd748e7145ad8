"""Bytes -> `Prediction`: the one pipeline behind predict, score (Ray), evaluate, serve and
video.

The steps, in order, for every caller:

1. read: the input's bytes, once (`read_item`; a bad file gets its reason, never an
   exception);
2. provenance: its evidence (C2PA, XMP, generator metadata, watermark) from those bytes
   (`provenance_of`; evaluate reads it through `ProvenanceReader` as its decoder reads);
3. decode once and route: the pixels decoded from the same bytes, then with faces the
   largest face (or every face) found and cropped, and prepared for the model
   (`prepare_image`; a face-aware detector routes its faces inside `Detector.prepare`);
4. scores: `Detector.score_prepared` in batches (the server's micro-batcher, Ray's actors
   and evaluate's batches call it their own way) -> `PixelScores` with the domain score;
5. domain, content, band and combination: `judge` -> `fakescope.verdict.rule.verdicts`.

Content: for a detector made for photographs (`BundleMeta.photos_only`), step 3 also says
what the decoded image that is scored shows (`content_of`: 'photo' or 'graphic', from
`fakescope.data.content_type` on the image already decoded): the whole image, or with faces
the face crop scored (a face found in a screenshot is a photographed face; a drawn face is
graphic). A graphic one is answered unsure in step 5 (`fakescope.verdict.rule.NOT_A_PHOTO`).

`predict_inputs` runs all five for images, bytes, files, folders and archives; the server
runs 1-3 in its decode threads (`prepare_image` on an upload it decoded under its limits),
4 in its model thread and 5 in `judge`; video runs 3-5 per frame (`fakescope.video`).

With `faces` the largest face of each image (or with `all_faces` every face, one verdict
each) is cropped by the detector's face crop policy (`Detector.face_policy`: the bundle's, or
the default) and scored instead of the whole image; faces are searched once per image, in
batches, by the process's one face finder. Each verdict then reports `face_box` ({x, y, w,
h} in the original image) and `faces_found`, or, when no face was found, scores the whole
image and says so in `face_note`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from fakescope.data.content_type import content_stats
from fakescope.data.inputs import ImageInput, expand_inputs, prepare_or_reason, read_input_bytes
from fakescope.data.sources import Item
from fakescope.faces import FaceCropPolicy, FaceSelection, FaceSelector
from fakescope.provenance import Evidence, read_provenance
from fakescope.threads import decode_threads, worker_count
from fakescope.verdict.prediction import Prediction
from fakescope.verdict.rule import verdicts

if TYPE_CHECKING:
    from fakescope.detectors.base import Detector, PixelScores

__all__ = [
    "Prepared",
    "ProvenanceReader",
    "content_of",
    "face_selector",
    "judge",
    "predict_inputs",
    "prepare_image",
    "provenance_of",
    "read_item",
]
T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """One input after steps 1-3: its model input (`array`), or the reason there is none
    (`error`); its evidence; the size of what is scored (the face crop, with faces); the
    face scored (`face`, with faces); the decoded image while faces are still to be
    searched; and what the scored image shows (`content`, see `content_of`)."""

    name: str
    array: np.ndarray | None
    error: str | None
    evidence: list[Evidence]
    size: tuple[int, int] = (0, 0)
    image: Image.Image | None = None  # kept (decoded, not prepared) when faces are searched
    face: FaceSelection | None = None
    content: str | None = None


def content_of(detector: Detector, image: Image.Image) -> str | None:
    """What a decoded image shows ('photo' or 'graphic') when `detector` is made for
    photographs (its bundle's ``content: photo``); None (not looked at) otherwise."""
    return content_stats(image)["kind"] if detector.meta.photos_only else None


def provenance_of(data: bytes, name: str) -> list[Evidence]:
    """The file's provenance evidence. `read_provenance` never raises by contract; should a
    reader break anyway, a file we could not read is evidence of nothing, not a failure."""
    try:
        return read_provenance(data, name)
    except Exception:
        log.exception("provenance reader failed on %s; scoring the pixels alone", name)
        return []


def read_item(
    detector: Detector, name: str, value: ImageInput, provenance: bool, faces: bool = False
) -> Prepared:
    """Steps 1-3 for one input: bytes read once, provenance from them, pixels decoded and
    prepared from them (with `faces`, only decoded: the face crop is prepared once the faces
    of the whole batch are found)."""
    data = read_input_bytes(value, name)
    if isinstance(data, str):  # the reason the file cannot be read
        return Prepared(name, None, data, [])
    evidence = provenance_of(data, name) if provenance and data is not None else []
    source = value if data is None else data
    if faces:
        decoded = prepare_or_reason(source, name, lambda img: img)
        if isinstance(decoded, str):
            return Prepared(name, None, decoded, [])
        return Prepared(name, None, None, evidence, decoded.size, decoded)
    prepared = prepare_or_reason(
        source, name, lambda img: (detector.prepare(img), img.size, content_of(detector, img))
    )
    if isinstance(prepared, str):
        return Prepared(name, None, prepared, [])
    return Prepared(name, prepared[0], None, evidence, prepared[1], content=prepared[2])


def prepare_image(
    detector: Detector,
    name: str,
    image: Image.Image,
    evidence: list[Evidence],
    selector: FaceSelector | None = None,
) -> Prepared:
    """Step 3 for an image decoded elsewhere (an upload, a video frame): with `selector`
    its largest face cropped, then prepared for the model (and what it shows, `content_of`).
    Raises what `Detector.prepare` raises (the caller says how a bad image is reported)."""
    face = selector.largest([image])[0] if selector is not None else None
    return _scored(detector, name, image if face is None else face.image, evidence, face)


def _scored(
    detector: Detector,
    name: str,
    scored: Image.Image,
    evidence: list[Evidence],
    face: FaceSelection | None,
) -> Prepared:
    """`scored` (the whole image, or the face crop chosen) prepared for the model, with its
    size and what it shows."""
    return Prepared(
        name,
        detector.prepare(scored),
        None,
        evidence,
        scored.size,
        face=face,
        content=content_of(detector, scored),
    )


def judge(
    detector: Detector, prepared: Sequence[Prepared], scores: PixelScores, *, faces: bool
) -> list[Prediction]:
    """Step 5: the verdicts of prepared inputs from their pixel scores (in order): domain,
    band and provenance combined by `fakescope.verdict.rule.verdicts`. `faces`: the inputs
    are the faces `prepare_image` (or `predict_inputs`) chose, reported in face_box,
    faces_found and face_note."""
    return verdicts(
        detector,
        [p.name for p in prepared],
        scores,
        [p.evidence for p in prepared],
        [p.size for p in prepared],
        [p.face for p in prepared] if faces else None,
        [p.content for p in prepared],
    )


def face_selector(detector: Detector, faces: bool | FaceCropPolicy) -> FaceSelector | None:
    """What `faces=` asks for: None (whole images), the detector's own face crop policy
    (True), or the policy given."""
    if faces is False:
        return None
    return FaceSelector(detector.face_policy if faces is True else faces)


def _judge_faces(
    detector: Detector, prepared: Sequence[Prepared], selector: FaceSelector, all_faces: bool
) -> list[Prediction]:
    """Verdicts for decoded images by their faces: one search for the whole chunk, then the
    largest face (or each face) of every image prepared and scored."""
    good = [p for p in prepared if p.image is not None]
    images = [p.image for p in good if p.image is not None]
    found = selector.every(images) if all_faces else [[s] for s in selector.largest(images)]
    rows = [
        _scored(detector, p.name, s.image, p.evidence, s)
        for p, selections in zip(good, found, strict=True)
        for s in selections
    ]
    owners = [id(p) for p, selections in zip(good, found, strict=True) for _ in selections]
    scored = judge(
        detector,
        rows,
        detector.score_prepared([r.array for r in rows if r.array is not None]),
        faces=True,
    )
    by_input: dict[int, list[Prediction]] = {}
    for owner, prediction in zip(owners, scored, strict=True):
        by_input.setdefault(owner, []).append(prediction)
    results: list[Prediction] = []
    for p in prepared:
        if p.error is not None:
            results.append(Prediction.failed(p.name, p.error))
        else:
            results += by_input[id(p)]
    return results


def _judge_whole(detector: Detector, prepared: Sequence[Prepared]) -> list[Prediction]:
    """Verdicts for prepared whole images (failures keep their place, with their reason)."""
    good = [p for p in prepared if p.array is not None]
    arrays = [p.array for p in good if p.array is not None]
    scored = iter(judge(detector, good, detector.score_prepared(arrays), faces=False))
    return [
        next(scored) if p.error is None else Prediction.failed(p.name, p.error) for p in prepared
    ]


def predict_inputs(
    detector: Detector,
    inputs: ImageInput | Iterable[ImageInput],
    *,
    batch_size: int = 64,
    progress: bool = False,
    provenance: bool = True,
    faces: bool | FaceCropPolicy = False,
    all_faces: bool = False,
) -> list[Prediction]:
    """Verdicts for images, bytes, files, folders and archives, in input order; paths that
    hold no image come first, each with its reason. `provenance=False` scores the pixels
    alone (decoded PIL images carry no provenance either way). `faces`: score the largest
    face (True: by the detector's face crop policy; or the policy given) instead of the
    whole image; `all_faces`: every face, one verdict each, largest first."""
    entries, problems = expand_inputs(inputs)
    selector = face_selector(detector, True if all_faces and faces is False else faces)
    results: list[Prediction] = []
    bar = tqdm(total=len(entries), desc="predict", unit="img", disable=not progress)
    chunks = list(_chunks(entries, batch_size))
    with (
        decode_threads(detector.runtime),
        ThreadPoolExecutor(max_workers=worker_count()) as pool,
    ):

        def submit(chunk: Sequence[tuple[str, ImageInput]]) -> list[Future[Prepared]]:
            return [
                pool.submit(read_item, detector, name, value, provenance, selector is not None)
                for name, value in chunk
            ]

        pending = submit(chunks[0]) if chunks else []
        for index, chunk in enumerate(chunks):
            prepared = [future.result() for future in pending]
            # the next chunk is read, decoded and prepared while this one is scored
            pending = submit(chunks[index + 1]) if index + 1 < len(chunks) else []
            if selector is not None:
                results += _judge_faces(detector, prepared, selector, all_faces)
            else:
                results += _judge_whole(detector, prepared)
            bar.update(len(chunk))
    bar.close()
    return [Prediction.failed(path, reason) for path, reason in problems] + results


class ProvenanceReader:
    """A `read_bytes` for a data source's decoder (`fakescope.data.cache.decode_items`)
    that also reads each file's provenance (step 2) from the same bytes, so every file is
    read once. Thread-safe: the decoder reads in threads."""

    def __init__(self, read_bytes: Callable[[Item], bytes], *, enabled: bool = True) -> None:
        self.read_bytes = read_bytes
        self.enabled = enabled
        self.evidence: dict[str, list[Evidence]] = {}
        self._lock = threading.Lock()

    def __call__(self, item: Item) -> bytes:
        data = self.read_bytes(item)
        if self.enabled:
            found = provenance_of(data, item.path)
            with self._lock:
                self.evidence[item.path] = found
        return data


def _chunks(seq: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(seq), size):
        yield seq[start : start + size]
