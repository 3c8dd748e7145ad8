"""Errors the API answers with: a status, a machine-readable code and a message for people.

Every error body has the same shape, ``{"error": {"code", "message", "filename"?}}``, whether
it comes from our checks, from FastAPI's validation or from routing (404, 405).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from fakescope.errors import FakescopeError, ImageError

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    503: "unavailable",
}


class ApiError(FakescopeError):
    """A request the server refuses, with the HTTP status to answer."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        filename: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.filename = filename
        self.headers = headers or {}

    def body(self) -> dict:
        error: dict[str, str] = {"code": self.code, "message": self.message}
        if self.filename is not None:
            error["filename"] = self.filename
        return {"error": error}


def image_error(exc: ImageError, filename: str) -> ApiError:
    """The 4xx for an upload the decoder refused, by what was wrong with it."""
    reason = exc.reason
    if reason.startswith("empty file"):
        status, code = 400, "empty_file"
    elif reason.startswith("image too large"):
        status, code = 413, "too_many_pixels"
    elif reason.startswith(("not an image", "unsupported format")):
        status, code = 415, "not_an_image"
    else:  # truncated or corrupt data, unconvertible modes
        status, code = 422, "corrupt_image"
    return ApiError(status, code, f"{filename}: {reason}", filename=filename)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every refusal as ``{"error": {...}}`` JSON."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        body = {"error": {"code": code, "message": str(exc.detail)}}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
            for e in exc.errors()
        )
        body = {"error": {"code": "invalid_request", "message": problems}}
        return JSONResponse(body, status_code=422)
