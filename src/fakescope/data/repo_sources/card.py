"""The dataset card (markdown) of a built manifest: per source and generator what was kept,
what was removed and why, what the rules left out, notes, warnings and licences."""

from __future__ import annotations

from collections import Counter

from fakescope.data.repo_sources.result import BuildResult


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def dataset_card(result: BuildResult, manifest_name: str = "manifest.csv") -> str:
    """Markdown: what the manifest holds per source and generator, licences, removals."""
    kept = Counter((it.source, it.generator or "") for it in result.items)
    labels = Counter(it.label for it in result.items)
    removed = Counter((r.source, r.reason.split(" (")[0].split(":")[0]) for r in result.removed)
    lines = [
        f"# Dataset card: {manifest_name}",
        "",
        "Built by `fakescope data sources` from "
        f"{', '.join(f'`{p}`' for p in result.sources_files)} "
        f"on local clones. {len(result.items)} images: {labels.get(0, 0)} real, "
        f"{labels.get(1, 0)} fake. The `split` column is empty: assign splits with "
        "`fakescope data split` (groups keep near copies together).",
        "",
        "## Sources",
        "",
        "| source | repository @ commit | label | content | licence | selected | kept | commit |",
        "|---|---|---|---|---|---:|---:|---|",
    ]
    for s in result.selections:
        e = s.entry
        n_kept = sum(n for (src, _), n in kept.items() if src == e.source_name)
        status = "verified" if s.clone.verified else _md(s.clone.note)
        lines.append(
            f"| {_md(e.source_name)} | {e.repo} @ {e.commit[:12]} | {e.label} | "
            f"{_md(e.content or '')} | {_md(e.licence)} | {len(s.files)} | {n_kept} | {status} |"
        )
    lines += [
        "",
        "## Per source and generator",
        "",
        "| source | generator | images |",
        "|---|---|---:|",
    ]
    for (src, gen), n in sorted(kept.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
        lines.append(f"| {_md(src or '')} | {_md(gen) or '(real)'} | {n} |")
    generators = Counter(it.generator for it in result.items if it.label == 1)
    lines += ["", "## Per generator (all sources)", "", "| generator | images |", "|---|---:|"]
    lines += [f"| {_md(str(g))} | {n} |" for g, n in generators.most_common()]
    lines += [
        "",
        "## Removed",
        "",
        f"Exact duplicates have identical bytes; near duplicates a 64-bit perceptual hash "
        f"within Hamming distance {result.near_threshold} of an image kept (the copy of the "
        "entry listed first is kept: mirrors lose to the repository they copy when it is "
        "listed first). A group with both real and fake images is removed whole. Every "
        "removed file is listed, with the copy kept, in the `.removed.csv` beside the manifest.",
        "",
        "| source | reason | images |",
        "|---|---|---:|",
    ]
    lines += [f"| {_md(s)} | {_md(r)} | {n} |" for (s, r), n in sorted(removed.items())]
    if not removed:
        lines.append("| - | none | 0 |")
    left = [
        (s.entry.source_name, why, n) for s in result.selections for why, n in s.left_out.items()
    ]
    lines += [
        "",
        "## Not selected by the rules",
        "",
        "| source | reason | files |",
        "|---|---|---:|",
    ]
    lines += [f"| {_md(s)} | {_md(w)} | {n} |" for s, w, n in left] or ["| - | none | 0 |"]
    notes = [s.entry for s in result.selections if s.entry.notes]
    if notes:
        lines += ["", "## Notes from the sources file", ""]
        lines += [f"- **{_md(e.source_name)}**: {_md(e.notes)}" for e in notes]
    if result.warnings:
        lines += ["", "## Warnings", ""] + [f"- {_md(w)}" for w in result.warnings]
    lines += [
        "",
        "## Licences",
        "",
        "Images stay under their repositories' terms (column licence above; 'none stated' "
        "means the repository states none: use for research only). Do not redistribute them "
        "with a model; the manifest lists paths into the clones only.",
        "",
    ]
    return "\n".join(lines)
