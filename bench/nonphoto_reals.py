"""Real non-photographic images, made locally, and how often a detector calls them fake.

Builds, reproducibly (seeded), a folder of images people make that are not photographs:
  plots     matplotlib figures (lines, scatter, bars, histograms, heatmaps, contours, pies)
  graphs    graphviz drawings of random graphs (dot, neato, circo, twopi)
  pages     headless-chromium screenshots of local HTML: this repository's markdown files
            rendered, and the HTML documentation Debian packages install in /usr/share/doc
  artwork   artwork Debian packages ship (desktop-base themes, /usr/share/images,
            Adwaita icons of 256 px and more), SVGs rendered by chromium
then scores them with a bundle and prints how many are confidently called fake (label fake
and not unsure), per kind, and how the content heuristic (fakescope.data.content_type)
classifies them. With --photos MANIFEST it also reports the heuristic on a seeded sample of
real photos (to measure its thresholds).

    python bench/nonphoto_reals.py --out /tmp/nonphoto [--bundle default] [--photos real.csv]

Needs /usr/bin/chromium (apt-get install chromium) and graphviz (apt-get install graphviz);
desktop-base adds wallpapers. No other repository is used.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, machine  # noqa: E402

CHROMIUM = os.environ.get("FAKESCOPE_CHROMIUM", "/usr/bin/chromium")


def make_plots(out: Path, n: int, rng: np.random.Generator) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles = ["default", "ggplot", "seaborn-v0_8", "bmh", "dark_background", "classic"]
    kinds = ["line", "scatter", "bar", "hist", "heatmap", "contour", "pie", "subplots"]
    for i in range(n):
        kind = kinds[i % len(kinds)]
        with plt.style.context(styles[int(rng.integers(len(styles)))]):
            size = (float(rng.uniform(4, 10)), float(rng.uniform(3, 7)))
            fig, ax = plt.subplots(figsize=size, dpi=int(rng.choice([72, 100, 150])))
            x = np.linspace(0, 10, 200)
            if kind == "line":
                for k in range(int(rng.integers(1, 5))):
                    ax.plot(x, np.sin(x * rng.uniform(0.5, 3)) + k, label=f"series {k}")
                ax.legend()
            elif kind == "scatter":
                ax.scatter(rng.normal(size=300), rng.normal(size=300), c=rng.random(300), s=12)
            elif kind == "bar":
                ax.bar([f"c{k}" for k in range(8)], rng.integers(1, 50, 8))
            elif kind == "hist":
                ax.hist(rng.gamma(2.0, 2.0, 2000), bins=int(rng.integers(10, 60)))
            elif kind == "heatmap":
                im = ax.imshow(rng.random((12, 16)), cmap=str(rng.choice(["viridis", "magma"])))
                fig.colorbar(im)
            elif kind == "contour":
                gx, gy = np.meshgrid(np.linspace(-3, 3, 100), np.linspace(-3, 3, 100))
                ax.contourf(gx, gy, np.exp(-(gx**2) - gy**2) + 0.3 * np.sin(3 * gx), levels=12)
            elif kind == "pie":
                ax.pie(rng.integers(1, 10, 5), labels=list("ABCDE"), autopct="%1.0f%%")
            else:
                fig.clf()
                for k in range(4):
                    sub = fig.add_subplot(2, 2, k + 1)
                    sub.plot(x, np.cumsum(rng.normal(size=200)))
                    sub.set_title(f"panel {k}")
            if kind != "subplots":
                ax.set_title(f"figure {i}: {kind}")
            fmt = "jpg" if i % 4 == 3 else "png"  # some as a web page would serve them
            fig.savefig(out / f"plot_{i:03d}.{fmt}")
            plt.close(fig)


def make_graphs(out: Path, n: int, rng: np.random.Generator) -> None:
    layouts = ["dot", "neato", "circo", "twopi"]
    for i in range(n):
        nodes = int(rng.integers(5, 25))
        edges = {(int(rng.integers(nodes)), int(rng.integers(nodes))) for _ in range(nodes * 2)}
        shape = rng.choice(["box", "ellipse", "circle", "record"])
        colour = rng.choice(["lightblue", "lightyellow", "palegreen", "white"])
        lines = [f'digraph g{i} {{ node [shape={shape}, style=filled, fillcolor="{colour}"];']
        lines += [f'  n{a} -> n{b} [label="e{a}{b}"];' for a, b in sorted(edges) if a != b]
        lines.append("}")
        layout = layouts[i % len(layouts)]
        target = out / f"graph_{i:03d}.png"
        subprocess.run(
            ["dot", f"-K{layout}", "-Tpng", f"-Gdpi={int(rng.choice([72, 96, 150]))}"],
            input="\n".join(lines).encode(),
            stdout=target.open("wb"),
            check=True,
        )


def _pages() -> list[Path]:
    import markdown

    pages = []
    work = Path(os.environ.get("TMPDIR", "/tmp")) / "nonphoto_pages"
    work.mkdir(exist_ok=True)
    for md in sorted(REPO.glob("*.md")):
        html = markdown.markdown(md.read_text(), extensions=["tables", "fenced_code"])
        page = work / f"{md.stem}.html"
        page.write_text(f"<html><body style='font-family:sans-serif;margin:2em'>{html}</body>")
        pages.append(page)
    docs = sorted(Path(p) for p in glob.glob("/usr/share/doc/**/*.html", recursive=True))
    return pages + docs[:40]


def _artwork() -> list[Path]:
    found = []
    for root in ("/usr/share/desktop-base", "/usr/share/images", "/usr/share/wallpapers"):
        for ext in ("png", "jpg", "svg"):
            found += glob.glob(f"{root}/**/*.{ext}", recursive=True)
    found += glob.glob("/usr/share/icons/*/256x256/**/*.png", recursive=True)[:20]
    found += glob.glob("/usr/share/icons/*/512x512/**/*.png", recursive=True)[:20]
    unique = {os.path.realpath(p) for p in found if os.path.getsize(p) > 4000}
    return sorted(Path(p) for p in unique)


def make_screens_and_art(out: Path, rng: np.random.Generator) -> None:
    from PIL import Image
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        for i, html in enumerate(_pages()):
            page.goto(html.as_uri())
            for k, scroll in enumerate((0, 700)):
                page.evaluate(f"window.scrollTo(0, {scroll})")
                page.screenshot(path=str(out / f"page_{i:03d}_{k}.png"))
        for i, art in enumerate(_artwork()):
            if art.suffix == ".svg":
                page.set_viewport_size({"width": 1280, "height": 800})
                page.goto(art.as_uri())
                page.screenshot(path=str(out / f"art_{i:03d}.png"))
            else:
                with Image.open(art) as img:
                    rgb = img.convert("RGBA")
                    canvas = Image.new("RGBA", rgb.size, (255, 255, 255, 255))
                    canvas.alpha_composite(rgb)
                    canvas.convert("RGB").save(out / f"art_{i:03d}.png")
        browser.close()


def build(out: Path, seed: int, n_plots: int, n_graphs: int) -> list[Path]:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    make_plots(out, n_plots, rng)
    make_graphs(out, n_graphs, rng)
    make_screens_and_art(out, rng)
    return sorted(p for p in out.iterdir() if p.suffix in (".png", ".jpg"))


def kind_of(path: Path) -> str:
    return {"plot": "plots", "graph": "graphs", "page": "pages", "art": "artwork"}[
        path.name.split("_")[0]
    ]


def heuristic(paths: list[str]) -> Counter[str]:
    from PIL import Image

    from fakescope.data.content_type import content_stats

    counts: Counter[str] = Counter()
    for p in paths:
        with Image.open(p) as img:
            counts[content_stats(img)["kind"]] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/nonphoto_reals"))
    parser.add_argument("--bundle", default="default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plots", type=int, default=80)
    parser.add_argument("--graphs", type=int, default=40)
    parser.add_argument("--photos", type=Path, help="real photo manifest for the heuristic")
    parser.add_argument("--n-photos", type=int, default=600)
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--no-build", action="store_true", help="use the images in --out")
    parser.add_argument("--no-score", action="store_true", help="the content heuristic only")
    args = parser.parse_args()

    if args.no_build:
        paths = sorted(p for p in args.out.iterdir() if p.suffix in (".png", ".jpg"))
    else:
        paths = build(args.out, args.seed, args.plots, args.graphs)
    print(f"# {machine()}")
    print(f"{len(paths)} real non-photographic images in {args.out}")
    figures: dict[str, object] = {"machine": machine()}
    if not args.no_score:
        figures |= score(paths, args.bundle)
    heuristic_figures(paths, args, figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


def score(paths: list[Path], bundle: str) -> dict[str, object]:
    """Score with the bundle; print and return the confidently-fake counts per kind."""
    from fakescope.detectors import load_detector

    detector = load_detector(bundle, device="cpu")
    preds = detector.predict([str(p) for p in paths], batch_size=16, progress=False)
    by_kind: dict[str, Counter[str]] = {}
    for path, pred in zip(paths, preds, strict=True):
        c = by_kind.setdefault(kind_of(path), Counter())
        c["n"] += 1
        if pred.error:
            c["error"] += 1
        elif pred.label == "fake" and not pred.unsure:
            c["confident_fake"] += 1
            # what a content check answering `unsure` on graphic images would leave
            c["confident_fake_photo_content"] += heuristic([str(path)])["photo"]
        elif pred.unsure:
            c["unsure"] += 1
    total = Counter[str]()
    print(f"bundle {bundle}: real non-photographic images confidently called fake")
    for kind, c in sorted(by_kind.items()):
        total.update(c)
        print(
            f"  {kind:8s} {c['confident_fake']:4d} / {c['n']:4d} "
            f"({c['confident_fake'] / c['n']:.1%}), unsure {c['unsure'] / c['n']:.0%}"
        )
    share = total["confident_fake"] / total["n"]
    print(f"  all      {total['confident_fake']:4d} / {total['n']:4d} ({share:.1%})")
    left = total["confident_fake_photo_content"]
    print(
        f"  with graphic images (fakescope.data.content_type) answered unsure: {left} / "
        f"{total['n']} ({left / total['n']:.1%}) confidently called fake"
    )
    return {
        "bundle": bundle,
        "by_kind": {k: dict(v) for k, v in by_kind.items()},
        "confident_fake_share": share,
        "confident_fake_share_with_content_check": left / total["n"],
    }


def heuristic_figures(paths: list[Path], args: argparse.Namespace, figures: dict) -> None:
    """How the content heuristic classifies the drawings (and, with --photos, photos)."""
    graphic = heuristic([str(p) for p in paths])
    print(
        f"content heuristic on these: {graphic['graphic']} graphic, {graphic['photo']} photo "
        f"({graphic['graphic'] / len(paths):.0%} recognised as non-photographic)"
    )
    figures["heuristic_nonphoto"] = dict(graphic)
    if args.photos:
        from fakescope.data.sources import CsvSource

        items = [it for it in CsvSource(args.photos).items if it.label == 0]
        pick = np.random.default_rng(args.seed).permutation(len(items))[: args.n_photos]
        photos = heuristic([items[i].path for i in sorted(pick)])
        print(
            f"content heuristic on {len(pick)} real photos of {args.photos.name}: "
            f"{photos['graphic']} graphic ({photos['graphic'] / len(pick):.1%} false alarms)"
        )
        figures["heuristic_photos"] = dict(photos)


if __name__ == "__main__":
    main()
