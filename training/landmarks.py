"""Facial landmarks of a face crop, and the landmark masks SBI blends through.

Landmarks: dlib's 68-point shape predictor (iBUG 300-W markup), the one SBI's own preprocessing
uses, as shipped by the PyPI package ``face-recognition-models`` (its ``models/`` folder; package
licence MIT) and run by ``dlib-bin`` (dlib, Boost Software License). Nothing is downloaded at run
time. **Licence note**: dlib's author states that the 68-point model was trained on the iBUG 300-W
data set, whose licence excludes commercial use, so this model must not be used in a commercial
product; it is used here for training-time masks only and never ships with an exported model.

The predictor needs a face rectangle: a Contract 3 crop has its face box at the centre, the box's
longer side ``S / (1 + margin)``; dlib's own detector draws a squarer, lower box (measured on the
shipped photograph, 0.73 of that side, 0.09 below the centre), so :func:`face_rect` maps one to the
other instead of running a second detector (within 0.2 % of the crop side of the landmarks found
from dlib's own box, and it works on crops too small for dlib's detector).

Masks (:func:`landmark_mask`), the four hull types of Face X-ray's ``random_get_hull`` that SBI
draws from: ``hull`` (the convex hull of all points), ``dfl`` (jaw with mouth, nose ridge, brows
with eyes: DeepFaceLab's full mask), ``components`` (the union of eight part hulls) and
``extended`` (components with the brows raised by half their height above the eyes).
"""

from __future__ import annotations

import numpy as np

from deepfake_client.errors import InvalidInputError

MASK_KINDS = ("hull", "dfl", "components", "extended")
_PREDICTOR = None


def predictor():
    """dlib's 68-point shape predictor (loaded once per process)."""
    global _PREDICTOR
    if _PREDICTOR is None:
        try:
            import dlib
            import face_recognition_models
        except ImportError as err:
            raise InvalidInputError(
                f"self-blended images need facial landmarks: pip install dlib-bin face-recognition-models "
                f"(in the train extra) ({err})"
            ) from err
        _PREDICTOR = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())
    return _PREDICTOR


def face_rect(size: int, margin: float) -> tuple[int, int, int, int]:
    """``(left, top, right, bottom)``: the box dlib's predictor expects in a ``size`` px crop."""
    face = size / (1.0 + margin)
    side = 0.73 * face
    cx, cy = size / 2.0, size / 2.0 + 0.09 * face
    return round(cx - side / 2), round(cy - side / 2), round(cx + side / 2), round(cy + side / 2)


def crop_landmarks(image: np.ndarray, margin: float) -> np.ndarray:
    """The 68 landmarks ``[68, 2]`` (x, y; float32) of the face in the RGB uint8 crop ``image``."""
    import dlib

    left, top, right, bottom = face_rect(image.shape[0], margin)
    shape = predictor()(np.ascontiguousarray(image), dlib.rectangle(left, top, right, bottom))
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


def mask_parts(landmarks: np.ndarray, kind: str) -> list[np.ndarray]:
    """The point sets whose convex hulls, filled and joined, make the mask ``kind``."""
    lm = np.asarray(landmarks, dtype=np.float32)
    if kind not in MASK_KINDS:
        raise InvalidInputError(f"unknown mask kind {kind!r} (known: {', '.join(MASK_KINDS)})")
    if kind == "hull":
        return [lm]
    if kind == "dfl":
        return [
            np.concatenate([lm[0:17], lm[48:68], lm[[0, 8, 16]]]),
            np.concatenate([lm[27:31], lm[33:34]]),
            np.concatenate([lm[17:27], lm[[0, 27, 16, 33]]]),
        ]
    if kind == "extended":
        lm = lm.copy()
        mid_l, mid_r = (lm[36] + lm[0]) / 2, (lm[16] + lm[45]) / 2
        bottom_l = np.stack([(lm[36] + mid_l) / 2, lm[36], lm[37], lm[38], lm[39]])
        bottom_r = np.stack([lm[42], lm[43], lm[44], lm[45], (lm[45] + mid_r) / 2])
        lm[17:22] += (lm[17:22] - bottom_l) / 2
        lm[22:27] += (lm[22:27] - bottom_r) / 2
    chin = lm[8:9]
    return [
        np.concatenate([lm[0:9], lm[17:18]]),
        np.concatenate([lm[8:17], lm[26:27]]),
        np.concatenate([lm[17:20], chin]),
        np.concatenate([lm[24:27], chin]),
        np.concatenate([lm[19:25], chin]),
        np.concatenate([lm[17:22], lm[27:28], lm[31:36], chin]),
        np.concatenate([lm[22:27], lm[27:28], lm[31:36], chin]),
        np.concatenate([lm[27:31], lm[31:36]]),
    ]


def landmark_mask(landmarks: np.ndarray, shape: tuple[int, int], kind: str = "hull") -> np.ndarray:
    """A float32 ``[H, W]`` mask of 0 and 1: the filled hulls of :func:`mask_parts` ``kind``."""
    import cv2

    mask = np.zeros(shape, dtype=np.float32)
    for points in mask_parts(landmarks, kind):
        hull = cv2.convexHull(np.round(points).astype(np.int32))
        cv2.fillConvexPoly(mask, hull, 1.0)
    return mask
