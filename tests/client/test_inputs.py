"""The input gate decides from content, never the suffix, and refuses hostile files in one line."""

from __future__ import annotations

import fractions
import pathlib
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

from deepfake_client.errors import InvalidInputError, NotFoundError
from deepfake_client.inputs import MAX_IMAGE_SIDE, detect_kind, sniff_kind


def png_bytes(width: int, height: int, rows: int | None = None) -> bytes:
    """A PNG whose header says ``width`` x ``height``, with black pixel data for ``rows`` rows."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = (b"\x00" + b"\x00" * width * 3) * (height if rows is None else rows)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def write_clip(
    path: pathlib.Path, codec: str = "libx264", frames: int = 10, fmt: str | None = None
) -> pathlib.Path:
    import av

    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=fractions.Fraction(10))
        stream.width, stream.height, stream.pix_fmt = 176, 144, "yuv420p"
        for i in range(frames):
            rgb = np.full((144, 176, 3), (i * 20) % 256, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode())
    return path


def animation(path: pathlib.Path, frames: int = 4, **options: object) -> pathlib.Path:
    images = [Image.fromarray(np.full((48, 64, 3), i * 50, np.uint8)) for i in range(frames)]
    images[0].save(path, save_all=frames > 1, append_images=images[1:], duration=100, **options)
    return path


@pytest.fixture(scope="module")
def jpeg_bytes() -> bytes:
    import io

    from skimage import data

    buffer = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.mark.parametrize("name", ["photo.jpg", "photo.jfif", "clip.mp4", "noext", "photo.PNG.txt"])
def test_a_jpeg_is_an_image_whatever_its_name(tmp_path: pathlib.Path, jpeg_bytes: bytes, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(jpeg_bytes)
    assert detect_kind(path) == "image"


def test_videos_of_several_containers_whatever_their_name(tmp_path: pathlib.Path) -> None:
    assert detect_kind(write_clip(tmp_path / "a.mp4")) == "video"
    assert detect_kind(write_clip(tmp_path / "a.3gp", codec="h263", fmt="3gp")) == "video"
    assert detect_kind(write_clip(tmp_path / "clip.webm", codec="libvpx", fmt="webm")) == "video"
    renamed = write_clip(tmp_path / "b.mp4").rename(tmp_path / "b.jpg")
    assert detect_kind(renamed) == "video"
    assert detect_kind(write_clip(tmp_path / "noext", fmt="mp4")) == "video"


def test_animated_images_are_videos_and_stills_are_images(tmp_path: pathlib.Path) -> None:
    assert detect_kind(animation(tmp_path / "a.gif", loop=0)) == "video"
    assert detect_kind(animation(tmp_path / "a.png")) == "video"  # APNG
    assert detect_kind(animation(tmp_path / "still.gif", frames=1)) == "image"
    assert detect_kind(animation(tmp_path / "still.webp", frames=1)) == "image"
    # animated WebP: a video where FFmpeg decodes it, else its first frame as an image
    assert detect_kind(animation(tmp_path / "a.webp")) in ("video", "image")


def test_a_png_bomb_is_refused_from_its_header(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "strip.png"
    path.write_bytes(png_bytes(100_000, 10, rows=1))  # the header alone decides: no pixels decoded
    with pytest.raises(InvalidInputError, match=r"100000x10, over the limits") as info:
        detect_kind(path)
    assert "\n" not in str(info.value)
    path.write_bytes(png_bytes(MAX_IMAGE_SIDE + 1, 1))
    with pytest.raises(InvalidInputError, match="over the limits"):
        detect_kind(path)
    path.write_bytes(png_bytes(8000, 8000, rows=1))  # 64 megapixels
    with pytest.raises(InvalidInputError, match="over the limits"):
        detect_kind(path)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda jpg, clip: b"", "the file is empty"),
        (lambda jpg, clip: jpg[: len(jpg) // 2], "corrupt or truncated image"),
        (lambda jpg, clip: png_bytes(64, 64)[:-20], "corrupt or truncated image"),
        (lambda jpg, clip: clip[: len(clip) // 2], "corrupt or truncated video"),
        (lambda jpg, clip: np.random.default_rng(0).bytes(4000), "not an image or a video"),
        (lambda jpg, clip: b"just some notes\n" * 50, "a text file"),
        (lambda jpg, clip: b"\x00\x00\x00\x18ftypmp42" + bytes(100), "corrupt or truncated video"),
    ],
    ids=["empty", "truncated-jpeg", "truncated-png", "truncated-mp4", "random", "text", "ftyp-only"],
)
def test_hostile_files_are_one_line_errors(
    tmp_path: pathlib.Path, jpeg_bytes: bytes, make, reason: str
) -> None:  # type: ignore[no-untyped-def]
    clip = write_clip(tmp_path / "clip.mp4", frames=20).read_bytes()
    path = tmp_path / "hostile.mp4"
    path.write_bytes(make(jpeg_bytes, clip))
    with pytest.raises(InvalidInputError, match=reason) as info:
        detect_kind(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


def test_missing_and_folders(tmp_path: pathlib.Path) -> None:
    with pytest.raises(NotFoundError, match="no such file"):
        detect_kind(tmp_path / "missing.mp4")
    with pytest.raises(InvalidInputError, match="not a regular file"):
        detect_kind(tmp_path)


def test_sniff_kind_table() -> None:
    assert sniff_kind(b"\xff\xd8\xff\xe0") == "image"
    assert sniff_kind(b"\x00\x00\x00\x1cftypavif") == "image"
    assert sniff_kind(b"\x00\x00\x00\x1cftyp3gp4") == "video"
    assert sniff_kind(b"RIFF\x00\x00\x00\x00AVI LIST") == "video"
    assert sniff_kind(b"\x1a\x45\xdf\xa3") == "video"
    assert sniff_kind(b"hello") is None


def test_the_gate_writes_nothing_to_stderr_on_hostile_files(
    tmp_path: pathlib.Path, jpeg_bytes: bytes
) -> None:
    """OpenCV and FFmpeg stay quiet (their messages would otherwise reach descriptor 2)."""
    clip = write_clip(tmp_path / "clip.mp4", frames=20).read_bytes()
    (tmp_path / "truncated.mp4").write_bytes(clip[: len(clip) // 2])
    (tmp_path / "random.bin").write_bytes(np.random.default_rng(1).bytes(3000))
    (tmp_path / "jpeg.mp4").write_bytes(jpeg_bytes)
    code = (
        "import sys\nfrom deepfake_client.inputs import detect_kind\n"
        "for p in sys.argv[1:]:\n"
        "    try: print(detect_kind(p))\n"
        "    except Exception as e: print(type(e).__name__)\n"
    )
    files = [str(tmp_path / n) for n in ("truncated.mp4", "random.bin", "jpeg.mp4", "clip.mp4")]
    done = subprocess.run([sys.executable, "-c", code, *files], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["InvalidInputError", "InvalidInputError", "image", "video"]
    assert done.stderr == ""


def test_a_decoder_crash_on_damaged_data_is_a_corrupt_image() -> None:
    """Pillow raises TypeError on this TIFF (a damaged IFD), not OSError: still one clear error."""
    path = pathlib.Path(__file__).parents[1] / "data" / "corrupt-ifd.tiff"
    with pytest.raises(InvalidInputError, match="corrupt"):
        detect_kind(path)
