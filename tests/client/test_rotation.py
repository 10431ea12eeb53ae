"""Rotation metadata: a phone video stored sideways with a 90-degree display matrix is scanned upright."""

from __future__ import annotations

import pathlib
import struct

import numpy as np

from deepfake_client.faces import HaarDetector
from deepfake_client.video import sample_frames

# tkhd matrices (16.16 fixed point, w in 2.30) that players apply on display.
ROTATE_90 = (0, 65536, 0, -65536, 0, 0, 0, 0, 1 << 30)


def set_display_matrix(path: pathlib.Path, matrix: tuple[int, ...]) -> None:
    """Write ``matrix`` into the (version 0) ``tkhd`` box of an MP4 file, as a phone camera does."""
    data = bytearray(path.read_bytes())
    at = data.find(b"tkhd")
    assert at > 0 and data[at + 4] == 0, "expected a version 0 tkhd box"
    offset = at - 4 + 48  # size, type, version/flags, times, track id, duration, layer, volume
    data[offset : offset + 36] = struct.pack(">9i", *matrix)
    path.write_bytes(bytes(data))


def test_sideways_video_with_rotation_metadata_is_decoded_upright(tmp_path: pathlib.Path) -> None:
    from training.synthetic import moving_face_frames, write_video

    upright = list(moving_face_frames(count=8, height=240, width=320, face_height=150))
    sideways = [np.ascontiguousarray(np.rot90(frame, k=1)) for frame in upright]  # stored turned left
    path = tmp_path / "phone.mp4"
    write_video(path, sideways, fps=8)
    detector = HaarDetector()
    stored = list(sample_frames(path, 8))
    assert stored[0].rgb.shape == (320, 240, 3)
    assert not any(detector.detect(f.rgb) for f in stored)  # a frontal detector sees no sideways face

    set_display_matrix(path, ROTATE_90)
    decoded = list(sample_frames(path, 8))
    assert [f.rgb.shape for f in decoded] == [(240, 320, 3)] * 8
    difference = np.mean(
        [np.abs(f.rgb.astype(int) - u.astype(int)).mean() for f, u in zip(decoded, upright, strict=True)]
    )
    assert difference < 8  # the upright frames, up to H.264 loss
    assert all(detector.detect(f.rgb) for f in decoded)
