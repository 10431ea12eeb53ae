// The upload page: choose or drop a file, POST it to /v1/scan?thumbnails=1, show the verdict.
"use strict";

const $ = (id) => document.getElementById(id);
const MESSAGES = {
  400: "This file could not be read as an image or a video.",
  404: "The model (or the requested version) is not on the model server.",
  413: "This file is too large for the gateway.",
  415: "This file type is not supported: upload a video (MP4, MOV, WebM, AVI, MKV) or an image (JPEG, PNG, WebP).",
  503: "The model server is not available right now. Try again in a moment.",
  504: "The model server took too long to answer. Try again in a moment.",
};

function setStatus(text, isError = false) {
  const status = $("status");
  status.textContent = text;
  status.classList.toggle("error", isError);
}

async function checkHealth() {
  try {
    const reply = await fetch("/healthz");
    const body = await reply.json();
    $("health").textContent = reply.ok
      ? `Model server up · ${body.model} · stable version ${body.stable_version ?? "none"}`
      : `The model server is down: ${body.error || reply.statusText}`;
  } catch (err) {
    $("health").textContent = "The gateway does not answer.";
  }
}

async function upload(file) {
  $("result").hidden = true;
  setStatus(`Uploading and scanning ${file.name}…`);
  $("upload-form").setAttribute("aria-busy", "true");
  const form = new FormData();
  form.append("file", file, file.name);
  let reply;
  try {
    reply = await fetch("/v1/scan?thumbnails=1", { method: "POST", body: form });
  } catch (err) {
    setStatus("The upload failed: the gateway could not be reached.", true);
    return;
  } finally {
    $("upload-form").removeAttribute("aria-busy");
  }
  let body = null;
  try { body = await reply.json(); } catch (err) { /* not JSON */ }
  if (!reply.ok) {
    const detail = body && body.error ? body.error.message : reply.statusText;
    setStatus(`${MESSAGES[reply.status] || "The scan failed."} (${reply.status}: ${detail})`, true);
    return;
  }
  setStatus("");
  showVerdict(body);
}

function pct(p) { return p === null || p === undefined ? "–" : `${(100 * p).toFixed(1)} %`; }

function showVerdict(v) {
  const box = $("verdict");
  box.className = `verdict ${v.label}`;
  $("verdict-label").textContent = v.label === "NO_FACE"
    ? "No face found"
    : v.label === "FAKE" ? "Likely a deepfake (FAKE)" : "Likely real (REAL)";
  $("probability").textContent = pct(v.score);
  $("threshold").textContent = pct(v.threshold);
  $("model").textContent = `${v.model_name} v${v.model_version ?? "?"}`;
  $("face-count").textContent = `${v.face_count} in ${v.frames} frame${v.frames === 1 ? "" : "s"}`;
  $("timing").textContent = `${(v.timings_s.total || 0).toFixed(2)} s`;
  $("file-name").textContent = v.label === "NO_FACE"
    ? `${v.source}: no face was found, so there is no verdict on it.`
    : v.source;
  showFaces(v);
  showPlot(v);
  $("result").hidden = false;
  $("verdict-label").setAttribute("tabindex", "-1");
  $("verdict-label").focus();
}

function showFaces(v) {
  const list = $("faces");
  list.replaceChildren();
  for (const face of v.faces) {
    const item = document.createElement("li");
    const label = face.fake_probability >= v.threshold ? "FAKE" : "REAL";
    const when = v.kind === "video" ? `${face.timestamp_s.toFixed(2)} s` : `face ${face.track + 1}`;
    if (face.thumbnail) {
      const img = document.createElement("img");
      img.src = face.thumbnail;
      img.alt = `face at ${when}, fake probability ${pct(face.fake_probability)}`;
      item.append(img);
    }
    const caption = document.createElement("span");
    caption.className = label;
    caption.textContent = `${pct(face.fake_probability)} · ${when}`;
    item.append(caption);
    list.append(item);
  }
  $("faces-heading").hidden = v.faces.length === 0;
}

function showPlot(v) {
  const figure = $("plot-figure");
  const faces = v.faces.filter((f) => f.timestamp_s !== undefined);
  if (v.kind !== "video" || faces.length === 0) { figure.hidden = true; return; }
  const W = 600, H = 200, L = 40, R = 10, T = 10, B = 30;
  const tMax = Math.max(...faces.map((f) => f.timestamp_s), 0.001);
  const x = (t) => L + (W - L - R) * (t / tMax);
  const y = (p) => T + (H - T - B) * (1 - p);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `fake probability of ${faces.length} faces over ${tMax.toFixed(1)} s`);
  const add = (tag, attrs, text) => {
    const el = document.createElementNS(ns, tag);
    for (const [k, val] of Object.entries(attrs)) el.setAttribute(k, val);
    if (text !== undefined) el.textContent = text;
    svg.append(el);
    return el;
  };
  add("rect", { x: L, y: T, width: W - L - R, height: H - T - B, fill: "#fafbfc", stroke: "#ccd" });
  for (const p of [0, 0.5, 1]) add("text", { x: L - 6, y: y(p) + 4, "text-anchor": "end", "font-size": 11 }, p.toFixed(1));
  add("text", { x: L, y: H - 8, "font-size": 11 }, "0 s");
  add("text", { x: W - R, y: H - 8, "font-size": 11, "text-anchor": "end" }, `${tMax.toFixed(1)} s`);
  add("line", { x1: L, x2: W - R, y1: y(v.threshold), y2: y(v.threshold), stroke: "#888", "stroke-dasharray": "5 4" });
  const tracks = new Map();
  for (const f of faces) { if (!tracks.has(f.track)) tracks.set(f.track, []); tracks.get(f.track).push(f); }
  const colours = ["#1a56db", "#b3261e", "#1e7b34", "#7a5b00", "#6b21a8"];
  let i = 0;
  for (const [, members] of tracks) {
    const colour = colours[i++ % colours.length];
    members.sort((a, b) => a.timestamp_s - b.timestamp_s);
    add("polyline", { points: members.map((f) => `${x(f.timestamp_s)},${y(f.fake_probability)}`).join(" "),
                      fill: "none", stroke: colour, "stroke-width": 2 });
    for (const f of members) add("circle", { cx: x(f.timestamp_s), cy: y(f.fake_probability), r: 3, fill: colour });
  }
  $("plot").replaceChildren(svg);
  figure.hidden = false;
}

function setup() {
  const input = $("file"), drop = $("drop");
  input.addEventListener("change", () => { if (input.files.length) upload(input.files[0]); input.value = ""; });
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.add("dragging"); });
  }
  for (const name of ["dragleave", "drop"]) {
    drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.remove("dragging"); });
  }
  drop.addEventListener("drop", (e) => { if (e.dataTransfer.files.length) upload(e.dataTransfer.files[0]); });
  checkHealth();
}

document.addEventListener("DOMContentLoaded", setup);
