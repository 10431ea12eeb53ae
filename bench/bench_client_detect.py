"""Face detection recall and IoU on generated frames, per detector, against the Haar cascade.

Frames are 640x360 scenes with one real face (scikit-image's astronaut) at several sizes and
positions, some blurred, JPEG-compressed or mildly rotated. A face counts as found when a detection
overlaps the pasted face box with IoU >= 0.3 (face boxes of different detectors frame the head
differently); IoU is averaged over the found faces. Time is per frame.
"""

from __future__ import annotations

import time

import numpy as np


def _cases(quick: bool) -> list[tuple[np.ndarray, tuple[float, float, float, float]]]:
    import cv2

    from training.synthetic import real_face

    face = real_face()
    # the astronaut's face inside real_face(): roughly rows 50-170, cols 55-160 of 220x210
    fx0, fy0, fx1, fy1 = 55 / 210, 50 / 220, 160 / 210, 170 / 220
    rng = np.random.default_rng(7)
    cases = []
    sizes = (40, 80, 160, 300) if not quick else (60, 160)
    for height in sizes:
        for cx, cy in ((0.3, 0.5), (0.7, 0.4), (0.5, 0.6)):
            for variant in ("plain", "blur", "jpeg20", "rot10"):
                canvas = np.clip(rng.normal(120, 25, (360, 640, 3)), 0, 255).astype(np.uint8)
                scale = height / face.shape[0]
                patch = cv2.resize(face, (round(face.shape[1] * scale), height), interpolation=cv2.INTER_AREA)
                ph, pw = patch.shape[:2]
                x0, y0 = int(cx * 640 - pw / 2), int(cy * 360 - ph / 2)
                x0, y0 = max(0, min(640 - pw, x0)), max(0, min(360 - ph, y0))
                canvas[y0 : y0 + ph, x0 : x0 + pw] = patch
                if variant == "blur":
                    canvas = cv2.GaussianBlur(canvas, (0, 0), 2.0)
                elif variant == "jpeg20":
                    ok, data = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 20])
                    canvas = cv2.imdecode(data, cv2.IMREAD_COLOR)
                elif variant == "rot10":
                    m = cv2.getRotationMatrix2D((x0 + pw / 2, y0 + ph / 2), 10, 1.0)
                    canvas = cv2.warpAffine(canvas, m, (640, 360), borderMode=cv2.BORDER_REFLECT)
                box = (x0 + fx0 * pw, y0 + fy0 * ph, (fx1 - fx0) * pw, (fy1 - fy0) * ph)
                cases.append((canvas, box))
    return cases


def _score(detector: object, cases: list) -> tuple[float, float, float]:  # type: ignore[type-arg]
    from deepfake_client.faces import Box

    found, ious, spent = 0, [], 0.0
    for frame, box in cases:
        t = time.perf_counter()
        detections = detector.detect(frame)  # type: ignore[attr-defined]
        spent += time.perf_counter() - t
        best = max((d.box.iou(Box(*box)) for d in detections), default=0.0)
        if best >= 0.3:
            found += 1
            ious.append(best)
    return found / len(cases), float(np.mean(ious)) if ious else 0.0, spent / len(cases)


def _forward_ms(run_once, repeats: int) -> float:  # type: ignore[no-untyped-def]
    for _ in range(3):
        run_once()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        run_once()
        best = min(best, time.perf_counter() - t)
    return best * 1000


def _runtimes(repeats: int) -> list[dict]:
    """CenterFace's forward pass on a 640x384 input: ONNX Runtime (1 and 2 threads) vs cv2.dnn."""
    import importlib.resources

    import cv2
    import onnxruntime

    path = str(importlib.resources.files("deepfake_client") / "models" / "centerface.onnx")
    blob = np.random.default_rng(0).uniform(0, 255, (1, 3, 384, 640)).astype(np.float32)
    net = cv2.dnn.readNetFromONNX(path)

    def dnn() -> None:
        net.setInput(blob)
        net.forward(["537", "538", "539", "540"])

    opencv = _forward_ms(dnn, repeats)
    times = {}
    for threads in (1, 2):
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        times[threads] = _forward_ms(lambda s=session: s.run(None, {"input.1": blob}), repeats)
    return [
        {
            "name": f"centerface forward 640x384, ONNX Runtime {threads} thread{'s' if threads > 1 else ''}",
            "value": times[threads] / 1000,
            "unit": "s",
            "baseline": opencv / 1000,
            "baseline_name": f"cv2.dnn ({cv2.getNumThreads()} threads)",
            "goal": "< 1",
        }
        for threads in (1, 2)
    ]


def run(quick: bool) -> list[dict]:
    from deepfake_client.errors import InvalidInputError
    from deepfake_client.faces import make_detector

    cases = _cases(quick)
    haar = _score(make_detector("haar"), cases)
    rows = [
        {
            "name": f"haar recall ({len(cases)} frames)",
            "value": haar[0],
            "unit": "share",
            "baseline": haar[0],
            "baseline_name": "haar",
            "goal": "reference",
        }
    ]
    try:
        other = {"centerface": make_detector("centerface")}
    except InvalidInputError:
        other = {}
    for name, detector in other.items():
        recall, iou, per_frame = _score(detector, cases)
        rows += [
            {
                "name": f"{name} recall",
                "value": recall,
                "unit": "share",
                "baseline": haar[0],
                "baseline_name": "haar",
                "goal": ">= haar",
            },
            {
                "name": f"{name} mean IoU of found faces",
                "value": iou,
                "unit": "IoU",
                "baseline": haar[1],
                "baseline_name": "haar",
                "goal": ">= haar",
            },
            {
                "name": f"{name} time per 640x360 frame",
                "value": per_frame,
                "unit": "s",
                "baseline": haar[2],
                "baseline_name": "haar",
                "goal": "<= haar",
            },
        ]
    return rows + _runtimes(5 if quick else 20)
