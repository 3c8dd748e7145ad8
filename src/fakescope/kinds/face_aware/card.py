"""The face-aware bundle's model card: what it combines and when the face specialist joins."""

from __future__ import annotations

from typing import Any

from fakescope.model_card import use_and_limits


def render_face_aware_card(meta: dict[str, Any]) -> str:
    """Markdown model card of a face-aware bundle (its bundle.json as a dict): what it
    combines, when the face specialist joins, use and limits."""
    card, route, members = meta.get("card", {}), meta["route"], meta["members"]

    def member(role: str) -> str:
        m = members[role]
        where = "shipped detector" if m["shipped"] else "copied into this bundle from"
        return f"`{m['source_bundle']}` ({where}; sha256 {m['sha256'][:12]}…)"

    lines = [
        f"# Model card: {card.get('title', 'fakescope face-aware detector')}",
        "",
        card.get("summary", "A whole-image detector with a face specialist's second look."),
        "",
        "## Model",
        "",
        f"- Whole-image member (scores every image; its threshold, unsure band, domain "
        f"score and what it is for, any image or photographs only, decide the verdict): "
        f"{member('whole')}",
        f"- Face member (scores the largest face's crop): {member('faces')}",
        f"- The face member joins when the largest face covers at least "
        f"{route['min_face_fraction']:.0%} of the image; its logit (less its threshold's) "
        f"then weighs {route['face_weight']:.0%} of the average, the whole-image member's the "
        "rest. Grad-CAM shows the whole-image member's map.",
        "",
        *use_and_limits(card, meta.get("versions", {}), meta.get("created", "")),
    ]
    return "\n".join(lines)
