"""VideoFaceDetector: faces followed in windows between looks at the whole frame, as documented."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from deepfake_client.errors import InvalidInputError
from deepfake_client.faces import VideoFaceDetector, faces_in_frames, make_detector
from deepfake_client.video import sample_frames
from training.synthetic import real_face, scene

HEIGHT, WIDTH = 360, 640


def frames_with(faces_at: list[list[tuple[float, float, int]]]) -> list[np.ndarray]:
    """One frame per entry: the real face pasted at each (x, y, height) of the entry on a scene."""
    face = real_face()
    frames = []
    for i, faces in enumerate(faces_at):
        frame = scene(face, HEIGHT, WIDTH, (-1000, -1000), 1, np.random.default_rng(i))  # background only
        for x, y, size in faces:
            with_face = scene(face, HEIGHT, WIDTH, (x, y), size, np.random.default_rng(i))
            box = (
                slice(max(0, int(y - size * 0.6)), max(0, int(y + size * 0.6))),
                slice(max(0, int(x - size * 0.6)), max(0, int(x + size * 0.6))),
            )
            frame[box] = with_face[box]
        frames.append(frame)
    return frames


@pytest.fixture(scope="module")
def detector():  # type: ignore[no-untyped-def]
    return make_detector()


def run(finder, frames: list[np.ndarray]) -> list[list]:  # type: ignore[no-untyped-def]
    return [[d.box for d in finder.detect(frame)] for frame in frames]


def test_a_moving_face_is_followed_in_windows_with_the_same_boxes(detector) -> None:  # type: ignore[no-untyped-def]
    frames = frames_with([[(200 + 8 * i, 180 + 20 * np.sin(i / 3), 140)] for i in range(24)])
    finder = VideoFaceDetector(detector)
    followed = run(finder, frames)
    every = run(detector, frames)
    assert all(len(boxes) == 1 for boxes in every)
    assert all(len(boxes) == 1 for boxes in followed)
    assert min(f[0].iou(e[0]) for f, e in zip(followed, every, strict=True)) > 0.7
    # one whole-frame detection, then windows; quick looks for newcomers at frames 8 and 16
    assert (finder.full_detections, finder.window_detections, finder.scans) == (1, 23, 2)


def test_a_face_that_walks_in_is_found_at_the_next_look(detector) -> None:  # type: ignore[no-untyped-def]
    frames = frames_with([[(160, 180, 140)] + ([(480, 180, 120)] if i >= 10 else []) for i in range(20)])
    assert [len(b) for b in run(detector, frames)][10:] == [2] * 10
    counts = [len(b) for b in run(VideoFaceDetector(detector), frames)]
    assert counts == [1] * 16 + [2] * 4  # the quick look at frame 16 finds it, the windows keep it


def test_a_face_that_leaves_is_gone_at_once_and_none_is_invented(detector) -> None:  # type: ignore[no-untyped-def]
    frames = frames_with([[(320, 180, 150)] if i < 6 else [] for i in range(12)])
    finder = VideoFaceDetector(detector)
    assert [len(b) for b in run(finder, frames)] == [1] * 6 + [0] * 6
    assert finder.full_detections == 1 + 6  # the lost window, then every faceless frame


def test_two_faces_two_windows_and_the_window_limit(detector) -> None:  # type: ignore[no-untyped-def]
    frames = frames_with([[(160 + 4 * i, 180, 140), (480 - 4 * i, 190, 110)] for i in range(8)])
    finder = VideoFaceDetector(detector)
    assert [len(b) for b in run(finder, frames)] == [2] * 8
    assert (finder.full_detections, finder.window_detections) == (1, 14)
    one_window = VideoFaceDetector(detector, max_windows=1)
    assert [len(b) for b in run(one_window, frames)] == [2] * 8
    assert (one_window.full_detections, one_window.window_detections) == (8, 0)


def test_a_face_a_whole_frame_detection_misses_gets_another_look(detector) -> None:  # type: ignore[no-untyped-def]
    # the second face is hidden in frame 3 only: its window loses it, the whole-frame detection of
    # frame 3 misses it, so frame 4 looks at the whole frame again instead of waiting for frame 8
    frames = frames_with([[(160, 180, 140)] + ([(480, 180, 120)] if i != 3 else []) for i in range(7)])
    finder = VideoFaceDetector(detector)
    assert [len(b) for b in run(finder, frames)] == [2, 2, 2, 1, 2, 2, 2]
    assert finder.full_detections == 3  # frames 0, 3 and 4


def test_bad_settings_and_bad_frames(detector) -> None:  # type: ignore[no-untyped-def]
    for options in ({"full_every": 0}, {"window_scale": 0.5}, {"max_windows": -1}, {"scan_side": 0}):
        with pytest.raises(InvalidInputError):
            VideoFaceDetector(detector, **options)
    with pytest.raises(InvalidInputError, match="uint8"):
        VideoFaceDetector(detector).detect(np.zeros((8, 8, 3), np.float32))


def test_faces_in_frames_is_the_clients_path(detector, face_video: pathlib.Path) -> None:  # type: ignore[no-untyped-def]
    timings: dict[str, float] = {}
    found = list(faces_in_frames(sample_frames(face_video, 10), detector, 0.3, 48, timings))
    assert [frame.index for frame, _ in found] == [f.index for f in sample_frames(face_video, 10)]
    assert all(len(faces) == 1 and faces[0].crop.shape == (48, 48, 3) for _, faces in found)
    assert set(timings) == {"decode", "detect", "crop"} and all(v > 0 for v in timings.values())
    every = list(faces_in_frames(sample_frames(face_video, 10), detector, 0.3, 48, follow=False))
    assert min(f[0].box.iou(e[0].box) for (_, f), (_, e) in zip(found, every, strict=True)) > 0.7


class OldStyleDetector:
    """A detector written for ``detect(frame)`` alone (the interface before ``max_side``)."""

    def __init__(self, detector) -> None:  # type: ignore[no-untyped-def]
        self.detector, self.calls = detector, 0

    def detect(self, frame: np.ndarray):  # type: ignore[no-untyped-def]
        self.calls += 1
        return self.detector.detect(frame)


def test_a_detector_without_max_side_still_works(detector) -> None:  # type: ignore[no-untyped-def]
    frames = frames_with([[(160, 180, 140)] + ([(480, 180, 120)] if i >= 3 else []) for i in range(10)])
    finder = VideoFaceDetector(OldStyleDetector(detector))
    assert [len(b) for b in run(finder, frames)] == [1] * 8 + [2] * 2  # its quick look is a whole frame


def test_boxes_stay_inside_the_frame_as_a_face_leaves_it(detector) -> None:  # type: ignore[no-untyped-def]
    frames = frames_with([[(320, 70 - 10 * i, 140)] for i in range(10)])  # drifting out at the top
    for boxes in run(VideoFaceDetector(detector), frames):
        for box in boxes:
            assert box.x >= 0 and box.y >= 0 and box.x + box.w <= WIDTH and box.y + box.h <= HEIGHT


def test_a_new_frame_size_starts_afresh(detector) -> None:  # type: ignore[no-untyped-def]
    import cv2

    small = frames_with([[(200, 180, 150)]])[0]
    # at twice the size: a large face, and a smaller one where the small frame's face was
    large = cv2.resize(frames_with([[(400, 180, 150), (100, 90, 75)]])[0], (2 * WIDTH, 2 * HEIGHT))
    finder = VideoFaceDetector(detector)
    assert len(finder.detect(small)) == 1
    assert len(finder.detect(large)) == 2 and finder.full_detections == 2  # not one face in a window


def test_crops_are_never_views_of_the_frame() -> None:
    from deepfake_client.faces import Box, crop_face

    frame = np.random.default_rng(0).integers(0, 255, (400, 224, 3), dtype=np.uint8)
    frame.flags.writeable = False
    crop = crop_face(frame, Box(12, 100, 200, 200), 0.12, 224)  # the square spans the frame's width
    assert crop.shape == (224, 224, 3) and not np.shares_memory(crop, frame) and crop.flags.writeable
