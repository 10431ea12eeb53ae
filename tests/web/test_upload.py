"""Pieces of the gateway that need no server: media type detection and the per-shape detector."""

from __future__ import annotations

import pytest

from deepfake_client.web.upload import UnsupportedMediaError, media_suffix, sniff_suffix


@pytest.mark.parametrize(
    ("head", "suffix"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", ".jpg"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", ".png"),
        (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00", ".mp4"),
        (b"\x00\x00\x00\x14ftypqt  ", ".mov"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01webm", ".webm"),
        (b"RIFF\x00\x00\x00\x00AVI LIST", ".avi"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", ".webp"),
        (b"%PDF-1.4", None),
        (b"hello world", None),
    ],
)
def test_sniff_suffix(head: bytes, suffix: str | None) -> None:
    assert sniff_suffix(head) == suffix


def test_media_suffix_prefers_name_then_type_then_bytes() -> None:
    jpeg = b"\xff\xd8\xff\xe0\x00\x10JFIF"
    assert media_suffix("Clip.MP4", "application/octet-stream", jpeg) == ".mp4"  # the name wins
    assert media_suffix("clip", "video/quicktime", jpeg) == ".mov"
    assert media_suffix("blob", "application/octet-stream", jpeg) == ".jpg"
    with pytest.raises(UnsupportedMediaError) as info:
        media_suffix("notes.txt", "text/plain", jpeg)  # a declared non-media type is not second-guessed
    assert info.value.http_status == 415 and "notes.txt" in str(info.value)
    with pytest.raises(UnsupportedMediaError):
        media_suffix("anim.gif", "image/gif", b"GIF89a")
