// fakescope web page: upload images, show each verdict, p(fake), the unsure band and why,
// the domain score, the file's Content Credentials and metadata, and the Grad-CAM overlay.
// Plain browser JavaScript, no build step, no external resources.
"use strict";

const state = { model: null, apiKey: sessionStorage.getItem("fakescope-api-key") || "" };
const pendingAfterKey = [];

function headers() {
  return state.apiKey ? { "X-API-Key": state.apiKey } : {};
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) return body.error.message;
  } catch (_) { /* not JSON */ }
  return `HTTP ${response.status}`;
}

function needKey() {
  document.getElementById("auth").hidden = false;
  document.getElementById("api-key").focus();
}

async function loadModel() {
  const info = document.getElementById("model-info");
  const response = await fetch("/v1/model", { headers: headers() });
  if (response.status === 401) {
    info.textContent = "an API key is needed to use this server";
    needKey();
    return;
  }
  if (!response.ok) {
    info.textContent = `model unavailable: ${await errorMessage(response)}`;
    return;
  }
  const card = await response.json();
  state.model = card.summary;
  const [low, high] = card.summary.unsure_band;
  const domain = card.summary.domain;
  const knows = domain
    ? `says “unsure” for images unlike its training data (${Math.round(100 * domain.quantile)}% of validation images count as alike)`
    : "cannot tell when an image is unlike its training data";
  info.textContent =
    `${card.summary.title} · input ${card.summary.input_size}×${card.summary.input_size} · ` +
    `threshold ${card.summary.threshold.toFixed(3)} · unsure between ${low.toFixed(2)} and ${high.toFixed(2)} · ` +
    knows +
    (card.faces_model ? ` · faces scored by ${card.faces_model.title}` : "");
}

// What each piece of provenance evidence says, and how far it can be trusted, in words.
const CLAIMS = {
  ai_generated: "AI-generated",
  ai_edited: "AI-edited",
  captured: "Captured (camera or capture app)",
  tampered: "Tampered: changed after signing",
  remote_manifest: "Remote manifest (not fetched)",
  signed: "Signed (no AI or capture claim)",
  capture_metadata: "Camera metadata (EXIF)",
  inconsistent_metadata: "Inconsistent metadata",
};
const CLAIM_TONE = {
  ai_generated: "ai",
  ai_edited: "ai",
  captured: "captured",
  tampered: "warn",
  inconsistent_metadata: "warn",
};
// How much a claim weighs in the verdict, where that is not obvious from the claim.
const WEIGHT_NOTES = {
  capture_metadata:
    "Not counted in the verdict: anyone can write EXIF, and most AI images and re-shared photos carry none.",
  inconsistent_metadata: "Counts a little towards fake.",
};
const TRUST = {
  trusted: "trusted signer",
  valid: "valid signature · signer on no trust list we hold",
  certificate_problem: "certificate problem · the label may still be honest",
  integrity_failure: "integrity failure · the signature no longer matches",
};
const SIGNALS = {
  c2pa: "C2PA Content Credentials",
  xmp: "XMP / IPTC metadata",
  metadata: "generator metadata",
  watermark: "invisible watermark",
  exif: "EXIF camera and editing metadata",
};
const OUT_OF_DOMAIN_PREFIX = "out of domain: ";

function percent(p) {
  return `${(100 * p).toFixed(1)}%`;
}

function drawScale(card, result, model, pixelsDiffer) {
  const band = card.querySelector(".band");
  const [low, high] = model.unsure_band;
  band.style.left = percent(low);
  band.style.width = percent(high - low);
  card.querySelector(".threshold").style.left = percent(model.threshold);
  const marker = card.querySelector(".marker");
  marker.style.left = percent(result.p_fake);
  marker.style.display = "block";
  if (pixelsDiffer) {
    const pixels = card.querySelector(".pixel-marker");
    pixels.style.left = percent(result.p_fake_pixels);
    pixels.style.display = "block";
    card.querySelector(".scale-legend").textContent += " · hollow: pixels alone";
  }
}

function show(element, text) {
  element.textContent = text;
  element.hidden = false;
}

function isOutOfDomain(result) {
  return Boolean(result.unsure) && result.in_domain === false;
}

function showVerdict(card, result, model) {
  const verdict = card.querySelector(".verdict");
  if (result.unsure) {
    // A person reads the headline: an unsure verdict is headlined "Unsure", never fake or
    // real. The side of the threshold it falls on is small print beneath; out of domain,
    // where p(fake) means little, there is no leaning to show.
    verdict.textContent = "Unsure";
    verdict.className = "verdict unsure";
    if (!isOutOfDomain(result)) show(card.querySelector(".leaning"), `leans ${result.label}`);
  } else {
    verdict.textContent = result.label;
    verdict.className = `verdict ${result.label}`;
  }
  if (result.unsure && result.unsure_reason) {
    let reason = result.unsure_reason;
    if (reason.startsWith(OUT_OF_DOMAIN_PREFIX)) reason = reason.slice(OUT_OF_DOMAIN_PREFIX.length);
    show(card.querySelector(".reason"), `Unsure: ${reason}`);
  }
  const probability = card.querySelector(".probability");
  const pixelsDiffer = Math.abs(result.p_fake - result.p_fake_pixels) >= 0.0005;
  probability.textContent =
    `p(fake) = ${result.p_fake.toFixed(3)}` + (pixelsDiffer ? " (pixels and provenance combined)" : "");
  probability.dataset.pFake = String(result.p_fake);
  if (pixelsDiffer) {
    const pixels = card.querySelector(".pixel-score");
    show(pixels, `pixels alone: p(fake) = ${result.p_fake_pixels.toFixed(3)}`);
    pixels.dataset.pFake = String(result.p_fake_pixels);
  }
  if (result.disagreement) {
    show(card.querySelector(".disagreement"), `Pixels and provenance disagree: ${result.disagreement}`);
  }
  if (result.domain_score !== null && result.domain_score !== undefined) {
    const where = result.in_domain
      ? "like its training data (1 or less)"
      : "out of domain (1 or less is like its training data): p(fake) means little here";
    const domain = card.querySelector(".domain");
    show(domain, `Domain score ${result.domain_score.toFixed(2)}: ${where}`);
    domain.dataset.inDomain = String(result.in_domain);
  }
  if (result.max_crop_p_fake !== null && result.max_crop_p_fake !== undefined) {
    show(card.querySelector(".max-crop"), `most suspicious crop: p(fake) = ${result.max_crop_p_fake.toFixed(3)}`);
  }
  drawScale(card, result, model, pixelsDiffer);
}

function showEvidence(card, evidence) {
  const list = card.querySelector(".evidence-list");
  list.replaceChildren();
  card.querySelector(".no-evidence").hidden = evidence.length > 0;
  const template = document.getElementById("evidence-template");
  for (const item of evidence) {
    const row = template.content.firstElementChild.cloneNode(true);
    row.dataset.claim = item.claim;
    row.dataset.trust = item.trust || "unsigned";
    const claim = row.querySelector(".claim");
    claim.textContent = CLAIMS[item.claim] || item.claim.replaceAll("_", " ");
    claim.classList.add(`tone-${CLAIM_TONE[item.claim] || "neutral"}`);
    row.querySelector(".by").textContent = item.by ? `by ${item.by}` : "";
    const trust = row.querySelector(".trust");
    trust.textContent = item.trust ? TRUST[item.trust] || item.trust.replaceAll("_", " ") : "unsigned";
    trust.classList.add(`trust-${item.trust || "unsigned"}`);
    row.querySelector(".decisive").hidden = !item.decisive;
    row.querySelector(".evidence-source").textContent = SIGNALS[item.signal] || item.signal;
    row.querySelector(".evidence-detail").textContent = item.detail;
    if (item.claim === "capture_metadata") showCamera(row.querySelector(".camera"), item.raw || {});
    if (WEIGHT_NOTES[item.claim]) show(row.querySelector(".evidence-weight"), WEIGHT_NOTES[item.claim]);
    list.append(row);
  }
}

// The camera fields of EXIF evidence, one labelled line each (make and model first).
function showCamera(element, raw) {
  const exposure = [];
  if (raw.exposure_time) {
    exposure.push(raw.exposure_time < 0.5 ? `1/${Math.round(1 / raw.exposure_time)} s` : `${raw.exposure_time} s`);
  }
  if (raw.f_number) exposure.push(`f/${raw.f_number.toFixed(1)}`);
  if (raw.iso) exposure.push(`ISO ${raw.iso}`);
  if (raw.focal_length_mm) exposure.push(`${raw.focal_length_mm} mm`);
  const fields = [
    ["Make", raw.make],
    ["Model", raw.model],
    ["Lens", raw.lens],
    ["Exposure", exposure.join(", ")],
    ["Taken", raw.captured_at ? raw.captured_at.replace("T", " ") : null],
    ["GPS", raw.gps ? "position present" : "none"],
    ["Software", raw.software],
  ];
  for (const [name, value] of fields) {
    if (!value) continue;
    const term = document.createElement("dt");
    term.textContent = name;
    const definition = document.createElement("dd");
    definition.textContent = value;
    definition.dataset.field = name.toLowerCase();
    element.append(term, definition);
  }
  element.hidden = false;
}

function showError(card, message) {
  const error = card.querySelector(".error");
  error.textContent = message;
  error.hidden = false;
  card.querySelector(".verdict").textContent = "no verdict";
  card.querySelector(".provenance").hidden = true;
  card.dataset.status = "error";
}

function newCard(file) {
  const card = document.getElementById("result-template").content.firstElementChild.cloneNode(true);
  card.querySelector(".filename").textContent = file.name;
  const original = card.querySelector(".original");
  original.src = URL.createObjectURL(file);
  original.onerror = () => { original.alt = "(the browser cannot display this file)"; };
  document.getElementById("results").prepend(card);
  return card;
}

// The face that was scored, drawn on the image. The box is in the original image's pixels;
// the picture is shown scaled to fit its square (object-fit: contain), so the box is scaled
// and shifted the same way.
function showFace(card, result) {
  const box = card.querySelector(".face-box");
  const original = card.querySelector(".original");
  if (result.face_box) {
    const place = () => {
      const w = original.naturalWidth, h = original.naturalHeight;
      if (!w || !h) return;
      const scale = Math.min(original.clientWidth / w, original.clientHeight / h);
      const left = original.clientLeft + (original.clientWidth - w * scale) / 2;
      const top = original.clientTop + (original.clientHeight - h * scale) / 2;
      const f = result.face_box;
      box.style.left = `${left + f.x * scale}px`;
      box.style.top = `${top + f.y * scale}px`;
      box.style.width = `${f.w * scale}px`;
      box.style.height = `${f.h * scale}px`;
      box.dataset.scale = String(scale);
      box.hidden = false;
    };
    if (original.complete) place(); else original.addEventListener("load", place, { once: true });
    const others = result.faces_found > 1 ? ` (the largest of ${result.faces_found} faces)` : "";
    // faces_found is null when the detector itself brought the face in (face-aware kind)
    const joined = result.faces_found == null && result.face_note;
    const text = joined
      ? `The face in the box: ${result.face_note}.`
      : `Scored the face in the box${others}.`;
    show(card.querySelector(".face-note"), text);
  } else if (result.face_note) {
    show(card.querySelector(".face-note"), `No face found: ${result.face_note.replace(/^no face found; /, "")}.`);
  }
}

async function predict(file, card) {
  const form = new FormData();
  form.append("files", file, file.name);
  if (document.getElementById("faces-checkbox").checked) form.append("faces", "true");
  const response = await fetch("/v1/predict", { method: "POST", body: form, headers: headers() });
  if (response.status === 401) {
    pendingAfterKey.push(file);
    card.remove();
    needKey();
    return null;
  }
  if (!response.ok) {
    showError(card, await errorMessage(response));
    return null;
  }
  const body = await response.json();
  const result = body.results[0];
  showVerdict(card, result, body.model);
  showEvidence(card, result.evidence);
  showFace(card, result);
  card.dataset.label = result.label;
  card.dataset.unsure = String(result.unsure);
  card.dataset.inDomain = String(result.in_domain);
  card.dataset.status = "scored";
  return result;
}

async function explain(file, card) {
  card.querySelector(".overlay-anyway").hidden = true;
  const form = new FormData();
  form.append("files", file, file.name);
  const response = await fetch("/v1/explain", { method: "POST", body: form, headers: headers() });
  const overlay = card.querySelector(".overlay");
  if (!response.ok) {
    overlay.alt = `no overlay: ${await errorMessage(response)}`;
    return;
  }
  overlay.src = URL.createObjectURL(await response.blob());
}

// A heat map over an image the detector knows nothing like looks like proof and is not:
// for those, and for detectors without Grad-CAM, the page says why there is none.
async function maybeExplain(file, card, result) {
  const caption = card.querySelector(".overlay-caption");
  const canExplain = !state.model || !state.model.capabilities || state.model.capabilities.can_explain;
  if (!canExplain) {
    card.querySelector(".overlay-figure").hidden = true;
    return;
  }
  if (isOutOfDomain(result)) {
    caption.textContent = "No heat map: the detector knows nothing like this image, so where it looks means little.";
    const anyway = card.querySelector(".overlay-anyway");
    anyway.hidden = false;
    anyway.addEventListener("click", () => {
      caption.textContent = "Grad-CAM (out of domain: read with care)";
      explain(file, card);
    }, { once: true });
    return;
  }
  await explain(file, card);
}

async function handle(file) {
  const card = newCard(file);
  try {
    const result = await predict(file, card);
    if (result) await maybeExplain(file, card, result);
  } catch (err) {
    showError(card, `could not reach the server: ${err}`);
  }
}

function handleFiles(files) {
  for (const file of files) handle(file);
}

function setUp() {
  const zone = document.getElementById("drop-zone");
  const input = document.getElementById("file-input");
  input.addEventListener("change", () => {
    handleFiles(Array.from(input.files));
    input.value = "";
  });
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    handleFiles(Array.from(event.dataTransfer.files));
  });
  zone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") input.click();
  });
  document.getElementById("api-key-save").addEventListener("click", () => {
    state.apiKey = document.getElementById("api-key").value.trim();
    sessionStorage.setItem("fakescope-api-key", state.apiKey);
    document.getElementById("auth").hidden = true;
    loadModel();
    handleFiles(pendingAfterKey.splice(0));
  });
  loadModel();
}

setUp();
