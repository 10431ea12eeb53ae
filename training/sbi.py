"""Self-blended images (Shiohara & Yamasaki, CVPR 2022): pseudo-fakes made from real faces only.

A face swap leaves a blending boundary and a mismatch (colour, frequency, a slight misalignment)
between the inner face and its surroundings. Blending a transformed copy of a real face into
itself reproduces exactly those traces, so a detector trained on (real, self-blended) pairs learns
the traces and generalises to unseen manipulations. This follows the authors' code
(``src/utils/sbi.py``, ``funcs.py``, ``blend.py``), re-implemented on NumPy/OpenCV:

1. landmarks of the crop (dlib's 68 points, :mod:`training.landmarks`) and a mask: one of Face
   X-ray's four landmark hulls, drawn at random;
2. source and target are the same crop; one of the two (even odds) gets the *source transforms*:
   RGB shift of up to 20 levels (p 0.3), hue/saturation/value shifts of up to 0.3 (p 1; on uint8
   pixels, as albumentations applies them, a negative shift lowers a level by one and a positive
   one changes nothing), brightness and contrast of up to 0.1 (p 1), then either a down-and-up
   scaling by 2 or 4 or a sharpening (alpha 0.2-0.5, lightness 0.5-1), even odds;
3. the source and the mask are shifted (3 % across, 1.5 % down) and scaled (0.95-1.053 on each
   axis); the mask is elastically deformed (alpha 50, sigma 7);
4. the mask is resized to 192-256 px, blurred (kernel 5-25), cut to its core, blurred again
   (kernel 5-25, sigma 5-45) and scaled by a ratio from {0.25, 0.5, 0.75, 1, 1, 1};
   ``blend = mask * source + (1 - mask) * target``;
5. training pairs share one augmentation (:func:`shared_augment`): flip (p 0.5, before blending),
   RGB shift (p 0.3), hue/saturation/value (p 0.3), brightness and contrast of up to 0.3 (p 0.3),
   JPEG at quality 40-100 (p 0.5), and one random crop of the face box's margins (0.05-0.2 of the
   box per side), resized back; validation pairs get none of it (the crop as served).
"""

from __future__ import annotations

import numpy as np

BLEND_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)


def _rgb_shift(images: list[np.ndarray], rng: np.random.Generator, limit: float) -> list[np.ndarray]:
    shift = rng.uniform(-limit, limit, size=3)
    return [np.clip(np.trunc(x.astype(np.float32) + shift), 0, 255).astype(np.uint8) for x in images]


def _hsv_shift(images: list[np.ndarray], rng: np.random.Generator, limit: float) -> list[np.ndarray]:
    """albumentations' uint8 HSV shift: look-up tables ``level + shift``, truncated."""
    import cv2

    levels = np.arange(256, dtype=np.float32)
    hue, sat, val = rng.uniform(-limit, limit, size=3)
    luts = [np.mod(levels + hue, 180.0), np.clip(levels + sat, 0, 255), np.clip(levels + val, 0, 255)]
    luts = [lut.astype(np.uint8) for lut in luts]
    out = []
    for x in images:
        hsv = cv2.cvtColor(x, cv2.COLOR_RGB2HSV)
        hsv = np.stack([cv2.LUT(hsv[..., c], luts[c]) for c in range(3)], axis=-1)
        out.append(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB))
    return out


def _brightness_contrast(
    images: list[np.ndarray], rng: np.random.Generator, limit: float
) -> list[np.ndarray]:
    alpha, beta = 1.0 + rng.uniform(-limit, limit), rng.uniform(-limit, limit)
    lut = np.clip(np.arange(256, dtype=np.float32) * alpha + beta * 255.0, 0, 255).astype(np.uint8)
    return [lut[x] for x in images]


def _downscale_or_sharpen(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    import cv2

    h, w = image.shape[:2]
    if rng.random() < 0.5:  # SBI's RandomDownScale: nearest down by 2 or 4, linear back up
        r = (2, 4)[rng.integers(2)]
        small = cv2.resize(image, (max(1, int(w / r)), max(1, int(h / r))), interpolation=cv2.INTER_NEAREST)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    alpha, lightness = rng.uniform(0.2, 0.5), rng.uniform(0.5, 1.0)
    effect = np.array([[-1, -1, -1], [-1, 8 + lightness, -1], [-1, -1, -1]], dtype=np.float32)
    identity = np.zeros((3, 3), np.float32)
    identity[1, 1] = 1.0
    return cv2.filter2D(image, -1, (1 - alpha) * identity + alpha * effect)


def source_transform(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """SBI's source transforms (the colour and frequency mismatch) of one uint8 RGB image."""
    if rng.random() < 0.3:
        (image,) = _rgb_shift([image], rng, 20.0)
    (image,) = _hsv_shift([image], rng, 0.3)
    (image,) = _brightness_contrast([image], rng, 0.1)
    return _downscale_or_sharpen(image, rng)


def _random_affine(source: np.ndarray, mask: np.ndarray, rng: np.random.Generator):
    import cv2

    h, w = mask.shape
    sx, sy = rng.uniform(0.95, 1 / 0.95, size=2)
    tx, ty = rng.uniform(-0.03, 0.03) * w, rng.uniform(-0.015, 0.015) * h
    matrix = np.array([[sx, 0, (1 - sx) * w / 2 + tx], [0, sy, (1 - sy) * h / 2 + ty]], dtype=np.float32)
    source = cv2.warpAffine(source, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    mask = cv2.warpAffine(mask, matrix, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT)
    return source, mask


def _elastic(mask: np.ndarray, rng: np.random.Generator, alpha: float = 50.0, sigma: float = 7.0):
    import cv2

    h, w = mask.shape
    dx, dy = (
        cv2.GaussianBlur(rng.uniform(-1, 1, size=(h, w)).astype(np.float32), (0, 0), sigma) * alpha
        for _ in range(2)
    )
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return cv2.remap(mask, xx + dx, yy + dy, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT)


def blend_mask(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """SBI's ``get_blend_mask``: a soft ``[H, W]`` mask in 0..1 from a hard one."""
    import cv2

    h, w = mask.shape
    size_h, size_w = rng.integers(192, 257, size=2)
    small = cv2.resize(mask.astype(np.float32), (int(size_w), int(size_h)))
    k1, k2 = (int(k) for k in rng.choice(np.arange(5, 26, 2), size=2))
    blurred = cv2.GaussianBlur(small, (k1, k1), 0)
    peak = blurred.max()
    if peak <= 0:
        return np.zeros((h, w), np.float32)
    blurred = blurred / peak
    blurred[blurred < 1] = 0
    blurred = cv2.GaussianBlur(blurred, (k2, k2), float(rng.integers(5, 46)))
    peak = blurred.max()
    blurred = blurred / peak if peak > 0 else blurred
    return cv2.resize(blurred, (w, h))


def self_blend(
    image: np.ndarray, rng: np.random.Generator, margin: float = 0.3, landmarks: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(target, blend, mask)`` of the real face crop ``image`` (RGB uint8 ``[S, S, 3]``).

    ``target`` is the real side of the pair: the crop itself, or its source-transformed copy when
    the transform fell on the target (as in SBI's code). ``mask`` is the soft blend mask (0..1).
    """
    from training.landmarks import MASK_KINDS, crop_landmarks, landmark_mask

    if landmarks is None:
        landmarks = crop_landmarks(image, margin)
    mask = landmark_mask(landmarks, image.shape[:2], MASK_KINDS[rng.integers(len(MASK_KINDS))])
    source, target = image.copy(), image.copy()
    if rng.random() < 0.5:
        source = source_transform(source, rng)
    else:
        target = source_transform(target, rng)
    source, mask = _random_affine(source, mask, rng)
    mask = blend_mask(_elastic(mask, rng), rng) * rng.choice(BLEND_RATIOS)
    blend = mask[..., None] * source.astype(np.float32) + (1 - mask[..., None]) * target.astype(np.float32)
    return target, np.clip(blend, 0, 255).astype(np.uint8), mask.astype(np.float32)


def shared_augment(
    real: np.ndarray, fake: np.ndarray, rng: np.random.Generator, margin: float
) -> tuple[np.ndarray, np.ndarray]:
    """SBI's training transforms, one draw applied to both images of a pair (then one random crop)."""
    import cv2

    pair = [real, fake]
    if rng.random() < 0.3:
        pair = _rgb_shift(pair, rng, 20.0)
    if rng.random() < 0.3:
        pair = _hsv_shift(pair, rng, 0.3)
    if rng.random() < 0.3:
        pair = _brightness_contrast(pair, rng, 0.3)
    if rng.random() < 0.5:
        quality = int(rng.integers(40, 101))
        encoded = [cv2.imencode(".jpg", x, [cv2.IMWRITE_JPEG_QUALITY, quality])[1] for x in pair]
        pair = [cv2.imdecode(e, cv2.IMREAD_UNCHANGED) for e in encoded]
    size = real.shape[0]
    face = size / (1.0 + margin)
    slack = (size - face) / 2.0  # the crop's margin on each side
    cuts = [max(0.0, slack - face / 4 * rng.uniform(0.2, 0.8)) for _ in range(4)]  # left, top, right, bottom
    x0, y0 = int(cuts[0]), int(cuts[1])
    x1, y1 = size - int(cuts[2]), size - int(cuts[3])
    return tuple(
        cv2.resize(np.ascontiguousarray(x[y0:y1, x0:x1]), (size, size), interpolation=cv2.INTER_LINEAR)
        for x in pair
    )


def self_blended_pair(
    image: np.ndarray, rng: np.random.Generator, margin: float, training: bool
) -> tuple[np.ndarray, np.ndarray]:
    """``(real, fake)``: a training pair (flip, blend, shared augmentation) or a validation pair."""
    if training and rng.random() < 0.5:
        image = np.ascontiguousarray(image[:, ::-1])
    real, fake, _ = self_blend(image, rng, margin)
    if training:
        real, fake = shared_augment(real, fake, rng, margin)
    return real, fake


def self_blended_pair_seeded(image: np.ndarray, seed: np.ndarray, margin, training) -> tuple:
    """:func:`self_blended_pair` seeded by an int64 ``seed`` (for ``tf.numpy_function``)."""
    rng = np.random.default_rng(np.asarray(seed, dtype=np.int64).astype(np.uint64))
    return self_blended_pair(image, rng, float(margin), bool(training))
