"""Benchmark clips for the client benchmarks: 1280x720 30 fps H.264 with a real face moving across.

Not a benchmark itself (``run`` returns nothing); shared by ``bench_client_preprocess``.
Clips are cached under the system temp directory, keyed by their parameters.
"""

from __future__ import annotations

import fractions
import pathlib
import tempfile

import numpy as np


def make_clip(seconds: float, *, width: int = 1280, height: int = 720, fps: int = 30, gop_s: float = 2.0) -> pathlib.Path:
    """Write (once) and return a clip with one real face drifting over a textured scene."""
    import av
    import cv2

    from training.synthetic import real_face

    folder = pathlib.Path(tempfile.gettempdir()) / "deepfake-bench-clips"
    folder.mkdir(exist_ok=True)
    path = folder / f"clip_{seconds:g}s_{width}x{height}_{fps}fps_gop{gop_s:g}.mp4"
    if path.exists() and path.stat().st_size > 0:
        return path
    rng = np.random.default_rng(0)
    background = rng.integers(40, 200, size=(height // 8, width // 8, 3), dtype=np.uint8)
    background = cv2.resize(background, (width, height), interpolation=cv2.INTER_CUBIC)
    face = real_face()
    scale = (height * 0.45) / face.shape[0]
    face = cv2.resize(face, (round(face.shape[1] * scale), round(face.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    fh, fw = face.shape[:2]
    count = int(seconds * fps)
    partial = path.with_suffix(".partial.mp4")
    with av.open(str(partial), "w") as container:
        stream = container.add_stream("libx264", rate=fractions.Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = int(gop_s * fps)
        stream.options = {"preset": "veryfast"}
        for i in range(count):
            t = i / max(1, count - 1)
            frame = np.roll(background, i * 3, axis=1)
            x0 = int((width - fw) * (0.2 + 0.6 * t))
            y0 = int((height - fh) * (0.5 + 0.3 * np.sin(6.28 * t * 3)))
            frame[y0 : y0 + fh, x0 : x0 + fw] = face
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    partial.rename(path)
    return path


def run(quick: bool) -> list[dict]:
    return []
