// The upload page: choose or drop a file, POST it to /v1/scan?thumbnails=1 (with upload progress),
// show the verdict per person: a card each, a chart line each, and the boxes on the preview.
// "On this device" (device.js) scans in the browser instead: the file is never sent.
"use strict";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "deepfake-web-token";
const COLOURS = ["#1a56db", "#b3261e", "#1e7b34", "#7a5b00", "#6b21a8", "#0e7490"];
const DASHES = [["", "solid"], ["8 4", "dashed"], ["2 3", "dotted"]]; // overlapping lines stay apart
const HEALTH_EVERY_MS = 10000;
const FORMATS = "a video (MP4, MOV, WebM, AVI, MKV, GIF) or an image (JPEG, PNG, WebP, BMP, TIFF)";

// What happened and what to do, by HTTP status (and, for 503, by error type).
const FRIENDLY = {
  400: ["This file could not be read as an image or a video.", "Check that it opens on your computer, or try another format."],
  401: ["This gateway needs an access token.", "Enter the token you were given above, then upload again."],
  404: ["The model is not on the model server.", "Tell the operator of this service."],
  408: ["The upload was too slow and was stopped.", "Check your connection and try again."],
  413: ["This file is too large for the gateway.", null],
  415: ["This file is not a video or an image the detector can read.", `Upload ${FORMATS}.`],
  429: ["You already have several uploads in progress.", "Wait for one to finish, then try again."],
  503: ["The model server is not available right now.", "Try again in a minute: uploads resume when it is back."],
  504: ["The model server took too long to answer.", "Try again in a moment, or with a shorter clip."],
  507: ["The gateway has no room for this upload right now.", "Try again later, or send a smaller file."],
  StorageUnavailableError: ["The gateway cannot store uploads right now.", "Try again later; if it goes on, tell the operator."],
  GatewayBusyError: ["The gateway is busy with other uploads.", "Try again in a few seconds."],
};

const state = { serverUp: false, busy: false, verdict: null, mediaUrl: null, mode: "server", device: null };

function token() { return sessionStorage.getItem(TOKEN_KEY); }
function pct(p) { return p === null || p === undefined ? "–" : `${(100 * p).toFixed(1)} %`; }
function personName(track) { return `Person ${track + 1}`; }
function colourOf(index) { return COLOURS[index % COLOURS.length]; }
function dashOf(index) { return DASHES[index % DASHES.length]; }
// 0, 1, 2, 3, 7, 8 -> "0–3, 7–8"
function frameRanges(frames) {
  const runs = [];
  for (const f of [...new Set(frames)].sort((a, b) => a - b)) {
    const last = runs[runs.length - 1];
    if (last && f === last[1] + 1) last[1] = f; else runs.push([f, f]);
  }
  return runs.map(([a, b]) => (a === b ? `${a}` : `${a}–${b}`)).join(", ");
}
function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}
function svgEl(tag, attrs = {}, text) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function setStatus(text) { $("status").textContent = text; }

function showError(status, body, requestId) {
  const error = (body && body.error) || {};
  const [what, todo] = FRIENDLY[error.type] || FRIENDLY[status] ||
    ["The scan failed.", "Try again; if it keeps failing, tell the operator the request id below."];
  $("error-what").textContent = what;
  $("error-todo").textContent = todo || `${(error.message || "").replace(/^./, (c) => c.toUpperCase())}.`;
  $("error-details").textContent = [
    `HTTP ${status || "(no answer)"}${error.type ? ` · ${error.type}` : ""}`,
    error.message || "",
    requestId ? `request id: ${requestId}` : "",
  ].filter(Boolean).join("\n");
  $("error").hidden = false;
  setStatus("");
}

function clearError() { $("error").hidden = true; }

function askForToken() {
  sessionStorage.removeItem(TOKEN_KEY);
  $("token-form").hidden = false;
  $("token").focus();
}

function modeReady() {
  return state.mode === "device" ? Boolean(state.device && state.device.available) : state.serverUp;
}

function updateUploadState() {
  const enabled = modeReady() && !state.busy;
  $("file").disabled = !enabled;
  $("drop").classList.toggle("disabled", !enabled);
  $("drop").setAttribute("aria-disabled", String(!enabled));
  $("drop-title").textContent = modeReady()
    ? (state.busy ? "Scanning…" : state.mode === "device" ? "Drop a video or an image here (it stays on this device)" : "Drop a video or an image here")
    : state.mode === "device" ? "On-device scanning is not available here" : "Uploads are paused while the model server is down";
}

async function checkHealth() {
  let up = false, body = null;
  try {
    const reply = await fetch("/healthz", { cache: "no-store" });
    body = await reply.json();
    up = reply.ok;
    if (up) {
      $("health").textContent = `Model server up · ${body.model} · stable version ${body.stable_version ?? "none"}`;
    } else {
      const folder = body.checks && body.checks.upload_folder !== "ok";
      $("health").textContent = folder
        ? "The gateway cannot store uploads right now. Uploads are paused; we check again every few seconds."
        : "The model server is down. Uploads are paused until it is back; we check again every few seconds.";
    }
    $("health-error").textContent = up ? "" : body.error || reply.statusText;
  } catch (err) {
    $("health").textContent = "The gateway does not answer. Check your connection; we try again every few seconds.";
    $("health-error").textContent = String(err);
  }
  if (body && body.auth === "bearer" && !token()) $("token-form").hidden = false;
  $("health").classList.toggle("down", !up);
  $("health-details").hidden = up;
  state.serverUp = up;
  updateUploadState();
}

function send(file) {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/v1/scan?thumbnails=1");
    const t = token();
    if (t) xhr.setRequestHeader("Authorization", `Bearer ${t}`);
    xhr.upload.addEventListener("progress", (e) => {
      if (!e.lengthComputable) return;
      const done = Math.round((100 * e.loaded) / e.total);
      $("progress").value = done;
      $("progress-text").textContent = `${done} %`;
    });
    xhr.upload.addEventListener("load", () => {
      $("progress").value = 100;
      $("progress-text").textContent = "100 %";
      setStatus(`Uploaded; scanning ${file.name}…`);
    });
    const finish = () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch (err) { /* not JSON */ }
      resolve({ status: xhr.status, body, requestId: xhr.getResponseHeader("x-request-id") });
    };
    xhr.addEventListener("load", finish);
    xhr.addEventListener("error", finish);
    xhr.addEventListener("abort", finish);
    const form = new FormData();
    form.append("file", file, file.name);
    xhr.send(form);
  });
}

// The on-device mode: is it offered (GET /v1/device), and the onnxruntime-web script, loaded once.
async function checkDevice() {
  try {
    const t = token();
    const reply = await fetch("/v1/device", { cache: "no-store", headers: t ? { Authorization: `Bearer ${t}` } : {} });
    state.device = reply.ok ? await reply.json() : { available: false, reason: `HTTP ${reply.status}` };
  } catch (err) {
    state.device = { available: false, reason: String(err) };
  }
  const d = state.device;
  $("mode-device").disabled = !d.available;
  $("mode-hint").textContent = d.available
    ? `On this device: ${d.runtime.name} ${d.runtime.version} runs the face detector and ${d.model.model_name} v${d.model.version ?? 0} in this browser; the file is not uploaded.`
    : `On-device scanning is not available: ${d.reason}.`;
  updateUploadState();
}

let runtimeScript = null;
function loadRuntime() {
  runtimeScript = runtimeScript || new Promise((resolve, reject) => {
    const script = el("script", { src: "/static/vendor/ort.wasm.min.js" });
    script.onload = resolve;
    script.onerror = () => { runtimeScript = null; reject(new Error("onnxruntime-web could not be loaded")); };
    document.head.append(script);
  });
  return runtimeScript;
}

async function scanOnDevice(file) {
  clearError();
  $("result").hidden = true;
  state.busy = true;
  updateUploadState();
  $("upload-form").setAttribute("aria-busy", "true");
  setStatus(`Scanning ${file.name} on this device…`);
  try {
    await loadRuntime();
    const verdict = await window.deviceScan.scanFile(file, {
      info: state.device, token: token(),
      onProgress: (done, total) => setStatus(`Scanning ${file.name} on this device: frame ${done} of ${total}…`),
    });
    setStatus("");
    showVerdict(verdict, file);
  } catch (err) {
    if (err.status === 401) askForToken();
    showError(err.status || 0, { error: { type: "DeviceScanError", message: String(err.message || err) } });
    $("error-what").textContent = "The scan on this device failed.";
    $("error-todo").textContent = "Try again, or scan on the server.";
  } finally {
    $("upload-form").removeAttribute("aria-busy");
    state.busy = false;
    updateUploadState();
  }
}

async function upload(file) {
  if (state.mode === "device") { if (!state.busy && modeReady()) scanOnDevice(file); return; }
  if (!state.serverUp || state.busy) return;
  clearError();
  $("result").hidden = true;
  state.busy = true;
  updateUploadState();
  $("progress").value = 0;
  $("progress-text").textContent = "0 %";
  $("progress-row").hidden = false;
  setStatus(`Uploading ${file.name}…`);
  $("upload-form").setAttribute("aria-busy", "true");
  const reply = await send(file);
  $("upload-form").removeAttribute("aria-busy");
  $("progress-row").hidden = true;
  state.busy = false;
  updateUploadState();
  if (reply.status !== 200) {
    if (reply.status === 401) askForToken();
    if (reply.status === 503 || reply.status === 0) checkHealth();
    showError(reply.status, reply.body, reply.requestId);
    return;
  }
  setStatus("");
  showVerdict(reply.body, file);
}

function showVerdict(v, file) {
  state.verdict = v;
  $("verdict").className = `verdict ${v.label}`;
  $("verdict-label").textContent = v.label === "NO_FACE"
    ? "No face found"
    : v.label === "FAKE" ? "Likely a deepfake (FAKE)" : "Likely real (REAL)";
  $("probability").textContent = pct(v.score);
  $("threshold").textContent = pct(v.threshold);
  $("people-count").textContent = String(v.tracks.length);
  $("model").textContent = `${v.model_name} v${v.model_version ?? "?"}`;
  $("face-count").textContent = `${v.face_count} in ${v.frames} frame${v.frames === 1 ? "" : "s"}`;
  $("timing").textContent = `${(v.timings_s.total || 0).toFixed(2)} s`;
  $("mode-note").textContent = v.mode === "device"
    ? `Scanned on this device with ${v.runtime ? `${v.runtime.name} ${v.runtime.version}` : "onnxruntime-web"}: the file was not uploaded.${v.note ? ` (${v.note})` : ""}`
    : `Scanned on the server (${v.target}): the file was uploaded to this gateway.`;
  $("mode-note").dataset.mode = v.mode === "device" ? "device" : "server";
  $("file-name").textContent = v.label === "NO_FACE"
    ? `${v.source}: no face was found, so there is no verdict on it.`
    : v.source;
  showPeople(v);
  showPlot(v);
  showPreview(v, file);
  $("result").hidden = false;
  $("verdict-label").setAttribute("tabindex", "-1");
  $("verdict-label").focus();
}

function facesOf(v, track) { return v.faces.filter((f) => f.track === track); }

function showPeople(v) {
  const list = $("people");
  list.replaceChildren();
  v.tracks.forEach((t, index) => {
    const members = facesOf(v, t.track);
    const card = el("li", { class: `person ${t.label}`, "data-track": t.track });
    card.style.setProperty("--person", colourOf(index));
    if (t.thumbnail) {
      card.append(el("img", { src: t.thumbnail, alt: `${personName(t.track)}: the clearest face found` }));
    }
    const text = el("div", { class: "person-text" });
    text.append(el("h4", {}, personName(t.track)));
    text.append(el("p", { class: `label ${t.label}` }, `${t.label} · ${pct(t.score)}`));
    if (t.frame_score !== undefined) {
      // a version with the temporal model: the track's score combines both (the larger)
      const temporal = t.temporal_score === null ? "track too short" : pct(t.temporal_score);
      text.append(el("p", { class: "muted temporal" },
        `frames ${pct(t.frame_score)} · over time ${temporal}`));
    }
    const frames = members.map((f) => f.frame_index);
    const where = v.kind === "video"
      ? `in ${members.length} of ${v.frames} sampled frames (frames ${frameRanges(frames)}), ` +
        `${members[0].timestamp_s.toFixed(2)}–${members[members.length - 1].timestamp_s.toFixed(2)} s`
      : `face ${t.track + 1} of ${v.tracks.length}`;
    text.append(el("p", { class: "muted frames" }, where));
    if (t.minor) text.append(el("p", { class: "muted" }, "Seen briefly: does not decide the verdict."));
    card.append(text);
    list.append(card);
  });
  $("people-heading").hidden = v.tracks.length === 0;
}

function showPlot(v) {
  const figure = $("plot-figure");
  if (v.kind !== "video" || v.faces.length === 0) { figure.hidden = true; return; }
  const W = 600, H = 200, L = 40, R = 10, T = 10, B = 30;
  const tMax = Math.max(...v.faces.map((f) => f.timestamp_s), 0.001);
  const x = (t) => L + (W - L - R) * (t / tMax);
  const y = (p) => T + (H - T - B) * (1 - p);
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": `fake probability of ${v.tracks.length} people over ${tMax.toFixed(1)} s` });
  svg.append(svgEl("rect", { x: L, y: T, width: W - L - R, height: H - T - B, fill: "#fafbfc", stroke: "#ccd" }));
  for (const p of [0, 0.5, 1]) svg.append(svgEl("text", { x: L - 6, y: y(p) + 4, "text-anchor": "end", "font-size": 11 }, p.toFixed(1)));
  svg.append(svgEl("text", { x: L, y: H - 8, "font-size": 11 }, "0 s"));
  svg.append(svgEl("text", { x: W - R, y: H - 8, "font-size": 11, "text-anchor": "end" }, `${tMax.toFixed(1)} s`));
  svg.append(svgEl("line", { x1: L, x2: W - R, y1: y(v.threshold), y2: y(v.threshold), stroke: "#888", "stroke-dasharray": "5 4" }));
  const legend = $("legend");
  legend.replaceChildren();
  v.tracks.forEach((t, index) => {
    const colour = colourOf(index), [dash, dashStyle] = dashOf(index);
    const members = facesOf(v, t.track).sort((a, b) => a.timestamp_s - b.timestamp_s);
    svg.append(svgEl("polyline", { class: "person-line", "data-track": t.track, fill: "none", stroke: colour,
      "stroke-width": 2.5, "stroke-dasharray": dash,
      points: members.map((f) => `${x(f.timestamp_s)},${y(f.fake_probability)}`).join(" ") }));
    for (const f of members) {
      const dot = svgEl("circle", { cx: x(f.timestamp_s), cy: y(f.fake_probability), r: 3.5 - index % 2, fill: colour, tabindex: 0 });
      dot.append(svgEl("title", {}, `${personName(t.track)} at ${f.timestamp_s.toFixed(2)} s: ${pct(f.fake_probability)}`));
      dot.addEventListener("click", () => seek(f.timestamp_s));
      svg.append(dot);
    }
    const item = el("li", { "data-track": t.track });
    item.append(el("span", { class: "swatch", style: `border-top-color:${colour};border-top-style:${dashStyle}` }));
    item.append(document.createTextNode(`${personName(t.track)} · ${t.label} ${pct(t.score)}`));
    legend.append(item);
  });
  $("plot").replaceChildren(svg);
  figure.hidden = false;
}

function seek(seconds) {
  const video = $("preview-video");
  if (!video.hidden) { video.pause(); video.currentTime = seconds; }
}

// The faces at the sampled frame nearest the video's current time (none between samples).
function facesAt(v, time) {
  const times = [...new Set(v.faces.map((f) => f.timestamp_s))].sort((a, b) => a - b);
  if (!times.length) return [];
  const gap = times.length > 1 ? (times[times.length - 1] - times[0]) / (times.length - 1) : 1;
  let best = times[0];
  for (const t of times) if (Math.abs(t - time) < Math.abs(best - time)) best = t;
  if (Math.abs(best - time) > gap / 2 + 0.05) return [];
  return v.faces.filter((f) => f.timestamp_s === best);
}

function drawBoxes(width, height, faces) {
  const svg = $("boxes");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.replaceChildren();
  const v = state.verdict;
  const index = new Map(v.tracks.map((t, i) => [t.track, i]));
  const stroke = Math.max(2, width / 200);
  for (const f of faces) {
    if (!f.box) continue;
    const [bx, by, bw, bh] = f.box;
    const colour = colourOf(index.get(f.track) ?? 0);
    svg.append(svgEl("rect", { class: "box", "data-track": f.track, x: bx, y: by, width: bw, height: bh,
      fill: "none", stroke: colour, "stroke-width": stroke }));
    const size = Math.max(12, width / 40);
    svg.append(svgEl("text", { x: bx, y: Math.max(size, by - stroke), fill: colour, "font-size": size,
      "font-weight": 700, stroke: "#fff", "stroke-width": size / 8, "paint-order": "stroke" },
      `${personName(f.track)} ${pct(f.fake_probability)}`));
  }
}

function showPreview(v, file) {
  const figure = $("preview-figure"), video = $("preview-video"), image = $("preview-image");
  if (state.mediaUrl) URL.revokeObjectURL(state.mediaUrl);
  state.mediaUrl = file ? URL.createObjectURL(file) : null;
  $("boxes").replaceChildren();
  video.hidden = image.hidden = true;
  $("preview-note").textContent = "";
  if (!state.mediaUrl || v.faces.length === 0) { figure.hidden = true; return; }
  figure.hidden = false;
  if (v.kind === "image") {
    $("preview-caption").textContent = "The faces found, one colour per person";
    image.onload = () => drawBoxes(image.naturalWidth, image.naturalHeight, v.faces);
    image.hidden = false;
    image.src = state.mediaUrl;
    return;
  }
  $("preview-caption").textContent = "The faces at the sampled times (boxes show when the video is at a sampled frame; click a point of the chart to jump there)";
  const redraw = () => drawBoxes(video.videoWidth, video.videoHeight, facesAt(v, video.currentTime));
  video.onloadedmetadata = redraw;
  video.onseeked = redraw;
  video.ontimeupdate = redraw;
  video.onerror = () => {
    video.hidden = true;
    $("preview-note").textContent = "This browser cannot play this video, so there is no preview; the verdict above is complete.";
  };
  video.hidden = false;
  video.src = state.mediaUrl;
}

function download() {
  const v = state.verdict;
  if (!v) return;
  const blob = new Blob([JSON.stringify(v, null, 2)], { type: "application/json" });
  const link = el("a", { href: URL.createObjectURL(blob), download: `${v.source.replace(/\.[^.]*$/, "")}.verdict.json` });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

function setup() {
  const input = $("file"), drop = $("drop");
  input.addEventListener("change", () => { if (input.files.length) upload(input.files[0]); input.value = ""; });
  for (const name of ["dragenter", "dragover"]) {
    drop.addEventListener(name, (e) => { e.preventDefault(); if (state.serverUp) drop.classList.add("dragging"); });
  }
  for (const name of ["dragleave", "drop"]) {
    drop.addEventListener(name, (e) => { e.preventDefault(); drop.classList.remove("dragging"); });
  }
  drop.addEventListener("drop", (e) => { if (e.dataTransfer.files.length) upload(e.dataTransfer.files[0]); });
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const value = $("token").value.trim();
    if (!value) return;
    sessionStorage.setItem(TOKEN_KEY, value);
    $("token").value = "";
    $("token-form").hidden = true;
    clearError();
    setStatus("Token saved for this tab. Upload a file.");
    checkDevice(); // /v1/device needs the token too
  });
  $("download").addEventListener("click", download);
  for (const radio of document.querySelectorAll('input[name="mode"]')) {
    radio.addEventListener("change", () => {
      state.mode = radio.value;
      if (state.mode === "device") loadRuntime().catch(() => {});
      updateUploadState();
    });
  }
  checkDevice();
  checkHealth();
  setInterval(checkHealth, HEALTH_EVERY_MS);
}

document.addEventListener("DOMContentLoaded", setup);
