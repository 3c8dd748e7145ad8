"""Model cards: a bundle's metadata rendered for people. The card of one model's bundle (the
single kind, :func:`render_model_card`) and the sections every kind's card ends with
(:func:`use_and_limits`); each other kind renders its own (`fakescope.kinds`)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from fakescope.metrics.shapes import SCALAR_METRICS

if TYPE_CHECKING:
    from fakescope.bundle import BundleMeta

_LIMITS = (
    "Trained on one data source; accuracy on images from generators, cameras or "
    "post-processing it never saw can be much lower. Treat the probability as evidence, "
    "not proof, and route 'unsure' verdicts to a person."
)


# The order people read metrics in; bundle.json stores keys sorted, so a card rendered from
# it (update_meta) would otherwise list them alphabetically.
METRIC_ORDER = ("n", "threshold", *SCALAR_METRICS)
_METRIC_RANK = {key: i for i, key in enumerate(METRIC_ORDER)}


def _ordered(metrics: dict[str, object]) -> list[tuple[str, object]]:
    last = len(_METRIC_RANK)
    return sorted(metrics.items(), key=lambda item: (_METRIC_RANK.get(item[0], last), item[0]))


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def render_model_card(meta: BundleMeta) -> str:
    """Markdown model card from bundle metadata (recipe, data, metrics, use and limits)."""
    card = meta.card
    lines = [
        f"# Model card: {card.get('title', meta.architecture)}",
        "",
        card.get("summary", "A fakescope detector: p(fake) for an image."),
        "",
        *_model_section(meta),
        "",
        *_training_section(meta),
        "",
        *_metrics_section(meta),
        "",
        *use_and_limits(card, meta.versions, meta.created),
    ]
    return "\n".join(lines)


PHOTOS_ONLY = (
    "- content: photographs (bundle `content: photo`): a drawn or graphic image (plots, "
    "screenshots, diagrams, illustrations, flat artwork; `fakescope.data.content_type`) is "
    "answered unsure, 'not a photograph', with its p(fake) still reported"
)

_INTENDED_USE = (
    "Screening images for signs of AI generation or manipulation, as one signal among "
    "others, by ML engineers and trust-and-safety teams."
)


def use_and_limits(card: dict[str, Any], versions: object, created: str) -> list[str]:
    """The card's closing sections: intended use, limits, versions."""
    return [
        "## Intended use",
        "",
        card.get("intended_use", _INTENDED_USE),
        "",
        "## Limits",
        "",
        card.get("limits", _LIMITS),
        "",
        f"Versions: {json.dumps(versions)}. Created {created}.",
        "",
    ]


def _model_section(meta: BundleMeta) -> list[str]:
    """What the model is and how it decides: architecture, input, domain, threshold."""
    pre = meta.preprocessing
    return [
        "## Model",
        "",
        f"- architecture: `{meta.architecture}` {json.dumps(meta.model_kwargs)}",
        f"- input: {pre.input_size}x{pre.input_size} RGB, resize `{pre.resize}` "
        + (
            f"({pre.crops} crops at the image's own resolution, logits averaged) "
            if pre.multi_crop
            else ""
        )
        + f"({pre.interpolation}), mean {list(pre.mean)}, std {list(pre.std)}",
        "- domain: "
        + (
            f"Mahalanobis distance in a {meta.domain.get('dims')}-dimensional feature space; "
            f"{meta.domain.get('quantile', 0.95):.0%} of validation images count as in-domain, "
            "others are reported 'unsure: out of domain'"
            if meta.domain
            else "not described (no domain score; `fakescope domain BUNDLE DATA` adds one)"
        ),
        "- faces: "
        + (
            "trained on face crops: the largest face of each image, found by the "
            f"`{meta.faces.get('finder', 'auto')}` face finder, margin "
            f"{meta.faces.get('margin')}, {'square' if meta.faces.get('square') else 'box'} "
            f"crop{', turned to level the eyes' if meta.faces.get('align') else ''}, faces "
            f"under {meta.faces.get('min_size')} px ignored; `--faces` crops the same way"
            if meta.faces
            else "whole images (with `--faces` the default face crop policy is used)"
        ),
        f"- labels: {list(meta.labels)} (output is one logit; sigmoid gives p(fake))",
        f"- decision threshold: {meta.threshold:.4f} (chosen on validation data, "
        f"policy `{meta.training.get('threshold_policy', 'max_f1')}`)",
        f"- temperature: {meta.temperature:.4f}",
        f"- unsure band: p(fake) in [{meta.unsure_band[0]:.3f}, {meta.unsure_band[1]:.3f}]"
        + _band_origin(meta),
        *([PHOTOS_ONLY] if meta.photos_only else []),
    ]


def _band_origin(meta: BundleMeta) -> str:
    """How the unsure band was set: the margin, or fitted to a budget (with its estimate)."""
    fit = meta.unsure_fit
    if not fit:
        return f" (threshold +/- {meta.unsure_margin:g})"
    cross = fit.get("cross_fit", {})

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1%}"

    worst = "every source" if fit.get("by") == "source" else "the pooled validation images"
    return (
        f", fitted on validation data so that on {worst} at most "
        f"{pct(fit.get('max_real_called_fake'))} of real images are confidently called fake and "
        f"at most {pct(fit.get('max_fake_called_real'))} of fakes confidently called real; "
        f"estimated on new images of the same sources (two-fold cross-fit): reals called fake "
        f"{pct(cross.get('real_called_fake'))}, fakes called real "
        f"{pct(cross.get('fake_called_real'))}, answered confidently {pct(cross.get('coverage'))}"
    )


def _training_section(meta: BundleMeta) -> list[str]:
    """On what data, with which recipe and command, for how long."""
    training = meta.training
    lines = [
        "## Training",
        "",
        f"- data: `{training.get('source', '?')}`",
        f"- data fingerprint: `{meta.data_fingerprint}`",
        f"- images: {training.get('n_train', '?')} train / {training.get('n_val', '?')} validation"
        f" (skipped unreadable: {training.get('n_skipped', 0)})",
        f"- recipe: `{training.get('recipe_name', '?')}`",
        f"- command: `{training.get('command', '?')}`",
        f"- epochs run: {training.get('epochs_run', '?')}, "
        f"wall time {training.get('train_seconds', 0) / 60:.1f} min "
        f"on {training.get('device', '?')}",
    ]
    chain = training.get("chain_train_seconds")
    if chain is not None and chain > training.get("train_seconds", 0) + 1:
        lines.append(f"- training with the stages it started from: {chain / 60:.1f} min in all")
    return lines


def _metrics_section(meta: BundleMeta) -> list[str]:
    """The validation metrics table, and one row per source for multi-source runs."""
    lines = [
        "## Validation metrics",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    for key, value in _ordered(meta.metrics):
        if isinstance(value, int | float):
            lines.append(f"| {key} | {_fmt(value)} |")
    by_source = meta.metrics.get("by_source") or {}
    if by_source:
        lines += ["", "### Per source", "", "| source | n | accuracy | ROC-AUC | F1 |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for name, m in sorted(by_source.items()):
            lines.append(
                f"| {name} | {m.get('n')} | {_fmt(m.get('accuracy'))} | "
                f"{_fmt(m.get('roc_auc'))} | {_fmt(m.get('f1'))} |"
            )
    return lines
