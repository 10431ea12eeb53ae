// "On this device": the Python client's pipeline, run in the browser with onnxruntime-web.
// frames (sampled as deepfake_client.video.sample_indices) -> faces (CenterFace, followed from frame
// to frame as faces.VideoFaceDetector) -> crops (faces.crop_face) -> scores (the gateway's ONNX
// export) -> tracks and verdict (tracks.link_tracks, verdict.make_verdict). Each function names
// the Python one it mirrors; the shared test vectors (tests/web/test_device_mode.py) hold both to
// the same boxes, crops and scores. Only model files are fetched; the video stays here.
"use strict";

(() => {
  // faces.py
  const DETECT_MAX_SIDE = 640, FULL_EVERY = 8, WINDOW_SCALE = 2.0, MIN_WINDOW = 64, MAX_WINDOW = 96;
  const MAX_WINDOWS = 4, SCAN_SIDE = 320, WINDOW_MIN_IOU = 0.2, SAME_FACE_IOU = 0.3;
  const CF_THRESHOLD = 0.5, CF_NMS = 0.3, MIN_FACE = 24; // CenterFaceDetector's defaults
  // verdict.py, tracks.py
  const CONFIDENT_FAKE = 0.8, CONFIDENT_REAL = 0.2, CONFIDENT_FAKE_SHARE = 0.4, CONFIDENT_REAL_SHARE = 0.9;
  const MINOR_TRACK_SHARE = 0.2, TRACK_MIN_IOU = 0.2, TRACK_MAX_GAP = 3;
  const BATCH = 32, ASSUMED_FPS = 25;

  // Python's round(): halves to even.
  function pyRound(x) {
    const r = Math.round(x);
    return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
  }

  // Images are {width, height, data: Uint8Array RGB}.
  function image(width, height, data) { return { width, height, data: data || new Uint8Array(width * height * 3) }; }
  function fromRGBA(width, height, rgba) {
    const out = image(width, height);
    for (let i = 0, j = 0; i < width * height; i++, j += 4) {
      out.data[3 * i] = rgba[j]; out.data[3 * i + 1] = rgba[j + 1]; out.data[3 * i + 2] = rgba[j + 2];
    }
    return out;
  }

  // cv2.resize(..., INTER_AREA) when shrinking, as OpenCV computes it (float32 sums, its tables; the
  // integer-scale fast path; 2x2 with its SIMD rounding): the same pixels, so the same detections.
  function areaTab(ssize, dsize) {
    const scale = ssize / dsize, tab = [];
    for (let d = 0; d < dsize; d++) {
      const f1 = d * scale, f2 = f1 + scale, cell = Math.min(scale, ssize - f1);
      const s2 = Math.min(Math.floor(f2), ssize - 1), s1 = Math.min(Math.ceil(f1), s2);
      if (s1 - f1 > 1e-3) tab.push([d, s1 - 1, Math.fround((s1 - f1) / cell)]);
      for (let s = s1; s < s2; s++) tab.push([d, s, Math.fround(1 / cell)]);
      if (f2 - s2 > 1e-3) tab.push([d, s2, Math.fround(Math.min(Math.min(f2 - s2, 1), cell) / cell)]);
    }
    return tab;
  }
  function resizeArea(src, dw, dh) {
    const sx = src.width / dw, sy = src.height / dh, out = image(dw, dh), W = src.width;
    if (Number.isInteger(sx) && Number.isInteger(sy)) {
      const scale = Math.fround(1 / (sx * sy));
      for (let dy = 0; dy < dh; dy++) {
        for (let dx = 0; dx < dw; dx++) {
          for (let c = 0; c < 3; c++) {
            let sum = 0;
            for (let y = dy * sy; y < (dy + 1) * sy; y++) for (let x = dx * sx; x < (dx + 1) * sx; x++) sum += src.data[(y * W + x) * 3 + c];
            out.data[(dy * dw + dx) * 3 + c] = sx === 2 && sy === 2 ? (sum + 2) >> 2 : pyRound(Math.fround(sum * scale));
          }
        }
      }
      return out;
    }
    const xtab = areaTab(W, dw), ytab = areaTab(src.height, dh);
    const buf = new Float32Array(dw * 3), sum = new Float32Array(dw * 3);
    let k = 0;
    for (let dy = 0; dy < dh; dy++) {
      sum.fill(0);
      for (; k < ytab.length && ytab[k][0] === dy; k++) {
        const [, y, beta] = ytab[k], row = y * W * 3;
        buf.fill(0);
        for (const [dx, x, alpha] of xtab) {
          for (let c = 0; c < 3; c++) buf[dx * 3 + c] += Math.fround(src.data[row + x * 3 + c] * alpha);
        }
        for (let i = 0; i < dw * 3; i++) sum[i] += Math.fround(beta * buf[i]);
      }
      for (let i = 0; i < dw * 3; i++) out.data[dy * dw * 3 + i] = Math.min(255, Math.max(0, pyRound(sum[i])));
    }
    return out;
  }

  // cv2.resize(..., INTER_LINEAR) on uint8, as OpenCV's resizeGeneric_ computes it: float32 source
  // coordinates, 11-bit weights rounded one by one, columns clamped to the edge (weights too), rows
  // clipped, and its vectorised fixed-point rounding.
  function linearTab(ssize, dsize, clampWeights) {
    const scale = 1 / (dsize / ssize), n = dsize;
    const i0 = new Int32Array(n), i1 = new Int32Array(n), w0 = new Int32Array(n), w1 = new Int32Array(n);
    for (let d = 0; d < n; d++) {
      let f = Math.fround((d + 0.5) * scale - 0.5), s = Math.floor(f);
      f = Math.fround(f - s);
      if (clampWeights && s < 0) { f = 0; s = 0; }
      if (clampWeights && s >= ssize - 1) { f = 0; s = ssize - 1; }
      i0[d] = Math.min(Math.max(s, 0), ssize - 1); i1[d] = Math.min(Math.max(s + 1, 0), ssize - 1);
      w0[d] = pyRound(Math.fround(Math.fround(1 - f) * 2048)); w1[d] = pyRound(Math.fround(f * 2048));
    }
    return { i0, i1, w0, w1 };
  }
  function resizeLinear(src, dw, dh) {
    const x = linearTab(src.width, dw, true), y = linearTab(src.height, dh, false), out = image(dw, dh);
    const W = src.width, d = src.data;
    const hrow = (sy, c, dx) => d[(sy * W + x.i0[dx]) * 3 + c] * x.w0[dx] + d[(sy * W + x.i1[dx]) * 3 + c] * x.w1[dx];
    for (let dy = 0; dy < dh; dy++) {
      const b0 = y.w0[dy], b1 = y.w1[dy];
      for (let dx = 0; dx < dw; dx++) {
        for (let c = 0; c < 3; c++) {
          const v = (((b0 * (hrow(y.i0[dy], c, dx) >> 4)) >> 16) + ((b1 * (hrow(y.i1[dy], c, dx) >> 4)) >> 16) + 2) >> 2;
          out.data[(dy * dw + dx) * 3 + c] = Math.min(255, Math.max(0, v));
        }
      }
    }
    return out;
  }

  // faces.Box.iou
  function iou(a, b) {
    const ix = Math.max(0, Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x));
    const iy = Math.max(0, Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y));
    const inter = ix * iy, union = a.w * a.h + b.w * b.h - inter;
    return union > 0 ? inter / union : 0;
  }

  // faces.square_box
  function squareBox(box, margin) {
    const side = Math.max(1, pyRound(Math.max(box.w, box.h) * (1 + margin)));
    const cx = box.x + box.w / 2, cy = box.y + box.h / 2;
    return [pyRound(cx - side / 2), pyRound(cy - side / 2), side];
  }

  // faces.crop_face
  function cropFace(frame, box, margin, size) {
    const [x0, y0, side] = squareBox(box, margin), canvas = image(side, side);
    const fx0 = Math.max(0, x0), fy0 = Math.max(0, y0);
    const fx1 = Math.min(frame.width, x0 + side), fy1 = Math.min(frame.height, y0 + side);
    for (let y = fy0; y < fy1; y++) {
      const from = (y * frame.width + fx0) * 3;
      canvas.data.set(frame.data.subarray(from, from + (fx1 - fx0) * 3), ((y - y0) * side + (fx0 - x0)) * 3);
    }
    if (side === size) return canvas;
    return side > size ? resizeArea(canvas, size, size) : resizeLinear(canvas, size, size);
  }

  // faces.CenterFaceDetector.detect
  async function centerFace(session, frame, maxSide = DETECT_MAX_SIDE) {
    const scale = Math.min(1, maxSide / Math.max(frame.height, frame.width));
    const small = scale === 1 ? frame
      : resizeArea(frame, Math.max(1, pyRound(frame.width * scale)), Math.max(1, pyRound(frame.height * scale)));
    const { width, height } = small;
    const w32 = Math.ceil(width / 32) * 32, h32 = Math.ceil(height / 32) * 32;
    const sized = w32 === width && h32 === height ? small : resizeLinear(small, w32, h32);
    const plane = w32 * h32, blob = new Float32Array(3 * plane);
    for (let i = 0; i < plane; i++) {
      blob[i] = sized.data[3 * i]; blob[plane + i] = sized.data[3 * i + 1]; blob[2 * plane + i] = sized.data[3 * i + 2];
    }
    const out = await session.run({ [session.inputNames[0]]: new ort.Tensor("float32", blob, [1, 3, h32, w32]) });
    const [heatT, sizesT, offsetsT] = session.outputNames.slice(0, 3).map((n) => out[n]);
    const rows = heatT.dims[2], cols = heatT.dims[3], n = rows * cols;
    const heat = heatT.data, sizes = sizesT.data, offsets = offsetsT.data;
    const sx = width / w32, sy = height / h32, boxes = [], scores = [];
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        const i = r * cols + c;
        if (!(heat[i] > CF_THRESHOLD)) continue;
        const bh = Math.exp(sizes[i]) * 4, bw = Math.exp(sizes[n + i]) * 4;
        const cy = (r + offsets[i] + 0.5) * 4, cx = (c + offsets[n + i] + 0.5) * 4;
        const x0 = Math.max(0, cx - bw / 2), y0 = Math.max(0, cy - bh / 2);
        const x1 = Math.min(w32, cx + bw / 2), y1 = Math.min(h32, cy + bh / 2);
        boxes.push({ x: x0 * sx, y: y0 * sy, w: (x1 - x0) * sx, h: (y1 - y0) * sy });
        scores.push(heat[i]);
      }
    }
    // cv2.dnn.NMSBoxes: by score (stable), keep a box overlapping no kept one by more than CF_NMS
    const order = scores.map((s, i) => [s, i]).sort((a, b) => b[0] - a[0]);
    const keep = [];
    for (const [, i] of order) if (keep.every((k) => iou(boxes[i], boxes[k]) <= CF_NMS)) keep.push(i);
    const found = keep
      .map((i) => ({ box: { x: boxes[i].x / scale, y: boxes[i].y / scale, w: boxes[i].w / scale, h: boxes[i].h / scale }, confidence: scores[i] }))
      .filter((d) => Math.max(d.box.w, d.box.h) >= MIN_FACE);
    found.sort((a, b) => b.box.w * b.box.h - a.box.w * a.box.h);
    return found;
  }

  // faces.VideoFaceDetector: one per video, fed its frames in order.
  class VideoFaceDetector {
    constructor(detect) { this.detect1 = detect; this.shape = null; this.tracked = []; this.sinceFull = 0; this.lookAgain = false; }

    async detect(frame) {
      if (!this.shape || this.shape[0] !== frame.height || this.shape[1] !== frame.width) {
        this.shape = [frame.height, frame.width]; this.tracked = []; this.lookAgain = false;
      }
      const tracked = this.tracked;
      if (!this.lookAgain && tracked.length > 0 && tracked.length <= MAX_WINDOWS) {
        const found = await this.follow(frame, tracked);
        if (found !== null) {
          if (this.sinceFull >= FULL_EVERY) { found.push(...await this.newcomers(frame, found)); this.sinceFull = 0; }
          this.sinceFull += 1;
          return this.keep(found);
        }
      }
      const detections = await this.detect1(frame);
      this.sinceFull = 1;
      this.lookAgain = tracked.some(([box]) => Math.max(0, ...detections.map((d) => iou(d.box, box))) < WINDOW_MIN_IOU);
      return this.keep(detections.map((d) => [d, 0, 0]));
    }

    async follow(frame, tracked) {
      const found = [];
      for (const [box, vx, vy] of tracked) {
        const d = await this.inWindow(frame, { x: box.x + vx, y: box.y + vy, w: box.w, h: box.h });
        if (d === null || found.some(([f]) => iou(d.box, f.box) > SAME_FACE_IOU)) return null;
        const b = d.box;
        found.push([d, b.x + b.w / 2 - box.x - box.w / 2, b.y + b.h / 2 - box.y - box.h / 2]);
      }
      return found;
    }

    async newcomers(frame, found) {
      const added = [];
      for (const candidate of await this.detect1(frame, SCAN_SIDE)) {
        if ([...found, ...added].some(([f]) => iou(candidate.box, f.box) >= WINDOW_MIN_IOU)) continue;
        const d = await this.inWindow(frame, candidate.box);
        if (d !== null && [...found, ...added].every(([f]) => iou(d.box, f.box) < WINDOW_MIN_IOU)) added.push([d, 0, 0]);
      }
      return added;
    }

    keep(found) {
      found.sort((a, b) => b[0].box.w * b[0].box.h - a[0].box.w * a[0].box.h);
      this.tracked = found.map(([d, vx, vy]) => [d.box, vx, vy]);
      return found.map(([d]) => d);
    }

    async inWindow(frame, guess) {
      const margin = WINDOW_SCALE - 1, [x0, y0, side] = squareBox(guess, margin);
      const whole = Math.min(1, DETECT_MAX_SIDE / Math.max(frame.height, frame.width));
      const size = Math.min(side, MAX_WINDOW, Math.max(MIN_WINDOW, 32 * pyRound((side * whole) / 32)));
      const scale = side / size;
      let best = null, bestIou = WINDOW_MIN_IOU;
      for (const d of await this.detect1(cropFace(frame, guess, margin, size))) {
        const bx0 = Math.max(0, x0 + d.box.x * scale), by0 = Math.max(0, y0 + d.box.y * scale);
        const bx1 = Math.min(frame.width, x0 + (d.box.x + d.box.w) * scale);
        const by1 = Math.min(frame.height, y0 + (d.box.y + d.box.h) * scale);
        if (bx1 <= bx0 || by1 <= by0) continue;
        const box = { x: bx0, y: by0, w: bx1 - bx0, h: by1 - by0 }, overlap = iou(box, guess);
        if (overlap >= bestIou && Math.max(box.w, box.h) >= MIN_FACE) { best = { box, confidence: d.confidence }; bestIou = overlap; }
      }
      return best;
    }
  }

  // video.sample_indices
  function sampleIndices(frameCount, count) {
    if (frameCount <= 0 || count <= 0) return [];
    if (count >= frameCount) return [...Array(frameCount).keys()];
    if (count === 1) return [0];
    const step = count > 1 ? (frameCount - 1) / (count - 1) : 0;
    const picked = new Set();
    for (let i = 0; i < count; i++) picked.add(i === count - 1 ? frameCount - 1 : pyRound(i * step));
    return [...picked].sort((a, b) => a - b);
  }

  // tracks.link_tracks
  function linkTracks(frameIndices, boxes) {
    const order = [...new Set(frameIndices)].sort((a, b) => a - b), position = new Map(order.map((f, i) => [f, i]));
    const byFrame = new Map();
    frameIndices.forEach((f, face) => { if (!byFrame.has(f)) byFrame.set(f, []); byFrame.get(f).push(face); });
    const tracks = [], ids = new Array(boxes.length).fill(-1);
    for (const index of order) {
      const here = position.get(index);
      const live = tracks.map((t, i) => i).filter((t) => here - tracks[t].order <= TRACK_MAX_GAP + 1);
      const pairs = [];
      for (const f of byFrame.get(index)) for (const t of live) pairs.push([iou(boxes[f], tracks[t].box), f, t]);
      pairs.sort((a, b) => b[0] - a[0] || b[1] - a[1] || b[2] - a[2]);
      const usedFaces = new Set(), usedTracks = new Set();
      for (const [overlap, f, t] of pairs) {
        if (overlap < TRACK_MIN_IOU) break;
        if (usedFaces.has(f) || usedTracks.has(t)) continue;
        usedFaces.add(f); usedTracks.add(t); ids[f] = t;
        tracks[t].box = boxes[f]; tracks[t].order = here;
      }
      for (const f of byFrame.get(index)) if (!usedFaces.has(f)) { ids[f] = tracks.length; tracks.push({ box: boxes[f], order: here }); }
    }
    return ids;
  }

  // verdict.aggregate, verdict.decide
  function aggregate(p, method) {
    const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
    if (method === "mean") return mean(p);
    if (method === "max") return Math.max(...p);
    const fakes = p.filter((x) => x > CONFIDENT_FAKE);
    if (fakes.length && fakes.length >= CONFIDENT_FAKE_SHARE * p.length) return mean(fakes);
    const reals = p.filter((x) => x < CONFIDENT_REAL);
    if (reals.length && reals.length >= CONFIDENT_REAL_SHARE * p.length) return mean(reals);
    return mean(p);
  }
  function decide(score, threshold) { return score === null ? "NO_FACE" : score >= threshold ? "FAKE" : "REAL"; }
  const round = (x, digits) => Math.round(x * 10 ** digits) / 10 ** digits;

  // verdict.make_verdict, in Verdict.to_dict's JSON form
  function makeVerdict({ source, kind, faces, threshold, aggregation, facts, frames, timings }) {
    const byTrack = new Map();
    for (const f of faces) { if (!byTrack.has(f.track)) byTrack.set(f.track, []); byTrack.get(f.track).push(f); }
    const longest = Math.max(0, ...[...byTrack.values()].map((m) => m.length));
    const tracks = [...byTrack.entries()].sort((a, b) => a[0] - b[0]).map(([track, members]) => {
      const score = aggregate(members.map((m) => m.fake_probability), aggregation);
      return { track, faces: members.length, first_frame: Math.min(...members.map((m) => m.frame_index)),
        last_frame: Math.max(...members.map((m) => m.frame_index)), score: round(score, 6),
        label: decide(score, threshold), minor: members.length < MINOR_TRACK_SHARE * longest, _score: score };
    });
    const deciding = tracks.filter((t) => !t.minor).map((t) => t._score);
    const score = deciding.length ? Math.max(...deciding) : null;
    tracks.forEach((t) => delete t._score);
    timings.total = Object.values(timings).reduce((a, b) => a + b, 0);
    return {
      source, kind, label: decide(score, threshold), score: score === null ? null : round(score, 6),
      threshold: round(threshold, 6), aggregation, model_name: facts.model_name, model_version: facts.version ?? 0,
      target: "on this device", mode: "device", frames, face_count: faces.length, tracks,
      timings_s: Object.fromEntries(Object.entries(timings).map(([k, v]) => [k, round(v, 4)])),
      faces: faces.map((f) => ({ frame_index: f.frame_index, timestamp_s: round(f.timestamp_s, 3),
        box: [f.box.x, f.box.y, f.box.w, f.box.h].map((v) => round(v, 1)), confidence: round(f.confidence, 4),
        fake_probability: round(f.fake_probability, 6), track: f.track })),
    };
  }

  // --- the runtime: model files from the gateway, sessions made once ---
  let ready = null;
  function fetchBytes(url, token) {
    return fetch(url, { headers: token ? { Authorization: `Bearer ${token}` } : {}, cache: "force-cache" }).then((r) => {
      if (!r.ok) throw Object.assign(new Error(`${url}: HTTP ${r.status}`), { status: r.status });
      return r.arrayBuffer();
    });
  }
  function load(info, token) {
    if (ready) return ready;
    ort.env.wasm.wasmPaths = "/static/vendor/";
    ort.env.wasm.numThreads = 1; // no cross-origin isolation here, so no WebAssembly threads
    const options = { executionProviders: ["wasm"] };
    ready = Promise.all([fetchBytes("/v1/face-detector.onnx", token), fetchBytes("/v1/model.onnx", token)])
      .then(async ([detector, model]) => ({
        info,
        detector: await ort.InferenceSession.create(new Uint8Array(detector), options),
        model: await ort.InferenceSession.create(new Uint8Array(model), options),
      }));
    ready.catch(() => { ready = null; });
    return ready;
  }

  async function score(model, crops, size) {
    const out = [];
    for (let start = 0; start < crops.length; start += BATCH) {
      const batch = crops.slice(start, start + BATCH), data = new Uint8Array(batch.length * size * size * 3);
      batch.forEach((c, i) => data.set(c.data, i * size * size * 3));
      const result = await model.run({ images: new ort.Tensor("uint8", data, [batch.length, size, size, 3]) });
      out.push(...result.fake_probability.data);
    }
    return out;
  }

  // frames: [{index, timestamp_s, image}], in order. follow: VideoFaceDetector (videos) or not (images).
  async function scanFrames(runtime, frames, { source = "<frames>", kind = "video", follow = true, timings = {} } = {}) {
    const facts = runtime.info.model, sampling = runtime.info.sampling;
    const size = facts.input_size, margin = facts.crop_margin;
    const detect1 = (frame, maxSide) => centerFace(runtime.detector, frame, maxSide);
    const finder = follow ? new VideoFaceDetector(detect1) : { detect: (frame) => detect1(frame) };
    const faces = [], crops = [];
    timings.detect = timings.detect || 0; timings.crop = 0;
    for (const frame of frames) {
      const t0 = performance.now();
      const detections = await finder.detect(frame.image);
      const t1 = performance.now();
      for (const d of detections) {
        faces.push({ frame_index: frame.index, timestamp_s: frame.timestamp_s, box: d.box, confidence: d.confidence });
        crops.push(cropFace(frame.image, d.box, margin, size));
      }
      timings.detect += (t1 - t0) / 1000; timings.crop += (performance.now() - t1) / 1000;
    }
    const t2 = performance.now();
    const probs = await score(runtime.model, crops, size);
    timings.predict = (performance.now() - t2) / 1000;
    const tracks = linkTracks(faces.map((f) => f.frame_index), faces.map((f) => f.box));
    faces.forEach((f, i) => { f.fake_probability = probs[i]; f.track = tracks[i]; });
    const threshold = sampling.threshold ?? facts.threshold;
    const verdict = makeVerdict({ source, kind, faces, threshold, aggregation: sampling.aggregation, facts,
      frames: frames.length, timings });
    return { verdict, crops, faces };
  }

  // The frame table of an MP4/MOV (the video track's sample count and duration): the frame count and
  // rate the Python decoder sees, so the same indices are sampled. Other containers: null.
  async function mp4Info(file) {
    const text = (view, at) => String.fromCharCode(...[0, 1, 2, 3].map((i) => view.getUint8(at + i)));
    function* boxes(view, start, end) {
      let at = start;
      while (at + 8 <= end) {
        let size = view.getUint32(at), header = 8;
        if (size === 1) { size = Number(view.getBigUint64(at + 8)); header = 16; } else if (size === 0) size = end - at;
        if (size < header) return;
        yield { type: text(view, at + 4), start: at + header, end: Math.min(at + size, end) };
        at += size;
      }
    }
    const child = (view, box, type) => box && [...boxes(view, box.start, box.end)].find((b) => b.type === type);
    let at = 0;
    while (at + 8 <= file.size) {
      const head = new DataView(await file.slice(at, at + 16).arrayBuffer());
      let size = head.getUint32(0), header = 8;
      if (size === 1) { size = Number(head.getBigUint64(8)); header = 16; } else if (size === 0) size = file.size - at;
      if (size < header) return null;
      if (text(head, 4) === "moov") {
        const view = new DataView(await file.slice(at + header, at + size).arrayBuffer());
        for (const trak of boxes(view, 0, view.byteLength)) {
          if (trak.type !== "trak") continue;
          const mdia = child(view, trak, "mdia"), hdlr = child(view, mdia, "hdlr"), mdhd = child(view, mdia, "mdhd");
          if (!hdlr || !mdhd || text(view, hdlr.start + 8) !== "vide") continue;
          const v1 = view.getUint8(mdhd.start) === 1;
          const timescale = view.getUint32(mdhd.start + (v1 ? 20 : 12));
          const duration = v1 ? Number(view.getBigUint64(mdhd.start + 24)) : view.getUint32(mdhd.start + 16);
          const stsz = child(view, child(view, child(view, mdia, "minf"), "stbl"), "stsz");
          if (!stsz || !timescale || !duration) return null;
          const frameCount = view.getUint32(stsz.start + 8);
          return { frameCount, fps: (frameCount * timescale) / duration };
        }
        return null;
      }
      at += size;
    }
    return null;
  }

  function once(target, event) {
    return new Promise((resolve, reject) => {
      const ok = () => { target.removeEventListener("error", fail); resolve(); };
      const fail = () => { target.removeEventListener(event, ok); reject(new Error("this browser cannot decode this file")); };
      target.addEventListener(event, ok, { once: true });
      target.addEventListener("error", fail, { once: true });
    });
  }
  function grab(source, width, height) {
    const canvas = new OffscreenCanvas(width, height), context = canvas.getContext("2d", { willReadFrequently: true });
    context.drawImage(source, 0, 0, width, height);
    return fromRGBA(width, height, context.getImageData(0, 0, width, height).data);
  }

  // video.sample_frames: `count` evenly spaced frames (or `perSecond` a second), each reached by seeking.
  async function videoFrames(file, count, perSecond, onFrame) {
    const url = URL.createObjectURL(file), video = document.createElement("video");
    video.muted = true; video.preload = "auto"; video.src = url;
    try {
      await once(video, "loadeddata");
      const table = await mp4Info(file);
      const fps = table ? table.fps : ASSUMED_FPS;
      const frameCount = table ? table.frameCount : Math.max(1, Math.floor(video.duration * fps));
      const wanted = perSecond
        ? [...new Set(Array.from({ length: Math.ceil(frameCount / Math.max(1, fps / perSecond)) }, (_, i) => Math.floor(i * Math.max(1, fps / perSecond))))]
        : sampleIndices(frameCount, count);
      const frames = [];
      for (const index of wanted) {
        video.currentTime = Math.min((index + 0.5) / fps, video.duration);
        await once(video, "seeked");
        frames.push({ index, timestamp_s: index / fps, image: grab(video, video.videoWidth, video.videoHeight) });
        if (onFrame) onFrame(frames.length, wanted.length);
      }
      return { frames, exact: Boolean(table) };
    } finally {
      URL.revokeObjectURL(url);
    }
  }

  function thumbnail(crop) {
    const canvas = document.createElement("canvas");
    canvas.width = crop.width; canvas.height = crop.height;
    const rgba = new ImageData(crop.width, crop.height);
    for (let i = 0; i < crop.width * crop.height; i++) {
      rgba.data.set([crop.data[3 * i], crop.data[3 * i + 1], crop.data[3 * i + 2], 255], 4 * i);
    }
    canvas.getContext("2d").putImageData(rgba, 0, 0);
    return canvas.toDataURL("image/jpeg", 0.8);
  }

  // The whole scan of a file chosen on the page; the verdict in the server's JSON form (mode "device").
  async function scanFile(file, { info, token, onProgress } = {}) {
    const runtime = await load(info, token);
    const t0 = performance.now(), isImage = file.type.startsWith("image/");
    let frames, note = null;
    if (isImage) {
      const bitmap = await createImageBitmap(file);
      frames = [{ index: 0, timestamp_s: 0, image: grab(bitmap, bitmap.width, bitmap.height) }];
    } else {
      const sampling = runtime.info.sampling;
      const read = await videoFrames(file, sampling.frames, sampling.per_second, onProgress);
      frames = read.frames;
      if (!read.exact) note = `no MP4 frame table: frames sampled by time at an assumed ${ASSUMED_FPS} fps`;
    }
    const timings = { decode: (performance.now() - t0) / 1000 };
    const { verdict, crops } = await scanFrames(runtime, frames, { source: file.name, kind: isImage ? "image" : "video",
      follow: !isImage, timings });
    for (const track of verdict.tracks) {
      const members = verdict.faces.map((f, i) => [f, i]).filter(([f]) => f.track === track.track);
      const [, best] = members.reduce((a, b) => (b[0].confidence > a[0].confidence ? b : a));
      track.face = best; track.thumbnail = thumbnail(crops[best]);
    }
    verdict.runtime = runtime.info.runtime;
    if (note) verdict.note = note;
    return verdict;
  }

  window.deviceScan = { load, scanFile, scanFrames, fromRGBA, sampleIndices, cropFace, resizeArea, resizeLinear, mp4Info };
})();
