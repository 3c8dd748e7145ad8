"""Images, files, folders and archives -> verdicts from the pixels and the file's provenance.

`predict_inputs` is the one pipeline behind `Detector.predict`, `fakescope predict`,
`fakescope score` and the Python API: expand the inputs; per file, read the bytes once, read
its provenance evidence (C2PA, XMP, generator metadata, watermark) and decode and prepare
the pixels, in parallel threads (a bad file gets its reason, never an exception); score the
pixels in batches; then `verdict` combines the pixel score with the evidence and the
detector's domain score into one p(fake), label and unsure flag, with the reason it is
unsure.

With `faces` the largest face of each image (or with `all_faces` every face, one verdict
each) is cropped by the detector's face crop policy (`Detector.face_policy`: the bundle's, or
the default) and scored instead of the whole image; faces are searched once per image, in
batches, by the process's one face finder. Each verdict then reports `face_box` ({x, y, w,
h} in the original image) and `faces_found`, or, when no face was found, scores the whole
image and says so in `face_note`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from tqdm.auto import tqdm

from fakescope.data.inputs import ImageInput, expand_inputs, prepare_or_reason, read_input_bytes
from fakescope.faces import FaceCropPolicy, FaceSelection, FaceSelector, face_box_dict
from fakescope.provenance import Evidence, combine, read_provenance
from fakescope.provenance.evidence import CAPTURE_METADATA
from fakescope.threads import decode_threads, worker_count

if TYPE_CHECKING:
    from PIL import Image

    from fakescope.detectors.base import Detector, PixelScores

__all__ = ["ImageInput", "Prediction", "predict_inputs", "verdict"]
T = TypeVar("T")

UNSURE_BAND = "p(fake) is inside the unsure band around the threshold"
FACE_JOINED = (
    "a face fills {share:.0%} of the image: the face specialist's score of it is averaged in"
)
OUT_OF_DOMAIN = "out of domain: unlike anything this detector was trained on"
CSV_FIELDS = (
    "path", "p_fake", "label", "unsure", "error",
    "p_fake_pixels", "unsure_reason", "domain_score", "in_domain", "max_crop_p_fake",
    "evidence", "disagreement", "face_box", "faces_found", "face_note",
)  # fmt: skip
"""Prediction columns in CSV and Parquet: the first five as before, new ones after them."""


@dataclass
class Prediction:
    """One verdict. `error` is set (and the scores None) when the input could not be read.

    p_fake, label and unsure are the final verdict (pixels and provenance combined);
    p_fake_pixels is the detector's own score; unsure_reason says why the verdict is unsure
    (the unsure band, or an input outside the detector's domain); evidence lists what the
    file's provenance says (dicts with signal, claim, by, trust, detail); disagreement is
    set when the pixels and the provenance point different ways. With faces: face_box is
    the face scored ({x, y, w, h} in the original image; None when none was found),
    faces_found how many usable faces the image holds, face_note what was scored instead.
    From a face-aware detector without faces: face_box is the face whose score was averaged
    in (None: the whole image alone) and face_note says so.
    """

    path: str
    p_fake: float | None
    label: str | None
    unsure: bool | None
    error: str | None = None
    p_fake_pixels: float | None = None
    unsure_reason: str | None = None
    domain_score: float | None = None
    in_domain: bool | None = None
    max_crop_p_fake: float | None = None
    evidence: list[dict[str, Any]] = field(default_factory=list)
    disagreement: str | None = None
    face_box: dict[str, int] | None = None
    faces_found: int | None = None
    face_note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_row(self) -> dict[str, Any]:
        """A flat row for CSV and Parquet: `unsure` and `in_domain` as 0/1, the evidence as
        one readable string."""
        row = self.to_dict()
        for key in ("unsure", "in_domain"):
            row[key] = None if row[key] is None else int(row[key])
        row["evidence"] = "; ".join(evidence_text(e) for e in self.evidence) or None
        if self.face_box is not None:
            row["face_box"] = json.dumps(self.face_box, separators=(",", ":"))
        return row

    def with_face(self, selection: FaceSelection) -> Prediction:
        """This verdict reporting the face it scored (or that none was found)."""
        self.face_box = face_box_dict(selection.face_box)
        self.faces_found = selection.faces_found
        self.face_note = selection.note
        return self

    def with_joined_face(self, box: dict[str, int] | None, size: tuple[int, int]) -> Prediction:
        """This verdict reporting the face a face-aware detector averaged in, if any."""
        if box is not None:
            self.face_box = box
            self.face_note = FACE_JOINED.format(share=box["w"] * box["h"] / (size[0] * size[1]))
        return self

    @classmethod
    def failed(cls, path: str, reason: str) -> Prediction:
        return cls(path, None, None, None, error=reason)


def evidence_text(e: dict[str, Any]) -> str:
    """One piece of evidence in a few words: 'c2pa: ai_generated by OpenAI (trusted)',
    'exif: capture_metadata by Apple iPhone 5 (not counted)'."""
    by = f" by {e['by']}" if e.get("by") else ""
    trust = f" ({e['trust']})" if e.get("trust") else ""
    weight = " (not counted)" if e["claim"] == CAPTURE_METADATA else ""
    return f"{e['signal']}: {e['claim']}{by}{trust}{weight}"


def verdict(
    detector: Detector,
    name: str,
    p_pixels: float,
    evidence: Sequence[Evidence] = (),
    *,
    domain_score: float | None = None,
    max_crop_p_fake: float | None = None,
    image_size: tuple[int, int] | None = None,
) -> Prediction:
    """The verdict for one image: the pixel score combined with its provenance evidence;
    unsure inside the unsure band, or outside the detector's domain (its features, or for a
    detector that resizes, an `image_size` far from the sizes it was trained on) unless
    decisive evidence (an intact AI-labelled manifest, an AI watermark) answers for them."""
    if image_size is not None:
        size_score = detector.size_score(*image_size)
        if size_score is not None:
            domain_score = max(domain_score or 0.0, size_score)
    combined = combine(p_pixels, evidence, threshold=detector.threshold)
    label, in_band = detector.verdict(combined.p_fake)
    in_domain = None if domain_score is None else bool(domain_score <= 1.0)
    reason = None  # out of domain says more than "near the threshold", so it comes first
    if in_domain is False and not combined.overridden:
        reason = OUT_OF_DOMAIN
    elif in_band:
        reason = UNSURE_BAND
    return Prediction(
        name,
        combined.p_fake,
        label,
        reason is not None,
        p_fake_pixels=p_pixels,
        unsure_reason=reason,
        domain_score=domain_score,
        in_domain=in_domain,
        max_crop_p_fake=max_crop_p_fake,
        evidence=[e.to_dict() for e in evidence],
        disagreement=combined.disagreement,
    )


def verdicts(
    detector: Detector,
    names: Sequence[str],
    scores: PixelScores,
    evidence: Sequence[Sequence[Evidence]] | None = None,
    sizes: Sequence[tuple[int, int]] | np.ndarray | None = None,
    faces: Sequence[FaceSelection | None] | None = None,
) -> list[Prediction]:
    """`verdict` for each scored image (in order); `sizes`: their (width, height); `faces`:
    the face each one scored, if any (reported in face_box, faces_found, face_note)."""
    judged = [
        verdict(
            detector,
            name,
            float(scores.p_fake[i]),
            evidence[i] if evidence is not None else (),
            domain_score=_at(scores.domain_score, i),
            max_crop_p_fake=_at(scores.max_crop_p_fake, i),
            image_size=None if sizes is None else (int(sizes[i][0]), int(sizes[i][1])),
        )
        for i, name in enumerate(names)
    ]
    for prediction, selection in zip(judged, faces or (), strict=False):
        if selection is not None:
            prediction.with_face(selection)
    if faces is None and sizes is not None:
        report_joined_faces(judged, scores, sizes)
    return judged


def report_joined_faces(
    predictions: Sequence[Prediction],
    scores: PixelScores,
    sizes: Sequence[tuple[int, int]] | np.ndarray,
) -> None:
    """Each verdict of a face-aware detector says which face joined its score, if one did
    (`scores.face_boxes`; nothing to do for other kinds)."""
    if scores.face_boxes is None:
        return
    for prediction, box, size in zip(predictions, scores.face_boxes, sizes, strict=True):
        prediction.with_joined_face(box, (int(size[0]), int(size[1])))


def _at(values: np.ndarray | None, i: int) -> float | None:
    return None if values is None else float(values[i])


@dataclass
class _Prepared:
    name: str
    array: np.ndarray | None
    error: str | None
    evidence: list[Evidence]
    size: tuple[int, int] = (0, 0)
    image: Image.Image | None = None  # kept (decoded, not prepared) when faces are searched


def _prepare(
    detector: Detector, name: str, value: ImageInput, provenance: bool, faces: bool = False
) -> _Prepared:
    """Bytes read once: provenance from them, pixels decoded and prepared from them (with
    `faces`, only decoded: the face crop is prepared once the faces are found)."""
    data = read_input_bytes(value, name)
    if isinstance(data, str):  # the reason the file cannot be read
        return _Prepared(name, None, data, [])
    evidence = read_provenance(data, name) if provenance and data is not None else []
    source = value if data is None else data
    if faces:
        decoded = prepare_or_reason(source, name, lambda img: img)
        if isinstance(decoded, str):
            return _Prepared(name, None, decoded, [])
        return _Prepared(name, None, None, evidence, decoded.size, decoded)
    prepared = prepare_or_reason(source, name, lambda img: (detector.prepare(img), img.size))
    if isinstance(prepared, str):
        return _Prepared(name, None, prepared, [])
    return _Prepared(name, prepared[0], None, evidence, prepared[1])


def face_selector(detector: Detector, faces: bool | FaceCropPolicy) -> FaceSelector | None:
    """What `faces=` asks for: None (whole images), the detector's own face crop policy
    (True), or the policy given."""
    if faces is False:
        return None
    return FaceSelector(detector.face_policy if faces is True else faces)


def _judge_faces(
    detector: Detector, prepared: Sequence[_Prepared], selector: FaceSelector, all_faces: bool
) -> list[Prediction]:
    """Verdicts for decoded images by their faces: one search for the whole chunk, then the
    largest face (or each face) of every image prepared and scored."""
    good = [p for p in prepared if p.image is not None]
    images = [p.image for p in good if p.image is not None]
    found = selector.every(images) if all_faces else [[s] for s in selector.largest(images)]
    rows = [(p, s) for p, selections in zip(good, found, strict=True) for s in selections]
    arrays = [detector.prepare(s.image) for _, s in rows]
    scored = verdicts(
        detector,
        [p.name for p, _ in rows],
        detector.score_prepared(arrays),
        [p.evidence for p, _ in rows],
        [s.image.size for _, s in rows],
        [s for _, s in rows],
    )
    by_input: dict[int, list[Prediction]] = {}
    for (p, _), prediction in zip(rows, scored, strict=True):
        by_input.setdefault(id(p), []).append(prediction)
    results: list[Prediction] = []
    for p in prepared:
        if p.error is not None:
            results.append(Prediction.failed(p.name, p.error))
        else:
            results += by_input[id(p)]
    return results


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

        def submit(chunk: Sequence[tuple[str, ImageInput]]) -> list[Future[_Prepared]]:
            return [
                pool.submit(_prepare, detector, name, value, provenance, selector is not None)
                for name, value in chunk
            ]

        pending = submit(chunks[0]) if chunks else []
        for index, chunk in enumerate(chunks):
            prepared = [future.result() for future in pending]
            # the next chunk is read, decoded and prepared while this one is scored
            pending = submit(chunks[index + 1]) if index + 1 < len(chunks) else []
            if selector is not None:
                results += _judge_faces(detector, prepared, selector, all_faces)
                bar.update(len(chunk))
                continue
            good = [p for p in prepared if p.array is not None]
            scored = iter(
                verdicts(
                    detector,
                    [p.name for p in good],
                    detector.score_prepared([p.array for p in good if p.array is not None]),
                    [p.evidence for p in good],
                    [p.size for p in good],
                )
            )
            results += [
                next(scored) if p.error is None else Prediction.failed(p.name, p.error)
                for p in prepared
            ]
            bar.update(len(chunk))
    bar.close()
    return [Prediction.failed(path, reason) for path, reason in problems] + results


def _chunks(seq: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(seq), size):
        yield seq[start : start + size]
