"""What users hand to predict, score and serve: decoded images, bytes, files, folders,
archives. One rule for all of them: every input is decoded or gets the reason it cannot be,
so `predict`, `score`, `serve` and training report the same odd file the same way.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import TypeVar

from PIL import Image

from fakescope.data.decode import load_image
from fakescope.data.sources import collect_inputs, read_item_bytes
from fakescope.errors import ImageError

ImageInput = str | os.PathLike[str] | Image.Image | bytes
"""A decoded image, encoded bytes, or a path (file, folder, archive, ``archive::member``)."""
Readable = ImageInput | Callable[[], bytes]
"""An input, or a function that returns the encoded bytes (a data source's reader)."""
T = TypeVar("T")


def read_input(value: Readable, name: str) -> Image.Image:
    """The decoded RGB image of one input; ImageError (naming `name`) says why not."""
    if isinstance(value, Image.Image):
        return value
    try:
        if isinstance(value, bytes):
            data = value
        elif callable(value):
            data = value()
        else:
            data = read_item_bytes(os.fspath(value))
    except OSError as exc:
        raise ImageError(name, f"cannot read: {exc}") from exc
    return load_image(data, name)


def read_input_bytes(value: ImageInput, name: str) -> bytes | None | str:
    """The encoded bytes of an input (None for an already decoded image), or the reason
    they cannot be read."""
    if isinstance(value, Image.Image):
        return None
    if isinstance(value, bytes):
        return value
    try:
        return read_item_bytes(os.fspath(value))
    except ImageError as exc:
        return exc.reason
    except OSError as exc:
        return f"cannot read: {exc}"


def prepare_or_reason(value: Readable, name: str, prepare: Callable[[Image.Image], T]) -> T | str:
    """`prepare(image)` for one input, or the reason it cannot be read, decoded or prepared.

    Never raises for a bad file: a job over many files must not die on one exotic image (a
    size that decodes but cannot be resized, a broken colour profile...).
    """
    try:
        return prepare(read_input(value, name))
    except ImageError as exc:
        return exc.reason
    except OSError as exc:
        return f"cannot read: {exc}"
    except Exception as exc:
        return f"cannot decode: {type(exc).__name__}: {exc}"


def expand_inputs(
    inputs: ImageInput | Iterable[ImageInput],
) -> tuple[list[tuple[str, ImageInput]], list[tuple[str, str]]]:
    """(name, value) pairs for inputs, folders and archives expanded into their images, and
    (path, reason) for paths that hold none."""
    if isinstance(inputs, str | os.PathLike | Image.Image | bytes):
        inputs = [inputs]
    entries: list[tuple[str, ImageInput]] = []
    problems: list[tuple[str, str]] = []
    for index, value in enumerate(inputs):
        if isinstance(value, Image.Image):
            entries.append((getattr(value, "filename", "") or f"<image {index}>", value))
        elif isinstance(value, bytes):
            entries.append((f"<bytes {index}>", value))
        else:
            paths, missing = collect_inputs([os.fspath(value)])
            entries += [(p, p) for p in paths]
            problems += missing
    return entries, problems
