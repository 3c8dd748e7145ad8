"""Benchmark (issue 28): static int8 (QDQ) onnxruntime models of the default detector's two
members against their float32 exports: ROC-AUC per source, max |Δp|, verdict flips, and the
speed of a batch of 64 crops at 1 and 2 threads.

    python bench/int8_parity.py [--per-class 200] [--calib 256] [--methods minmax percentile]

- The fp32 graphs are the cached exports the default loads on onnxruntime (`general`, and the
  face specialist `faces`). Each is quantized by onnxruntime.quantization.quantize_static:
  QDQ format, per-channel int8 weights, uint8 activations, calibrated on real crops prepared
  by the detector's own preprocessing (face route included) from TRAINING images of the
  general_modern run's manifest (`split` train, seeded, stratified by source and label).
  Variants: the calibration method (MinMax, Percentile 99.999, Entropy), and with `--keep-ends`
  the first convolution and the classifier left in float.
- Measured on images the calibration never saw: the validation split of the same manifest
  (its column `split`), per shared source topped up to --per-class per class with other
  images of the source's archive not drawn for calibration (the `held-out` column says how
  many are validation images); the modern generator families (AI only) each against the
  validation real photos, and the real photos alone (flips and |Δp| only).
- Speed: ms per session run of 64 real crops, fp32 and int8 interleaved (A/B/A/B...), at 1 and
  2 intra-op threads; the load average is printed (the machine may be shared).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from _common import DATA, REPO
from predict_vs_seed import cpu_flags
from sklearn.metrics import roc_auc_score

from fakescope.data.cache import decode_items
from fakescope.data.sources import Item, open_source
from fakescope.detectors import load_detector
from fakescope.evaluation.evaluate import pixel_scores
from fakescope.inference import verdicts
from fakescope.onnx_model import INPUT_NAME, OnnxModel

MANIFEST = REPO.parent / "runs" / "general-modern2" / "manifest.csv"  # the default's training run
SHARED = {  # manifest source -> archive
    "cifake": "cifake_train",
    "stylegan_faces": "stylegan_faces",
    "faceswap_lfw": "faceswap_lfw",
    "dfdc_faces": "dfdc_faces",
    "modern_photos": "modern_photos",
}
REAL = "real_photos"
CALIB_BATCH = 16


# -- quantization ---------------------------------------------------------------------------
class CropReader:
    """onnxruntime's CalibrationDataReader over uint8 crops, CALIB_BATCH per run, with the
    range interface `CalibStridedMinMax` uses so histograms are collected a batch at a time
    (the calibrators otherwise hold every activation of every crop in memory)."""

    def __init__(self, crops: np.ndarray) -> None:
        self.batches = [crops[i : i + CALIB_BATCH] for i in range(0, len(crops), CALIB_BATCH)]
        self.set_range(0, len(self.batches))

    def __len__(self) -> int:
        return len(self.batches)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._queue = iter(self.batches[start_index:end_index])

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._queue, None)
        return None if batch is None else {INPUT_NAME: np.ascontiguousarray(batch)}


def end_nodes(path: Path) -> list[str]:
    """The first convolution and the last Gemm/MatMul (the classifier) of a graph."""
    import onnx

    nodes = onnx.load(str(path), load_external_data=False).graph.node
    first = next(n.name for n in nodes if n.op_type == "Conv")
    last = [n.name for n in nodes if n.op_type in ("Gemm", "MatMul")][-1:]
    return [first, *last]


def quantize(fp32: Path, out: Path, crops: np.ndarray, method: str, keep_ends: bool) -> Path:
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = out.with_suffix(".pre.onnx")
    if not pre.is_file():
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
    reader = CropReader(crops)
    options: dict[str, Any] = {"CalibStridedMinMax": 1}
    if method == "percentile":
        options["CalibPercentile"] = 99.999
    quantize_static(
        str(pre),
        str(out),
        reader,
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method={
            "minmax": CalibrationMethod.MinMax,
            "percentile": CalibrationMethod.Percentile,
            "entropy": CalibrationMethod.Entropy,
        }[method],
        nodes_to_exclude=end_nodes(pre) if keep_ends else None,
        extra_options=options,
    )
    return out


# -- data -------------------------------------------------------------------------------------
def stratified(items: Sequence[Item], per_group: int, seed: int) -> list[Item]:
    groups: dict[tuple[str, int], list[Item]] = defaultdict(list)
    for it in items:
        groups[(it.source or "", it.label or 0)].append(it)
    rng = np.random.default_rng(seed)
    picked: list[Item] = []
    for key in sorted(groups):
        pool = groups[key]
        picked += [pool[i] for i in sorted(rng.choice(len(pool), min(per_group, len(pool)), False))]
    return picked


def measured_sets(
    manifest: list[Item], calib: set[str], per_class: int
) -> dict[str, tuple[list[Item], int]]:
    """name -> (items, how many are validation images), see the module doc."""
    val = [it for it in manifest if it.split == "val"]
    sets: dict[str, tuple[list[Item], int]] = {}
    rng = np.random.default_rng(1)
    for name, archive in SHARED.items():
        path = DATA / f"{archive}.zip"
        held = [it for it in val if it.source == name]
        picked: list[Item] = []
        for label in (0, 1):
            mine = [it for it in held if it.label == label][:per_class]
            have = {it.path for it in mine}
            if len(mine) < per_class and path.is_file():
                pool = [
                    it
                    for it in open_source(path).items
                    if it.label == label and it.path not in calib and it.path not in have
                ]
                extra = rng.choice(len(pool), min(per_class - len(mine), len(pool)), False)
                mine += [pool[i] for i in sorted(extra)]
            picked += mine
        sets[name] = (picked, sum(it.split == "val" for it in picked))
    reals = [it for it in val if it.source == REAL]
    families = sorted({it.source for it in val if it.source and it.source not in SHARED} - {REAL})
    for fam in families:
        fakes = [it for it in val if it.source == fam]
        sets[f"{fam} vs real"] = (fakes, len(fakes))
    sets[REAL] = (reals, len(reals))
    return sets


def member_crops(det: Any, decoded: Any) -> tuple[np.ndarray, np.ndarray]:
    """The whole member's crops (M, 3, S, S) and the routed face crops of decoded images."""
    import torch

    header, whole, faces = det.preprocessing.unpack(torch.as_tensor(decoded.images))
    whole = whole.numpy()
    if whole.ndim == 5:
        whole = whole.reshape(-1, *whole.shape[2:])
    routed = header[:, 0] > 0
    return whole, faces.numpy()[routed]


# -- speed ------------------------------------------------------------------------------------
def speed(fp32: Path, int8: Path, crops: np.ndarray, rounds: int) -> dict[int, tuple[float, float]]:
    batch = np.ascontiguousarray(np.resize(crops, (64, *crops.shape[1:])))
    out: dict[int, tuple[float, float]] = {}
    for threads in (1, 2):
        sessions = [OnnxModel(p, threads=threads).session for p in (fp32, int8)]
        times: list[list[float]] = [[], []]
        for s in sessions:
            s.run(None, {INPUT_NAME: batch})  # warm-up
        for _ in range(rounds):
            for k, s in enumerate(sessions):
                start = time.perf_counter()
                s.run(None, {INPUT_NAME: batch})
                times[k].append(time.perf_counter() - start)
        out[threads] = (1000 * float(np.median(times[0])), 1000 * float(np.median(times[1])))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", default=None, help="a face-aware bundle (the default)")
    parser.add_argument("--manifest", type=Path, default=MANIFEST, help="a run's manifest.csv")
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--calib", type=int, default=16, help="training images per source/label")
    parser.add_argument("--max-crops", type=int, default=256, help="whole-image crops, at most")
    parser.add_argument("--methods", nargs="+", default=["minmax", "percentile", "entropy"])
    parser.add_argument("--keep-ends", action="store_true", help="also: first conv, fc in fp32")
    parser.add_argument("--rounds", type=int, default=10, help="A/B rounds per thread count")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "int8_parity")
    parser.add_argument("--speed-only", action="store_true")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"machine: {cpu_flags()}")

    det = load_detector(args.bundle, runtime="onnx")
    members = {"whole": det.whole, "faces": det.faces}
    fp32 = {k: Path(m.session.name) for k, m in members.items()}
    manifest = list(open_source(args.manifest).items)

    # calibration: training images only
    calib_items = stratified([it for it in manifest if it.split == "train"], args.calib, seed=0)
    source = open_source(args.manifest)
    started = time.perf_counter()
    decoded = decode_items(calib_items, source.read_bytes, det.preprocessing, progress=False)
    whole, faces = member_crops(det, decoded)
    if len(whole) > args.max_crops:  # the whole member's 4 crops an image: a seeded subset
        whole = whole[np.sort(np.random.default_rng(0).choice(len(whole), args.max_crops, False))]
    calib = {"whole": whole, "faces": faces}
    print(
        f"calibration: {len(decoded.paths)} training images -> {len(whole)} whole-image crops, "
        f"{len(faces)} routed face crops ({time.perf_counter() - started:.0f} s)"
    )
    variants: list[tuple[str, bool]] = [(m, False) for m in args.methods]
    if args.keep_ends:
        variants += [(m, True) for m in args.methods]
    int8: dict[str, dict[str, Path]] = {}
    for method, keep in variants:
        name = method + ("+ends fp32" if keep else "")
        int8[name] = {}
        for k in members:
            out = args.out / f"{fp32[k].stem}.{method}{'.ends' if keep else ''}.int8.onnx"
            started = time.perf_counter()
            if not out.is_file():
                quantize(fp32[k], out, calib[k], method, keep)
            int8[name][k] = out
            took = time.perf_counter() - started
            print(f"  {name:20s} {k:5s} {out.stat().st_size / 1e6:5.1f} MB "
                  f"(fp32 {fp32[k].stat().st_size / 1e6:5.1f} MB), {took:.0f} s")  # fmt: skip

    print(f"\nspeed, ms per run of 64 crops (median of {args.rounds} interleaved A/B rounds; the "
          f"calibration methods make the same graph with other scales); "
          f"load average before: {os.getloadavg()}")  # fmt: skip
    print(f"{'variant':20s} {'member':6s} {'fp32 1t':>8s} {'int8 1t':>8s} {'x':>5s} "
          f"{'fp32 2t':>8s} {'int8 2t':>8s} {'x':>5s}")  # fmt: skip
    for name, paths in int8.items():
        if name.split("+")[0] != args.methods[0]:  # same graph as the first method's
            continue
        for k in members:
            t = speed(fp32[k], paths[k], calib[k], args.rounds)
            print(f"{name:20s} {k:6s} {t[1][0]:8.1f} {t[1][1]:8.1f} {t[1][0] / t[1][1]:5.2f} "
                  f"{t[2][0]:8.1f} {t[2][1]:8.1f} {t[2][0] / t[2][1]:5.2f}")  # fmt: skip
    print(f"load average after: {os.getloadavg()}")
    if args.speed_only:
        return

    sets = measured_sets(manifest, {it.path for it in calib_items}, args.per_class)
    sessions = {name: {k: OnnxModel(p) for k, p in paths.items()} for name, paths in int8.items()}
    reference = {k: m.session for k, m in members.items()}
    scored: dict[str, tuple[np.ndarray, dict[str, Any]]] = {}
    for set_name, (items, _) in sets.items():
        started = time.perf_counter()
        decoded = decode_items(items, source.read_bytes, det.preprocessing, progress=False)
        results: dict[str, Any] = {}
        for name in ["fp32", *sessions]:
            for k, m in members.items():
                m.session = reference[k] if name == "fp32" else sessions[name][k]
            scores = pixel_scores(det, decoded.images)
            judged = verdicts(det, decoded.paths, scores, sizes=decoded.sizes)
            results[name] = (scores.p_fake, [(v.label, v.unsure) for v in judged])
        scored[set_name] = (decoded.labels.numpy().astype(int), results)
        took = time.perf_counter() - started
        print(f"  scored {set_name}: {len(decoded.paths)} images, {took:.0f} s")
    for k, m in members.items():
        m.session = reference[k]
    rows = []
    for set_name, (_, held) in sets.items():
        y, results = scored[set_name]
        if set_name.endswith(" vs real"):  # the family's AI images and the validation reals
            y_real, real = scored[REAL]
            y = np.concatenate([y, y_real])
            results = {
                n: (np.concatenate([p, real[n][0]]), [*v, *real[n][1]])
                for n, (p, v) in results.items()
            }
            held += len(y_real)
        rows.append(summarize(set_name, len(y), held, y, results))
    print_table(rows, list(sessions))


def summarize(
    set_name: str, n: int, held: int, y: np.ndarray, results: dict[str, Any]
) -> tuple[str, int, int, float, dict[str, tuple[float, float, int]]]:
    p32, v32 = results["fp32"]
    auc32 = roc_auc_score(y, p32) if len(set(y)) == 2 else float("nan")
    cols: dict[str, tuple[float, float, int]] = {}
    for name, (p, v) in results.items():
        if name == "fp32":
            continue
        auc = roc_auc_score(y, p) if len(set(y)) == 2 else float("nan")
        flips = sum(a != b for a, b in zip(v, v32, strict=True))
        cols[name] = (auc - auc32, float(np.abs(p - p32).max()), flips)
    return set_name, n, held, auc32, cols


def print_table(rows: list[Any], names: list[str]) -> None:
    print("\nROC-AUC fp32-onnx and int8 - fp32 (ΔAUC), max |Δp|, verdict flips (label, unsure)")
    head = f"{'set':28s} {'n':>5s} {'held-out':>8s} {'AUC fp32':>8s}"
    for name in names:
        head += f" | {name[:10]:>10s} {'ΔAUC':>8s} {'max|Δp|':>7s} {'flips':>5s}"
    print(head)
    worst = dict.fromkeys(names, 0.0)
    for set_name, n, held, auc32, cols in rows:
        line = f"{set_name:28s} {n:5d} {held:8d} {auc32:8.4f}"
        for name in names:
            d, dp, flips = cols[name]
            worst[name] = max(worst[name], abs(d)) if d == d else worst[name]
            line += f" | {'':>10s} {d:+8.4f} {dp:7.3f} {flips:5d}"
        print(line)
    for name in names:
        verdict = "within" if worst[name] <= 0.002 else "NOT within"
        print(f"{name}: largest |ΔAUC| {worst[name]:.4f} ({verdict} the 0.002 bar)")


if __name__ == "__main__":
    main()
