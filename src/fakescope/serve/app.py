"""The FastAPI app: ``create_app(detector, settings)`` wires routes, limits, batching, auth,
CORS, access logs and the web page. The CLI's ``fakescope serve`` only runs it in uvicorn."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

import anyio
import numpy as np
from fastapi import Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import create_model

from fakescope import __version__
from fakescope.faces import FaceSelector
from fakescope.model_card import render_model_card
from fakescope.serve.access_log import AccessLogMiddleware
from fakescope.serve.batcher import MicroBatcher, Overloaded
from fakescope.serve.errors import ApiError, install_error_handlers
from fakescope.serve.scoring import ImageScore, explain_png, joined, per_image, score_batch
from fakescope.serve.settings import ServeSettings
from fakescope.serve.uploads import Upload, decode_upload, read_uploads
from fakescope.verdict.pipeline import Prepared, judge, prepare_image, provenance_of
from fakescope.verdict.schemas import verdict_model

if TYPE_CHECKING:
    from PIL import Image

    from fakescope.detectors import Detector

STATIC_DIR = resources.files("fakescope") / "serve" / "static"
log = logging.getLogger(__name__)


def _upload_body(max_files: int, faces: bool = False) -> dict[str, Any]:
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
                            },
                            **(_FACES_FIELD if faces else {}),
                        },
                    }
                }
            },
        },
        **({"parameters": [_FACES_QUERY]} if faces else {}),
    }


_FACES_TEXT = (
    "score the largest face (cropped by the bundle's face crop policy) instead of the whole "
    "image; each result then reports face_box, or face_note when there is no face"
)
_FACES_FIELD = {"faces": {"type": "string", "enum": ["true", "false"], "description": _FACES_TEXT}}
_FACES_QUERY = {
    "name": "faces",
    "in": "query",
    "required": False,
    "schema": {"type": "boolean"},
    "description": _FACES_TEXT,
}
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off", "")


def _faces_flag(request: Request, fields: dict[str, str]) -> bool:
    """faces=true as a query parameter or a form field; anything but a yes/no is a 400."""
    values = [v for v in (request.query_params.get("faces"), fields.get("faces")) if v is not None]
    for value in values:
        if value.strip().lower() not in (*_TRUE, *_FALSE):
            raise ApiError(400, "bad_field", f"faces must be true or false, got {value[:40]!r}")
    return any(v.strip().lower() in _TRUE for v in values)


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "empty upload or malformed multipart body"},
    401: {"description": "missing or wrong API key"},
    413: {"description": "too many bytes, pixels or files"},
    415: {"description": "not multipart/form-data, or a file that is not an image"},
    422: {"description": "a truncated or corrupt image"},
    503: {"description": "the model queue is full; retry later"},
}


Verdict = verdict_model()
"""One result of /v1/predict: the Prediction's fields as declared in
`fakescope.verdict.prediction`, with the upload's `filename` in place of its path."""


PredictResponse = create_model(
    "PredictResponse",
    results=(list[Verdict], ...),  # type: ignore[valid-type]  # Verdict: a model, built above
    model=(dict[str, Any], ...),
)


def model_summary(detector: Detector) -> dict[str, Any]:
    """The facts a client needs next to a verdict: which model, its threshold and band,
    whether it knows its domain, and what it can do (e.g. Grad-CAM)."""
    meta = detector.meta
    caps = detector.capabilities
    return {
        "title": meta.card.get("title", meta.architecture),
        "architecture": meta.architecture,
        "input_size": meta.preprocessing.input_size,
        "labels": list(meta.labels),
        "threshold": meta.threshold,
        "unsure_band": list(meta.unsure_band),
        "data_fingerprint": meta.data_fingerprint,
        "created": meta.created,
        "domain": dict(meta.domain) if meta.domain else None,
        "capabilities": {
            "can_explain": caps.can_explain,
            "can_embed": caps.can_embed,
            "has_gradients": caps.has_gradients,
            "runtime": caps.runtime,
        },
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


def create_app(
    detector: Detector,
    settings: ServeSettings | None = None,
    *,
    face_detector: Detector | None = None,
) -> FastAPI:
    """The HTTP API and web page for one detector. The model thread starts with the app's
    lifespan (uvicorn, or ``with TestClient(app)``).

    `face_detector`: the detector that scores requests with faces=true (the face specialist,
    when the server runs the default detector), with its own model thread; None: `detector`
    scores faces too."""
    settings = settings or ServeSettings()
    main = Scorer.for_detector(detector, settings)
    specialist = None if face_detector is None else Scorer.for_detector(face_detector, settings)
    model_threads = [main.batcher] + ([specialist.batcher] if specialist else [])
    app = _bare_app(model_threads, settings)
    authorized = [Depends(_api_key_check(settings))]
    _add_page_and_ops_routes(app, model_threads)
    _add_model_route(app, main, specialist, authorized)
    _add_predict_route(app, main, specialist or main, settings, authorized)
    _add_explain_route(app, detector, settings, main.batcher, main.decode, authorized)
    return app


@dataclass
class Decoded:
    """An upload ready to score: the decoded image and the verdict pipeline's `Prepared`
    (its model input, its provenance evidence when asked for, the face scored)."""

    image: Image.Image
    prepared: Prepared


Decoder = Callable[..., Awaitable[Decoded]]
"""(upload, provenance=bool, faces=bool) -> :class:`Decoded`, run off the event loop."""
Batcher = MicroBatcher[ImageScore]


@dataclass
class Scorer:
    """A detector as the server runs it: its model thread (micro-batcher), its upload
    decoder (with its face crop policy) and the summary that goes with its verdicts."""

    detector: Detector
    batcher: Batcher
    decode: Decoder
    summary: dict[str, Any]

    @classmethod
    def for_detector(cls, detector: Detector, settings: ServeSettings) -> Scorer:
        return cls(
            detector,
            _micro_batcher(detector, settings),
            _upload_decoder(detector, settings),
            model_summary(detector),
        )


def _micro_batcher(detector: Detector, settings: ServeSettings) -> Batcher:
    """One model thread that scores images from concurrent requests together; warmed up on
    a blank input of the bundle's shape so the first request is not the slow one."""
    return MicroBatcher(
        lambda arrays: per_image(score_batch(detector, arrays)),
        max_batch=settings.max_batch,
        max_wait=settings.max_wait_ms / 1000,
        queue_size=settings.queue_size,
        warmup=np.zeros(detector.preprocessing.array_shape, dtype=np.uint8),
    )


def _bare_app(model_threads: list[Batcher], settings: ServeSettings) -> FastAPI:
    """The app with its lifespan (the model threads, the main detector's first), error
    handlers, CORS and access log, and no routes yet: everything every route relies on."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        started: list[Batcher] = []
        try:
            for each in model_threads:
                each.start()
                started.append(each)
            yield
        finally:
            for each in reversed(started):
                each.stop()

    app = FastAPI(
        title="fakescope",
        version=__version__,
        description="Is this image real or AI-generated / deepfaked? p(fake), a verdict with "
        "an unsure band, and Grad-CAM overlays from a fakescope detector bundle.",
        lifespan=lifespan,
    )
    app.state.batcher = model_threads[0]
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
    """Decoding, resizing and reading provenance run in worker threads, at most
    ``decode_workers`` at a time: they are CPU-bound and each may hold up to ``max_pixels``
    in memory."""
    decode_limiter = anyio.CapacityLimiter(settings.decode_workers)
    selector = FaceSelector(detector.face_policy)  # the finder loads on the first faces=true

    def to_input(upload: Upload, provenance: bool, faces: bool = False) -> Decoded:
        image = decode_upload(upload, settings)  # under the server's pixel limits
        evidence = provenance_of(upload.data, upload.filename) if provenance else []
        try:
            prepared = prepare_image(
                detector, upload.filename, image, evidence, selector if faces else None
            )
        except Exception as exc:  # exotic sizes that decode but cannot be resized
            raise ApiError(
                422,
                "corrupt_image",
                f"{upload.filename}: cannot resize the image ({exc})",
                filename=upload.filename,
            ) from None
        return Decoded(image, prepared)

    async def decode(upload: Upload, *, provenance: bool = True, faces: bool = False) -> Decoded:
        return await anyio.to_thread.run_sync(
            to_input, upload, provenance, faces, limiter=decode_limiter
        )

    return decode


def _overloaded(exc: Overloaded) -> ApiError:
    """A full model queue is the client's cue to retry, not a server error."""
    return ApiError(503, "overloaded", f"server busy: {exc}", headers={"Retry-After": "1"})


def _add_page_and_ops_routes(app: FastAPI, model_threads: list[Batcher]) -> None:
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
        if all(b.running and b.ready.is_set() for b in model_threads):
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "starting"}, status_code=503)


def _add_model_route(
    app: FastAPI, main: Scorer, specialist: Scorer | None, authorized: list[Any]
) -> None:
    """GET /v1/model: the model card, so a client can tell which detector answered, and
    `faces_model`: the summary of the detector that scores faces=true requests (null: this
    one)."""
    detector, summary = main.detector, main.summary
    faces_summary = None if specialist is None else specialist.summary

    @app.get("/v1/model", tags=["model"], dependencies=authorized, summary="The model card")
    async def model_card() -> dict[str, Any]:
        info = detector.info()  # includes the capabilities
        info.pop("bundle", None)  # a server path is nobody's business
        return {
            **info,
            "domain": summary["domain"],  # null when the bundle cannot tell its domain
            "summary": summary,
            "model_card_markdown": render_model_card(detector.meta),
            "faces_model": faces_summary,
        }


def _add_predict_route(
    app: FastAPI,
    main: Scorer,
    face_scorer: Scorer,
    settings: ServeSettings,
    authorized: list[Any],
) -> None:
    """POST /v1/predict: every uploaded image decoded and its provenance read, its pixels
    scored in the shared batches, then both joined by `fakescope.verdict.judge` (the
    pipeline the CLI and Python API use). faces=true requests go to `face_scorer`, whose
    summary then comes with the results."""

    @app.post(
        "/v1/predict",
        tags=["predict"],
        dependencies=authorized,
        response_model=PredictResponse,
        responses=_ERRORS,
        openapi_extra=_upload_body(settings.max_files, faces=True),
        summary="p(fake), a verdict and the provenance evidence for one or more images",
    )
    async def predict(request: Request) -> dict[str, Any]:
        fields: dict[str, str] = {}
        uploads = await read_uploads(request, settings, settings.max_files, fields)
        faces = _faces_flag(request, fields)
        scorer = face_scorer if faces else main
        detector, batcher = scorer.detector, scorer.batcher
        with batcher.expect(len(uploads)) as expected:  # the model thread waits for these
            decoded = [await scorer.decode(upload, faces=faces) for upload in uploads]
            try:
                arrays = [d.prepared.array for d in decoded if d.prepared.array is not None]
                scores = await batcher.score(arrays, expected)
            except Overloaded as exc:
                raise _overloaded(exc) from None
        judged = judge(detector, [d.prepared for d in decoded], joined(scores), faces=faces)
        results = []
        for upload, prediction in zip(uploads, judged, strict=True):
            fields = prediction.to_dict()
            del fields["path"], fields["error"]  # failures are 4xx, not results
            results.append({"filename": upload.filename, **fields})
        return {"results": results, "model": scorer.summary}


def _add_explain_route(
    app: FastAPI,
    detector: Detector,
    settings: ServeSettings,
    batcher: Batcher,
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
        image = (await decode(upload, provenance=False)).image
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
