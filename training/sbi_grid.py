"""``deepfake-sbi-grid``: a picture of what SBI trains on, one row per sample: real | mask | blend.

The mask column shows the soft blend mask in grey with the landmarks (red dots) and the convex hull
of all of them (green): the mask must lie inside that hull (or the raised brows of the ``extended``
hull) and reach it. Samples come from a prepared crops folder's real training crops (``--data``) or,
by default, from the photograph scikit-image ships, cropped by the client's detector and crop.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

from deepfake_client.contract import DEFAULT_CROP_MARGIN
from deepfake_client.errors import DeepfakeError, InvalidInputError, report_error


def shipped_face_crop(size: int, margin: float = DEFAULT_CROP_MARGIN) -> np.ndarray:
    """The astronaut photograph scikit-image ships, as a Contract 3 crop (the client's detector and crop)."""
    from skimage import data

    from deepfake_client.faces import crop_face, make_detector

    image = data.astronaut()
    detections = make_detector().detect(image)
    if not detections:
        raise InvalidInputError("no face found in scikit-image's astronaut photograph")
    return crop_face(image, detections[0].box, margin, size)


def _crops_from(data_dir: str, count: int, size: int) -> tuple[list[np.ndarray], float]:
    import cv2

    from training.data import load_crops
    from training.prepare import read_info

    margin = float(read_info(data_dir)["crop_margin"])
    crops = load_crops(data_dir, "train")
    reals = [p for p, y in zip(crops.paths, crops.labels, strict=True) if y == 0]
    if not reals:
        raise InvalidInputError(f"{data_dir}: no real crop in the train split")
    picked = [reals[i] for i in np.linspace(0, len(reals) - 1, min(count, len(reals))).round().astype(int)]
    images = []
    for path in picked:
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise InvalidInputError(f"{path}: not a readable image")
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        images.append(cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA))
    return images, margin


def sbi_grid(
    out: str | pathlib.Path, *, data_dir: str | None = None, count: int = 6, size: int = 256, seed: int = 0
) -> pathlib.Path:
    """Write the grid PNG ``out`` (real | mask with landmarks and hull | blend, one row per sample)."""
    import cv2

    from training.landmarks import crop_landmarks
    from training.sbi import self_blend

    out = pathlib.Path(out)
    if out.suffix.lower() != ".png":
        raise InvalidInputError(f"{out}: the grid is written as PNG (name it .png)")
    if out.exists():
        raise InvalidInputError(f"{out}: exists; choose a new file (nothing is overwritten)")
    if data_dir:
        images, margin = _crops_from(data_dir, count, size)
    else:
        images, margin = [shipped_face_crop(size)] * count, DEFAULT_CROP_MARGIN
    rng = np.random.default_rng(seed)
    rows = []
    for image in images:
        landmarks = crop_landmarks(image, margin)
        real, blend, mask = self_blend(image, rng, margin, landmarks)
        shown = cv2.cvtColor((mask * 255).astype(np.uint8), cv2.COLOR_GRAY2RGB)
        hull = cv2.convexHull(np.round(landmarks).astype(np.int32))
        cv2.polylines(shown, [hull], True, (0, 255, 0), 1)
        for x, y in np.round(landmarks).astype(int):
            cv2.circle(shown, (int(x), int(y)), 1, (255, 0, 0), -1)
        rows.append(np.concatenate([real, shown, blend], axis=1))
    grid = np.concatenate(rows, axis=0)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR)):
        raise InvalidInputError(f"{out}: cannot write the grid")
    return out


def main(argv: list[str] | None = None) -> int:
    """``deepfake-sbi-grid``."""
    parser = argparse.ArgumentParser(
        prog="deepfake-sbi-grid",
        description="Write a PNG grid of self-blended training samples: real | mask (with the landmarks "
        "and their convex hull) | blend, one row per sample.",
    )
    parser.add_argument("out", help="PNG file to write (must not exist)")
    parser.add_argument("--data", help="crops folder of deepfake-prepare (default: the shipped photo)")
    parser.add_argument("--count", type=int, default=6, help="rows (default 6)")
    parser.add_argument("--size", type=int, default=256, help="crop side in pixels (default 256)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    args = parser.parse_args(argv)
    try:
        if args.count < 1 or args.size < 32:
            raise InvalidInputError("--count must be >= 1 and --size >= 32")
        path = sbi_grid(args.out, data_dir=args.data, count=args.count, size=args.size, seed=args.seed)
    except DeepfakeError as err:
        return report_error(parser.prog, err, debug=args.debug)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
