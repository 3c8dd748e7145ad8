"""Benchmark: false alarms of the provenance readers on real photographs.

1. The Stable Diffusion watermark test, on the real halves of ../shared/data/*.zip: every
   image of at least 128x128 pixels (CIFAKE's 32x32 hold too few blocks), its decoded
   pixels read whatever the file format (the watermark is only looked for in lossless files
   in use, but the test's false-alarm rate is a property of unmarked content), compared
   - before: the uint8-only reader (2 orders x 3 payloads, each tested at p < 1e-6),
   - after: every path of the reference encoders (uint8 and float x BGR and RGB, x 3
     payloads = 12 tests, each at p < 5e-7: the same 6e-6 per image, Bonferroni);
   with the smallest p-value seen and how many images come within 1e-3.
2. Camera EXIF, on the same images and on any folders of real photos given (--photos):
   how many carry camera metadata, and how many raise an inconsistency (each a false
   alarm: these are real photographs).

    python bench/provenance_false_alarms.py [--per-set N] [--photos DIR ...]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from _common import DATA, machine
from PIL import Image

from fakescope.provenance.exif import read_camera
from fakescope.provenance.watermark import FALSE_ALARM_RATE, P_VALUE_THRESHOLD, match_variants

MIN_PIXELS = 128 * 128
BEFORE_THRESHOLD = 1e-6  # the uint8-only reader's per-test threshold
NEAR = 1e-3
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp")


@dataclass
class Tally:
    """Counts for one set of real images."""

    name: str
    images: int = 0
    read: int = 0  # big enough for the watermark test
    flagged_before: int = 0
    flagged_after: int = 0
    near_before: int = 0
    near_after: int = 0
    min_p_before: float = 1.0
    min_p_after: float = 1.0
    camera: int = 0
    inconsistent: list[str] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        for key in ("images", "read", "flagged_before", "flagged_after", "near_before",
                    "near_after", "camera"):  # fmt: skip
            setattr(self, key, getattr(self, key) + getattr(other, key))
        self.min_p_before = min(self.min_p_before, other.min_p_before)
        self.min_p_after = min(self.min_p_after, other.min_p_after)
        self.inconsistent += other.inconsistent


def real_members(archive: Path, limit: int | None) -> Iterator[tuple[str, bytes]]:
    with zipfile.ZipFile(archive) as zf:
        names = [n for n in zf.namelist() if "real/" in n.lower() and not n.endswith("/")]
        for name in names[:limit]:
            yield name, zf.read(name)


def folder_photos(root: Path) -> Iterator[tuple[str, bytes]]:
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in sorted(names):
            if name.lower().endswith(PHOTO_SUFFIXES):
                path = Path(folder) / name
                yield str(path), path.read_bytes()


def tally(name: str, files: Iterator[tuple[str, bytes]]) -> Tally:
    out = Tally(name)
    for path, data in files:
        out.images += 1
        try:
            camera = read_camera(data, [])
        except Exception:  # noqa: BLE001 - read.py guards this reader the same way
            camera = []
        out.camera += any(e.claim == "capture_metadata" for e in camera)
        out.inconsistent += [f"{path}: {e.detail}" for e in camera if e.claim != "capture_metadata"]
        try:
            with Image.open(io.BytesIO(data)) as img:
                rgb = np.asarray(img.convert("RGB"))
        except Exception:  # noqa: BLE001 - unreadable files are not part of the test
            continue
        matches = match_variants(rgb, min_pixels=MIN_PIXELS)
        if not matches:
            continue
        out.read += 1
        before = min(m.p_value for m in matches if m.dtype == "uint8")
        after = matches[0].p_value
        out.flagged_before += before < BEFORE_THRESHOLD
        out.flagged_after += after < P_VALUE_THRESHOLD
        out.near_before += before < NEAR
        out.near_after += after < NEAR
        out.min_p_before = min(out.min_p_before, before)
        out.min_p_after = min(out.min_p_after, after)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-set", type=int, default=None, help="real images per archive")
    parser.add_argument("--photos", nargs="*", type=Path, default=[], help="folders of photos")
    args = parser.parse_args()
    archives = sorted(DATA.glob("*.zip"))
    if not archives:
        sys.exit(f"no archives in {DATA}: set FAKESCOPE_DATA_DIR")
    print(f"machine: {machine(torch_threads=False)}")
    started = time.perf_counter()
    rows = [tally(a.stem, real_members(a, args.per_set)) for a in archives]
    rows += [tally(str(folder), folder_photos(folder)) for folder in args.photos]
    total = Tally("all")
    for row in rows:
        total.add(row)
    print(
        f"watermark: before = uint8 paths only, 6 tests at p < {BEFORE_THRESHOLD:.0e}; after = "
        f"4 paths, 12 tests at p < {P_VALUE_THRESHOLD:.0e} (per image <= {FALSE_ALARM_RATE:.0e})"
    )
    header = (
        f"{'real images':44} {'n':>6} {'tested':>6} {'flag before':>11} {'flag after':>10} "
        f"{'min p before':>12} {'min p after':>11} {'p<1e-3 b/a':>11} {'camera':>6} {'incons.':>7}"
    )
    print(header)
    for row in [*rows, total]:
        name = row.name if len(row.name) <= 44 else "…" + row.name[-43:]
        low_before, low_after = (
            (f"{row.min_p_before:.1e}", f"{row.min_p_after:.1e}") if row.read else ("-", "-")
        )
        print(
            f"{name:44} {row.images:6d} {row.read:6d} {row.flagged_before:11d} "
            f"{row.flagged_after:10d} {low_before:>12} {low_after:>11} "
            f"{f'{row.near_before}/{row.near_after}':>11} {row.camera:6d} "
            f"{len(row.inconsistent):7d}"
        )
    expected = total.read * FALSE_ALARM_RATE
    print(f"expected false alarms at the bound over {total.read} tested images: {expected:.3f}")
    for line in total.inconsistent[:20]:
        print(f"inconsistent (a false alarm on a real photo): {line}")
    print(f"took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
