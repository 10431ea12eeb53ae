"""Generated data for tests and the demo: real faces on generated scenes, as images and videos.

The faces are real (the astronaut photograph that scikit-image ships), so the project's face
detector finds them. Fakes carry blending artefacts (see ``blend_fake``), which is what a face-crop
detector learns to see. A model trained on this data demonstrates the pipeline; it does not detect
real deepfakes.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterable

import numpy as np

# The head of Eileen Collins in skimage.data.astronaut() (512x512), with some context around it.
_HEAD = (slice(10, 230), slice(120, 330))


def real_face() -> np.ndarray:
    """A real face photograph (RGB uint8, about 220x210) shipped inside scikit-image."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[_HEAD])


def scene(
    face: np.ndarray,
    height: int,
    width: int,
    center: tuple[float, float],
    face_height: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Paste ``face`` scaled to ``face_height`` pixels at ``center`` (x, y) on a generated background."""
    import cv2

    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(40, 200, size=3).astype(np.float32)
    slope = rng.uniform(-0.15, 0.15, size=(2, 3)).astype(np.float32)
    background = base + xx[..., None] * slope[0] + yy[..., None] * slope[1]
    background += rng.normal(0, 6, size=(height, width, 3)).astype(np.float32)
    frame = np.clip(background, 0, 255).astype(np.uint8)
    scale = face_height / face.shape[0]
    patch = cv2.resize(
        face, (max(1, round(face.shape[1] * scale)), face_height), interpolation=cv2.INTER_AREA
    )
    ph, pw = patch.shape[:2]
    x0, y0 = round(center[0] - pw / 2), round(center[1] - ph / 2)
    fx0, fy0, fx1, fy1 = max(0, x0), max(0, y0), min(width, x0 + pw), min(height, y0 + ph)
    if fx1 > fx0 and fy1 > fy0:
        frame[fy0:fy1, fx0:fx1] = patch[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0]
    return frame


def moving_face_frames(
    count: int = 30, height: int = 360, width: int = 640, face_height: int = 200, seed: int = 0
) -> Iterable[np.ndarray]:
    """Frames of a real face drifting across a generated scene (RGB uint8)."""
    rng = np.random.default_rng(seed)
    face = real_face()
    for i in range(count):
        t = i / max(1, count - 1)
        center = (width * (0.35 + 0.3 * t), height * (0.5 + 0.05 * np.sin(6.28 * t)))
        yield scene(face, height, width, center, face_height, np.random.default_rng(rng.integers(1 << 31)))


def write_video(
    path: str | pathlib.Path,
    frames: Iterable[np.ndarray],
    fps: float = 25.0,
    codec: str = "libx264",
    intra_only: bool = False,
) -> None:
    """Encode RGB uint8 frames to a video file with PyAV (H.264 by default; ``mpeg4`` also works).

    ``intra_only``: every frame a key frame (each compressed on its own, whatever its neighbours).
    """
    import fractions

    import av

    frames = iter(frames)
    first = next(frames)
    height, width = first.shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(
            codec,
            rate=fractions.Fraction(fps).limit_denominator(1001),
            options={"g": "1"} if intra_only else None,
        )
        stream.width, stream.height, stream.pix_fmt = width - width % 2, height - height % 2, "yuv420p"
        for frame in _chain(first, frames):
            video_frame = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(frame[: stream.height, : stream.width]), format="rgb24"
            )
            container.mux(stream.encode(video_frame))
        container.mux(stream.encode())


def _chain(first: np.ndarray, rest: Iterable[np.ndarray]) -> Iterable[np.ndarray]:
    yield first
    yield from rest


# Where the face is inside real_face() (found once with the Haar detector): x, y, w, h.
_FACE_BOX = (55, 56, 98, 98)


def face_mask(
    height: int,
    width: int,
    box: tuple[float, float, float, float],
    rng: np.random.Generator,
    feather: float = 3.0,
) -> np.ndarray:
    """A soft elliptical mask (float32 0..1, ``[H, W]``) over the inner face in ``box``, randomly deformed."""
    import cv2

    x, y, w, h = box
    mask = np.zeros((height, width), dtype=np.float32)
    center = (round(x + w * rng.uniform(0.45, 0.55)), round(y + h * rng.uniform(0.5, 0.6)))
    axes = (max(2, round(w * rng.uniform(0.32, 0.42))), max(2, round(h * rng.uniform(0.4, 0.52))))
    cv2.ellipse(mask, center, axes, float(rng.uniform(-15, 15)), 0, 360, 1.0, -1)
    if feather > 0:
        mask = cv2.GaussianBlur(mask, (0, 0), feather)
    return mask


def blend_fake(
    face: np.ndarray,
    rng: np.random.Generator,
    box: tuple[float, float, float, float] = _FACE_BOX,
    strength: float = 1.0,
) -> np.ndarray:
    """``face`` with a blending artefact: a resampled, colour-shifted, shifted copy blended into it.

    This mimics what face-swap methods leave behind (a blending boundary, a colour and resolution
    mismatch between the inner face and its surroundings).
    """
    import cv2

    height, width = face.shape[:2]
    factor = rng.uniform(0.35, 0.6)
    small = cv2.resize(
        face, (max(1, round(width * factor)), max(1, round(height * factor))), interpolation=cv2.INTER_AREA
    )
    source = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    gain = 1.0 + strength * rng.uniform(0.06, 0.14, size=3) * rng.choice([-1.0, 1.0], size=3)
    source = source * gain + strength * rng.uniform(-8, 8, size=3)
    shift = np.float32([[1, 0, rng.uniform(-2, 2) * strength], [0, 1, rng.uniform(-2, 2) * strength]])
    source = cv2.warpAffine(source, shift, (width, height), borderMode=cv2.BORDER_REFLECT)
    mask = face_mask(height, width, box, rng, feather=rng.uniform(1.5, 3.5))[..., None]
    out = source * mask + face.astype(np.float32) * (1.0 - mask)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _jitter(face: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per-video appearance changes shared by real and fake videos (so colour alone tells nothing)."""
    out = face[:, ::-1] if rng.random() < 0.5 else face
    out = out.astype(np.float32) * rng.uniform(0.8, 1.15) + rng.uniform(-15, 15, size=3)
    return np.clip(out, 0, 255).astype(np.uint8)


def synthetic_frames(fake: bool, count: int, height: int, width: int, seed: int) -> list[np.ndarray]:
    """Frames of one generated video: a real face moving over a scene, with a blend artefact if ``fake``.

    The scene (appearance jitter, background, size, path) depends on ``seed`` only, so the real and
    the fake video of one seed differ by the artefact alone, like a deepfake and its original.
    """
    rng = np.random.default_rng(seed)
    face = _jitter(real_face(), rng)
    if fake:
        face = blend_fake(face, np.random.default_rng([seed, 1]))
    return _moving(lambda i: face, rng, count, height, width)


def _moving(face_at, rng: np.random.Generator, count: int, height: int, width: int) -> list[np.ndarray]:
    """``count`` frames of the face ``face_at(i)`` moving along a path drawn from ``rng``."""
    face_height = round(rng.uniform(0.6, 0.8) * height)
    start = np.array([rng.uniform(0.4, 0.6) * width, rng.uniform(0.45, 0.55) * height])
    velocity = rng.uniform(-0.1, 0.1, size=2) * np.array([width, height])
    frames = []
    for i in range(count):
        t = i / max(1, count - 1)
        center = start + velocity * t
        frames.append(
            scene(
                face_at(i),
                height,
                width,
                (float(center[0]), float(center[1])),
                face_height,
                np.random.default_rng(rng.integers(1 << 31)),
            )
        )
    return frames


# Fakes a single frame cannot tell from a real one, by construction (the temporal model's task).
FAKE_KINDS = ("blend", "flicker")


def _colour(face: np.ndarray, gain: float, offset: np.ndarray) -> np.ndarray:
    return np.clip(face.astype(np.float32) * gain + offset, 0, 255).astype(np.uint8)


def flicker_frames(fake: bool, count: int, height: int, width: int, seed: int) -> list[np.ndarray]:
    """Frames of one generated video whose fake differs from its real only over time.

    A real video draws the face's colour (gain 0.8..1.15, offset -15..15 per channel, as
    ``synthetic_frames``' per-video jitter) once; its fake draws it again for every frame, so the
    face's colour and brightness flicker from frame to frame the way a frame-by-frame face swap's
    colour correction does. Each single fake frame comes from exactly the distribution of real
    frames: only a model that compares frames can tell them apart.
    """
    rng = np.random.default_rng([seed, 7])
    face = real_face()
    face = face[:, ::-1] if rng.random() < 0.5 else face
    draw = lambda r: (float(r.uniform(0.8, 1.15)), r.uniform(-15, 15, size=3))  # noqa: E731
    once = _colour(face, *draw(rng))
    flicker = np.random.default_rng([seed, 8])
    per_frame = [_colour(face, *draw(flicker)) for _ in range(count)] if fake else None
    return _moving(lambda i: per_frame[i] if fake else once, rng, count, height, width)


def generate_dataset(
    out_dir: str | pathlib.Path,
    videos_per_class: int = 12,
    *,
    frames: int = 12,
    height: int = 240,
    width: int = 320,
    fps: float = 10.0,
    images_per_class: int = 0,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
    fakes: tuple[str, ...] = ("blend",),
) -> pathlib.Path:
    """Write a folder dataset ``<split>/real|fake/`` of short H.264 videos (and optionally PNG images).

    Videos come in pairs: ``real/vid_007.mp4`` shows the real face, ``fake/vid_007.mp4`` the same
    scene with a blending artefact on the face (see :func:`blend_fake`). A pair stays in one split
    (``train``, ``val``, ``test``), as a deepfake and its original must. The Haar detector finds
    the faces in every frame. With ``"flicker"`` in ``fakes`` there are also ``flk_007.mp4`` pairs
    whose fake only flickers over time (:func:`flicker_frames`); without ``"blend"`` only those.

    Returns:
        ``out_dir``, readable with ``training.datasets.read_folder`` (``--dataset folder``).
    """
    import cv2

    out = pathlib.Path(out_dir)

    def split_of(i: int, n: int) -> str:
        n_test = max(1, round(n * test_fraction)) if test_fraction > 0 and n >= 3 else 0
        n_val = max(1, round(n * val_fraction)) if val_fraction > 0 and n >= 3 else 0
        return "test" if i < n_test else "val" if i < n_test + n_val else "train"

    unknown = set(fakes) - set(FAKE_KINDS)
    if unknown or not fakes:
        raise ValueError(f"fakes must be some of {FAKE_KINDS}, got {fakes}")
    makers = {"blend": ("vid", synthetic_frames, 0), "flicker": ("flk", flicker_frames, 70_000)}
    # flicker pairs are all key frames: with predicted frames a flickering video compresses worse
    # frame by frame, which a single frame would show
    for kind in fakes:
        prefix, make, base = makers[kind]
        for i in range(videos_per_class):
            video_seed = seed * 100_003 + base + i
            for label in ("real", "fake"):
                folder = out / split_of(i, videos_per_class) / label
                folder.mkdir(parents=True, exist_ok=True)
                write_video(
                    folder / f"{prefix}_{i:03d}.mp4",
                    make(label == "fake", frames, height, width, video_seed),
                    fps=fps,
                    intra_only=kind == "flicker",
                )
    for i in range(images_per_class):
        image_seed = seed * 100_003 + 50_000 + i
        for label in ("real", "fake"):
            folder = out / split_of(i, images_per_class) / label
            folder.mkdir(parents=True, exist_ok=True)
            frame = synthetic_frames(label == "fake", 1, height, width, image_seed)[0]
            cv2.imwrite(str(folder / f"img_{i:03d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return out
