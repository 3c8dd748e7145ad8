"""A face found in an image, as plain data: its box, eyes and the dict a result row carries.
Light on purpose (no numpy, no torch): the verdict's fields and `fakescope --help` use it;
the face finders live in `fakescope.faces`."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

Box = tuple[int, int, int, int]
"""(x, y, w, h) in pixels of the original image."""
Point = tuple[float, float]
Eyes = tuple[Point, Point]
"""The eye on the image's left, then the one on its right: (x, y) each."""


@dataclass(frozen=True)
class FaceBox:
    """A face found in an image: (x, y, w, h) in the original image's pixels, inside it.

    ``confidence`` is MTCNN's face probability; OpenCV's Haar cascade gives no comparable
    score, so its boxes carry None rather than a made-up number. ``eyes``: the centres of
    the eye on the image's left and the eye on its right, (x, y) in original pixels, from
    MTCNN's landmarks (None from the Haar cascade, which finds no landmarks).
    """

    x: int
    y: int
    w: int
    h: int
    confidence: float | None = None
    eyes: Eyes | None = None

    @property
    def roll(self) -> float:
        """How far the eye line is turned from level, in degrees (positive: clockwise on
        screen, the right eye lower); 0 without eyes."""
        if self.eyes is None:
            return 0.0
        (lx, ly), (rx, ry) = self.eyes
        return math.degrees(math.atan2(ry - ly, rx - lx))

    @property
    def xywh(self) -> Box:
        return (self.x, self.y, self.w, self.h)

    @property
    def area(self) -> int:
        return self.w * self.h

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def face_box_dict(box: FaceBox | None) -> dict[str, int] | None:
    """{x, y, w, h} in the original image's pixels, or None."""
    return None if box is None else {"x": box.x, "y": box.y, "w": box.w, "h": box.h}
