"""SBI as the paper does it: landmark masks on the shipped face photo, shared pair augmentation, the grid."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from training.landmarks import MASK_KINDS, crop_landmarks, landmark_mask, mask_parts
from training.sbi import self_blend, self_blended_pair, shared_augment, source_transform
from training.sbi_grid import main as grid_main
from training.sbi_grid import shipped_face_crop

MARGIN = 0.3


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    return shipped_face_crop(256, MARGIN)


def test_landmarks_follow_the_face_in_the_shipped_photo(face):
    landmarks = crop_landmarks(face, MARGIN)
    assert landmarks.shape == (68, 2)
    gray = cv2.cvtColor(face, cv2.COLOR_RGB2GRAY)
    eyes = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_eye.xml").detectMultiScale(gray, 1.1, 5)
    for centre in (landmarks[36:42].mean(axis=0), landmarks[42:48].mean(axis=0)):  # OpenCV's eye boxes agree
        assert any(x <= centre[0] <= x + w and y <= centre[1] <= y + h for x, y, w, h in eyes), (centre, eyes)
    assert landmarks[8, 1] > landmarks[57, 1] > landmarks[33, 1] > landmarks[27, 1]  # chin, lip, nose, bridge
    mirrored = crop_landmarks(np.ascontiguousarray(face[:, ::-1]), MARGIN)
    assert (
        np.abs(np.sort(255 - mirrored[:, 0]) - np.sort(landmarks[:, 0])).max() <= 4
    )  # a flip moves them too
    half = crop_landmarks(cv2.resize(face, (128, 128), interpolation=cv2.INTER_AREA), MARGIN)
    assert np.abs(half * 2 - landmarks).mean() < 2.0  # and so does a scale


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_masks_lie_inside_the_landmark_hull_and_reach_it(face, kind):
    landmarks = crop_landmarks(face, MARGIN)
    mask = landmark_mask(landmarks, face.shape[:2], kind)
    points = np.concatenate(mask_parts(landmarks, kind))  # the extended kind raises the brows
    hull = cv2.convexHull(np.round(points).astype(np.int32))
    inside = np.zeros(face.shape[:2], np.uint8)
    cv2.fillConvexPoly(inside, hull, 1)
    inside = cv2.dilate(inside, np.ones((3, 3), np.uint8))
    assert mask.sum() > 0.5 * inside.sum()  # a face-sized mask, not a blob
    assert not (mask.astype(bool) & ~inside.astype(bool)).any()  # inside the hull
    outline = np.zeros_like(inside)
    cv2.polylines(outline, [hull], True, 1, 1)
    reached = (mask.astype(bool) & outline.astype(bool)).sum() / outline.sum()
    assert reached > (0.9 if kind in ("hull", "extended") else 0.3)  # touching it
    if kind != "extended":  # the whole-face hull bounds every kind drawn from the 68 points
        assert landmark_mask(landmarks, face.shape[:2], "hull")[mask > 0].all()


def test_blend_changes_the_face_only_and_both_sides_take_the_source_transform(face):
    changed_target = 0
    for seed in range(40):
        target, blend, mask = self_blend(face, np.random.default_rng(seed), MARGIN)
        assert mask.dtype == np.float32 and 0.0 <= mask.min() and mask.max() <= 1.0
        outside = mask == 0
        np.testing.assert_array_equal(blend[outside], target[outside])
        assert np.abs(blend.astype(int) - target.astype(int))[mask >= 0.5 * mask.max()].mean() > 0.2
        changed_target += not np.array_equal(target, face)
    assert 8 <= changed_target <= 32  # the source transform falls on the target half of the time
    rng = np.random.default_rng(0)
    kinds = {"down": 0, "sharp": 0}
    for _ in range(40):
        out = source_transform(face, rng)
        smooth = (
            np.abs(np.diff(out.astype(int), axis=1)).mean() < np.abs(np.diff(face.astype(int), axis=1)).mean()
        )
        kinds["down" if smooth else "sharp"] += 1
    assert min(kinds.values()) >= 8  # down-and-up scaling or sharpening, even odds


def test_a_pair_shares_one_augmentation(face):
    fake = face.copy()
    fake[100:150, 100:150] = 255 - fake[100:150, 100:150]  # differs in the middle only
    for seed in range(10):
        real_aug, fake_aug = shared_augment(face, fake, np.random.default_rng(seed), MARGIN)
        border = np.ones(face.shape[:2], bool)
        border[60:190, 60:190] = False  # away from the change, wherever the crop and JPEG put it
        assert np.abs(real_aug.astype(int) - fake_aug.astype(int))[border].max() <= 2, seed
    a, _ = shared_augment(face, fake, np.random.default_rng(1), MARGIN)
    b, _ = shared_augment(face, fake, np.random.default_rng(2), MARGIN)
    assert not np.array_equal(a, b)
    real, fake = self_blended_pair(face, np.random.default_rng(3), MARGIN, training=False)
    assert real.shape == fake.shape == face.shape and not np.array_equal(real, fake)


def test_grid_command_writes_real_mask_blend_rows(tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert grid_main([str(out), "--count", "2", "--size", "96"]) == 0
    grid = cv2.imread(str(out))
    assert grid.shape == (2 * 96, 3 * 96, 3)
    assert capsys.readouterr().out.strip() == str(out)
    assert grid_main([str(out), "--count", "2"]) == 2  # an existing file is never overwritten
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "exists" in err[0]
    assert grid_main([str(tmp_path / "g.png"), "--data", str(tmp_path / "nope")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
