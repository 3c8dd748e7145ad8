"""The zero-shot detector's figures: the coder's held-out bits per sub-pixel next to PNG and
WebP-lossless, and the detector on every shared source and modern generator family (ROC-AUC,
accuracy at its own threshold, real photos confidently called fake), robustness and speed.

    cd bench
    python zero_shot.py bits --run ../runs/zero_shot            # coder vs PNG vs WebP
    python zero_shot.py score --bundle zero_shot --out ../runs/zs_0.json --general --shard 0/3
    (and --shard 1/3, 2/3 in parallel)
    python zero_shot.py report --scores ../runs/zs_*.json       # the tables
    python zero_shot.py head --scores ../runs/zs_*.json         # a logistic head, each set left out
    python zero_shot.py readability --scores ../runs/zs_*.json  # what each unsure floor catches
    python zero_shot.py speed --bundle zero_shot                # 1280x720 photos, images/s

Real photos always come from the held-back splits of the coder's recipe (never trained on);
fakes from the shared archives' fake/ halves and the repositories of modern_sources.tsv
(under $FAKESCOPE_CLONES, default ../../data/clones). Seeded samples.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import math
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _common import DATA, REPO, machine
from PIL import Image, ImageFilter
from sklearn.metrics import roc_auc_score

from fakescope.kinds.zero_shot.data import archive_items, recipe_real_images
from fakescope.kinds.zero_shot.recipe import load_recipe

CLONES = REPO.parent / "data" / "clones"
SHARED = ("cifake_train", "stylegan_faces", "faceswap_lfw", "dfdc_faces", "modern_photos")

# modern generator families: (name, repository, glob inside it, filter on the file name)
MODERN: tuple[tuple[str, str, str, Callable[[str], bool]], ...] = (
    (
        "sd1x_diffusiondb",
        "DHANUSH7140+REAL-VS-AI-IMAGE-DETECTION-AND-SIMILAR-OBJECT-DETECTION",
        "visionprobe/backend/data/ai/*",
        lambda n: True,
    ),
    ("krea2_turbo", "matplinta+t2i-krea-2-style-library", "images/*/*.webp", lambda n: True),
    ("nano_banana", "PicoTrex+Awesome-Nano-Banana-images", "images/case*/output*", lambda n: True),
    (
        "gpt_image_1",
        "jamez-bondos+awesome-gpt4o-images",
        "gpt-image-1/examples/*.png",
        lambda n: "input" not in n,
    ),
    ("midjourney_v3", "dcsan+imagen", "output/renders/*/midj-*", lambda n: True),
    ("sd_beta_2022", "dcsan+imagen", "output/renders/*/stab-*", lambda n: True),
    ("dalle2", "dcsan+imagen", "output/renders/*/dal2-*", lambda n: True),
    ("latent_diffusion_256", "dcsan+imagen", "output/renders/*/ldif-*", lambda n: True),
    (
        "sdxl_thumbnails",
        "xuyiqing88+ComfyUI-SDXL-Style-Preview",
        "style-preview/**/*.png",
        lambda n: True,
    ),
    ("sd15_finetunes_art", "SupaGruen+StableDiffusion-CheatSheet", "img/*.webp", lambda n: True),
    ("sd14_grids", "gnickm+stable-diffusion-artists", "images/*.jpg", lambda n: True),
)

FAMILIES = tuple(m[0] for m in MODERN)


def decode(path: str) -> Image.Image:
    from fakescope.data.sources import read_item_bytes

    with Image.open(io.BytesIO(read_item_bytes(path))) as img:
        return img.convert("RGB")


def jpeg(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


TRANSFORMS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "none": lambda img: img,
    "jpeg95": lambda img: jpeg(img, 95),
    "jpeg90": lambda img: jpeg(img, 90),
    "jpeg75": lambda img: jpeg(img, 75),
    "down0.5": lambda img: img.resize(
        (max(1, img.width // 2), max(1, img.height // 2)), Image.Resampling.BICUBIC
    ),
    "blur1": lambda img: img.filter(ImageFilter.GaussianBlur(1.0)),
    "up2": lambda img: img.resize((img.width * 2, img.height * 2), Image.Resampling.BICUBIC),
}


@functools.cache
def _all_reals() -> list[Any]:
    recipe = load_recipe(None, [f"data.clones={CLONES}", f"data.shared={DATA}"])
    return recipe_real_images(recipe.data)


def held_out_reals(split: str) -> dict[str, list[str]]:
    images = _all_reals()
    out: dict[str, list[str]] = {}
    for image in images:
        if image.split == split:
            out.setdefault(image.source, []).append(image.path)
    return out


def sample(paths: list[str], n: int, seed: int) -> list[str]:
    paths = sorted(paths)
    random.Random(seed).shuffle(paths)
    return paths[:n]


def modern_paths(name: str, repo: str, pattern: str, keep: Callable[[str], bool]) -> list[str]:
    root = CLONES / repo
    return sorted(
        str(p)
        for p in root.glob(pattern)
        if p.is_file() and p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp") and keep(p.name)
    )


def read_scores(paths: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows of `score` / `classical-score` output files, and each file's other keys (its
    machine line; the classical scores' transform)."""
    rows: list[dict[str, Any]] = []
    headers = []
    for path in paths:
        data = json.loads(Path(path).read_text())
        rows += data.pop("rows")
        headers.append(data)
    return rows, headers


# -- bits per sub-pixel ---------------------------------------------------------------------
def cmd_bits(args: argparse.Namespace) -> None:
    from fakescope.kinds.zero_shot.build import load_coder
    from fakescope.kinds.zero_shot.bundle import load_zero_shot_bundle
    from fakescope.kinds.zero_shot.train import WEIGHTS

    run = Path(args.run)
    if (run / WEIGHTS).is_file():  # a training run: the coder's shape is in its recipe
        coder = load_coder(run, load_recipe(run / "recipe.json"))
    else:  # a bundle folder
        coder = load_zero_shot_bundle(run)[0]
    classical = load_classical(args.classical) if args.classical else None
    tests = held_out_reals("test")
    side = args.side
    rows: dict[str, list[tuple[float, float, float]]] = {}
    for source in sorted(tests):
        for path in sample(tests[source], args.per_source, 0):
            img = decode(path)
            if min(img.size) < side:
                continue
            left, top = (img.width - side) // 2, (img.height - side) // 2
            crop = img.crop((left, top, left + side, top + side))
            n_sub = side * side * 3
            png, webp = io.BytesIO(), io.BytesIO()
            crop.save(png, "PNG", optimize=True)
            crop.save(webp, "WEBP", lossless=True, quality=100, method=6)
            x = torch.from_numpy(np.asarray(crop)).permute(2, 0, 1)[None].float()
            with torch.no_grad():
                model = float(coder.total_bits_per_subpixel(x)[0])
                other = float(classical.total_bits_per_subpixel(x)[0]) if classical else math.nan
            rows.setdefault(source, []).append(
                (model, 8 * png.tell() / n_sub, 8 * webp.tell() / n_sub, other)
            )
    print(f"# held-out real crops ({side}x{side}, centre), bits per sub-pixel; {machine()}")
    print(f"{'source':18s} {'n':>4s} {'coder':>7s} {'PNG':>7s} {'WebP-LL':>7s} {'classic':>7s}")
    allrows = []
    for source, vals in [*rows.items(), ("all", [v for vs in rows.values() for v in vs])]:
        a = np.array(vals)
        allrows.extend(vals)
        print(f"{source:18s} {len(a):4d} " + " ".join(f"{v:7.3f}" for v in a.mean(axis=0)))


# -- the classical coder ------------------------------------------------------------------
def load_classical(path: str) -> Any:
    from safetensors.torch import load_file

    from fakescope.kinds.zero_shot.classical import ClassicalCoder

    coder = ClassicalCoder()
    coder.load_state_dict(load_file(str(Path(path) / "classical.safetensors")))
    return coder.eval()


def real_crops(
    split: str, per_source: int, side: int, per_image: int, seed: int, transform: str = "none"
) -> torch.Tensor:
    """Random native side x side crops of `per_source` photos of each source's `split`, each
    photo passed through TRANSFORMS[transform] first."""
    rng = random.Random(seed)
    crops = []
    for _source, paths in sorted(held_out_reals(split).items()):
        used = 0
        for path in sample(paths, per_source * 3, seed):
            if used >= per_source:
                break
            arr = np.asarray(TRANSFORMS[transform](decode(path)))
            h, w = arr.shape[:2]
            if min(h, w) < side:
                continue
            used += 1
            for _ in range(per_image):
                y, x = rng.randrange(h - side + 1), rng.randrange(w - side + 1)
                crops.append(arr[y : y + side, x : x + side])
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float()


def cmd_classical_fit(args: argparse.Namespace) -> None:
    from safetensors.torch import save_file

    from fakescope.kinds.zero_shot.classical import fit_classical

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    crops = real_crops("train", args.per_source, args.side, args.per_image, 0, args.transform)
    print(f"{len(crops)} training crops of {args.side} px ({args.transform})", file=sys.stderr)
    coder, summary = fit_classical(
        crops,
        steps=args.steps,
        batch=args.batch,
        progress=lambda s, v: print(f"step {s}: {v:.3f} bits (sum of levels)", file=sys.stderr),
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in coder.state_dict().items()}
    save_file(state, str(out / "classical.safetensors"))
    (out / "summary.json").write_text(
        json.dumps({**summary, "transform": args.transform, "machine": machine()}, indent=1)
    )
    print(json.dumps(summary))


def modern_manifest(path: Path, per_generator: int, minimum: int) -> dict[str, list[str]]:
    """A seeded sample of each generator of a manifest (modern.csv) with enough images."""
    import csv

    by_gen: dict[str, list[str]] = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            if row["label"] == "fake":
                by_gen.setdefault(row["generator"], []).append(row["path"])
    return {
        g: sample(paths, per_generator, 6)
        for g, paths in sorted(by_gen.items())
        if len(paths) >= minimum
    }


def cmd_classical_score(args: argparse.Namespace) -> None:
    """Coding-gap statistics of the classical coder on held-back reals and every fake set,
    appended to a JSON file (resumable); the detector's crops (8 native 64 px crops)."""
    from fakescope.kinds.zero_shot.bundle import crop_preprocessing
    from fakescope.kinds.zero_shot.statistic import GapFeatures, crop_features, image_statistics

    torch.set_num_threads(args.threads)
    graph = GapFeatures(load_classical(args.classical)).eval()
    pre = crop_preprocessing(args.side, args.crops)
    calib, tests = held_out_reals("calib"), held_out_reals("test")
    photo_sources = [s for s in sorted(tests) if s not in SHARED]
    sets: list[tuple[str, str, list[str]]] = []
    for source in sorted(calib):
        sets.append(("calib", "real", sample(calib[source], args.calib, 7)))
    reals: list[str] = []
    for source in photo_sources:
        reals += sample(tests[source], max(1, args.reals // len(photo_sources)), 1)
    sets.append(("real_photos", "real", reals))
    for name in SHARED:
        sets.append((name, "real", sample(tests.get(name, []), args.per_set, 2)))
        sets.append(
            (name, "fake", sample(archive_items(DATA / f"{name}.zip", "fake"), args.per_set, 3))
        )
    for gen, paths in modern_manifest(Path(args.manifest), args.modern, 40).items():
        sets.append((f"modern:{gen}", "fake", paths))
    out_path = Path(args.out)
    rows: list[dict[str, Any]] = (
        json.loads(out_path.read_text())["rows"] if out_path.is_file() else []
    )
    done = {(r["set"], r["path"]) for r in rows}
    meta = {"machine": machine(), "transform": args.transform}
    started = time.time()
    shard, shards = (int(v) for v in args.shard.split("/"))
    jobs = [(s, lab, p) for s, lab, paths in sets for p in paths][shard::shards]
    jobs = [job for job in jobs if (job[0], job[2]) not in done]
    for n, (set_name, label, path) in enumerate(jobs):
        try:
            img = TRANSFORMS[args.transform](decode(path))
        except Exception as exc:  # a broken file is reported, not fatal
            print(f"skip {path}: {exc}", file=sys.stderr)
            continue
        crops = torch.from_numpy(pre.to_uint8(img)).float()
        stats = image_statistics(crop_features(graph, crops).numpy())
        rows.append(
            {
                "set": set_name,
                "label": label,
                "path": path,
                "w": img.width,
                "h": img.height,
                "stats": stats,
            }
        )
        if (n + 1) % 25 == 0 or n + 1 == len(jobs):
            out_path.write_text(json.dumps({**meta, "rows": rows}))
            print(f"{n + 1}/{len(jobs)}, {time.time() - started:.0f} s", file=sys.stderr)
    out_path.write_text(json.dumps({**meta, "rows": rows}))


def cmd_classical_report(args: argparse.Namespace) -> None:
    """ROC-AUC per set of the classical coder's statistics, the threshold at a false-positive
    rate on the held-back (calib) reals, and real photos called fake."""
    from fakescope.kinds.zero_shot.fit import fit_statistic

    rows, headers = read_scores(args.scores)
    data = headers[-1]
    calib = [r["stats"] for r in rows if r["set"] == "calib"]
    stat = fit_statistic(calib, {args.feature: -1.0}, fpr=args.fpr)
    for r in rows:
        r["p"] = 1 / (1 + math.exp(-stat.logit(r["stats"])))
    print(
        f"# classical coder, statistic -{args.feature}, threshold {stat.center:.4f} at "
        f"{args.fpr:.0%} FPR on {len(calib)} held-back reals; every image through "
        f"{data.get('transform', 'none')!r} first; scored {data['machine']}"
    )
    alt = ("d0", "d1", "d2", "slope", "nll0", "h0")
    print(
        f"{'set':40s} {'n_r':>4s} {'n_f':>4s} {'AUC':>6s} {'acc':>6s} {'r->F':>6s} "
        + " ".join(f"{'-' + a:>6s}" for a in alt)
    )
    real_photos = [r for r in rows if r["set"] == "real_photos"]
    aucs: dict[str, float] = {}
    for set_name in dict.fromkeys(r["set"] for r in rows if r["label"] == "fake"):
        fakes = [r for r in rows if r["set"] == set_name and r["label"] == "fake"]
        reals = [r for r in rows if r["set"] == set_name and r["label"] == "real"] or real_photos
        both = reals + fakes
        y = np.array([0] * len(reals) + [1] * len(fakes))
        p = np.array([r["p"] for r in both])
        aucs[set_name] = _auc(y, p)
        alts = [_auc(y, -np.array([r["stats"][a] for r in both])) for a in alt]
        print(
            f"{set_name:40s} {len(reals):4d} {len(fakes):4d} {aucs[set_name]:6.3f} "
            f"{float(((p >= 0.5) == y).mean()):6.3f} "
            f"{float(np.mean([r['p'] >= 0.6 for r in reals])):6.3f} "
            + " ".join(f"{a:6.3f}" for a in alts)
        )
    shared = [a for n, a in aucs.items() if n in SHARED]
    modern = [a for n, a in aucs.items() if n not in SHARED]
    print(
        f"mean AUC: shared sources {np.nanmean(shared):.3f} ({sum(a >= 0.7 for a in shared)} of "
        f"{len(shared)} >= 0.70); modern generators {np.nanmean(modern):.3f} ({len(modern)})"
    )
    rp = np.array([r["p"] for r in real_photos])
    print(
        f"held-out real photos (n={len(rp)}): called fake {float((rp >= 0.5).mean()):.3f}, "
        f"confidently (p >= 0.6) {float((rp >= 0.6).mean()):.3f}"
    )


# -- scores ---------------------------------------------------------------------------------
def cmd_score(args: argparse.Namespace) -> None:
    from fakescope.detectors import load_detector

    torch.set_num_threads(args.threads)
    det: Any = load_detector(args.bundle)
    general: Any = load_detector("general") if args.general else None
    sets: list[tuple[str, str, list[str]]] = []  # (set, label, paths)
    tests = held_out_reals("test")
    photo_sources = [s for s in sorted(tests) if s not in SHARED]
    reals: list[str] = []
    per = max(1, args.reals // len(photo_sources))
    for source in photo_sources:
        reals += sample(tests[source], per, 1)
    sets.append(("real_photos", "real", reals))
    for name in SHARED:
        archive = DATA / f"{name}.zip"
        sets.append((name, "real", sample(tests.get(name, []), args.per_set, 2)))
        sets.append((name, "fake", sample(archive_items(archive, "fake"), args.per_set, 3)))
    for name, repo, pattern, keep in MODERN:
        sets.append((name, "fake", sample(modern_paths(name, repo, pattern, keep), args.modern, 4)))
    robust_sets = {"real_photos", "sd1x_diffusiondb", "krea2_turbo", "gpt_image_1", "nano_banana"}
    shard, shards = (int(v) for v in args.shard.split("/"))
    jobs = [
        (set_name, label, t_name, path)
        for set_name, label, paths in sets
        for t_name in (
            ["none", "jpeg95", "jpeg75", "down0.5", "blur1", "up2"]
            if set_name in robust_sets
            else ["none"]
        )
        for path in (paths if t_name == "none" else paths[: args.robust])
    ][shard::shards]
    out: list[dict[str, Any]] = []
    done = set()
    if Path(args.out).is_file() and args.resume:
        out = json.loads(Path(args.out).read_text())["rows"]
        done = {(r["set"], r["path"], r["transform"]) for r in out}
    started = time.time()
    for set_name, label, t_name, path in jobs:
        if (set_name, path, t_name) in done:
            continue
        try:
            img = TRANSFORMS[t_name](decode(path))
        except Exception as exc:  # a broken file is reported, not fatal
            print(f"skip {path}: {exc}", file=sys.stderr)
            continue
        arr = torch.from_numpy(det.prepare(img))[None]
        stats = det.image_statistics(arr)[0]
        row = {
            "set": set_name,
            "label": label,
            "path": path,
            "transform": t_name,
            "w": img.width,
            "h": img.height,
            "stats": stats,
        }
        if general is not None:
            scores = general.score_prepared([general.prepare(img)])
            row["p_general"] = float(scores.p_fake[0])
        out.append(row)
        if len(out) % 25 == 0:
            Path(args.out).write_text(json.dumps({"machine": machine(), "rows": out}))
            print(f"{len(out)}/{len(jobs)} rows, {time.time() - started:.0f} s", file=sys.stderr)
    Path(args.out).write_text(json.dumps({"machine": machine(), "rows": out}))
    print(f"{len(out)} rows in {time.time() - started:.0f} s -> {args.out}")


# -- report ---------------------------------------------------------------------------------
def _auc(y: np.ndarray, s: np.ndarray) -> float:
    return float(roc_auc_score(y, s)) if len(set(y.tolist())) == 2 else float("nan")


def cmd_report(args: argparse.Namespace) -> None:
    from fakescope.detectors import load_detector

    rows, headers = read_scores(args.scores)
    det: Any = load_detector(args.bundle)
    for r in rows:  # the bundle's fitted statistic, applied to the stored coding statistics
        r["p"] = 1 / (1 + math.exp(-det.statistic.logit(r["stats"])))
        r["readability"] = det.statistic.readability(r["stats"])
        r["size_score"] = det.size_score(r["w"], r["h"])
    low, high = det.meta.unsure_band
    gen_band = None
    if any("p_general" in r for r in rows):
        gmeta = load_detector("general").meta
        gen_band = (gmeta.unsure_band, gmeta.threshold)
    print(f"# zero-shot detector ({args.bundle}); scored {headers[0]['machine']}")
    print(
        f"# statistic: {det.statistic.weights}, threshold {det.statistic.center:.4f} "
        f"(fpr {det.statistic.fpr} on held-back reals); unsure band ({low}, {high})"
    )

    def unreadable(r: dict[str, Any]) -> bool:
        return r["readability"] > 1.0 or (r["size_score"] or 0) > 1.0

    def confident_fake(r: dict[str, Any]) -> bool:
        return r["p"] >= high and not unreadable(r)

    def pick(set_name: str, label: str, transform: str = "none") -> list[dict[str, Any]]:
        return [
            r
            for r in rows
            if r["set"] == set_name and r["label"] == label and r["transform"] == transform
        ]

    alt = ("d0", "d1", "d2", "slope", "nll0", "h0")
    two = ("d0", "d1", "slope")  # two-sided: distance from the held-out real photos' median
    med = {
        a: float(np.median([r["stats"][a] for r in pick("real_photos", "real")] or [0]))
        for a in two
    }
    header = (
        f"{'set':22s} {'n_r':>4s} {'n_f':>4s} {'AUC':>6s} {'acc':>6s} {'r->F':>6s} "
        f"{'unsure':>6s} "
        + " ".join(f"{'-' + a:>6s}" for a in alt)
        + " "
        + " ".join(f"{'|' + a + '|':>7s}" for a in two)
    )
    if gen_band:
        header += f" {'gen AUC':>7s} {'gen acc':>7s} {'gen r->F':>8s}"
    print(header)
    real_photos = pick("real_photos", "real")
    aucs = []
    for set_name in [*SHARED, *FAMILIES]:
        fakes = pick(set_name, "fake")
        reals = pick(set_name, "real") or real_photos
        if not fakes:
            continue
        both = reals + fakes
        y = np.array([0] * len(reals) + [1] * len(fakes))
        p = np.array([r["p"] for r in both])
        auc = _auc(y, p)
        aucs.append((set_name, auc))
        acc = float(((p >= 0.5) == y).mean())
        r_to_f = float(np.mean([confident_fake(r) for r in reals]))
        unsure = float(np.mean([unreadable(r) or low < r["p"] < high for r in both]))
        alts = [_auc(y, -np.array([r["stats"][a] for r in both])) for a in alt]
        twos = [_auc(y, np.abs(np.array([r["stats"][a] for r in both]) - med[a])) for a in two]
        line = (
            f"{set_name:22s} {len(reals):4d} {len(fakes):4d} {auc:6.3f} {acc:6.3f} "
            f"{r_to_f:6.3f} {unsure:6.3f} "
            + " ".join(f"{a:6.3f}" for a in alts)
            + " "
            + " ".join(f"{a:7.3f}" for a in twos)
        )
        if gen_band:
            (glow, ghigh), gthr = gen_band
            g = np.array([r["p_general"] for r in both])
            gr = np.array([r["p_general"] for r in reals])
            line += (
                f" {_auc(y, g):7.3f} {float(((g >= gthr) == y).mean()):7.3f} "
                f"{float((gr >= ghigh).mean()):8.3f}"
            )
        print(line)
    shared = [a for n, a in aucs if n in SHARED]
    modern = [a for n, a in aucs if n not in SHARED]
    print(
        f"mean AUC: shared sources {np.nanmean(shared):.3f} ({sum(a >= 0.7 for a in shared)} "
        f"of {len(shared)} >= 0.70); modern families {np.nanmean(modern):.3f}"
    )
    rp = np.array([r["p"] for r in real_photos])
    print(
        f"held-out real photos (n={len(rp)}): called fake {float((rp >= 0.5).mean()):.3f}, "
        f"confidently {np.mean([confident_fake(r) for r in real_photos]):.3f}, unreadable "
        f"{np.mean([unreadable(r) for r in real_photos]):.3f}"
    )
    print(
        "\n# robustness: AUC of held-out real photos vs each family under the same change; "
        "share of images unreadable (unsure)"
    )
    transforms = sorted({r["transform"] for r in rows})
    fam = sorted({r["set"] for r in rows if r["transform"] != "none" and r["label"] == "fake"})
    print(f"{'family':22s} " + " ".join(f"{t:>17s}" for t in transforms))
    for set_name in fam:
        cells = []
        for t in transforms:
            reals = pick("real_photos", "real", t)
            fakes = pick(set_name, "fake", t)
            if not fakes or not reals:
                cells.append(f"{'-':>17s}")
                continue
            n = min(len(reals), len(fakes))
            reals_t = reals if t != "none" else reals
            y = np.array([0] * len(reals_t) + [1] * len(fakes))
            p = np.array([r["p"] for r in reals_t + fakes])
            unr = np.mean([unreadable(r) for r in reals_t + fakes])
            cells.append(f"{_auc(y, p):.3f} ({unr:.2f}) n{n}".rjust(17))
        print(f"{set_name:22s} " + " ".join(cells))
    reals_cf = {
        t: np.mean([confident_fake(r) for r in pick("real_photos", "real", t)] or [0])
        for t in transforms
    }
    print(
        "real photos confidently called fake: "
        + ", ".join(f"{t} {v:.3f}" for t, v in reals_cf.items())
    )


# -- a logistic head on the statistics, leave one source out -------------------------------
HEAD_FEATURES = ("nll0", "h0", "nll1", "h1", "nll2", "h2", "d0", "d1", "d2", "slope")


def loso_head(rows: list[dict[str, Any]], seed: int = 0) -> dict[str, tuple[float, float]]:
    """For each set (shared source or modern family), a logistic regression on the coding
    statistics fitted on every *other* set, scored on this one: (ROC-AUC of the head, of the
    fixed statistic -d0). The held-out real photos that stand in for the modern families'
    reals are split in two by a seeded draw: one half trains, the other is scored, so no
    image is ever in both."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    plain = [r for r in rows if r["transform"] == "none"]
    rng = random.Random(seed)
    pool = sorted(r["path"] for r in plain if r["set"] == "real_photos")
    rng.shuffle(pool)
    train_pool = set(pool[: len(pool) // 2])

    def x_of(items: list[dict[str, Any]]) -> np.ndarray:
        return np.array([[r["stats"][f] for f in HEAD_FEATURES] for r in items])

    out: dict[str, tuple[float, float]] = {}
    for held in [*SHARED, *FAMILIES]:
        fakes = [r for r in plain if r["set"] == held and r["label"] == "fake"]
        if not fakes:
            continue
        own_reals = [r for r in plain if r["set"] == held and r["label"] == "real"]
        test_reals = own_reals or [
            r for r in plain if r["set"] == "real_photos" and r["path"] not in train_pool
        ]
        train = [
            r
            for r in plain
            if r["set"] not in (held, "real_photos")
            or (r["set"] == "real_photos" and r["path"] in train_pool)
        ]
        y_train = np.array([int(r["label"] == "fake") for r in train])
        head = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
        head.fit(x_of(train), y_train)
        test = test_reals + fakes
        y = np.array([0] * len(test_reals) + [1] * len(fakes))
        out[held] = (
            _auc(y, head.predict_proba(x_of(test))[:, 1]),
            _auc(y, -np.array([r["stats"]["d0"] for r in test])),
        )
    return out


def cmd_head(args: argparse.Namespace) -> None:
    result = loso_head(read_scores(args.scores)[0])
    print("# a logistic head on the coding statistics, each set left out of its fit (ROC-AUC)")
    print(f"{'set':22s} {'head':>6s} {'-d0':>6s}")
    for name, (head, fixed) in result.items():
        print(f"{name:22s} {head:6.3f} {fixed:6.3f}")
    for group, names in (("shared", SHARED), ("modern", FAMILIES)):
        vals = [result[n] for n in names if n in result]
        if vals:
            h, f = np.nanmean([v[0] for v in vals]), np.nanmean([v[1] for v in vals])
            print(
                f"mean {group}: head {h:.3f} ({sum(v[0] >= 0.7 for v in vals)} of {len(vals)} "
                f">= 0.70), -d0 {f:.3f}"
            )


# -- readability features --------------------------------------------------------------------
def cmd_readability(args: argparse.Namespace) -> None:
    """Which images each readability feature would make unsure, with the floor at a quantile
    of the clean held-out real photos: the real photos under each change, and each family's
    clean fakes (what a floor costs)."""
    from fakescope.kinds.zero_shot.fit import READABILITY_FEATURES

    rows = read_scores(args.scores)[0]
    cells: dict[tuple[str, str, str], list[dict[str, float]]] = {}
    for r in rows:
        cells.setdefault((r["set"], r["label"], r["transform"]), []).append(r["stats"])
    reals = cells[("real_photos", "real", "none")]
    changes = sorted({t for s, _, t in cells if s == "real_photos" and t != "none"})
    print(
        "# share unreadable with the floor at a quantile of the clean held-out real photos "
        f"(n={len(reals)}): real photos after each change | each family's clean fakes"
    )
    for name, (value, _) in READABILITY_FEATURES.items():
        base = np.array([value(s) for s in reals])
        for q in args.quantiles:
            floor = float(np.quantile(base, q))
            below = {k: float(np.mean([value(s) < floor for s in v])) for k, v in cells.items()}
            real = ", ".join(f"{t} {below[('real_photos', 'real', t)]:.2f}" for t in changes)
            fakes = ", ".join(
                f"{f[:6]} {below[(f, 'fake', 'none')]:.2f}"
                for f in FAMILIES
                if (f, "fake", "none") in below
            )
            print(f"{name:9s} q{q:<5g} reals: {real} | fakes: {fakes}")


# -- speed ----------------------------------------------------------------------------------
def cmd_speed(args: argparse.Namespace) -> None:
    from fakescope.detectors import load_detector

    torch.set_num_threads(args.threads)
    tests = held_out_reals("test")
    paths = [p for s in sorted(tests) for p in sample(tests[s], 2, 5)][: args.n]
    images = [decode(p).resize((1280, 720), Image.Resampling.BICUBIC) for p in paths]
    for runtime in ("torch", "onnx"):
        det = load_detector(args.bundle, runtime=runtime)
        det.predict_images(images[:1])  # warm-up (and the ONNX export, once)
        started = time.perf_counter()
        det.predict_images(images)
        seconds = time.perf_counter() - started
        print(
            f"{runtime}: {len(images) / seconds:.2f} images/s on 1280x720 photos "
            f"({det.preprocessing.crops} crops of {det.preprocessing.input_size} px); {machine()}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bits")
    b.add_argument("--run", default=str(REPO / "runs" / "zero_shot"))
    b.add_argument("--side", type=int, default=128)
    b.add_argument("--per-source", type=int, default=30)
    b.add_argument("--classical", help="a folder with classical.safetensors: its column too")
    c = sub.add_parser("classical-fit", help="fit the classical coder on training crops")
    c.add_argument("--out", default=str(REPO / "runs" / "zero_shot_classical"))
    c.add_argument("--per-source", type=int, default=25, help="training photos per source")
    c.add_argument("--per-image", type=int, default=2)
    c.add_argument("--side", type=int, default=64)
    c.add_argument("--steps", type=int, default=300)
    c.add_argument("--batch", type=int, default=32)
    c.add_argument("--threads", type=int, default=2)
    c.add_argument(
        "--transform",
        choices=sorted(TRANSFORMS),
        default="none",
        help="pass every training photo through this first (e.g. jpeg90: one format for all)",
    )
    cs = sub.add_parser("classical-score", help="the classical coder's statistics per set")
    cs.add_argument("--classical", default=str(REPO / "runs" / "zero_shot_classical"))
    cs.add_argument("--out", required=True)
    cs.add_argument("--manifest", default=str(REPO.parent / "data" / "manifests" / "modern.csv"))
    cs.add_argument("--calib", type=int, default=10, help="held-back reals per source")
    cs.add_argument("--reals", type=int, default=150, help="held-out real photos in all")
    cs.add_argument("--per-set", type=int, default=60, help="real and fake per shared source")
    cs.add_argument("--modern", type=int, default=20, help="images per modern generator")
    cs.add_argument("--side", type=int, default=64)
    cs.add_argument("--crops", type=int, default=8)
    cs.add_argument("--threads", type=int, default=1)
    cs.add_argument("--shard", default="0/1", help="i/n: every n-th image from the i-th")
    cs.add_argument(
        "--transform",
        choices=sorted(TRANSFORMS),
        default="none",
        help="pass every image, real and fake, through this first (fit the coder the same way)",
    )
    cr = sub.add_parser("classical-report", help="the classical coder's figures")
    cr.add_argument("--scores", required=True, nargs="+")
    cr.add_argument("--feature", default="d0")
    cr.add_argument("--fpr", type=float, default=0.05)
    s = sub.add_parser("score")
    s.add_argument("--bundle", default="zero_shot")
    s.add_argument("--out", required=True)
    s.add_argument("--reals", type=int, default=300, help="held-out real photos in all")
    s.add_argument("--per-set", type=int, default=100, help="real and fake per shared source")
    s.add_argument("--modern", type=int, default=50, help="images per modern family")
    s.add_argument("--robust", type=int, default=40, help="images per robustness cell")
    s.add_argument("--general", action="store_true", help="score with `general` too")
    s.add_argument("--resume", action="store_true")
    s.add_argument("--shard", default="0/1", help="i/n: every n-th job from the i-th")
    s.add_argument("--threads", type=int, default=1)
    r = sub.add_parser("report")
    r.add_argument("--scores", required=True, nargs="+")
    r.add_argument("--bundle", default="zero_shot")
    hd = sub.add_parser("head", help="a logistic head on the statistics, leave one set out")
    hd.add_argument("--scores", required=True, nargs="+")
    rd = sub.add_parser("readability", help="what each readability floor makes unsure")
    rd.add_argument("--scores", required=True, nargs="+")
    rd.add_argument("--quantiles", type=float, nargs="+", default=[0.02, 0.05])
    p = sub.add_parser("speed")
    p.add_argument("--bundle", default="zero_shot")
    p.add_argument("--n", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    {
        "bits": cmd_bits,
        "classical-fit": cmd_classical_fit,
        "classical-score": cmd_classical_score,
        "classical-report": cmd_classical_report,
        "score": cmd_score,
        "report": cmd_report,
        "head": cmd_head,
        "readability": cmd_readability,
        "speed": cmd_speed,
    }[args.cmd](args)


if __name__ == "__main__":
    main()
