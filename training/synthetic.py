"""Generated data for tests and the demo: real faces on generated scenes, as images and videos.

The faces are real (the astronaut photograph that scikit-image ships), so the project's face
detector finds them. Fakes carry blending artefacts (see ``blend_fake``), which is what a face-crop
detector learns to see. A model trained on this data demonstrates the pipeline; it does not detect
real deepfakes.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterable

import numpy as np

# The head of Eileen Collins in skimage.data.astronaut() (512x512), with some context around it.
_HEAD = (slice(10, 230), slice(120, 330))


def real_face() -> np.ndarray:
    """A real face photograph (RGB uint8, about 220x210) shipped inside scikit-image."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[_HEAD])


def scene(
    face: np.ndarray,
    height: int,
    width: int,
    center: tuple[float, float],
    face_height: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Paste ``face`` scaled to ``face_height`` pixels at ``center`` (x, y) on a generated background."""
    import cv2

    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(40, 200, size=3).astype(np.float32)
    slope = rng.uniform(-0.15, 0.15, size=(2, 3)).astype(np.float32)
    background = base + xx[..., None] * slope[0] + yy[..., None] * slope[1]
    background += rng.normal(0, 6, size=(height, width, 3)).astype(np.float32)
    frame = np.clip(background, 0, 255).astype(np.uint8)
    scale = face_height / face.shape[0]
    patch = cv2.resize(face, (max(1, round(face.shape[1] * scale)), face_height), interpolation=cv2.INTER_AREA)
    ph, pw = patch.shape[:2]
    x0, y0 = round(center[0] - pw / 2), round(center[1] - ph / 2)
    fx0, fy0, fx1, fy1 = max(0, x0), max(0, y0), min(width, x0 + pw), min(height, y0 + ph)
    if fx1 > fx0 and fy1 > fy0:
        frame[fy0:fy1, fx0:fx1] = patch[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0]
    return frame


def moving_face_frames(
    count: int = 30, height: int = 360, width: int = 640, face_height: int = 200, seed: int = 0
) -> Iterable[np.ndarray]:
    """Frames of a real face drifting across a generated scene (RGB uint8)."""
    rng = np.random.default_rng(seed)
    face = real_face()
    for i in range(count):
        t = i / max(1, count - 1)
        center = (width * (0.35 + 0.3 * t), height * (0.5 + 0.05 * np.sin(6.28 * t)))
        yield scene(face, height, width, center, face_height, np.random.default_rng(rng.integers(1 << 31)))


def write_video(path: str | pathlib.Path, frames: Iterable[np.ndarray], fps: float = 25.0, codec: str = "libx264") -> None:
    """Encode RGB uint8 frames to a video file with PyAV (H.264 by default; ``mpeg4`` also works)."""
    import fractions

    import av

    frames = iter(frames)
    first = next(frames)
    height, width = first.shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fractions.Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = width - width % 2, height - height % 2, "yuv420p"
        for frame in _chain(first, frames):
            video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[: stream.height, : stream.width]), format="rgb24")
            container.mux(stream.encode(video_frame))
        container.mux(stream.encode())


def _chain(first: np.ndarray, rest: Iterable[np.ndarray]) -> Iterable[np.ndarray]:
    yield first
    yield from rest
