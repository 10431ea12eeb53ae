"""Self-blended images: pseudo-fakes made from real faces only (after Shiohara & Yamasaki, CVPR 2022).

The idea: a face-swap leaves a blending boundary and a statistical mismatch (colour, frequency,
a slight misalignment) between the inner face and its surroundings. Blending a transformed copy
of a real face into itself reproduces exactly those traces, with nothing else changed, so a
detector trained on (real, self-blended) pairs learns the traces and generalises to unseen
manipulations. This is a re-implementation from the paper's description:

1. source and target are the same crop; one of them (at random) gets a colour transform (RGB
   shift, hue/saturation/brightness, contrast) and a frequency transform (down/up-sampling,
   blur or sharpening);
2. the source is slightly translated and rescaled (the misalignment);
3. a mask covers the inner face: here, since crops carry no landmarks, a randomly sized, shifted
   and rotated ellipse inside the known face box of a Contract 3 crop (the face occupies the central
   ``1 / (1 + margin)`` of the crop), elastically deformed, then blurred with a random kernel;
4. the blend ``mask * ratio * source + (1 - mask * ratio) * target``, ratio drawn from
   {0.25, 0.5, 0.75, 1, 1, 1}.
"""

from __future__ import annotations

import numpy as np

BLEND_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)


def blend_mask(size: int, margin: float, rng: np.random.Generator) -> np.ndarray:
    """A soft inner-face mask, float32 ``[size, size]`` in 0..1, for a crop with crop margin ``margin``."""
    import cv2

    face = size / (1.0 + margin)
    center = size / 2.0 + rng.uniform(-0.05, 0.05, size=2) * face
    center[1] += 0.06 * face  # the inner face sits a little below the box centre
    axes = (face * rng.uniform(0.3, 0.42), face * rng.uniform(0.38, 0.5))
    mask = np.zeros((size, size), dtype=np.float32)
    cv2.ellipse(
        mask,
        (round(center[0]), round(center[1])),
        (max(1, round(axes[0])), max(1, round(axes[1]))),
        float(rng.uniform(-20, 20)),
        0,
        360,
        1.0,
        -1,
    )
    # elastic deformation: a smooth random displacement field
    grid = max(2, size // 16)
    field = rng.normal(0.0, size * 0.03, size=(2, grid, grid)).astype(np.float32)
    dx, dy = (cv2.resize(f, (size, size), interpolation=cv2.INTER_CUBIC) for f in field)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    mask = cv2.remap(mask, xx + dx, yy + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    # random erosion or dilation, then a random blur: hard and soft boundaries both occur in fakes
    k = max(1, round(size * rng.uniform(0.0, 0.05)))
    kernel = np.ones((k, k), np.uint8)
    mask = cv2.erode(mask, kernel) if rng.random() < 0.5 else cv2.dilate(mask, kernel)
    sigma = size * rng.uniform(0.01, 0.06)
    mask = cv2.GaussianBlur(mask, (0, 0), sigma)
    peak = mask.max()
    return mask / peak if peak > 0 else mask


def _colour(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    import cv2

    x = image.astype(np.float32) + rng.uniform(-20, 20, size=3)  # RGB shift
    hsv = cv2.cvtColor(np.clip(x, 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-6, 6)) % 180
    hsv[..., 1] *= rng.uniform(0.8, 1.2)
    hsv[..., 2] *= rng.uniform(0.85, 1.15)
    x = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
    mean = x.mean()
    return np.clip((x - mean) * rng.uniform(0.85, 1.15) + mean, 0, 255)


def _frequency(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    import cv2

    size = image.shape[0]
    choice = rng.integers(3)
    if choice == 0:  # resolution mismatch
        small = max(4, round(size * rng.uniform(0.35, 0.8)))
        down = cv2.resize(image, (small, small), interpolation=cv2.INTER_AREA)
        return cv2.resize(down, (size, size), interpolation=cv2.INTER_LINEAR)
    if choice == 1:
        return cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 1.5))
    blurred = cv2.GaussianBlur(image, (0, 0), 1.0)
    return np.clip(image + rng.uniform(0.3, 1.0) * (image - blurred), 0, 255)


def self_blend(image: np.ndarray, rng: np.random.Generator, margin: float = 0.3) -> np.ndarray:
    """A self-blended pseudo-fake of the real face crop ``image`` (RGB uint8 ``[S, S, 3]``)."""
    import cv2

    size = image.shape[0]
    source = image.astype(np.float32)
    target = image.astype(np.float32)
    changed = _frequency(_colour(source, rng), rng)
    if rng.random() < 0.5:
        source = changed
    else:
        target = changed
    scale = rng.uniform(0.95, 1.05)
    shift = rng.uniform(-0.03, 0.03, size=2) * size
    matrix = cv2.getRotationMatrix2D((size / 2.0, size / 2.0), 0.0, scale)
    matrix[:, 2] += shift
    source = cv2.warpAffine(source, matrix, (size, size), borderMode=cv2.BORDER_REFLECT)
    mask = blend_mask(size, margin, rng)[..., None] * rng.choice(BLEND_RATIOS)
    out = mask * source + (1.0 - mask) * target
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def self_blend_seeded(image: np.ndarray, seed: np.ndarray, margin: float) -> np.ndarray:
    """:func:`self_blend` with the generator seeded from an int64 ``seed`` (for ``tf.numpy_function``)."""
    return self_blend(
        image, np.random.default_rng(np.asarray(seed, dtype=np.int64).astype(np.uint64)), float(margin)
    )
