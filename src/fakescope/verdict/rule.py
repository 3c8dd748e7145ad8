"""The one verdict rule: a pixel score, the file's provenance evidence and the detector's
domain score -> p(fake), label, unsure flag and the reason it is unsure."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from fakescope.faces import FaceSelection
from fakescope.provenance import Evidence, combine
from fakescope.verdict.prediction import Prediction

if TYPE_CHECKING:
    from fakescope.detectors.base import Detector, PixelScores

__all__ = [
    "NOT_A_PHOTO",
    "OUT_OF_DOMAIN",
    "UNSURE_BAND",
    "at_threshold",
    "domain_score_of",
    "report_joined_faces",
    "verdict",
    "verdicts",
]

UNSURE_BAND = "p(fake) is inside the unsure band around the threshold"
OUT_OF_DOMAIN = "out of domain: unlike anything this detector was trained on"
NOT_A_PHOTO = (
    "not a photograph: drawn or graphic content (plots, screenshots, illustrations); "
    "this detector is for photographs"
)


def domain_score_of(
    detector: Detector, domain_score: float | None, image_size: tuple[int, int] | None
) -> float | None:
    """The input's domain score: its features' (`domain_score`) or, for a detector that
    resizes, how far `image_size` is from the sizes it was trained on, whichever is worse."""
    if image_size is not None:
        size_score = detector.size_score(*image_size)
        if size_score is not None:
            return max(domain_score or 0.0, size_score)
    return domain_score


def verdict(
    detector: Detector,
    name: str,
    p_pixels: float,
    evidence: Sequence[Evidence] = (),
    *,
    domain_score: float | None = None,
    max_crop_p_fake: float | None = None,
    image_size: tuple[int, int] | None = None,
    content: str | None = None,
) -> Prediction:
    """The verdict for one image: the pixel score combined with its provenance evidence;
    unsure inside the unsure band, outside the detector's domain (its features, or for a
    detector that resizes, an `image_size` far from the sizes it was trained on), or, for a
    detector made for photographs (`BundleMeta.photos_only`), on drawn or graphic `content`
    (`fakescope.data.content_type`: 'photo' or 'graphic'; None where it was not looked at),
    unless decisive evidence (an intact AI-labelled manifest, an AI watermark) answers for
    them."""
    domain_score = domain_score_of(detector, domain_score, image_size)
    combined = combine(p_pixels, evidence, threshold=detector.threshold)
    label, in_band = detector.verdict(combined.p_fake)
    in_domain = None if domain_score is None else bool(domain_score <= 1.0)
    not_a_photo = content == "graphic" and detector.meta.photos_only
    # what the image is says most, then unlike the training data, then near the threshold
    reason = None
    if not_a_photo and not combined.overridden:
        reason = NOT_A_PHOTO
    elif in_domain is False and not combined.overridden:
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
        content=content,
    )


def verdicts(
    detector: Detector,
    names: Sequence[str],
    scores: PixelScores,
    evidence: Sequence[Sequence[Evidence]] | None = None,
    sizes: Sequence[tuple[int, int]] | np.ndarray | None = None,
    faces: Sequence[FaceSelection | None] | None = None,
    contents: Sequence[str | None] | None = None,
) -> list[Prediction]:
    """`verdict` for each scored image (in order); `sizes`: their (width, height); `faces`:
    the face each one scored, if any (reported in face_box, faces_found, face_note);
    `contents`: what each one shows ('photo', 'graphic'), where it was looked at."""
    judged = [
        verdict(
            detector,
            name,
            float(scores.p_fake[i]),
            evidence[i] if evidence is not None else (),
            domain_score=_at(scores.domain_score, i),
            max_crop_p_fake=_at(scores.max_crop_p_fake, i),
            image_size=None if sizes is None else (int(sizes[i][0]), int(sizes[i][1])),
            content=None if contents is None else contents[i],
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


def at_threshold(detector: Detector, threshold: float) -> Detector:
    """`detector` deciding at `threshold` (its unsure band moved with it): a shallow copy,
    so verdicts at a threshold chosen on validation data follow the one rule in `verdict`
    without touching the caller's detector."""
    if threshold == detector.threshold:
        return detector
    view = copy.copy(detector)
    view.meta = dataclasses.replace(detector.meta, threshold=float(threshold))
    return view


def _at(values: np.ndarray | None, i: int) -> float | None:
    return None if values is None else float(values[i])
