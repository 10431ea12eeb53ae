"""Reading frames from videos and images without decoding more than needed.

``sample_frames`` yields N evenly spaced frames of a video (or N per second) as RGB uint8 arrays,
streaming with ``grab``/``retrieve`` on short clips and seeking on long ones; only the sampled
frames are converted to RGB, one at a time. ``prefetch_frames`` decodes in a background thread
while the caller detects faces in the frames already decoded. ``load_image`` reads an image after
checking its size from the header.
"""

from __future__ import annotations

import pathlib
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from deepfake_client.errors import InvalidInputError, NotFoundError

DEFAULT_FRAMES = 32
MAX_IMAGE_PIXELS = 50_000_000  # refused from the header, before decoding
SEEK_MIN_GAP_S = 8.0  # auto mode seeks when samples are at least this far apart (seconds)
SEEK_MIN_GAP_FRAMES = 30  # ... and, while seeking, decodes forward over gaps shorter than this
DECODERS = ("auto", "pyav", "opencv")  # auto: PyAV when it can read the file, else OpenCV
PREFETCH_DEPTH = 2  # decoded frames waiting for the consumer in prefetch_frames


@dataclass(frozen=True)
class Frame:
    """One decoded frame: its index in the video, its time and its RGB uint8 pixels ``[H, W, 3]``."""

    index: int
    timestamp_s: float
    rgb: np.ndarray


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


def sample_frames(
    path: str | pathlib.Path,
    count: int = DEFAULT_FRAMES,
    *,
    per_second: float | None = None,
    seek: bool | None = None,
    decoder: str = "auto",
) -> Iterator[Frame]:
    """Yield ``count`` evenly spaced frames of the video at ``path`` (or ``per_second`` frames a second).

    Only the sampled frames are converted to RGB and only one is held at a time. Short clips are
    decoded straight through: by PyAV when it can read the file (``decoder="auto"``), which skips
    the non-reference frames that are not sampled (``decoding.PyAVVideo``: the same frames, indices
    and timestamps as OpenCV, about a third less CPU on x264 clips), else by OpenCV with
    ``grab``/``retrieve``. With far-apart samples each sample is reached by seeking instead.
    OpenCV's seek decodes from the keyframe before the target, so it only wins when samples are
    several keyframe intervals apart;
    ``seek=None`` seeks when samples are at least ``SEEK_MIN_GAP_S`` apart. (Measured on 60 s 720p
    H.264 with 32 samples, 1.9 s apart: streaming 1.3 s, seeking 1.5 s with 2 s keyframe intervals
    and 3.5 s with 8 s ones, so such clips stream.) Rotation metadata is applied.
    The frame count in a container's metadata can be wrong: reading stops cleanly at the real end,
    and the frames sampled are those that exist.

    ``decoder``: ``auto`` (PyAV, else OpenCV), ``pyav`` or ``opencv`` (seeking is always OpenCV's).

    Raises:
        NotFoundError: the file does not exist.
        InvalidInputError: the file is empty, not a video, has no decodable frame, or ``count`` is
            not positive.
    """
    path = _check_file(path)
    if per_second is None and count < 1:
        raise InvalidInputError(f"the number of frames to sample must be positive, got {count}")
    if per_second is not None and per_second <= 0:
        raise InvalidInputError(f"frames per second must be positive, got {per_second}")
    if decoder not in DECODERS:
        raise InvalidInputError(f"unknown decoder {decoder!r} (known: {', '.join(DECODERS)})")
    if decoder != "opencv":
        from deepfake_client.decoding import open_video

        video = open_video(path)
        if video is None and decoder == "pyav":
            raise InvalidInputError(f"{path}: PyAV cannot read a video in this file (is PyAV installed?)")
        if video is not None:
            try:
                wanted = _wanted(path, video.frame_count, video.fps, count, per_second)
                if not _seeks(seek, video.frame_count, video.fps, wanted):
                    yield from _frames(path, video.frames(wanted), video.fps)
                    return
            finally:
                video.close()
    yield from _sample_with_opencv(path, count, per_second, seek)


def _wanted(
    path: pathlib.Path, frame_count: int, fps: float, count: int, per_second: float | None
) -> list[int]:
    """The indices to sample: ``count`` evenly spaced, or ``per_second`` a second."""
    if frame_count <= 0:
        raise InvalidInputError(f"{path}: the video has no frames")
    if per_second is not None:
        step = max(1.0, (fps or 25.0) / per_second)
        return sorted({int(i) for i in np.arange(0, frame_count, step)})
    return sample_indices(frame_count, count)


def _seeks(seek: bool | None, frame_count: int, fps: float, wanted: list[int]) -> bool:
    if seek is not None:
        return seek
    gap_s = (frame_count / max(1, len(wanted))) / (fps or 25.0)
    return gap_s >= SEEK_MIN_GAP_S


def _frames(path: pathlib.Path, decoded: Iterator[tuple[int, np.ndarray]], fps: float) -> Iterator[Frame]:
    """``Frame``s of decoded ``(index, rgb)`` pairs, timestamped ``index / fps``; an error if none."""
    produced = 0
    for index, rgb in decoded:
        produced += 1
        yield Frame(index, index / fps if fps > 0 else 0.0, rgb)
    if produced == 0:
        raise InvalidInputError(f"{path}: no frame could be decoded (corrupt or truncated video?)")


def _sample_with_opencv(
    path: pathlib.Path, count: int, per_second: float | None, seek: bool | None
) -> Iterator[Frame]:
    import cv2

    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        if not capture.isOpened():
            raise InvalidInputError(f"{path}: not a readable video (no video stream, corrupt or truncated?)")
        capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
        fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
        frame_count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        wanted = _wanted(path, frame_count, fps, count, per_second)
        frames = (
            _seek_frames(capture, wanted)
            if _seeks(seek, frame_count, fps, wanted)
            else _stream_frames(capture, wanted)
        )
        rgb = ((index, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)) for index, bgr in frames)
        yield from _frames(path, rgb, fps)
    finally:
        capture.release()


def _stream_frames(capture: object, wanted: list[int]) -> Iterator[tuple[int, np.ndarray]]:
    """Decode straight through, converting only the wanted frames."""
    wanted_set = set(wanted)
    last = wanted[-1] if wanted else -1
    index = 0
    while index <= last:
        if not capture.grab():  # type: ignore[attr-defined]
            return  # the real end, earlier than the metadata said
        if index in wanted_set:
            ok, bgr = capture.retrieve()  # type: ignore[attr-defined]
            if ok and bgr is not None:
                yield index, bgr
        index += 1


def _seek_frames(capture: object, wanted: list[int]) -> Iterator[tuple[int, np.ndarray]]:
    """Seek to each wanted frame (OpenCV seeks to the keyframe before it and decodes forward)."""
    import cv2

    position = 0
    for index in wanted:
        if index - position > SEEK_MIN_GAP_FRAMES or index < position:
            capture.set(cv2.CAP_PROP_POS_FRAMES, index)  # type: ignore[attr-defined]
            position = index
        while position < index:  # close enough: decoding forward is cheaper than a seek
            if not capture.grab():  # type: ignore[attr-defined]
                return
            position += 1
        ok, bgr = capture.read()  # type: ignore[attr-defined]
        if not ok or bgr is None:
            return  # past the real end
        position = index + 1
        yield index, bgr


def prefetch_frames(frames: Iterator[Frame], *, depth: int = PREFETCH_DEPTH) -> Iterator[Frame]:
    """Run ``frames`` (e.g. ``sample_frames(...)``) in a background thread, ``depth`` frames ahead.

    FFmpeg's decoding and OpenCV's face detection both release the GIL, so the next sampled frames
    are decoded while the caller detects faces in this one. At most ``depth + 2`` frames are alive
    at once (``depth`` waiting, one being decoded, one with the caller): memory stays bounded by
    the sampled frames, whatever the video's length. Errors of ``frames`` (``InvalidInputError``,
    ``NotFoundError``) are raised to the caller, in order; closing the returned iterator early (a
    ``break``, an exception in the caller) stops the decoding thread and releases the video.

    At best it saves the whole decode time (the floor of ``bench client_preprocess``: 0.3-0.5 s
    for 32 frames of a 10 s 720p clip, 2.8 s of a 60 s one), when a core is idle; the CPU work is
    the same. Measured on a shared 2-core machine, Haar, 10 s clip, interleaved runs: 4.3, 4.2,
    (10.1) s prefetched vs 5.0, 4.3, 4.8 s in turn, CPU time 8.1-8.6 s either way; with every
    core busy the gain is lost in the noise (60 s clip: 12.2-13.8 s vs 11.1-14.0 s).

    Args:
        frames: the frames to read ahead; iterated in the background thread only.
        depth: how many decoded frames may wait (at least 1).
    """
    if depth < 1:
        raise InvalidInputError(f"prefetch depth must be at least 1, got {depth}")
    waiting: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: tuple[str, object]) -> bool:
        while not stop.is_set():
            try:
                waiting.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for frame in frames:
                if not put(("frame", frame)):
                    return
            put(("end", None))
        except BaseException as err:  # handed to the caller, raised there
            put(("error", err))
        finally:
            close = getattr(frames, "close", None)
            if close is not None:
                close()  # releases the capture in the thread that used it

    thread = threading.Thread(target=produce, name="deepfake-decode", daemon=True)
    thread.start()
    try:
        while True:
            kind, item = waiting.get()
            if kind == "end":
                return
            if kind == "error":
                raise item  # type: ignore[misc]
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()


def read_image_size(path: str | pathlib.Path) -> tuple[int, int] | None:
    """``(width, height)`` from an image file's header, without decoding pixels (None if unknown).

    Reads PNG, JPEG, GIF, BMP and WebP headers.
    """
    with open(path, "rb") as f:
        head = f.read(32)
        if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
            return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
        if head[:6] in (b"GIF87a", b"GIF89a"):
            return int.from_bytes(head[6:8], "little"), int.from_bytes(head[8:10], "little")
        if head[:2] == b"BM" and len(head) >= 26:
            return int.from_bytes(head[18:22], "little", signed=True), abs(
                int.from_bytes(head[22:26], "little", signed=True)
            )
        if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            chunk = head[12:16]
            rest = head[16:] + f.read(16)
            if chunk == b"VP8X":
                return 1 + int.from_bytes(rest[8:11], "little"), 1 + int.from_bytes(rest[11:14], "little")
            if chunk == b"VP8 ":
                return int.from_bytes(rest[10:12], "little") & 0x3FFF, int.from_bytes(
                    rest[12:14], "little"
                ) & 0x3FFF
            if chunk == b"VP8L":
                bits = int.from_bytes(rest[5:9], "little")
                return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
            return None
        if head[:2] == b"\xff\xd8":
            f.seek(2)
            while True:
                marker = f.read(2)
                if len(marker) < 2 or marker[0] != 0xFF:
                    return None
                while len(marker) == 2 and marker[1] == 0xFF:  # fill bytes
                    marker = marker[1:] + f.read(1)
                if len(marker) < 2:
                    return None  # the file ends in fill bytes
                kind = marker[1]
                if kind in (0xD8, 0x01) or 0xD0 <= kind <= 0xD7:
                    continue
                length = int.from_bytes(f.read(2), "big")
                if 0xC0 <= kind <= 0xCF and kind not in (0xC4, 0xC8, 0xCC):
                    sof = f.read(5)
                    return int.from_bytes(sof[3:5], "big"), int.from_bytes(sof[1:3], "big")
                if length < 2:
                    return None
                f.seek(length - 2, 1)
    return None


def load_image(path: str | pathlib.Path, *, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Read an image file as RGB uint8 ``[H, W, 3]``.

    The size is checked from the header before any pixel is decoded. EXIF orientation is applied;
    grayscale becomes RGB, alpha is dropped, 16-bit is scaled to 8-bit.

    Raises:
        NotFoundError: the file does not exist.
        InvalidInputError: empty, unreadable, too large, or not a decodable image.
    """
    import cv2

    path = _check_file(path)
    try:
        size = read_image_size(path)
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as err:  # permissions, I/O errors
        raise InvalidInputError(f"{path}: cannot read the image: {err.strerror or err}") from err
    if size is not None:
        width, height = size
        if width <= 0 or height <= 0:
            raise InvalidInputError(f"{path}: the image header says {width}x{height}")
        if width * height > max_pixels:
            raise InvalidInputError(
                f"{path}: the image is {width}x{height} ({width * height / 1e6:.0f} megapixels); "
                f"the limit is {max_pixels / 1e6:.0f} megapixels"
            )
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)  # applies EXIF orientation; any depth -> 8-bit BGR
    if bgr is None:
        raise InvalidInputError(f"{path}: not a decodable image")
    if size is None and bgr.shape[0] * bgr.shape[1] > max_pixels:
        raise InvalidInputError(f"{path}: the image is {bgr.shape[1]}x{bgr.shape[0]}, over the size limit")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
