"""The ensemble's model card: the rule, the threshold, and each member's validation figures."""

from __future__ import annotations

from typing import Any


def render_card(meta: dict[str, Any]) -> str:
    """MODEL_CARD.md of an ensemble."""
    m, v = meta["metrics"], meta["validation"]
    lines = [
        "# fakescope ensemble",
        "",
        f"Rule: **{meta['rule']}** over {len(meta['members'])} members. Threshold "
        f"{meta['threshold']:.4f} (max F1 on validation), temperature 1, unsure band "
        f"[{meta['unsure_band'][0]:.4f}, {meta['unsure_band'][1]:.4f}].",
        "",
        f"Validation: {v['source']}"
        + (f" (split {v['split']})" if v.get("split") else "")
        + f", n = {v['n']}; {v['scores']}.",
        "",
        "| model | weight | accuracy | ROC-AUC | F1 |",
        "|---|---|---|---|---|",
        f"| ensemble | | {_f(m.get('accuracy'))} | {_f(m.get('roc_auc'))} | {_f(m.get('f1'))} |",
    ]
    weights = meta.get("weights") or [None] * len(meta["members"])
    for entry, w in zip(meta["members"], weights, strict=True):
        s = entry["validation"]
        lines.append(
            f"| {entry['name']} ({entry['architecture']}, {entry['input_size']}px) | {_f(w)} | "
            f"{_f(s.get('accuracy'))} | {_f(s.get('roc_auc'))} | {_f(s.get('f1'))} |"
        )
    if meta.get("stacking"):
        st = meta["stacking"]
        coef = ", ".join(f"{c:.4f}" for c in st["coef"])
        lines += ["", f"Stacking: logit = {st['intercept']:.4f} + [{coef}] · member logits."]
    lines += [
        "",
        "The ensemble row is measured on the validation data it was fitted on (optimistic); "
        "evaluate it on held-out data with `fakescope evaluate --bundle ENSEMBLE`.",
        "",
    ]
    return "\n".join(lines)


def _f(value: object) -> str:
    return "-" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)
