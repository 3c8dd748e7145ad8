"""The zero-shot bundle's model card: what real data the coder modelled, how the threshold
was fitted, what it measured and what it was never tested on."""

from __future__ import annotations

import json
from typing import Any

from fakescope.kinds.zero_shot.fit import READABILITY_FEATURES


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _linear(weights: dict[str, float]) -> str:
    return " + ".join(f"{w:g}*{name}" for name, w in weights.items())


def render_zero_shot_card(meta: dict[str, Any]) -> str:
    """Markdown card of a zero-shot bundle.json."""
    card = meta.get("card", {})
    stat = meta.get("statistic", {})
    shape = meta.get("model_kwargs", {})
    pre = meta.get("preprocessing", {})
    training = meta.get("training", {})
    lines = [
        f"# Model card: {card.get('title', 'zero-shot detector (real-image coder)')}",
        "",
        card.get(
            "summary",
            "p(fake) from how an image's actual lossless coding cost under a model of real "
            "photos compares with the cost the model expected (ZED-style coding gap). It "
            "never saw a generated image.",
        ),
        "",
        "## Model",
        "",
        f"- kind: zero_shot; architecture: {meta.get('architecture')}",
        f"- coder: 3 levels (rounded 2x2 mean pyramid), width {shape.get('width')}, "
        f"{shape.get('blocks')} residual blocks per level, {shape.get('mixtures')} "
        "discretised logistics per sub-pixel; "
        + (
            f"each level also reads its own already-coded pixels ({shape['context']}x"
            f"{shape['context']} causal context)"
            if shape.get("context")
            else "each level read from the coarser level alone (no causal context)"
        ),
        f"- reads {pre.get('crops')} crops of {pre.get('input_size')} px at the image's own "
        "resolution (an image smaller than that is enlarged and reported unsure)",
        f"- statistic: score = {_linear(stat.get('weights', {}))}"
        + (
            f", two-sided: its distance from the real photos' median {_fmt(stat['reference'])}"
            " (coded more cheaply or more expensively than real photos are); "
            if stat.get("reference") is not None
            else "; "
        )
        + f"threshold {_fmt(stat.get('center'))} (a {stat.get('fpr')} share of held-back "
        f"real photos above it), scale {_fmt(stat.get('scale'))}",
        f"- unsure when p(fake) is in {meta.get('unsure_band')} or when the finest level is "
        f"too smooth to read ({stat.get('readability_feature')}, "
        f"{READABILITY_FEATURES.get(str(stat.get('readability_feature')), (None, '?'))[1]}, "
        f"below {_fmt(stat.get('readability_floor'))})",
        "",
        "## Real data modelled (never a fake)",
        "",
        card.get("data", "see training"),
        "",
        "## Training",
        "",
        "```json",
        json.dumps(training, indent=2, sort_keys=True),
        "```",
        "",
        "## Measured",
        "",
    ]
    metrics = meta.get("metrics", {})
    if metrics:
        lines += ["```json", json.dumps(metrics, indent=2, sort_keys=True), "```"]
    else:
        lines.append("nothing measured yet")
    lines += [
        "",
        "## Use and limits",
        "",
        card.get(
            "limits",
            "A statistical test against a model of real photos: generators, cameras and "
            "post-processing it was never tested on can move the statistic either way. Treat "
            "the probability as evidence, not proof, and route 'unsure' verdicts to a person.",
        ),
        "",
        f"Never tested on: {card.get('never_tested_on', 'anything beyond the figures above')}",
        "",
        f"Created {meta.get('created', '')}; versions {json.dumps(meta.get('versions', {}))}",
        "",
    ]
    return "\n".join(lines)
