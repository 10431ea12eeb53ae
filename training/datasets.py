"""Readers for the deepfake dataset layouts people actually have on disk.

Each reader turns a dataset folder into a list of :class:`Item` (one video or image, its label,
its split and its *group*). A group holds everything that must stay on one side of a split: a
video, its fakes and the original they were made from. Where a dataset has no official split, the
split is drawn from a hash of the group, so it is the same on every machine and every run.

Layouts:

- ``dfdc``: DFDC training parts ``dfdc_train_part_N/metadata.json`` (``{"x.mp4": {"label": "FAKE",
  "original": "y.mp4"}}``) and/or the public test set (``videos/`` + ``labels.csv`` with
  ``filename,label``, 1 = fake). A single part folder works too.
- ``ffpp``: FaceForensics++ ``original_sequences/youtube/<comp>/videos/NNN.mp4`` and
  ``manipulated_sequences/<method>/<comp>/videos/TTT_SSS.mp4``, with the official split files
  (``train.json``, ``val.json``, ``test.json``: lists of id pairs) in ``<root>/splits/`` or ``<root>``.
- ``celebdf``: Celeb-DF v2 ``Celeb-real/``, ``YouTube-real/``, ``Celeb-synthesis/`` and
  ``List_of_testing_videos.txt`` (lines ``1 YouTube-real/00170.mp4``, 1 = REAL: inverted).
- ``folder``: ``real/`` and ``fake/`` (images or videos, searched recursively), or
  ``train|val|test/real|fake``.
- ``timit``: DeepFake-TIMIT ``higher_quality|lower_quality/<speaker>/<sentence>-video-<other>.avi``
  with VidTIMIT's real videos (``real_root``): :mod:`training.timit`.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import pathlib
from collections.abc import Callable
from dataclasses import dataclass

from deepfake_client.errors import InvalidInputError, NotFoundError

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
FFPP_METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter")
FFPP_COMPRESSIONS = ("raw", "c23", "c40")
DEFAULT_VAL_FRACTION = 0.1
DEFAULT_TEST_FRACTION = 0.1


@dataclass(frozen=True)
class Item:
    """One video or image of a dataset.

    Attributes:
        id: unique within the dataset, a relative path such as ``dfdc_train_part_0/abc.mp4``.
        path: the file.
        label: 1 for fake, 0 for real.
        split: ``train``, ``val`` or ``test``.
        group: items sharing a group are always in the same split (a fake and its original).
        source: where it comes from (``Deepfakes``, ``Celeb-real``, ``real`` ...).
    """

    id: str
    path: pathlib.Path
    label: int
    split: str
    group: str
    source: str


def hash_split(
    group: str, *, val_fraction: float, test_fraction: float, salt: str = "deepfake-serving"
) -> str:
    """The split of ``group`` drawn from a hash: stable across machines, runs and item order."""
    digest = hashlib.sha256(f"{salt}:{group}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"


def stratified_split(groups: dict[str, int], *, val_fraction: float, test_fraction: float) -> dict[str, str]:
    """Splits for ``{group: label}``: per label, groups ranked by hash, the first go to test, then val.

    Unlike :func:`hash_split` the fractions hold exactly even for a few dozen groups (each split
    gets at least one group per label when there are three or more), which small datasets need.
    """
    result: dict[str, str] = {}
    for label in sorted(set(groups.values())):
        ranked = sorted(
            (g for g, lab in groups.items() if lab == label),
            key=lambda g: hashlib.sha256(f"deepfake-serving:{g}".encode()).digest(),
        )
        n = len(ranked)
        n_test = max(1 if n >= 3 and test_fraction > 0 else 0, round(n * test_fraction))
        n_val = max(1 if n >= 3 and val_fraction > 0 else 0, round(n * val_fraction))
        for i, group in enumerate(ranked):
            result[group] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return result


def _media(folder: pathlib.Path) -> list[pathlib.Path]:
    """Every regular file under ``folder``: preparation tells images, videos and the rest apart by
    content (``deepfake_client.inputs.detect_kind``) and records the rest as failed, with the reason."""
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _require_dir(root: pathlib.Path) -> pathlib.Path:
    root = pathlib.Path(root)
    if not root.exists():
        raise NotFoundError(f"{root}: no such dataset folder")
    if not root.is_dir():
        raise InvalidInputError(f"{root}: not a folder")
    return root


# --- DFDC -------------------------------------------------------------------------------------------


def _read_dfdc_metadata(path: pathlib.Path) -> dict[str, dict]:
    if not path.is_file():
        raise InvalidInputError(f"{path}: missing metadata.json of a DFDC training part")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InvalidInputError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(data, dict):
        raise InvalidInputError(f"{path}: expected a JSON object mapping file names to entries")
    for name, entry in data.items():
        if not isinstance(entry, dict) or str(entry.get("label", "")).upper() not in ("FAKE", "REAL"):
            raise InvalidInputError(f"{path}: entry {name!r} has no label FAKE or REAL")
    return data


def _read_dfdc_labels_csv(path: pathlib.Path) -> dict[str, int]:
    labels: dict[str, int] = {}
    try:
        with path.open(newline="") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise InvalidInputError(f"{path}: cannot read the label file ({err})") from err
    if not rows or [c.strip().lower() for c in rows[0][:2]] != ["filename", "label"]:
        raise InvalidInputError(f"{path}: expected a header 'filename,label'")
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) < 2 or row[1].strip() not in ("0", "1"):
            raise InvalidInputError(f"{path}:{line}: expected 'filename,0|1', got {','.join(row)!r}")
        labels[row[0].strip()] = int(row[1].strip())
    return labels


def read_dfdc(
    root: str | pathlib.Path,
    *,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    test_fraction: float = DEFAULT_TEST_FRACTION,
) -> list[Item]:
    """Read DFDC training parts and/or the DFDC public test set under ``root``.

    With three training parts or more, whole parts go to train, val or test (each part has its own
    actors: identity-disjoint); with fewer, videos are split by a hash of the original video (a
    fake and its original share it). If the public test set is present (``videos/`` + ``labels.csv`` in
    ``root`` or in ``root/test``), it is the test split and the parts give only train and val.
    """
    root = _require_dir(root)
    parts = sorted(p for p in root.glob("dfdc_train_part_*") if p.is_dir())
    if not parts and (root / "metadata.json").is_file():
        parts = [root]
    test_roots = [d for d in (root, root / "test") if (d / "labels.csv").is_file() or (d / "videos").is_dir()]
    if not parts and not test_roots:
        raise InvalidInputError(
            f"{root}: not a DFDC layout (expected dfdc_train_part_N/metadata.json or videos/ + labels.csv)"
        )
    items: list[Item] = []
    if test_roots:
        test_fraction = 0.0
    # Identity-disjoint: a part's videos were filmed with its own actors, so with three parts or
    # more whole parts go to one split; with fewer, videos are split by original (an actor may
    # then appear on both sides, which the log says).
    by_part = len(parts) >= 3
    part_split = stratified_split(
        {p.name: 0 for p in parts}, val_fraction=val_fraction, test_fraction=test_fraction
    )
    if parts and not by_part:
        log.warning(
            "%d DFDC part(s): split by original video, so actors may appear in train and val; "
            "three parts or more are split by part (identity-disjoint)",
            len(parts),
        )
    for part in parts:
        metadata = _read_dfdc_metadata(part / "metadata.json")
        for name, entry in sorted(metadata.items()):
            path = part / name
            if not path.is_file():
                continue  # parts are often downloaded partially; metadata lists the whole part
            fake = str(entry["label"]).upper() == "FAKE"
            group = str(entry.get("original") or name) if fake else name
            split = (
                part_split[part.name]
                if by_part
                else hash_split(group, val_fraction=val_fraction, test_fraction=test_fraction)
            )
            items.append(Item(f"{part.name}/{name}", path, int(fake), split, group, part.name))
    for test_root in test_roots:
        labels_path = test_root / "labels.csv"
        if not labels_path.is_file():
            raise InvalidInputError(f"{labels_path}: missing label file of the DFDC test set")
        videos = test_root / "videos" if (test_root / "videos").is_dir() else test_root
        for name, label in sorted(_read_dfdc_labels_csv(labels_path).items()):
            path = videos / name
            if path.is_file():
                items.append(Item(f"test/{name}", path, label, "test", f"test/{name}", "dfdc_test"))
    return _non_empty(items, root, "DFDC")


# --- FaceForensics++ --------------------------------------------------------------------------------


def _read_ffpp_split(path: pathlib.Path) -> list[tuple[str, str]]:
    try:
        pairs = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InvalidInputError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(pairs, list) or not all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p) for p in pairs
    ):
        raise InvalidInputError(f'{path}: expected a list of id pairs such as [["071", "054"], ...]')
    return [(a, b) for a, b in pairs]


def _find_ffpp_splits(root: pathlib.Path, splits_dir: pathlib.Path | None) -> pathlib.Path | None:
    candidates = [splits_dir] if splits_dir else [root / "splits", root]
    for folder in candidates:
        if folder and all((folder / f"{s}.json").is_file() for s in SPLITS):
            return folder
    if splits_dir:
        raise InvalidInputError(f"{splits_dir}: expected train.json, val.json and test.json")
    return None


def read_ffpp(
    root: str | pathlib.Path,
    *,
    compression: str = "c23",
    methods: tuple[str, ...] = FFPP_METHODS,
    splits_dir: str | pathlib.Path | None = None,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    test_fraction: float = DEFAULT_TEST_FRACTION,
) -> list[Item]:
    """Read FaceForensics++ under ``root`` at one compression level.

    With the official split files, an id's split is the split of its pair and ids that no split
    lists are left out. Without them, ids linked by a fake (``TTT_SSS``) form one group and the
    group's hash gives the split.
    """
    root = _require_dir(root)
    if compression not in FFPP_COMPRESSIONS:
        raise InvalidInputError(f"unknown FaceForensics++ compression {compression!r} (known: raw, c23, c40)")
    originals_dir = root / "original_sequences" / "youtube" / compression / "videos"
    if not originals_dir.is_dir():
        raise InvalidInputError(
            f"{root}: not a FaceForensics++ layout (no {originals_dir.relative_to(root)}/)"
        )
    entries: list[tuple[str, pathlib.Path, int, tuple[str, ...], str]] = []
    for path in sorted(originals_dir.glob("*.mp4")):
        entries.append((f"original/{path.name}", path, 0, (path.stem,), "original"))
    for method in methods:
        folder = root / "manipulated_sequences" / method / compression / "videos"
        for path in sorted(folder.glob("*.mp4")) if folder.is_dir() else []:
            ids = tuple(path.stem.split("_"))
            if len(ids) != 2:
                raise InvalidInputError(f"{path}: expected a manipulated video named TTT_SSS.mp4")
            entries.append((f"{method}/{path.name}", path, 1, ids, method))
    splits_folder = _find_ffpp_splits(root, pathlib.Path(splits_dir) if splits_dir else None)
    id_split: dict[str, str] = {}
    id_group: dict[str, str] = {}
    if splits_folder is not None:
        for split in SPLITS:
            for a, b in _read_ffpp_split(splits_folder / f"{split}.json"):
                group = "_".join(sorted((a, b)))
                id_split[a] = id_split[b] = split
                id_group[a] = id_group[b] = group
    else:
        parent: dict[str, str] = {}

        def find(x: str) -> str:
            while parent.setdefault(x, x) != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for _, _, _, ids, _ in entries:
            for other in ids[1:]:
                parent[find(ids[0])] = find(other)
        for _, _, _, ids, _ in entries:
            for x in ids:
                id_group[x] = find(x)
                id_split[x] = hash_split(find(x), val_fraction=val_fraction, test_fraction=test_fraction)
    items = []
    for item_id, path, label, ids, source in entries:
        splits = {id_split.get(x) for x in ids}
        if len(splits) != 1 or None in splits:
            continue  # not listed by the official splits, or its two ids disagree: left out, never leaked
        items.append(Item(item_id, path, label, splits.pop(), id_group[ids[0]], source))
    return _non_empty(items, root, "FaceForensics++")


# --- Celeb-DF v2 ------------------------------------------------------------------------------------

CELEBDF_FOLDERS = {"Celeb-real": 0, "YouTube-real": 0, "Celeb-synthesis": 1}


def _read_celebdf_test_list(path: pathlib.Path) -> dict[str, int]:
    """``{relative path: label}`` with label 1 = fake (the file says 1 = REAL, 0 = FAKE)."""
    labels: dict[str, int] = {}
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidInputError(f"{path}: cannot read the test list ({err})") from err
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2 or fields[0] not in ("0", "1"):
            raise InvalidInputError(
                f"{path}:{number}: expected '<1 real|0 fake> <folder>/<video>', got {line!r}"
            )
        labels[fields[1]] = 1 - int(fields[0])
    return labels


def _celebdf_identities(folder: str, stem: str) -> tuple[str, ...]:
    """The people in a Celeb-DF video: ``idA`` for ``Celeb-real/idA_NNNN``, ``(idA, idB)`` for
    ``Celeb-synthesis/idA_idB_NNNN`` (idA's video with idB's face); a YouTube-real video its own."""
    parts = stem.split("_")
    if folder == "Celeb-real" and len(parts) == 2:
        return (parts[0],)
    if folder == "Celeb-synthesis" and len(parts) == 3:
        return (parts[0], parts[1])
    return (f"{folder}/{stem}",)


def _celebdf_group(folder: str, stem: str) -> str:
    if folder == "Celeb-synthesis":  # idA_idB_NNNN: idA's video NNNN with idB's face
        parts = stem.split("_")
        if len(parts) == 3:
            return f"Celeb-real/{parts[0]}_{parts[2]}"
    return f"{folder}/{stem}"


def read_celebdf(
    root: str | pathlib.Path,
    *,
    val_fraction: float = DEFAULT_VAL_FRACTION,
) -> list[Item]:
    """Read Celeb-DF v2 under ``root``.

    The videos of ``List_of_testing_videos.txt`` are the test split, with its (inverted) labels.
    The other videos are split into train and val by celebrity (identity-disjoint; a fake of two
    celebrities in different splits is left out); a video whose original is a test video (a fake of
    a test original) is left out rather than leaked into training. The official test list shares
    celebrities with the other videos: cross-dataset use (the usual one) tests on it alone.
    """
    root = _require_dir(root)
    present = [f for f in CELEBDF_FOLDERS if (root / f).is_dir()]
    test_list = root / "List_of_testing_videos.txt"
    if not present:
        raise InvalidInputError(
            f"{root}: not a Celeb-DF layout (expected Celeb-real/, YouTube-real/, Celeb-synthesis/)"
        )
    test_labels = _read_celebdf_test_list(test_list) if test_list.is_file() else {}
    test_groups = set()
    for rel, label in test_labels.items():
        folder, _, name = rel.partition("/")
        if CELEBDF_FOLDERS.get(folder, label) != label:
            raise InvalidInputError(
                f"{test_list}: {rel} is labelled {'FAKE' if label else 'REAL'} but lives in {folder}/"
            )
        test_groups.add(_celebdf_group(folder, pathlib.Path(name).stem))
    videos = [(folder, path) for folder in present for path in sorted((root / folder).glob("*.mp4"))]
    # Identity-disjoint train/val (and test without the official list): split by person; a fake
    # whose two people fall in different splits is left out rather than leaked.
    people = {p for folder, path in videos for p in _celebdf_identities(folder, path.stem)}
    person_split = stratified_split(
        {p: 0 for p in people}, val_fraction=val_fraction, test_fraction=0.0 if test_labels else 0.1
    )
    items = []
    for folder, path in videos:
        rel = f"{folder}/{path.name}"
        identities = _celebdf_identities(folder, path.stem)
        if rel in test_labels:
            items.append(Item(rel, path, test_labels[rel], "test", identities[0], folder))
        elif _celebdf_group(folder, path.stem) in test_groups:
            continue  # a fake of a test original, or that original: its face would leak
        else:
            splits = {person_split[p] for p in identities}
            if len(splits) == 1:
                items.append(Item(rel, path, CELEBDF_FOLDERS[folder], splits.pop(), identities[0], folder))
    return _non_empty(items, root, "Celeb-DF")


# --- plain folder -----------------------------------------------------------------------------------


def read_folder(
    root: str | pathlib.Path,
    *,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    test_fraction: float = DEFAULT_TEST_FRACTION,
) -> list[Item]:
    """Read ``real/`` and ``fake/`` (or ``train|val|test/real|fake``) folders of images or videos.

    Without split folders, each file is its own group and :func:`stratified_split` gives the split.
    """
    root = _require_dir(root)
    split_roots = [s for s in SPLITS if (root / s / "real").is_dir() or (root / s / "fake").is_dir()]
    items = []
    if split_roots:
        for split in split_roots:
            for label, name in ((0, "real"), (1, "fake")):
                for path in _media(root / split / name) if (root / split / name).is_dir() else []:
                    rel = path.relative_to(root).as_posix()
                    items.append(Item(rel, path, label, split, rel, name))
    elif (root / "real").is_dir() or (root / "fake").is_dir():
        found = [
            (path.relative_to(root).as_posix(), path, label, name)
            for label, name in ((0, "real"), (1, "fake"))
            for path in (_media(root / name) if (root / name).is_dir() else [])
        ]
        splits = stratified_split(
            {rel: label for rel, _, label, _ in found}, val_fraction=val_fraction, test_fraction=test_fraction
        )
        items = [Item(rel, path, label, splits[rel], rel, name) for rel, path, label, name in found]
    else:
        raise InvalidInputError(f"{root}: not a folder dataset (expected real/ and fake/ folders)")
    return _non_empty(items, root, "folder")


def _non_empty(items: list[Item], root: pathlib.Path, name: str) -> list[Item]:
    if not items:
        raise InvalidInputError(f"{root}: the {name} dataset has no video or image that can be used")
    return items


def _read_timit(root: str | pathlib.Path, **options: object) -> list[Item]:
    from training.timit import read_timit  # its own module: it builds on this one

    return read_timit(root, **options)


READERS: dict[str, Callable[..., list[Item]]] = {
    "dfdc": read_dfdc,
    "ffpp": read_ffpp,
    "celebdf": read_celebdf,
    "folder": read_folder,
    "timit": _read_timit,
}


def read_dataset(name: str, root: str | pathlib.Path, **options: object) -> list[Item]:
    """Read the dataset ``name`` (``dfdc``, ``ffpp``, ``celebdf``, ``folder``, ``timit``) under ``root``."""
    if name not in READERS:
        raise InvalidInputError(f"unknown dataset {name!r} (known: {', '.join(READERS)})")
    return READERS[name](root, **options)


def summarize(items: list[Item]) -> dict[str, dict[str, int]]:
    """Counts of real and fake items per split."""
    counts = {s: {"real": 0, "fake": 0} for s in SPLITS}
    for item in items:
        counts[item.split]["fake" if item.label else "real"] += 1
    return counts
