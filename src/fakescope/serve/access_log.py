"""Structured access logs: one JSON object per request on the ``fakescope.serve.access``
logger, and an ``X-Request-ID`` header on every response (the client's, when it sent one)."""

from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import datetime, timezone

from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOGGER_NAME = "fakescope.serve.access"
_MAX_ID = 64


class AccessLogMiddleware:
    """Pure ASGI middleware (no per-request task or body buffering, unlike BaseHTTPMiddleware)."""

    def __init__(self, app: ASGIApp, logger: logging.Logger | None = None) -> None:
        self.app = app
        self.logger = logger or logging.getLogger(LOGGER_NAME)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        request_id = headers.get("x-request-id", "")[:_MAX_ID] or uuid.uuid4().hex[:16]
        status = 500  # what the client gets if the app fails before answering
        response_bytes = 0

        async def send_logged(message: Message) -> None:
            nonlocal status, response_bytes
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
            elif message["type"] == "http.response.body":
                response_bytes += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_logged)
        finally:
            if self.logger.isEnabledFor(logging.INFO):
                client = scope.get("client")
                length = headers.get("content-length", "")
                record = {
                    "ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                    "event": "access",
                    "request_id": request_id,
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    "client": client[0] if client else None,
                    "request_bytes": int(length) if length.isdigit() else None,
                    "response_bytes": response_bytes,
                    "user_agent": headers.get("user-agent"),
                }
                self.logger.info(json.dumps(record))
