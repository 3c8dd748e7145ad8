"""Benchmark (serve): latency and throughput of `fakescope serve` under load.

Starts two real servers on 127.0.0.1 (micro-batching on: --max-batch 32, and off:
--max-batch 1), then this process is the load generator: keep-alive HTTP clients in threads
posting one JPEG per request to /v1/predict (256x256 unless --size says otherwise, e.g. 240 or
1280x720; the first image of --archive, a StyleGAN face unless told, resized to it). Measures
single-request latency (p50/p99, one client) and throughput at 1, 4 and 16 concurrent
clients, alternating the two servers so that a change in machine load hits both; counts 5xx
and lost requests (sent but never answered).
    python bench/serve_load.py [--bundle PATH] [--seconds 10] [--rounds 2] [--size 1280x720]
        [--archive modern_photos.zip] [--member real/interior_1.jpg]
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from pathlib import Path

import psutil
from _common import DATA, REPO, machine
from PIL import Image

BOUNDARY = uuid.uuid4().hex


def sample_jpeg(
    size: tuple[int, int] = (256, 256), first: str = "stylegan_faces.zip", member: str | None = None
) -> bytes:
    """An image from `first` (its `member`, else its first image; else a CIFAKE photo) as a
    JPEG of `size`: by default a StyleGAN face at 256x256. A named `member` is looked for in
    `first` only."""
    for archive in (first,) if member else (first, "cifake_train.zip"):
        path = DATA / archive
        if path.is_file():
            with zipfile.ZipFile(path) as zf:
                names = [n for n in zf.namelist() if n.lower().endswith((".jpg", ".png"))]
                if member is not None and member not in names:
                    sys.exit(f"{path}: no image named {member!r} (e.g. {names[0]!r})")
                name = member or names[0]
                img = Image.open(io.BytesIO(zf.read(name))).convert("RGB")
            break
    else:
        sys.exit(f"no {first} in {DATA}: set FAKESCOPE_DATA_DIR")
    buffer = io.BytesIO()
    img.resize(size, Image.Resampling.BICUBIC).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def multipart(jpeg: bytes) -> bytes:
    return (
        (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; '
            f'filename="face.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'
        ).encode()
        + jpeg
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(
    port: int, max_batch: int, bundle: str | None, log: Path, threads: int = 1
) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    cmd = [sys.executable, "-m", "fakescope", "serve", "--port", str(port)]
    cmd += ["--threads", str(threads)]
    cmd += ["--max-batch", str(max_batch)] + (["--bundle", bundle] if bundle else [])
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)


def wait_ready(port: int, process: subprocess.Popen, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"server on port {port} exited with {process.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit(f"server on port {port} not ready after {timeout} s")


class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent = 0
        self.latencies: list[float] = []
        self.status: dict[int, int] = {}
        self.lost = 0

    def add(self, status: int | None, seconds: float) -> None:
        with self.lock:
            if status is None:
                self.lost += 1
            else:
                self.status[status] = self.status.get(status, 0) + 1
                self.latencies.append(seconds)


class RawClient:
    """A keep-alive HTTP/1.1 client on a plain socket: the request bytes are built once and
    the response is read by its Content-Length. http.client spent ~3 ms of CPU per request
    here, as much as the server under test, on a machine it shares with that server."""

    def __init__(self, port: int, body: bytes) -> None:
        self.port = port
        self.request = (
            f"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        self.sock: socket.socket | None = None

    def post(self) -> int:
        """Send the request, read the whole response; its status code."""
        if self.sock is None:
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=60)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(self.request)
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            buffer += chunk
        head, rest = buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = next(
            (int(line.split(":", 1)[1]) for line in lines[1:]
             if line.lower().startswith("content-length:")),
            None,
        )  # fmt: skip
        if length is None:
            raise ConnectionError("a response without Content-Length")
        while len(rest) < length:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection mid-response")
            rest += chunk
        return status

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def client(port: int, body: bytes, stop_at: float, limit: int | None, tally: Tally) -> None:
    conn = RawClient(port, body)
    done = 0
    while time.monotonic() < stop_at and (limit is None or done < limit):
        with tally.lock:
            tally.sent += 1
        started = time.perf_counter()
        try:
            status = conn.post()
            tally.add(status, time.perf_counter() - started)
        except (OSError, ValueError, IndexError):
            tally.add(None, 0.0)
            conn.close()
        done += 1
    conn.close()


def run_load(port: int, body: bytes, clients: int, seconds: float, limit: int | None = None):
    tally = Tally()
    stop_at = time.monotonic() + seconds
    threads = [
        threading.Thread(target=client, args=(port, body, stop_at, limit, tally))
        for _ in range(clients)
    ]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return tally, time.perf_counter() - started


def cpu_seconds(process: subprocess.Popen) -> float:
    times = psutil.Process(process.pid).cpu_times()
    return times.user + times.system


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bundle", default=None)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--latency-requests", type=int, default=400)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each server")
    parser.add_argument("--size", default="256x256", help="WxH of the JPEG, or one side")
    parser.add_argument("--archive", default="stylegan_faces.zip", help="where the image is from")
    parser.add_argument(
        "--member", default=None, help="which image of --archive (default: its first)"
    )
    args = parser.parse_args()
    width, _, height = args.size.partition("x")
    size = (int(width), int(height or width))
    body = multipart(sample_jpeg(size, args.archive, args.member))
    print(f"machine: {machine()}")
    print(
        f"request: one {size[0]}x{size[1]} JPEG of {args.archive}:{args.member or 'its first'} "
        f"({len(body):,} bytes of multipart body)"
    )
    print(f"servers: fakescope serve --threads {args.threads} (torch intra-op threads)")
    modes = {"batching (--max-batch 32)": 32, "no batching (--max-batch 1)": 1}
    ports = {name: free_port() for name in modes}
    logs = Path(tempfile.mkdtemp(prefix="serve_load_"))
    servers = {
        name: start_server(ports[name], b, args.bundle, logs / f"{b}.log", args.threads)
        for name, b in modes.items()
    }
    totals = {"sent": 0, "answered": 0, "5xx": 0, "lost": 0}

    def account(tally: Tally) -> None:
        totals["sent"] += tally.sent
        totals["answered"] += sum(tally.status.values())
        totals["5xx"] += sum(n for s, n in tally.status.items() if s >= 500)
        totals["lost"] += tally.sent - sum(tally.status.values())  # sent, never answered

    try:
        for name, process in servers.items():
            wait_ready(ports[name], process)
            run_load(ports[name], body, 4, 2.0)  # warm-up
        print("\nsingle-request latency (1 client, sequential):")
        for name in modes:
            before = cpu_seconds(servers[name])
            tally, _ = run_load(ports[name], body, 1, 120, limit=args.latency_requests)
            cpu_ms = (cpu_seconds(servers[name]) - before) * 1000 / max(1, len(tally.latencies))
            account(tally)
            print(
                f"  {name:28s} p50 {percentile(tally.latencies, 50):6.1f} ms   "
                f"p99 {percentile(tally.latencies, 99):6.1f} ms   (n={len(tally.latencies)}); "
                f"server CPU {cpu_ms:.1f} ms/request"
            )
        rates: dict[tuple[str, int], list[float]] = {}
        lat99: dict[tuple[str, int], list[float]] = {}
        cpu: dict[tuple[str, int], list[float]] = {}
        for _ in range(args.rounds):
            for clients in (1, 4, 16):
                for name in modes:
                    before = cpu_seconds(servers[name])
                    tally, elapsed = run_load(ports[name], body, clients, args.seconds)
                    account(tally)
                    ok = tally.status.get(200, 0)
                    cpu.setdefault((name, clients), []).append(
                        (cpu_seconds(servers[name]) - before) * 1000 / max(1, ok)
                    )
                    rates.setdefault((name, clients), []).append(ok / elapsed)
                    lat99.setdefault((name, clients), []).append(percentile(tally.latencies, 99))
        print(f"\nthroughput (requests/s, median of {args.rounds} x {args.seconds:.0f} s runs):")
        print(f"  {'clients':>7s}  " + "  ".join(f"{n:>28s}" for n in modes) + "  speed-up")
        for clients in (1, 4, 16):
            values = [statistics.median(rates[(n, clients)]) for n in modes]
            cells = "  ".join(
                f"{v:12.1f} (p99 {statistics.median(lat99[(n, clients)]):6.1f} ms)"
                for v, n in zip(values, modes, strict=True)
            )
            print(f"  {clients:7d}  {cells}  {values[0] / values[1]:6.2f}x")
        print("\nserver CPU time per answered request (ms; less sensitive to a shared CPU):")
        for clients in (1, 4, 16):
            cells = "  ".join(f"{statistics.median(cpu[(n, clients)]):28.1f}" for n in modes)
            print(f"  {clients:7d}  {cells}")
        print(
            f"\nrequests sent {totals['sent']}, answered {totals['answered']}, "
            f"5xx {totals['5xx']}, lost {totals['lost']}"
        )
    finally:
        for process in servers.values():
            process.terminate()
            process.wait(timeout=30)


if __name__ == "__main__":
    main()
