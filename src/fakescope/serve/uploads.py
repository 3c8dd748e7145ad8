"""Turn an HTTP upload into decoded images, or into the 4xx that says what is wrong.

Checks, in order: content type (multipart/form-data), request size (Content-Length and the
bytes actually received), number of files, empty upload, each file's size, and then the
bytes themselves (an image by content, never by name or declared type, within the pixel
limit) through :func:`fakescope.data.decode.load_image`.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import Message, Receive

from fakescope.data.decode import load_image
from fakescope.errors import ImageError
from fakescope.serve.errors import ApiError, image_error
from fakescope.serve.settings import ServeSettings

MAX_NAME = 120
_FIELD_BYTES = 64 * 1024  # non-file form fields (we use none) stay small


@dataclass
class Upload:
    filename: str
    data: bytes


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB" if n >= 1024 * 1024 else f"{n:,} bytes"


def _safe_name(name: str | None, index: int) -> str:
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable())[:MAX_NAME]
    return name or f"upload-{index + 1}"


def _limited(receive: Receive, limit: int) -> Receive:
    received = 0

    async def receive_limited() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise ApiError(413, "request_too_large", f"the request body exceeds {_mib(limit)}")
        return message

    return receive_limited


def _check_headers(request: Request, settings: ServeSettings) -> None:
    content_type = request.headers.get("content-type", "")
    if content_type.split(";", 1)[0].strip().lower() != "multipart/form-data":
        shown = content_type or "none"
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send images as multipart/form-data (content type was {shown}), "
            "e.g. curl -F files=@photo.jpg",
        )
    length = request.headers.get("content-length")
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            raise ApiError(400, "bad_request", f"invalid Content-Length {length!r}") from None
        if declared > settings.max_request_bytes:
            raise ApiError(
                413,
                "request_too_large",
                f"the request body is {_mib(declared)}, more than the limit of "
                f"{_mib(settings.max_request_bytes)}",
            )


async def read_uploads(
    request: Request,
    settings: ServeSettings,
    max_files: int,
    fields: dict[str, str] | None = None,
) -> list[Upload]:
    """The uploaded files (any multipart field), with size and count limits applied; the
    form's text fields go into `fields` when it is given."""
    _check_headers(request, settings)
    limited = Request(request.scope, _limited(request.receive, settings.max_request_bytes))
    try:
        form = await limited.form(
            max_files=max_files, max_fields=max_files + 16, max_part_size=_FIELD_BYTES
        )
    except HTTPException as exc:  # starlette's multipart errors
        detail = str(exc.detail)
        if detail.startswith("Too many files"):
            raise ApiError(
                413, "too_many_files", f"too many files: at most {max_files} per request"
            ) from None
        raise ApiError(400, "bad_multipart", f"malformed multipart body: {detail}") from None
    try:
        files = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
        if fields is not None:
            fields.update((k, v) for k, v in form.multi_items() if isinstance(v, str))
        if not files:
            raise ApiError(
                400,
                "no_files",
                "no image in the request: send one or more files in the multipart field "
                "'files', e.g. curl -F files=@photo.jpg",
            )
        uploads = []
        for index, upload in enumerate(files):
            name = _safe_name(upload.filename, index)
            if upload.size is not None and upload.size > settings.max_file_bytes:
                raise ApiError(
                    413,
                    "file_too_large",
                    f"{name}: {_mib(upload.size)} is more than the limit of "
                    f"{_mib(settings.max_file_bytes)} per file",
                    filename=name,
                )
            uploads.append(Upload(name, await upload.read()))
        return uploads
    finally:
        await form.close()


def decode_upload(upload: Upload, settings: ServeSettings) -> Image.Image:
    """The upload as an RGB image; an :class:`ApiError` (4xx) when it is not a usable one."""
    try:
        return load_image(upload.data, upload.filename, max_pixels=settings.max_pixels)
    except ImageError as exc:
        raise image_error(exc, upload.filename) from None
