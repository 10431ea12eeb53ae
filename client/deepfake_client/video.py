"""Reading frames from videos and images without decoding more than needed.

``sample_frames`` yields N evenly spaced frames of a video as RGB uint8 arrays. It streams with
``grab``/``retrieve``: every frame is demuxed and decoded by the codec, but only the sampled ones are
converted to RGB and kept, and never more than one at a time is held here.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from deepfake_client.errors import InvalidInputError, NotFoundError

DEFAULT_FRAMES = 32
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"})


@dataclass(frozen=True)
class Frame:
    """One decoded frame: its index in the video, its time and its RGB uint8 pixels ``[H, W, 3]``."""

    index: int
    timestamp_s: float
    rgb: np.ndarray


def is_image(path: str | pathlib.Path) -> bool:
    return pathlib.Path(path).suffix.lower() in IMAGE_SUFFIXES


def is_video(path: str | pathlib.Path) -> bool:
    return pathlib.Path(path).suffix.lower() in VIDEO_SUFFIXES


def _check_file(path: str | pathlib.Path) -> pathlib.Path:
    path = pathlib.Path(path)
    if not path.exists():
        raise NotFoundError(f"{path}: no such file")
    if not path.is_file():
        raise InvalidInputError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise InvalidInputError(f"{path}: the file is empty")
    return path


def sample_indices(frame_count: int, count: int) -> list[int]:
    """``count`` evenly spaced frame indices in ``[0, frame_count)`` (all of them if fewer)."""
    if frame_count <= 0 or count <= 0:
        return []
    if count >= frame_count:
        return list(range(frame_count))
    return sorted({int(round(i)) for i in np.linspace(0, frame_count - 1, count)})


def sample_frames(path: str | pathlib.Path, count: int = DEFAULT_FRAMES) -> Iterator[Frame]:
    """Yield ``count`` evenly spaced frames of the video at ``path``.

    The frame count in a container's metadata can be wrong: reading stops cleanly at the real end,
    and the frames sampled are those that exist.

    Raises:
        NotFoundError: the file does not exist.
        InvalidInputError: the file is empty, not a video, or has no decodable frame.
    """
    import cv2

    path = _check_file(path)
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise InvalidInputError(f"{path}: not a readable video")
        fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
        frame_count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if frame_count <= 0:
            raise InvalidInputError(f"{path}: the video has no frames")
        wanted = sample_indices(frame_count, count)
        wanted_set = set(wanted)
        last = wanted[-1]
        produced = 0
        index = 0
        while index <= last:
            if not capture.grab():
                break  # the real end, earlier than the metadata said
            if index in wanted_set:
                ok, bgr = capture.retrieve()
                if ok and bgr is not None:
                    timestamp = index / fps if fps > 0 else capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
                    produced += 1
                    yield Frame(index, float(timestamp), cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            index += 1
        if produced == 0:
            raise InvalidInputError(f"{path}: no frame could be decoded (corrupt or truncated video?)")
    finally:
        capture.release()
