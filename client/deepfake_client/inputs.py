"""The one input gate: is a file an image, a video, or neither? Decided from its content.

``detect_kind(path)`` reads the first bytes (magic numbers), never the suffix: a JPEG named
``clip.mp4``, a ``.jfif``, a ``.3gp`` or a file without a suffix get the kind their bytes say.
Then the decoder has its say, so that what the gate lets through can be decoded:

- an image's size is read from its header and refused before any pixel is decoded when a side is
  over ``MAX_IMAGE_SIDE`` or the area over ``MAX_IMAGE_PIXELS`` (decompression bombs); then it is
  decoded once, small where the format allows (JPEG's DCT scaling), to catch corrupt and truncated
  files, which decoders would otherwise turn into grey pixels and a ``NO_FACE`` verdict;
- an animated image (GIF, APNG, animated WebP) is a video: its frames are sampled like a clip's;
- a video must open in FFmpeg and yield a first frame;
- content no magic number names is offered to FFmpeg (binary files only), which knows more
  containers than this table does.

The CLI, folder scans, the Python API (``DetectorClient.prepare``), the gateway and training
preparation all call it, so a file gets the same answer everywhere.
"""

from __future__ import annotations

import pathlib
import warnings
from typing import Literal

from deepfake_client.errors import InvalidInputError, NotFoundError
from deepfake_client.quiet import quiet_native_logs
from deepfake_client.video import MAX_IMAGE_PIXELS  # area limit, from the header, before decoding

Kind = Literal["image", "video"]

MAX_IMAGE_SIDE = 16_384  # side limit: a 100000x10 strip is a bomb, not a photograph
HEAD_BYTES = 512
_TEXT_BYTES = frozenset(range(0x20, 0x7F)) | {0x09, 0x0A, 0x0D, 0x0C}
# ISO base media brands of still images (HEIF, AVIF): the rest of ftyp files are videos.
_IMAGE_BRANDS = frozenset({b"avif", b"avis", b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1"})
_QUICKTIME_ATOMS = frozenset({b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"})


def detect_kind(path: str | pathlib.Path) -> Kind:
    """``"image"`` or ``"video"``, from the content of the file at ``path``.

    Raises:
        NotFoundError: nothing exists at ``path``.
        InvalidInputError: not a regular file, empty, unreadable, neither an image nor a video,
            corrupt or truncated, or an image too large to decode (one-line reason, naming the file).
    """
    path = pathlib.Path(path)
    try:
        if not path.exists():
            raise NotFoundError(f"{path}: no such file")
        if not path.is_file():
            raise InvalidInputError(f"{path}: not a regular file")
        with open(path, "rb") as f:
            head = f.read(HEAD_BYTES)
    except OSError as err:
        raise InvalidInputError(f"{path}: cannot read it: {err.strerror or err}") from err
    if not head:
        raise InvalidInputError(f"{path}: the file is empty")
    kind = sniff_kind(head)
    if kind == "image":
        return _check_image(path)
    if kind == "video":
        _check_video(path, known=True)
        return "video"
    if _looks_like_text(head):
        raise InvalidInputError(f"{path}: not an image or a video (a text file)")
    _check_video(path, known=False)
    return "video"


def sniff_kind(head: bytes) -> Kind | None:
    """The kind the magic number at the start of a file says (``None``: no known magic number)."""
    if head.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")):
        return "image"
    if head.startswith((b"II*\x00", b"MM\x00*", b"\xff\x4f\xff\x51", b"\x00\x00\x00\x0cjP  ")):
        return "image"  # TIFF, JPEG 2000
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image"  # animated ones are told apart by _check_image
    if head[4:8] == b"ftyp":
        return "image" if head[8:12] in _IMAGE_BRANDS else "video"
    if head[4:8] in _QUICKTIME_ATOMS:
        return "video"  # QuickTime without an ftyp box
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "video"
    if head.startswith((b"\x1a\x45\xdf\xa3", b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3", b"FLV\x01")):
        return "video"  # Matroska/WebM, MPEG program stream, MPEG-1/2 video, Flash video
    if head.startswith((b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", b"OggS")):
        return "video"  # ASF/WMV, Ogg (an audio-only one is refused by the decoder)
    if len(head) > 376 and head[0] == head[188] == head[376] == 0x47:
        return "video"  # MPEG transport stream
    return None


def _looks_like_text(head: bytes) -> bool:
    """No control bytes but whitespace: ASCII or UTF-8 text (FFmpeg would play it as ANSI art)."""
    return all(b in _TEXT_BYTES or b >= 0x80 for b in head)


def _check_image(path: pathlib.Path) -> Kind:
    """Header size limits, then one (small) decode; ``"video"`` for an animated image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's own bomb warning: the limits below decide
            with Image.open(path) as image:
                width, height = image.size
                _check_size(path, width, height)
                if getattr(image, "n_frames", 1) > 1 and _video_opens(path):
                    return "video"  # else (animated WebP in some FFmpeg builds): its first frame
                if image.format == "JPEG":
                    image.draft(image.mode, (max(1, width // 8), max(1, height // 8)))
                image.load()
    except (UnidentifiedImageError, Image.DecompressionBombError) as err:
        raise InvalidInputError(f"{path}: not a decodable image") from err
    except InvalidInputError:
        raise
    except Exception as err:  # noqa: BLE001 - Pillow's decoders raise anything on damaged data
        # OSError, ValueError, SyntaxError, EOFError, but also IndexError, TypeError and struct.error
        # (damaged GIF and TIFF files): all of them mean the file is not a usable image.
        reason = str(err).split("\n")[0] or type(err).__name__
        raise InvalidInputError(f"{path}: a corrupt or truncated image ({reason})") from err
    return "image"


def _check_size(path: pathlib.Path, width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise InvalidInputError(f"{path}: the image header says {width}x{height}")
    if max(width, height) > MAX_IMAGE_SIDE or width * height > MAX_IMAGE_PIXELS:
        raise InvalidInputError(
            f"{path}: the image header says {width}x{height}, over the limits "
            f"({MAX_IMAGE_SIDE} pixels a side, {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels)"
        )


def _check_video(path: pathlib.Path, *, known: bool) -> None:
    """FFmpeg must open the file and decode a first frame."""
    opened = _video_opens(path)
    if opened is None:
        what = "a corrupt or truncated video" if known else "not an image or a video"
        raise InvalidInputError(f"{path}: {what} (the decoder cannot open it)")
    if not opened:
        raise InvalidInputError(f"{path}: a video without a decodable frame (corrupt or truncated?)")


def _video_opens(path: pathlib.Path) -> bool | None:
    """Whether FFmpeg (through OpenCV, as ``video.sample_frames``) decodes a first frame; None: no open."""
    import cv2

    quiet_native_logs()
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        return bool(capture.grab()) if capture.isOpened() else None
    finally:
        capture.release()
