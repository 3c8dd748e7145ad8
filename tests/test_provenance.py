"""Provenance read from real files (../shared/fixtures/provenance, see its SOURCES.md):
each signal on its fixture, integrity failures apart from certificate problems, no
network access for remote manifests, and nothing labelled AI that does not say so."""

from __future__ import annotations

import http.server
import io
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from fakescope.provenance import (
    Evidence,
    combine,
    load_trust_anchors,
    read_provenance,
    read_provenance_report,
    shipped_trust_anchors,
)

pytestmark = pytest.mark.integration


def evidence_of(folder: Path, name: str, **kwargs: object) -> list[Evidence]:
    return read_provenance((folder / name).read_bytes(), name, **kwargs)  # type: ignore[arg-type]


# file, signal, claim, a word of `by`, trust
AI_FILES = [
    ("c2pa_openai_dalle3_2024.webp", "c2pa", "ai_generated", "DALL", "valid"),
    ("c2pa_bing_image_creator_2024.jpg", "c2pa", "ai_generated", "Image Creator",
     "certificate_problem"),
    ("c2pa_photoshop_firefly_edit.jpg", "c2pa", "ai_edited", "Photoshop", "valid"),
    ("a1111_parameters.png", "metadata", "ai_generated", "AUTOMATIC1111", None),
    ("a1111_usercomment.jpg", "metadata", "ai_generated", "AUTOMATIC1111", None),
    ("a1111_stealth.png", "metadata", "ai_generated", "AUTOMATIC1111", None),
    ("comfyui_prompt_workflow.png", "metadata", "ai_generated", "ComfyUI", None),
    ("fooocus_parameters.png", "metadata", "ai_generated", "Fooocus", None),
    ("invokeai_metadata.png", "metadata", "ai_generated", "InvokeAI", None),
    ("invokeai_sdmeta.png", "metadata", "ai_generated", "InvokeAI", None),
    ("novelai.png", "metadata", "ai_generated", "NovelAI", None),
]  # fmt: skip


@pytest.mark.parametrize(("name", "signal", "claim", "by", "trust"), AI_FILES)
def test_ai_labelled_file_gets_its_claim_and_a_fake_verdict(
    provenance_fixtures: Path, name: str, signal: str, claim: str, by: str, trust: str | None
) -> None:
    evidence = evidence_of(provenance_fixtures, name)
    matching = [e for e in evidence if e.signal == signal and e.claim == claim]
    assert matching, evidence
    assert by in (matching[0].by or ""), matching[0]
    assert matching[0].trust == trust
    assert matching[0].detail
    # Whatever the pixels say, an AI label makes the verdict fake.
    assert combine(0.001, evidence, threshold=0.6).p_fake > 0.95


def test_intact_ai_c2pa_is_decisive_even_with_a_certificate_problem(
    provenance_fixtures: Path,
) -> None:
    for name in ("c2pa_openai_dalle3_2024.webp", "c2pa_bing_image_creator_2024.jpg"):
        (item,) = [e for e in evidence_of(provenance_fixtures, name) if e.is_ai]
        assert item.decisive
        assert combine(0.0, [item]).overridden


def test_openai_label_is_found_in_the_parent_manifest(provenance_fixtures: Path) -> None:
    (item,) = evidence_of(provenance_fixtures, "c2pa_openai_dalle3_2024.webp")
    assert "parent manifest" in item.detail
    assert item.raw["manifests"] == 2
    assert "OpenAI" in item.detail


@pytest.mark.parametrize(
    ("name", "claim"),
    [
        ("c2pa_test_C.jpg", "signed"),  # algorithmicMedia is not generative AI
        ("c2pa_test_cawg_training_mining.jpg", "captured"),  # training-mining is no AI label
        ("c2pa_remote_manifest.jpg", "remote_manifest"),
    ],
)
def test_files_without_an_ai_label_get_no_ai_claim(
    provenance_fixtures: Path, name: str, claim: str
) -> None:
    evidence = evidence_of(provenance_fixtures, name)
    assert [e.claim for e in evidence] == [claim]
    assert not any(e.is_ai for e in evidence)
    assert combine(0.3, evidence).p_fake <= 0.3


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("c2pa_test_XCA_tampered.jpg", "assertion.dataHash.mismatch"),
        ("c2pa_test_E-sig-CA.jpg", "claimSignature.mismatch"),
    ],
)
def test_integrity_failure_is_a_tampered_claim(
    provenance_fixtures: Path, name: str, code: str
) -> None:
    (item,) = evidence_of(provenance_fixtures, name)
    assert (item.claim, item.trust) == ("tampered", "integrity_failure")
    assert code in item.raw["failure_codes"]
    assert not item.decisive


def test_certificate_problem_is_not_an_integrity_failure(provenance_fixtures: Path) -> None:
    # Bing's signer lacks the required EKU: the state is Invalid, but nothing changed
    # after signing, so the label stands and nothing is "tampered".
    evidence = evidence_of(provenance_fixtures, "c2pa_bing_image_creator_2024.jpg")
    assert [(e.claim, e.trust) for e in evidence] == [("ai_generated", "certificate_problem")]
    assert "signingCredential.invalid" in evidence[0].raw["failure_codes"]
    assert not any(c.startswith("assertion.") for c in evidence[0].raw["failure_codes"])


def test_user_trust_anchors_make_a_signer_trusted(provenance_fixtures: Path) -> None:
    (plain,) = evidence_of(provenance_fixtures, "c2pa_test_C.jpg")
    assert plain.trust == "valid"
    anchors = load_trust_anchors([provenance_fixtures / "c2pa_test_cert_root_bundle.pem"])
    (trusted,) = evidence_of(provenance_fixtures, "c2pa_test_C.jpg", trust_anchors=anchors)
    assert trusted.trust == "trusted"


def test_official_trust_lists_ship_inside_the_package() -> None:
    pem = shipped_trust_anchors()
    assert pem.count("-----BEGIN CERTIFICATE-----") >= 50


def test_load_trust_anchors_refuses_a_file_without_certificates(tmp_path: Path) -> None:
    bad = tmp_path / "not.pem"
    bad.write_text("hello")
    with pytest.raises(ValueError, match="no PEM certificate"):
        load_trust_anchors([bad])


# -- remote manifests are reported, never fetched --------------------------------------------
_REMOTE_URL = (
    b"https://cai-manifests.adobe.com/manifests/adobe-urn-uuid-5f37e182-3687-462e-a7fb-573462780391"
)


@pytest.fixture()
def local_server() -> Iterator[tuple[int, list[str]]]:
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            hits.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], hits
    server.shutdown()
    server.server_close()


def _pointing_at(data: bytes, port: int) -> bytes:
    # Same length, so the XMP segment stays well-formed.
    url = f"http://127.0.0.1:{port}/manifest/".encode()
    url += b"x" * (len(_REMOTE_URL) - len(url))
    assert _REMOTE_URL in data
    return data.replace(_REMOTE_URL, url)


def test_remote_manifest_is_reported_and_never_fetched(
    provenance_fixtures: Path,
    local_server: tuple[int, list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port, hits = local_server
    data = _pointing_at((provenance_fixtures / "c2pa_remote_manifest.jpg").read_bytes(), port)

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)  # the Python side
    evidence = read_provenance(data, "remote.jpg")  # the Rust side: the server counts hits
    assert [e.claim for e in evidence] == ["remote_manifest"]
    assert f"127.0.0.1:{port}" in evidence[0].detail
    assert hits == []


def test_the_no_fetch_test_would_see_a_fetch(
    provenance_fixtures: Path, local_server: tuple[int, list[str]]
) -> None:
    """Control: with fetching switched on, the same file does hit the local server, so
    the test above would fail if fakescope let c2pa fetch."""
    import c2pa

    port, hits = local_server
    data = _pointing_at((provenance_fixtures / "c2pa_remote_manifest.jpg").read_bytes(), port)
    context = c2pa.Context.from_dict({"verify": {"remote_manifest_fetch": True}})
    with pytest.raises(c2pa.C2paError):
        c2pa.Reader("image/jpeg", io.BytesIO(data), context=context)
    assert hits


# -- malformed input --------------------------------------------------------------------------
def test_truncated_c2pa_files_do_not_crash(provenance_fixtures: Path) -> None:
    for name in ("c2pa_bing_image_creator_2024.jpg", "c2pa_openai_dalle3_2024.webp"):
        data = (provenance_fixtures / name).read_bytes()
        for cut in (20, 200, 2000, len(data) // 2, len(data) - 10):
            report = read_provenance_report(data[:cut], name)
            # The data hash covers the whole file: a cut file is never an intact label.
            assert not any(e.decisive for e in report.evidence), (cut, report)


def test_heic_and_avif_are_sniffed_from_their_bytes() -> None:
    import numpy as np
    from imagegen import encode

    from fakescope.provenance.formats import sniff_mime

    pixels = np.full((16, 16, 3), 128, dtype=np.uint8)
    assert sniff_mime(encode(pixels, "HEIF")) == "image/heic"
    assert sniff_mime(encode(pixels, "AVIF")) == "image/avif"
    # A generic major brand (mif1) with AVIF among the compatible brands is AVIF.
    ftyp = (24).to_bytes(4, "big") + b"ftypmif1" + b"\x00" * 4 + b"miafavif"
    assert sniff_mime(ftyp + b"\x00" * 16) == "image/avif"
    ftyp = (24).to_bytes(4, "big") + b"ftypmif1" + b"\x00" * 4 + b"miafheic"
    assert sniff_mime(ftyp + b"\x00" * 16) == "image/heic"
