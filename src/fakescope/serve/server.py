"""Run the app in uvicorn: torch thread settings, the detector, JSON access logs."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import sys

import uvicorn

from fakescope.bundle import face_detector_or_default
from fakescope.detectors import Detector
from fakescope.serve.access_log import LOGGER_NAME
from fakescope.serve.app import create_app
from fakescope.serve.settings import ServeSettings, check_port
from fakescope.threads import torch_loaded

_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number


def configure_torch_threads(threads: int) -> None:
    """One intra-op thread by default: on a small CPU the other cores decode uploads and
    run HTTP; the model gains speed from batching instead. Inter-op threads stay at 1
    (the model has no parallel branches).

    A server on onnxruntime does not load PyTorch for this: until something imports it (a
    detector on PyTorch, a face search on it), OMP_NUM_THREADS says the same to it, read when
    it is imported (onnxruntime sets its own threads: `fakescope.onnx_model`)."""
    if not torch_loaded():
        os.environ["OMP_NUM_THREADS"] = str(max(1, threads))
        return
    import torch

    torch.set_num_threads(max(1, threads))
    # RuntimeError: already set, or inter-op work already ran in this process
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)


def return_large_blocks_to_the_os(threshold: int = 4 * 1024 * 1024) -> bool:
    """Make glibc serve allocations of ``threshold`` bytes or more with mmap, always.

    By default glibc raises its mmap threshold (up to 32 MB) each time a large block is
    freed, after which image-sized blocks (Pillow allocates in 16 MB blocks) come from the
    heap and stay in the process when freed: one burst of large uploads leaves RSS hundreds
    of MB higher for good. A fixed threshold returns them on free. No-op off glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, threshold))
    except (OSError, AttributeError):
        return False


def configure_access_log(stream=None) -> logging.Logger:
    """Access-log records are JSON already: print them one per line, unchanged."""
    logger = logging.getLogger(LOGGER_NAME)
    if not any(getattr(h, "_fakescope", False) for h in logger.handlers):
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._fakescope = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def run_server(
    bundle: str | os.PathLike | None,
    settings: ServeSettings,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    threads: int = 1,
    access_log: bool = True,
    runtime: str = "auto",
    faces_bundle: str | os.PathLike | None = None,
) -> None:
    """Load the bundle (and the detector for faces=true requests, see `faces_detector_name`)
    and serve them until interrupted."""
    check_port(port)
    configure_torch_threads(threads)
    return_large_blocks_to_the_os()
    detector = Detector.load(bundle, device="cpu", runtime=runtime)
    faces_name = faces_detector_name(bundle, faces_bundle)
    face_detector = None
    if faces_name is not None:
        face_detector = Detector.load(faces_name, device="cpu", runtime=runtime)
    if access_log:
        configure_access_log()
    else:
        logging.getLogger(LOGGER_NAME).disabled = True
    app = create_app(detector, settings, face_detector=face_detector)
    uvicorn.run(app, host=host, port=port, access_log=False, log_level="info")


SAME = "same"
"""`--faces-bundle same`: the served detector scores faces=true requests too."""


def faces_detector_name(
    bundle: str | os.PathLike | None, faces_bundle: str | os.PathLike | None
) -> str | os.PathLike | None:
    """The detector that scores faces=true requests, None for the served one itself.

    As `predict --faces`: a server of the default detector (no bundle given) hands faces to
    the shipped face specialist when it is installed; a server of a given bundle scores
    faces with it, unless `faces_bundle` names another (or ``same``)."""
    if faces_bundle is not None:
        return None if str(faces_bundle) == SAME else faces_bundle
    if bundle is not None:
        return None
    name, note = face_detector_or_default()
    if note:  # not installed: the served default detector scores faces, and the log says so
        logging.getLogger(LOGGER_NAME).warning(note)
        return None
    return name
