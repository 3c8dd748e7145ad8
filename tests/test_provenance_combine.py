"""The combination of pixel score and provenance: monotone in AI evidence, absent
evidence adds nothing, decisive evidence overrides, capture counts mildly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fakescope.provenance import Evidence, combine, evidence_weight

AI_POOL = [
    Evidence("c2pa", "ai_generated", "DALL·E", "valid", "c2pa", decisive=True),
    Evidence("c2pa", "ai_generated", "X", "integrity_failure", "broken c2pa"),
    Evidence("c2pa", "ai_edited", "Photoshop", "certificate_problem", "edit", decisive=True),
    Evidence("xmp", "ai_generated", None, None, "xmp"),
    Evidence("xmp", "ai_edited", "Made with Google AI", None, "credit"),
    Evidence("metadata", "ai_generated", "AUTOMATIC1111", None, "params"),
    Evidence("watermark", "ai_generated", "Stable Diffusion XL", None, "wm", decisive=True),
]
OTHER_POOL = [
    Evidence("c2pa", "captured", "Leica", "trusted", "camera"),
    Evidence("c2pa", "captured", "App", "valid", "app"),
    Evidence("xmp", "captured", None, None, "unsigned capture"),
    Evidence("c2pa", "tampered", "X", "integrity_failure", "broken"),
    Evidence("c2pa", "remote_manifest", None, None, "remote"),
    Evidence("c2pa", "signed", "Adobe", "valid", "no ai"),
]
# no subnormals: a training test earlier in the same process may flush them to zero
probabilities = st.floats(min_value=0.0, max_value=1.0, allow_nan=False, allow_subnormal=False)


@given(
    p=probabilities,
    base=st.lists(st.sampled_from(AI_POOL + OTHER_POOL), max_size=6),
    extra=st.lists(st.sampled_from(AI_POOL), min_size=1, max_size=4),
)
def test_more_ai_evidence_never_lowers_p_fake(
    p: float, base: list[Evidence], extra: list[Evidence]
) -> None:
    before = combine(p, base).p_fake
    after = combine(p, base + extra).p_fake
    assert after >= before
    assert 0.0 <= after <= 1.0


@given(p=probabilities)
def test_absent_evidence_adds_nothing(p: float) -> None:
    result = combine(p, [])
    assert result.p_fake == p
    assert result.p_fake_pixels == p
    assert not result.overridden
    assert result.disagreement is None


@given(p=probabilities, item=st.sampled_from([e for e in AI_POOL if e.decisive]))
def test_decisive_ai_evidence_overrides_the_pixels(p: float, item: Evidence) -> None:
    result = combine(p, [item])
    assert result.p_fake >= 0.99
    assert result.overridden


@given(p=probabilities, item=st.sampled_from([e for e in AI_POOL if not e.decisive]))
def test_unsigned_ai_labels_make_the_verdict_fake(p: float, item: Evidence) -> None:
    if item.trust == "integrity_failure":
        assert combine(p, [item]).p_fake >= p
    else:
        assert combine(p, [item]).p_fake >= 0.95


def test_capture_counts_mildly_for_real_and_unsigned_capture_not_at_all() -> None:
    camera, app, unsigned = OTHER_POOL[:3]
    assert 0.3 < combine(0.7, [camera]).p_fake < 0.7
    assert combine(0.7, [camera]).p_fake < combine(0.7, [app]).p_fake < 0.7
    assert combine(0.7, [unsigned]).p_fake == 0.7
    assert combine(0.2, [camera]).p_fake <= 0.2


def test_one_kind_counts_once() -> None:
    params = AI_POOL[5]
    once = combine(0.01, [params])
    assert combine(0.01, [params, params, params]).log_odds == once.log_odds
    assert once.weights == {"metadata/ai_generated": evidence_weight(params)}


def test_disagreement_is_reported_both_ways() -> None:
    ai = combine(0.1, [AI_POOL[0]], threshold=0.5)
    assert ai.disagreement and "pixels say real" in ai.disagreement
    capture = combine(0.9, [OTHER_POOL[0]], threshold=0.5)
    assert capture.disagreement and "captured" in capture.disagreement
    assert combine(0.9, [AI_POOL[0]]).disagreement is None


def test_bad_pixel_score_is_refused() -> None:
    with pytest.raises(ValueError):
        combine(1.5, [])
    with pytest.raises(ValueError):
        combine(float("nan"), [])


def test_to_dict_is_json_ready() -> None:
    import json

    result = combine(0.2, AI_POOL[:2])
    assert json.loads(json.dumps(result.to_dict()))["p_fake"] == result.p_fake
    assert json.loads(json.dumps(AI_POOL[0].to_dict()))["claim"] == "ai_generated"
