"""Images, files, folders and archives -> verdicts, with any detector.

`predict_inputs` is the one pipeline behind `Detector.predict`, `fakescope predict` and the
Python API: expand the inputs, decode and prepare them in parallel threads (a bad file gets
its reason, never an exception), score them in batches and turn each probability into a
verdict by the bundle's threshold and unsure band.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from tqdm.auto import tqdm

from fakescope.data.inputs import ImageInput, expand_inputs, prepare_or_reason

if TYPE_CHECKING:
    from fakescope.detectors.base import Detector

__all__ = ["ImageInput", "Prediction", "predict_inputs"]
T = TypeVar("T")


@dataclass
class Prediction:
    """One verdict. `error` is set (and the rest None) when the input could not be read."""

    path: str
    p_fake: float | None
    label: str | None
    unsure: bool | None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def failed(cls, path: str, reason: str) -> Prediction:
        return cls(path, None, None, None, error=reason)


def predict_inputs(
    detector: Detector,
    inputs: ImageInput | Iterable[ImageInput],
    *,
    batch_size: int = 64,
    progress: bool = False,
) -> list[Prediction]:
    """Verdicts for images, bytes, files, folders and archives, in input order; paths that
    hold no image come first, each with its reason."""
    entries, problems = expand_inputs(inputs)
    results: list[Prediction] = []
    bar = tqdm(total=len(entries), desc="predict", unit="img", disable=not progress)
    with ThreadPoolExecutor(max_workers=min(4, (os.cpu_count() or 1) + 1)) as pool:
        for chunk in _chunks(entries, batch_size):
            prepared = list(
                pool.map(lambda e: prepare_or_reason(e[1], e[0], detector.prepare), chunk)
            )
            good = [arr for arr in prepared if not isinstance(arr, str)]
            scores = iter(detector.probabilities_in_batches(good, batch_size=batch_size))
            for (name, _), arr in zip(chunk, prepared, strict=True):
                results.append(
                    Prediction.failed(name, arr)
                    if isinstance(arr, str)
                    else _verdict(detector, name, float(next(scores)))
                )
            bar.update(len(chunk))
    bar.close()
    return [Prediction.failed(path, reason) for path, reason in problems] + results


def _verdict(detector: Detector, name: str, p_fake: float) -> Prediction:
    label, unsure = detector.verdict(p_fake)
    return Prediction(name, p_fake, label, unsure)


def _chunks(seq: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(seq), size):
        yield seq[start : start + size]
