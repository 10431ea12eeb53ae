"""DeepFake-TIMIT (Korshunov & Marcel 2018) with its real videos from VidTIMIT.

DeepFake-TIMIT holds fakes only: ``DeepfakeTIMIT/higher_quality|lower_quality/<speaker>/
<sentence>-video-<other>.avi``, 16 pairs of VidTIMIT speakers whose faces were swapped with a
GAN (128x128 for higher quality, 64x64 for lower). The real videos are VidTIMIT's, downloaded
separately (https://conradsanderson.id.au/vidtimit/): pass their folder as ``real_root``
(``deepfake-prepare --dataset timit --real-root DIR``), or put it inside the dataset folder as
``VidTIMIT/`` or beside it (``../VidTIMIT``). VidTIMIT ships each sentence as a folder of
numbered JPEG frames (``<speaker>/video/<sentence>/001``); make one video per sentence first,
``<speaker>/<sentence>.mp4``, for instance with
``ffmpeg -f image2 -framerate 25 -i fadg0/video/sa1/%03d -c:v libx264 fadg0/sa1.mp4``.

There is no official split: speakers are split (seeded hash, :func:`training.datasets.
stratified_split`) so no person is in two splits. A fake shows two people (the folder's speaker
and ``<other>``), so the unit of the split is a group of speakers linked by a fake, which in
DeepFake-TIMIT is one swapped pair; a speaker's real videos go with the pair.
"""

from __future__ import annotations

import pathlib
import re

from deepfake_client.errors import InvalidInputError
from training.datasets import (
    DEFAULT_TEST_FRACTION,
    DEFAULT_VAL_FRACTION,
    Item,
    _non_empty,
    _require_dir,
    stratified_split,
)

TIMIT_QUALITIES = ("higher_quality", "lower_quality")
VIDEO_SUFFIXES = (".avi", ".mp4", ".mov", ".mkv", ".webm")
_FAKE_NAME = re.compile(r"^(?P<sentence>.+)-video-(?P<other>[^-]+)$")


def _find_fakes(root: pathlib.Path) -> pathlib.Path:
    """The folder with ``higher_quality/`` and/or ``lower_quality/``: ``root`` or ``root/DeepfakeTIMIT``."""
    for base in (root, root / "DeepfakeTIMIT"):
        if any((base / q).is_dir() for q in TIMIT_QUALITIES):
            return base
    raise InvalidInputError(
        f"{root}: not a DeepFake-TIMIT layout (expected higher_quality/ and/or lower_quality/ "
        "with one folder per speaker)"
    )


def _find_reals(root: pathlib.Path, real_root: str | pathlib.Path | None) -> pathlib.Path:
    if real_root is not None:
        return _require_dir(pathlib.Path(real_root))
    for candidate in (root / "VidTIMIT", root.parent / "VidTIMIT"):
        if candidate.is_dir():
            return candidate
    raise InvalidInputError(
        f"{root}: DeepFake-TIMIT has fakes only; its real videos are VidTIMIT's: pass --real-root "
        f"DIR (VidTIMIT with <speaker>/<sentence>.mp4) or put them in {root / 'VidTIMIT'}"
    )


def _real_videos(real_root: pathlib.Path) -> list[tuple[str, pathlib.Path]]:
    """``(speaker, video)`` of VidTIMIT; VidTIMIT's own frame folders are refused with what to do."""
    videos = [
        (speaker.name, path)
        for speaker in sorted(p for p in real_root.iterdir() if p.is_dir())
        for path in sorted(speaker.rglob("*"))
        if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES
    ]
    if not videos:
        frames = next(real_root.glob("*/video/*/"), None)
        hint = (
            f" (found VidTIMIT's frame folders such as {frames}: make one video per sentence, e.g. "
            "ffmpeg -f image2 -framerate 25 -i SPEAKER/video/SENTENCE/%03d -c:v libx264 SPEAKER/SENTENCE.mp4)"
            if frames
            else ""
        )
        raise InvalidInputError(f"{real_root}: no real videos (<speaker>/<sentence>.mp4 or .avi){hint}")
    return videos


def _components(links: list[tuple[str, ...]]) -> dict[str, str]:
    """Each speaker's group: the smallest speaker id among those linked to it by a fake.

    A union-find over a few dozen names, written out: no library for it is worth a dependency.
    """
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for people in links:
        roots = sorted(find(p) for p in people)
        for other in roots[1:]:
            parent[other] = roots[0]
    return {p: find(p) for p in list(parent)}


def read_timit(
    root: str | pathlib.Path,
    *,
    real_root: str | pathlib.Path | None = None,
    qualities: tuple[str, ...] = TIMIT_QUALITIES,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    test_fraction: float = DEFAULT_TEST_FRACTION,
) -> list[Item]:
    """Read DeepFake-TIMIT under ``root`` and its VidTIMIT real videos (``real_root``; see the module).

    Items' ``source`` is the fake's quality (``higher_quality``, ``lower_quality``) or ``VidTIMIT``,
    so evaluation reports the AUC of each quality against all real videos.
    """
    root = _require_dir(root)
    unknown = [q for q in qualities if q not in TIMIT_QUALITIES]
    if unknown:
        raise InvalidInputError(
            f"unknown DeepFake-TIMIT quality {unknown[0]!r} (known: {', '.join(TIMIT_QUALITIES)})"
        )
    fakes_root = _find_fakes(root)
    fakes = []  # (id, path, quality, people)
    for quality in qualities:
        folder = fakes_root / quality
        for speaker in sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []:
            for path in sorted(speaker.rglob("*")):
                if not path.is_file() or path.suffix.lower() not in VIDEO_SUFFIXES:
                    continue
                match = _FAKE_NAME.match(path.stem)
                people = (speaker.name, match["other"]) if match else (speaker.name,)
                fakes.append((f"{quality}/{path.relative_to(folder).as_posix()}", path, quality, people))
    if not fakes:
        raise InvalidInputError(f"{fakes_root}: no DeepFake-TIMIT video in {', '.join(qualities)}")
    reals = _real_videos(_find_reals(root, real_root))
    group = _components([people for *_, people in fakes] + [(speaker,) for speaker, _ in reals])
    splits = stratified_split(
        {g: 0 for g in set(group.values())}, val_fraction=val_fraction, test_fraction=test_fraction
    )
    real_base = _find_reals(root, real_root)
    items = [
        Item(rel, path, 1, splits[group[people[0]]], group[people[0]], quality)
        for rel, path, quality, people in fakes
    ]
    items += [
        Item(
            f"VidTIMIT/{path.relative_to(real_base).as_posix()}",
            path,
            0,
            splits[group[s]],
            group[s],
            "VidTIMIT",
        )
        for s, path in reals
    ]
    return _non_empty(items, root, "DeepFake-TIMIT")
