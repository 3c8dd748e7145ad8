"""`fakescope serve`: the detector over HTTP."""

from __future__ import annotations

from typing import Annotated

import typer

from fakescope.cli.common import BundleOpt, Runtime, RuntimeOpt


def register(app: typer.Typer) -> None:
    """`fakescope serve`."""
    app.command("serve")(serve)


def serve(
    bundle: BundleOpt = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="FAKESCOPE_API_KEY", help="Require this key on /v1/* (X-API-Key)."),
    ] = None,
    cors_origin: Annotated[
        list[str] | None, typer.Option("--cors-origin", help="Allow this browser origin.")
    ] = None,
    max_batch: Annotated[int, typer.Option(help="Micro-batch size; 1 disables batching.")] = 32,
    max_wait_ms: Annotated[
        float, typer.Option(help="How long a batch waits for images other requests decode.")
    ] = 2.0,
    max_bytes: Annotated[int, typer.Option(help="Largest accepted image file, bytes.")] = 10
    * 1024
    * 1024,
    max_files: Annotated[int, typer.Option(help="Most images per request.")] = 16,
    max_pixels: Annotated[int, typer.Option(help="Largest accepted image, pixels.")] = 25_000_000,
    threads: Annotated[int, typer.Option(help="Torch intra-op threads.")] = 1,
    access_log: Annotated[bool, typer.Option(help="JSON access log on stderr.")] = True,
    runtime: RuntimeOpt = Runtime.auto,
    faces_bundle: Annotated[
        str | None,
        typer.Option(
            help="Detector for faces=true requests (a bundle or shipped name; 'same': the "
            "served one). Default: the face specialist when serving the default detector, "
            "else the served one."
        ),
    ] = None,
) -> None:
    """Serve the detector over HTTP (FastAPI + uvicorn): API, docs at /docs, web page at /."""
    # heavy: torch, FastAPI and uvicorn
    from fakescope.serve.server import run_server
    from fakescope.serve.settings import ServeSettings

    settings = ServeSettings(
        max_file_bytes=max_bytes,
        max_request_bytes=max_bytes * max_files + 1024 * 1024,
        max_files=max_files,
        max_pixels=max_pixels,
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        api_key=api_key,
        cors_origins=tuple(cors_origin or ()),
    )
    run_server(
        bundle,
        settings,
        host=host,
        port=port,
        threads=threads,
        access_log=access_log,
        runtime=runtime.value,
        faces_bundle=faces_bundle,
    )
