"""Benchmark: `fakescope predict FOLDER` (the default detector, the whole process) against a
seed-style script (bench/seed_script.py: PIL, resize to 224, EfficientNet-Lite0, batch 32,
eager fp32) on the same folder of web-like photos, paired in one run (A B A B ...), each run
timed as a whole process with its own peak RSS, user and system time.

    python bench/predict_vs_seed.py                      # builds runs/web_photos once
    python bench/predict_vs_seed.py --folder PHOTOS --pairs 3 -- --runtime torch

Arguments after ``--`` go to `fakescope predict` (e.g. ``--runtime torch`` to time the torch
runtime). The folder it builds: 120 photos, 60 real and 60 AI-made, whose longer side runs
from 300 to 2,000 px, saved as JPEG (quality 85-95, one in ten AI images as PNG): real
photos from ImageNet samples, BSDS500, clothing and grocery photos (the repositories
unpacked under /work/data/clones, when there) and modern_photos' real half; AI images from
Nano-Banana, GPT-4o, Krea and SDXL galleries (same place) and modern_photos' AI half; each
resized (up or down) to its target size, as photos are when they are posted.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import subprocess
import sys
import time
import zipfile
from datetime import datetime, timezone
from pathlib import Path

from _common import DATA, REPO

CLONES = Path(os.environ.get("FAKESCOPE_CLONES", "/work/data/clones"))
REAL_DIRS = (
    "EliSchwartz+imagenet-sample-images",
    "BIDS+BSDS500",
    "alexeygrigorev+clothing-dataset",
    "marcusklasson+GroceryStoreDataset",
)
AI_DIRS = (
    "PicoTrex+Awesome-Nano-Banana-images",
    "jamez-bondos+awesome-gpt4o-images",
    "matplinta+t2i-krea-2-style-library",
    "wowmarcomei+awesome-gpt-images",
    "xuyiqing88+ComfyUI-SDXL-Style-Preview",
)
SIZES = (300, 400, 512, 640, 800, 1024, 1280, 1600, 2000)
SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


def cpu_flags() -> str:
    """The CPU's name and the flags that decide the speed of CPU inference."""
    name, flags = "?", set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name") and name == "?":
            name = line.split(":", 1)[1].strip()
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16")
    have = " ".join(f"{f}{'+' if f in flags else '-'}" for f in wanted)
    return f"{os.cpu_count()} cores, {name}; {have}"


def _clone_files(dirs: tuple[str, ...]) -> list[Path]:
    files: list[Path] = []
    for d in dirs:
        root = CLONES / d
        if root.is_dir():
            files += sorted(p for p in root.rglob("*") if p.suffix.lower() in SUFFIXES)
    return files


def _zip_members(label: str) -> list[tuple[Path, str]]:
    path = DATA / "modern_photos.zip"
    if not path.is_file():
        return []
    with zipfile.ZipFile(path) as zf:
        names = sorted(n for n in zf.namelist() if n.startswith(f"{label}/") and "." in n)
    return [(path, n) for n in names]


def build_folder(out: Path, n_per_class: int = 60, seed: int = 0) -> Path:
    """Make (once) the folder of web-like photos described in the module doc."""
    from PIL import Image

    marker = out / ".complete"
    if marker.is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    for label, dirs in (("real", REAL_DIRS), ("fake", AI_DIRS)):
        pool: list[Path | tuple[Path, str]] = [*_clone_files(dirs), *_zip_members(label)]
        if len(pool) < n_per_class:
            sys.exit(f"only {len(pool)} {label} images found (modern_photos.zip, {CLONES})")
        rng.shuffle(pool)
        made = 0
        for item in pool:
            if made == n_per_class:
                break
            try:
                if isinstance(item, tuple):
                    with zipfile.ZipFile(item[0]) as zf:
                        img = Image.open(io.BytesIO(zf.read(item[1])))
                        img.load()
                else:
                    img = Image.open(item)
                    img.load()
            except Exception:  # noqa: BLE001 - a broken file in a gallery: take the next
                continue
            if min(img.size) < 150:
                continue
            img = img.convert("RGB")
            side = SIZES[made % len(SIZES)]
            scale = side / max(img.size)
            img = img.resize(
                (max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                Image.LANCZOS,
            )
            stem = out / f"{label}_{made:03d}"
            if label == "fake" and made % 10 == 9:
                img.save(stem.with_suffix(".png"))
            else:
                img.save(stem.with_suffix(".jpg"), quality=rng.choice((85, 90, 95)))
            made += 1
    marker.write_text("ok\n")
    return out


def run_process(cmd: list[str], env: dict[str, str]) -> dict[str, float]:
    """Wall seconds, user and system CPU seconds and peak RSS (MB) of one process."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err.decode()[-2000:]}")
    return {
        "wall": wall,
        "user": usage.ru_utime,
        "sys": usage.ru_stime,
        "rss_mb": usage.ru_maxrss / 1024,
    }


def main() -> None:
    argv = sys.argv[1:]
    extra: list[str] = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1 :]
        argv = argv[: argv.index("--")]
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--folder", type=Path, default=None, help="default: runs/web_photos")
    parser.add_argument("--pairs", type=int, default=2, help="A B pairs (default 2: A B A B)")
    args = parser.parse_args(argv)
    folder = args.folder or build_folder(REPO / "runs" / "web_photos")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES)
    n = len(files)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    fakescope = [
        sys.executable, "-m", "fakescope", "predict", str(folder), "--format", "csv",
        "--out", os.devnull, *extra,
    ]  # fmt: skip
    seed = [sys.executable, str(REPO / "bench" / "seed_script.py"), str(folder)]
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"machine: {stamp}; {cpu_flags()}")
    print(f"folder: {folder} ({n} images)")
    print(f"fakescope: {' '.join(fakescope[1:])}")
    run_process(fakescope, env)  # warm-up: the ONNX export cache, the page cache
    runs: dict[str, list[dict[str, float]]] = {"fakescope": [], "seed": []}
    for i in range(args.pairs):
        for name, cmd in (("fakescope", fakescope), ("seed", seed)):
            r = run_process(cmd, env)
            runs[name].append(r)
            print(
                f"  pair {i + 1} {name:9s} {r['wall']:6.1f} s wall  {r['user']:6.1f} s user  "
                f"{r['sys']:5.1f} s sys  peak RSS {r['rss_mb']:6.0f} MB",
                flush=True,
            )
    med = {k: statistics.median(r["wall"] for r in v) for k, v in runs.items()}
    rss = {k: max(r["rss_mb"] for r in v) for k, v in runs.items()}
    for name in runs:
        print(
            f"{name:9s} median {med[name]:6.1f} s  {n / med[name]:5.2f} images/s  "
            f"peak RSS {rss[name]:5.0f} MB"
        )
    print(
        f"ratio (fakescope images/s / seed images/s): {med['seed'] / med['fakescope']:.2f}x "
        f"(bar: >= 1.5x, peak RSS <= 2048 MB)"
    )


if __name__ == "__main__":
    main()
