"""The rows of an evaluation beside the pooled metrics: per data set or generator, selective
risk (coverage, risk, AURC, confident mistakes) and what the files' provenance changed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from fakescope.detectors import Detector, PixelScores
from fakescope.evaluation.metrics import binary_metrics
from fakescope.evaluation.results import (
    GroupRow,
    GroupTable,
    ProvenanceSummary,
    SelectiveRow,
    SelectiveSummary,
)
from fakescope.evaluation.scored import ScoredSet
from fakescope.evaluation.selective import MistakeRow, confident_mistakes, selective_risk
from fakescope.verdict.rule import OUT_OF_DOMAIN, UNSURE_BAND, verdicts

GROUP_KEYS = ("accuracy", "real_accuracy", "fake_accuracy", "f1", "roc_auc", "average_precision")


def group_row(name: str, labels: np.ndarray, p_fake: np.ndarray, threshold: float) -> GroupRow:
    m = binary_metrics(labels, p_fake, threshold, bootstrap=0)
    normalized = m["confusion_matrix"]["normalized"]
    return {
        "group": name,
        "n": m["n"],
        "n_real": int(np.sum(labels == 0)),
        "n_fake": int(np.sum(labels == 1)),
        "accuracy": m["accuracy"],
        "real_accuracy": normalized[0][0],
        "fake_accuracy": normalized[1][1],
        "f1": m["f1"],
        "roc_auc": m["roc_auc"],
        "average_precision": m["average_precision"],
        "eer": m["eer"],
    }


def per_group_table(
    groups: Sequence[tuple[str, np.ndarray, np.ndarray]], threshold: float, *, by: str
) -> GroupTable:
    """One row per (name, labels, p_fake) group plus the unweighted mean row."""
    rows = [group_row(name, y, p, threshold) for name, y, p in groups]
    mean: dict[str, float | int | str | None] = {"group": "mean", "n": sum(r["n"] for r in rows)}
    for key in (*GROUP_KEYS, "eer"):
        values = [v for r in rows if (v := r[key]) is not None]  # type: ignore[literal-required]
        mean[key] = float(np.mean(values)) if values else None
    return {"by": by, "rows": rows, "mean": mean}


def generator_masks(scored: ScoredSet) -> list[tuple[str, np.ndarray]] | None:
    """(generator, boolean mask) per generator; None when there are fewer than two.

    Reals without a generator are shared by every group (each row = all reals + that
    generator's fakes, so AUC is defined); reals with one belong to their generator's row.
    """
    gens = scored.generators or []
    names = sorted({g for g in gens if g})
    if len(names) < 2:
        return None
    gens_arr = np.array([g or "" for g in gens], dtype=object)
    shared_reals = (gens_arr == "") & (scored.labels == 0)
    return [(name, (gens_arr == name) | shared_reals) for name in names]


def generator_groups(scored: ScoredSet) -> list[tuple[str, np.ndarray, np.ndarray]] | None:
    """(generator, labels, p_fake) per generator (see `generator_masks`), or None."""
    masks = generator_masks(scored)
    if masks is None:
        return None
    return [(name, scored.labels[mask], scored.p_fake[mask]) for name, mask in masks]


SELECTIVE_KEYS = (
    "coverage",
    "risk",
    "confident_wrong",
    "real_called_fake_confidently",
    "fake_called_real_confidently",
    "aurc",
)


def selective_row(name: str, scored: ScoredSet, threshold: float) -> SelectiveRow:
    """Coverage, risk and the risk-coverage curve of judged images (`scored.predictions`):
    confident answers are the verdicts that are not unsure, for either reason."""
    unsure = scored.unsure()
    if unsure is None:
        raise ValueError("selective risk needs the verdicts (ScoredSet.predictions)")
    result = selective_risk(scored.labels, scored.p_fake, threshold, unsure, scored.in_domain())
    reasons = Counter(p.unsure_reason for p in scored.predictions or [])
    return {
        "group": name,
        "n": result["n"],
        "coverage": result["coverage"],
        "risk": result["risk"],
        "confident_wrong": result["confident_wrong"],
        "real_called_fake_confidently": result["real_called_fake_confidently"],
        "fake_called_real_confidently": result["fake_called_real_confidently"],
        "aurc": result["aurc"],
        "unsure": int(unsure.sum()),
        "unsure_band": reasons[UNSURE_BAND],
        "out_of_domain": reasons[OUT_OF_DOMAIN],
        "curve_coverage": result["curve_coverage"],
        "curve_risk": result["curve_risk"],
    }


def selective_summary(
    scored: ScoredSet,
    groups: Sequence[tuple[str, ScoredSet]],
    *,
    threshold: float,
    band: tuple[float, float],
    by: str | None,
) -> SelectiveSummary:
    """metrics.json["selective"]: overall and one row per group, and the confident
    mistakes in both directions per source and per generator."""
    return {
        "threshold": float(threshold),
        "unsure_band": [band[0], band[1]],
        "domain_model": scored.in_domain() is not None,
        "overall": selective_row("overall", scored, threshold),
        "by": by if groups else None,
        "per_group": [selective_row(name, part, threshold) for name, part in groups],
        "mistakes": mistakes_by(scored, threshold),
    }


def mistakes_by(scored: ScoredSet, threshold: float) -> dict[str, list[MistakeRow]]:
    """Reals confidently called fake and AI images confidently called real, per "source"
    and per "generator" named by the images (a column left empty gives no entry)."""
    unsure = scored.unsure()
    if unsure is None:
        raise ValueError("confident mistakes need the verdicts (ScoredSet.predictions)")
    out: dict[str, list[MistakeRow]] = {}
    for by, names in (("source", scored.sources), ("generator", scored.generators)):
        if names and any(names):
            groups = np.array([n or "" for n in names], dtype=object)
            out[by] = confident_mistakes(scored.labels, scored.p_fake, threshold, unsure, groups)
    return out


def provenance_summary(scored: ScoredSet, detector: Detector, *, read: bool) -> ProvenanceSummary:
    """How many images carried which signal/claim, and how many verdicts the evidence
    changed: the verdict from the pixels alone (same rule, no evidence) against the final."""
    predictions = scored.predictions or []
    counts: Counter[str] = Counter()
    changed = labels_changed = 0
    for p in predictions:
        counts.update({f"{e['signal']}/{e['claim']}" for e in p.evidence})  # once per image
        if not p.evidence or p.p_fake_pixels is None:
            continue
        alone = verdicts(
            detector,
            [p.path],
            PixelScores(
                np.array([p.p_fake_pixels]),
                None if p.domain_score is None else np.array([p.domain_score]),
            ),
            contents=[p.content],
        )[0]
        labels_changed += alone.label != p.label
        changed += (alone.label, alone.unsure) != (p.label, p.unsure)
    return {
        "read": read,
        "images": len(predictions),
        "images_with_evidence": sum(1 for p in predictions if p.evidence),
        "counts": dict(sorted(counts.items())),
        "verdicts_changed": changed,
        "labels_changed": labels_changed,
        "disagreements": sum(1 for p in predictions if p.disagreement),
    }


def add_selective_columns(per_group: GroupTable, selective: SelectiveSummary) -> None:
    """Coverage, risk and AURC in the per-group table, and their unweighted mean."""
    for row, sel in zip(per_group["rows"], selective["per_group"], strict=True):
        row["coverage"] = sel["coverage"]
        row["risk"] = sel["risk"]
        row["confident_wrong"] = sel["confident_wrong"]
        row["real_called_fake_confidently"] = sel["real_called_fake_confidently"]
        row["fake_called_real_confidently"] = sel["fake_called_real_confidently"]
        row["aurc"] = sel["aurc"]
    for key in SELECTIVE_KEYS:
        values = [v for sel in selective["per_group"] if (v := sel[key]) is not None]  # type: ignore[literal-required]
        per_group["mean"][key] = float(np.mean(values)) if values else None
