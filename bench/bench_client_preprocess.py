"""Preprocessing 32 frames of a 1280x720 30 fps H.264 clip (decode + detect + crop) vs decode only.

The baseline is the decode-only floor of the same clip and the same 32 frames (``sample_frames``
alone). Goal: <= 1.5x the floor. Measured for a 10 s clip and a 60 s clip (2 s keyframe interval),
with the default detector and CenterFace when its weights are installed, the way the client
prepares a video (decoding in a background thread, ``video.prefetch_frames``); the default detector
is also measured decoding and detecting in turn ("serial"), the path before prefetching. Clips are
generated once and cached under the system temp directory. The scene behind the face is coloured
noise, a hard case for the Haar cascade: most windows pass its first stages.
"""

from __future__ import annotations

import fractions
import pathlib
import tempfile
import time

import numpy as np


def make_clip(
    seconds: float, *, width: int = 1280, height: int = 720, fps: int = 30, gop_s: float = 2.0
) -> pathlib.Path:
    """Write (once) and return a clip with a real face drifting over a textured, scrolling scene."""
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
    face = cv2.resize(
        face, (round(face.shape[1] * scale), round(face.shape[0] * scale)), interpolation=cv2.INTER_AREA
    )
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


def _decode_only(path: pathlib.Path) -> float:
    from deepfake_client.video import sample_frames

    t = time.perf_counter()
    for _ in sample_frames(path, 32):
        pass
    return time.perf_counter() - t


def _prepare(path: pathlib.Path, detector: object, *, prefetch: bool = True) -> tuple[float, int]:
    from deepfake_client.faces import extract_faces
    from deepfake_client.video import prefetch_frames, sample_frames

    t = time.perf_counter()
    faces = 0
    frames = sample_frames(path, 32)
    for frame in prefetch_frames(frames) if prefetch else frames:
        faces += len(extract_faces(frame.rgb, detector, 0.3, 224, frame.index, frame.timestamp_s))  # type: ignore[arg-type]
    return time.perf_counter() - t, faces


def run(quick: bool) -> list[dict]:
    from deepfake_client.errors import InvalidInputError
    from deepfake_client.faces import make_detector

    haar = make_detector("haar")
    detectors: dict[str, tuple[object, bool]] = {"haar": (haar, True), "haar serial": (haar, False)}
    try:
        detectors["centerface"] = (make_detector("centerface"), True)
    except InvalidInputError:
        pass
    rows = []
    for seconds in (10,) if quick else (10, 60):
        clip = make_clip(seconds)
        _decode_only(clip)  # warm the page cache
        floor = min(_decode_only(clip) for _ in range(1 if quick else 2))
        for name, (detector, prefetch) in detectors.items():
            spent, faces = min(_prepare(clip, detector, prefetch=prefetch) for _ in range(1 if quick else 2))
            rows.append(
                {
                    "name": f"preprocess 32 frames, {seconds} s 720p, {name} ({faces} faces)",
                    "value": spent,
                    "unit": "s",
                    "baseline": floor,
                    "baseline_name": "decode-only floor",
                    "goal": "<= 1.5x floor",
                }
            )
    return rows
