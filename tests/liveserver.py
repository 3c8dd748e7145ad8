"""Real HTTP servers for tests: uvicorn in a thread (fast) or `fakescope serve` in a
subprocess (the CLI end to end, and a process whose memory can be watched)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import torch
import uvicorn

REPO_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(base_url: str, timeout: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode} before ready")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{base_url} not ready after {timeout:.0f} s")


@contextmanager
def thread_server(app) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 (a free port) in a thread; yields its URL.

    Torch runs on one thread meanwhile, as `fakescope serve` does by default: on a small,
    busy CPU two spinning intra-op threads make a batch-1 forward pass many times slower.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base_url, timeout=60)
        yield base_url
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        torch.set_num_threads(threads)


@contextmanager
def cli_server(*args: str, log_path: Path, timeout: float = 180) -> Iterator[tuple[str, int]]:
    """`python -m fakescope serve ARGS` on a free port; yields (URL, pid). The log goes to a
    file: a pipe nobody reads would block the server once full."""
    port = free_port()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT / "src"), env.get("PYTHONPATH", "")) if p
    )
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "fakescope", "serve", "--port", str(port), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base_url, timeout, process)
        yield base_url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
