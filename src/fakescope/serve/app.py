"""The FastAPI app: ``create_app(detector, settings)`` wires routes, limits, batching, auth,
CORS, access logs and the web page. The CLI's ``fakescope serve`` only runs it in uvicorn."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib import resources
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
from fastapi import Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from fakescope import __version__
from fakescope.model_card import render_model_card
from fakescope.serve.access_log import AccessLogMiddleware
from fakescope.serve.batcher import MicroBatcher, Overloaded
from fakescope.serve.errors import ApiError, install_error_handlers
from fakescope.serve.scoring import explain_png, score_batch
from fakescope.serve.settings import ServeSettings
from fakescope.serve.uploads import Upload, decode_upload, read_uploads

if TYPE_CHECKING:
    from PIL import Image

    from fakescope.detectors import Detector

STATIC_DIR = resources.files("fakescope") / "serve" / "static"


def _upload_body(max_files: int) -> dict[str, Any]:
    """The request body as the server parses it (:func:`read_uploads`): multipart with
    1 to `max_files` non-empty files, so an OpenAPI client generates only requests it can expect to
    succeed and knows an empty or oversized upload is an error (400 / 413)."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["files"],
                        "properties": {
                            "files": {
                                "type": "array",
                                "items": {"type": "string", "format": "binary", "minLength": 1},
                                "minItems": 1,
                                "maxItems": max_files,
                                "description": "JPEG, PNG, WebP, BMP, TIFF or GIF images",
                            }
                        },
                    }
                }
            },
        }
    }


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "empty upload or malformed multipart body"},
    401: {"description": "missing or wrong API key"},
    413: {"description": "too many bytes, pixels or files"},
    415: {"description": "not multipart/form-data, or a file that is not an image"},
    422: {"description": "a truncated or corrupt image"},
    503: {"description": "the model queue is full; retry later"},
}


class Verdict(BaseModel):
    filename: str
    p_fake: float = Field(description="calibrated probability that the image is fake")
    label: str = Field(description="the bundle's label at its decision threshold")
    unsure: bool = Field(description="p_fake lies inside the bundle's unsure band")


class PredictResponse(BaseModel):
    results: list[Verdict]
    model: dict[str, Any]


def model_summary(detector: Detector) -> dict[str, Any]:
    """The facts a client needs next to a verdict: which model, its threshold and band."""
    meta = detector.meta
    return {
        "title": meta.card.get("title", meta.architecture),
        "architecture": meta.architecture,
        "input_size": meta.preprocessing.input_size,
        "labels": list(meta.labels),
        "threshold": meta.threshold,
        "unsure_band": list(meta.unsure_band),
        "data_fingerprint": meta.data_fingerprint,
        "created": meta.created,
    }


def _api_key_check(settings: ServeSettings) -> Callable[[Request], Awaitable[None]]:
    expected = settings.api_key

    async def require_api_key(request: Request) -> None:
        if expected is None:
            return
        given = request.headers.get("x-api-key")
        auth = request.headers.get("authorization", "")
        if given is None and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if given is None or not secrets.compare_digest(given.encode(), expected.encode()):
            raise ApiError(
                401,
                "unauthorized",
                "missing or wrong API key: send it in the X-API-Key header",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return require_api_key


def create_app(detector: Detector, settings: ServeSettings | None = None) -> FastAPI:
    """The HTTP API and web page for one detector. The model thread starts with the app's
    lifespan (uvicorn, or ``with TestClient(app)``)."""
    settings = settings or ServeSettings()
    batcher = _micro_batcher(detector, settings)
    app = _bare_app(batcher, settings)
    decode = _upload_decoder(detector, settings)
    authorized = [Depends(_api_key_check(settings))]
    _add_page_and_ops_routes(app, batcher)
    _add_model_route(app, detector, authorized)
    _add_predict_route(app, detector, settings, batcher, decode, authorized)
    _add_explain_route(app, detector, settings, batcher, decode, authorized)
    return app


Decoder = Callable[[Upload], Awaitable[tuple["Image.Image", np.ndarray]]]
"""Upload -> (decoded image, model input as uint8), run off the event loop."""


def _micro_batcher(detector: Detector, settings: ServeSettings) -> MicroBatcher:
    """One model thread that scores images from concurrent requests together; warmed up on
    a blank image of the bundle's input size so the first request is not the slow one."""
    size = detector.preprocessing.input_size
    return MicroBatcher(
        lambda batch: score_batch(detector, batch),
        max_batch=settings.max_batch,
        max_wait=settings.max_wait_ms / 1000,
        queue_size=settings.queue_size,
        warmup=np.zeros((3, size, size), dtype=np.uint8),
    )


def _bare_app(batcher: MicroBatcher, settings: ServeSettings) -> FastAPI:
    """The app with its lifespan (the model thread), error handlers, CORS and access log,
    and no routes yet: everything every route relies on."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        try:
            yield
        finally:
            batcher.stop()

    app = FastAPI(
        title="fakescope",
        version=__version__,
        description="Is this image real or AI-generated / deepfaked? p(fake), a verdict with "
        "an unsure band, and Grad-CAM overlays from a fakescope detector bundle.",
        lifespan=lifespan,
    )
    app.state.batcher = batcher
    app.state.settings = settings
    install_error_handlers(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "X-API-Key", "X-Request-ID"],
            expose_headers=["X-Request-ID", "X-P-Fake", "X-Label", "X-Unsure"],
        )
    app.add_middleware(AccessLogMiddleware)
    return app


def _upload_decoder(detector: Detector, settings: ServeSettings) -> Decoder:
    """Decoding and resizing run in worker threads, at most ``decode_workers`` at a time:
    they are CPU-bound and each may hold up to ``max_pixels`` in memory."""
    decode_limiter = anyio.CapacityLimiter(settings.decode_workers)

    def to_input(upload: Upload) -> tuple[Image.Image, np.ndarray]:
        image = decode_upload(upload, settings)
        try:
            return image, detector.preprocessing.to_uint8(image)
        except Exception as exc:  # exotic sizes that decode but cannot be resized
            raise ApiError(
                422,
                "corrupt_image",
                f"{upload.filename}: cannot resize the image ({exc})",
                filename=upload.filename,
            ) from None

    async def decode(upload: Upload) -> tuple[Image.Image, np.ndarray]:
        return await anyio.to_thread.run_sync(to_input, upload, limiter=decode_limiter)

    return decode


def _overloaded(exc: Overloaded) -> ApiError:
    """A full model queue is the client's cue to retry, not a server error."""
    return ApiError(503, "overloaded", f"server busy: {exc}", headers={"Retry-After": "1"})


def _add_page_and_ops_routes(app: FastAPI, batcher: MicroBatcher) -> None:
    """The web page and the probes an orchestrator polls; none of them needs the API key."""

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(str(STATIC_DIR / "index.html"))

    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")

    @app.get("/healthz", tags=["ops"], summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], summary="Readiness: the model is loaded and warmed up")
    async def readyz() -> JSONResponse:
        if batcher.running and batcher.ready.is_set():
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "starting"}, status_code=503)


def _add_model_route(app: FastAPI, detector: Detector, authorized: list[Any]) -> None:
    """GET /v1/model: the model card, so a client can tell which detector answered."""
    summary = model_summary(detector)

    @app.get("/v1/model", tags=["model"], dependencies=authorized, summary="The model card")
    async def model_card() -> dict[str, Any]:
        info = detector.info()
        info.pop("bundle", None)  # a server path is nobody's business
        return {**info, "summary": summary, "model_card_markdown": render_model_card(detector.meta)}


def _add_predict_route(
    app: FastAPI,
    detector: Detector,
    settings: ServeSettings,
    batcher: MicroBatcher,
    decode: Decoder,
    authorized: list[Any],
) -> None:
    """POST /v1/predict: every uploaded image decoded, then scored in the shared batches."""
    summary = model_summary(detector)

    @app.post(
        "/v1/predict",
        tags=["predict"],
        dependencies=authorized,
        response_model=PredictResponse,
        responses=_ERRORS,
        openapi_extra=_upload_body(settings.max_files),
        summary="p(fake) and a verdict for one or more images",
    )
    async def predict(request: Request) -> dict[str, Any]:
        uploads = await read_uploads(request, settings, settings.max_files)
        with batcher.expect(len(uploads)) as expected:  # the model thread waits for these
            decoded = [await decode(upload) for upload in uploads]
            try:
                scores = await batcher.score([array for _, array in decoded], expected)
            except Overloaded as exc:
                raise _overloaded(exc) from None
        results = []
        for upload, p in zip(uploads, scores, strict=True):
            label, unsure = detector.verdict(p)
            results.append(
                {"filename": upload.filename, "p_fake": p, "label": label, "unsure": unsure}
            )
        return {"results": results, "model": summary}


def _add_explain_route(
    app: FastAPI,
    detector: Detector,
    settings: ServeSettings,
    batcher: MicroBatcher,
    decode: Decoder,
    authorized: list[Any],
) -> None:
    """POST /v1/explain: a Grad-CAM PNG for one image, computed on the model thread alone
    (it needs gradients, so it cannot join a scoring batch)."""

    @app.post(
        "/v1/explain",
        tags=["predict"],
        dependencies=authorized,
        responses={200: {"content": {"image/png": {}}}, **_ERRORS},
        response_class=Response,
        openapi_extra=_upload_body(1),
        summary="Grad-CAM overlay (PNG) for one image: where the evidence for 'fake' lies",
    )
    async def explain(request: Request) -> Response:
        if not detector.capabilities.can_explain:
            why = detector.capabilities.why_not.get("explain", "this detector cannot")
            raise ApiError(409, "explain_unavailable", f"{why} (POST /v1/predict still works)")
        (upload,) = await read_uploads(request, settings, 1)
        image, _ = await decode(upload)
        try:
            png, p = await batcher.run_exclusive(lambda: explain_png(detector, image))
        except Overloaded as exc:
            raise _overloaded(exc) from None
        label, unsure = detector.verdict(p)
        headers = {
            "X-P-Fake": f"{p:.6f}",
            "X-Label": label,
            "X-Unsure": str(unsure).lower(),
            "Cache-Control": "no-store",
        }
        return Response(png, media_type="image/png", headers=headers)
