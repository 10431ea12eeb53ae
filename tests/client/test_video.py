"""Frame sampling and image loading on real files, including the bad ones a service receives."""

from __future__ import annotations

import fractions
import pathlib
import struct
import threading
import time
import zlib
from collections.abc import Iterator

import numpy as np
import pytest

from deepfake_client.errors import InvalidInputError, NotFoundError
from deepfake_client.video import (
    Frame,
    load_image,
    prefetch_frames,
    read_image_size,
    sample_frames,
    sample_indices,
)


def _write(
    path: pathlib.Path, frames: int, *, faststart: bool = False, size: tuple[int, int] = (160, 96)
) -> pathlib.Path:
    import av

    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream("libx264", rate=fractions.Fraction(25))
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.codec_context.gop_size = 5
        for i in range(frames):
            rgb = np.full((size[1], size[0], 3), (i * 5) % 256, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode())
    return path


def test_samples_evenly_with_indices_and_timestamps(face_video: pathlib.Path) -> None:
    frames = list(sample_frames(face_video, 8))
    assert [f.index for f in frames] == sample_indices(50, 8) == [0, 7, 14, 21, 28, 35, 42, 49]
    assert frames[1].timestamp_s == pytest.approx(7 / 25)
    assert all(f.rgb.dtype == np.uint8 and f.rgb.shape == (360, 640, 3) for f in frames)


def test_seeking_and_streaming_give_the_same_frames(face_video: pathlib.Path) -> None:
    streamed = list(sample_frames(face_video, 5, seek=False))
    seeked = list(sample_frames(face_video, 5, seek=True))
    assert [f.index for f in streamed] == [f.index for f in seeked]
    for a, b in zip(streamed, seeked, strict=True):
        np.testing.assert_array_equal(a.rgb, b.rgb)


def test_prefetched_frames_are_the_sampled_frames(face_video: pathlib.Path) -> None:
    plain = list(sample_frames(face_video, 6))
    ahead = list(prefetch_frames(sample_frames(face_video, 6)))
    assert [f.index for f in ahead] == [f.index for f in plain] == sample_indices(50, 6)
    for a, b in zip(plain, ahead, strict=True):
        assert a.timestamp_s == b.timestamp_s
        np.testing.assert_array_equal(a.rgb, b.rgb)
    with pytest.raises(NotFoundError):  # errors reach the caller
        list(prefetch_frames(sample_frames(face_video.with_name("missing.mp4"))))


def _counted(made: list[int], finished: threading.Event, count: int = 50) -> Iterator[Frame]:
    try:
        for i in range(count):
            made.append(i)
            yield Frame(i, i / 25, np.zeros((4, 4, 3), np.uint8))
            if i == 7:
                raise InvalidInputError("frame 8 is corrupt")
    finally:
        finished.set()


def _decoders() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "deepfake-decode"]


def test_prefetch_holds_a_bounded_number_of_frames_and_stops_when_closed() -> None:
    made: list[int] = []
    finished = threading.Event()
    frames = prefetch_frames(_counted(made, finished), depth=2)
    first = next(frames)
    time.sleep(0.3)  # the decoding thread runs ahead as far as it may
    assert first.index == 0 and len(made) == 4  # the caller's frame, 2 waiting, 1 ready to be put
    frames.close()
    assert finished.is_set() and not _decoders()  # the source was closed and the thread is gone
    assert len(made) == 4


def test_prefetch_raises_a_source_error_after_the_frames_before_it() -> None:
    finished = threading.Event()
    seen = []
    with pytest.raises(InvalidInputError, match="frame 8"):
        for frame in prefetch_frames(_counted([], finished)):
            seen.append(frame.index)
    assert seen == list(range(8)) and finished.is_set() and not _decoders()


def test_frames_per_second(face_video: pathlib.Path) -> None:
    frames = list(sample_frames(face_video, per_second=2))
    assert [f.index for f in frames] == [0, 12, 25, 37]  # every 12.5 frames of a 25 fps, 2 s clip


def test_more_frames_than_the_video_has(tmp_path: pathlib.Path) -> None:
    assert [f.index for f in sample_frames(_write(tmp_path / "short.mp4", 4), 32)] == [0, 1, 2, 3]


def test_truncated_video_with_index_up_front_stops_at_the_real_end(tmp_path: pathlib.Path) -> None:
    # With the index (moov) first, the container still claims 60 frames after the data is cut.
    whole = _write(tmp_path / "whole.mp4", 60, faststart=True).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole[: len(whole) * 2 // 3])
    for seek in (False, True):
        frames = list(sample_frames(cut, 10, seek=seek))
        assert 0 < len(frames) < 10 and frames[0].index == 0


@pytest.mark.parametrize(
    "make, error",
    [
        (lambda p: None, NotFoundError),
        (lambda p: p.write_bytes(b""), InvalidInputError),
        (lambda p: p.write_text("this is not a video\n" * 100), InvalidInputError),
    ],
    ids=["missing", "zero-byte", "text-named-mp4"],
)
def test_bad_video_files(tmp_path: pathlib.Path, make, error) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "bad.mp4"
    make(path)
    with pytest.raises(error):
        list(sample_frames(path))


def test_truncated_mp4_without_index(face_video: pathlib.Path, tmp_path: pathlib.Path) -> None:
    data = face_video.read_bytes()
    path = tmp_path / "truncated.mp4"
    path.write_bytes(data[: len(data) // 2])  # PyAV writes the index last: it is gone
    with pytest.raises(InvalidInputError):
        list(sample_frames(path))


def test_audio_only_file(tmp_path: pathlib.Path) -> None:
    import av

    path = tmp_path / "audio.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        t = np.arange(16000, dtype=np.float32) / 16000
        frame = av.AudioFrame.from_ndarray(
            np.sin(2 * np.pi * 440 * t)[None, :].astype(np.float32), format="fltp", layout="mono"
        )
        frame.sample_rate = 16000
        for packet in stream.encode(frame):
            container.mux(packet)
        container.mux(stream.encode())
    with pytest.raises(InvalidInputError):
        list(sample_frames(path))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_huge_png_is_refused_from_its_header(tmp_path: pathlib.Path) -> None:
    side = 20000  # a valid 1-bit PNG of 20000x20000: 400 megapixels, 50 MB raw, tiny on disk
    row = b"\x00" + b"\x00" * (side // 8)
    compressor = zlib.compressobj(1)
    idat = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    path = tmp_path / "huge.png"
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )
    assert read_image_size(path) == (side, side)
    with pytest.raises(InvalidInputError, match="20000x20000"):
        load_image(path)


@pytest.mark.parametrize(
    "pixels",
    [
        lambda img: img[..., 0],  # grayscale
        lambda img: np.dstack([img[..., ::-1], np.full(img.shape[:2], 128, np.uint8)]),  # BGRA
        lambda img: img[..., ::-1].astype(np.uint16) * 257,  # 16-bit
    ],
    ids=["gray", "rgba", "16-bit"],
)
def test_image_kinds_become_rgb_uint8(tmp_path: pathlib.Path, face_image: np.ndarray, pixels) -> None:  # type: ignore[no-untyped-def]
    import cv2

    path = tmp_path / "face.png"
    assert cv2.imwrite(str(path), pixels(face_image))
    rgb = load_image(path)
    assert rgb.dtype == np.uint8 and rgb.shape == face_image.shape
    assert read_image_size(path) == (512, 512)


def test_exif_rotated_jpeg_is_turned_upright(tmp_path: pathlib.Path, face_image: np.ndarray) -> None:
    from PIL import Image  # test-only: writes the EXIF orientation tag

    upright = np.ascontiguousarray(face_image[:, :400])
    stored = np.ascontiguousarray(np.rot90(upright, 1))  # what a sideways camera writes
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    path = tmp_path / "rotated.jpg"
    Image.fromarray(stored).save(path, quality=95, exif=exif.tobytes())
    assert read_image_size(path) == (512, 400)  # stored size
    rgb = load_image(path)
    assert rgb.shape == upright.shape
    assert np.abs(rgb.astype(int) - upright).mean() < 8


def test_text_named_jpg(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "fake.jpg"
    path.write_text("hello")
    with pytest.raises(InvalidInputError):
        load_image(path)


def test_jpeg_header_ending_in_fill_bytes(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "cut.jpg"
    path.write_bytes(b"\xff\xd8\xff\xff")  # a marker's fill bytes, then the end of the file
    assert read_image_size(path) is None
    with pytest.raises(InvalidInputError):
        load_image(path)


def test_zero_frames_is_refused_as_such(face_video: pathlib.Path) -> None:
    with pytest.raises(InvalidInputError, match="must be positive"):
        list(sample_frames(face_video, 0))


def test_an_unreadable_image_is_invalid_input(tmp_path, monkeypatch) -> None:
    """A read error (permissions, I/O) is exit 2 naming the file (injected: the tests run as root)."""
    import errno

    from deepfake_client import video
    from deepfake_client.errors import InvalidInputError

    path = tmp_path / "locked.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)

    def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(video.np, "fromfile", refuse)
    with pytest.raises(InvalidInputError, match="locked.png: cannot read the image: Permission denied"):
        video.load_image(path)


def _write_codec(path: pathlib.Path, codec: str, frames: list[np.ndarray], fps: int = 25) -> pathlib.Path:
    from training.synthetic import write_video

    write_video(path, frames, fps=fps, codec=codec)
    return path


@pytest.mark.parametrize(
    "name, codec",
    [
        ("bframes.mp4", "libx264"),
        ("matroska.mkv", "libx264"),
        ("vp9.webm", "libvpx-vp9"),
        ("xvid.avi", "mpeg4"),
        ("transport.ts", "libx264"),
    ],
)
def test_pyav_and_opencv_give_the_same_frames(tmp_path: pathlib.Path, name: str, codec: str) -> None:
    from training.synthetic import moving_face_frames

    # x264's default preset makes B-frames, which PyAV skips when they are not sampled
    path = _write_codec(tmp_path / name, codec, list(moving_face_frames(count=40, height=144, width=256)))
    for options in ({"count": 32}, {"count": 5}, {"per_second": 3.0}):
        ours = list(sample_frames(path, decoder="pyav", **options))  # type: ignore[arg-type]
        theirs = list(sample_frames(path, decoder="opencv", **options))  # type: ignore[arg-type]
        assert [f.index for f in ours] == [f.index for f in theirs] and ours
        assert [f.timestamp_s for f in ours] == pytest.approx([f.timestamp_s for f in theirs])
        for a, b in zip(ours, theirs, strict=True):
            np.testing.assert_array_equal(a.rgb, b.rgb)


def test_pyav_skips_the_non_reference_frames_it_does_not_need(tmp_path: pathlib.Path) -> None:
    import av

    from deepfake_client.decoding import open_video
    from training.synthetic import moving_face_frames

    path = _write_codec(
        tmp_path / "b.mp4", "libx264", list(moving_face_frames(count=60, height=144, width=256))
    )
    video = open_video(path)
    assert video is not None and video.frame_count == 60
    try:
        wanted = sample_indices(60, 6)
        assert [index for index, _ in video.frames(wanted)] == wanted
    finally:
        video.close()
    with av.open(str(path)) as container:  # the frames some other frame is predicted from
        stream = container.streams.video[0]
        stream.codec_context.skip_frame = "NONREF"
        references = sum(1 for _ in container.decode(stream))
    assert references < 60
    assert video.decoded <= references + len(wanted)  # the rest (B-frames nobody samples) never decoded


def test_auto_falls_back_to_opencv_and_pyav_alone_says_why(
    face_video: pathlib.Path, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import deepfake_client.decoding as decoding

    monkeypatch.setattr(decoding, "open_video", lambda path: None)  # as without PyAV installed
    assert [f.index for f in sample_frames(face_video, 4)] == sample_indices(50, 4)
    with pytest.raises(InvalidInputError, match="PyAV"):
        list(sample_frames(face_video, 4, decoder="pyav"))
    with pytest.raises(InvalidInputError, match="unknown decoder"):
        list(sample_frames(face_video, 4, decoder="ffmpeg"))
