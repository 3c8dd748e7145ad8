// fakescope web page: upload images, show each verdict, p(fake), the unsure band and the
// Grad-CAM overlay. Plain browser JavaScript, no build step, no external resources.
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
  info.textContent =
    `${card.summary.title} · input ${card.summary.input_size}×${card.summary.input_size} · ` +
    `threshold ${card.summary.threshold.toFixed(3)} · unsure between ${low.toFixed(2)} and ${high.toFixed(2)}`;
}

function percent(p) {
  return `${(100 * p).toFixed(1)}%`;
}

function drawScale(card, p, model) {
  const band = card.querySelector(".band");
  const [low, high] = model.unsure_band;
  band.style.left = percent(low);
  band.style.width = percent(high - low);
  card.querySelector(".threshold").style.left = percent(model.threshold);
  const marker = card.querySelector(".marker");
  marker.style.left = percent(p);
  marker.style.display = "block";
}

function showError(card, message) {
  const error = card.querySelector(".error");
  error.textContent = message;
  error.hidden = false;
  card.querySelector(".verdict").textContent = "no verdict";
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

async function predict(file, card) {
  const form = new FormData();
  form.append("files", file, file.name);
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
  const verdict = card.querySelector(".verdict");
  verdict.textContent = result.label;
  verdict.className = `verdict ${result.label}`;
  if (result.unsure) {
    const tag = document.createElement("span");
    tag.className = "unsure-tag";
    tag.textContent = "(unsure)";
    verdict.append(tag);
  }
  const probability = card.querySelector(".probability");
  probability.textContent = `p(fake) = ${result.p_fake.toFixed(3)}`;
  probability.dataset.pFake = String(result.p_fake);
  card.dataset.label = result.label;
  card.dataset.unsure = String(result.unsure);
  drawScale(card, result.p_fake, body.model);
  card.dataset.status = "scored";
  return result;
}

async function explain(file, card) {
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

async function handle(file) {
  const card = newCard(file);
  try {
    const result = await predict(file, card);
    if (result) await explain(file, card);
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
