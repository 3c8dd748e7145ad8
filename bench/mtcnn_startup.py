"""Benchmark: what a fresh process pays before its first face search, per MTCNN backend.

Each round starts one process per backend (alternating, so the machine's load falls on both
alike) that imports fakescope.faces, builds the face route's finder
(`MtcnnFaceFinder(backend=...)`, the ONNX nets from a warm cache) and searches one drawn face;
it reports the child's CPU seconds (user + system) and wall seconds, and which of torch,
torchvision and facenet_pytorch it imported. Medians over the rounds.

    python bench/mtcnn_startup.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

from _common import REPO
from predict_vs_seed import cpu_flags

CHILD = """
import json, sys
from PIL import Image
from fakescope.faces import MtcnnFaceFinder
finder = MtcnnFaceFinder(backend=sys.argv[1], min_face_size=40, search_size=192,
                         border_retries=(0.25,), min_face_share=0.5)
faces = finder.find([Image.open(sys.argv[2]).convert("RGB")])
print(json.dumps({"backend": finder.backend, "faces": len(faces[0]),
                  "imported": [m for m in ("torch", "torchvision", "facenet_pytorch")
                               if m in sys.modules]}))
"""


def run(backend: str, image: str) -> tuple[float, float, dict[str, object]]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CHILD, backend, image],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall, json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "tests"))
    from PIL import Image
    from videogen import cartoon_face

    image = REPO / "runs" / "mtcnn_startup_face.png"
    image.parent.mkdir(exist_ok=True)
    Image.fromarray(cartoon_face(240)).save(image)
    run("onnx", str(image))  # warm the ONNX cache (exports once) and the file cache
    print(f"machine: {cpu_flags()}; load average {os.getloadavg()[0]:.1f}")
    results: dict[str, list[tuple[float, float]]] = {"torch": [], "onnx": []}
    info: dict[str, dict[str, object]] = {}
    for _ in range(args.rounds):
        for backend in results:
            cpu, wall, info[backend] = run(backend, str(image))
            results[backend].append((cpu, wall))
    for backend, runs in results.items():
        cpu = statistics.median(r[0] for r in runs)
        wall = statistics.median(r[1] for r in runs)
        print(
            f"{backend:5s}: CPU {cpu:5.2f} s, wall {wall:5.2f} s (median of {len(runs)}); "
            f"{info[backend]}"
        )


if __name__ == "__main__":
    main()
