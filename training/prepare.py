"""Preparation: videos and images -> face crops on disk + a manifest.

N evenly spaced frames per video (``deepfake_client.video.sample_frames``), every face found and
cropped with the client's own crop (``deepfake_client.faces.extract_faces``), so training sees
exactly the crops serving produces. Output folder::

    prepare.json      what was prepared: dataset, input size, crop margin, frames, counts
    manifest.jsonl    one JSON line per finished video: id, label, split, group, status and its
                      faces (file, frame index, timestamp, box, confidence)
    faces/<split>/<video id>/<frame>_<face>.png

Resumable: a video is finished once its manifest line is written (one append, flushed and
fsynced); re-running skips finished videos. A corrupt video is logged, recorded with status
``failed`` and skipped; it never stops the run.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import functools
import json
import logging
import multiprocessing
import os
import pathlib
import re
import shutil
import sys

from deepfake_client.contract import DEFAULT_CROP_MARGIN, DEFAULT_DETECTOR
from deepfake_client.errors import DeepfakeError, InvalidInputError
from deepfake_client.faces import FOLLOW_SETTINGS
from deepfake_client.video import DEFAULT_FRAMES
from training.datasets import Item, read_dataset, summarize

log = logging.getLogger(__name__)

MANIFEST = "manifest.jsonl"
INFO = "prepare.json"
FACES = "faces"
DEFAULT_SIZE = 224
IMAGE_FORMATS = ("png", "jpg")


def face_dir(item: Item) -> str:
    """The folder (relative to the output) that holds ``item``'s crops."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", item.id)
    return f"{FACES}/{item.split}/{safe}"


def _frames(path: pathlib.Path, kind: str, frames: int):
    from deepfake_client.video import Frame, load_image, sample_frames

    if kind == "image":
        yield Frame(0, 0.0, load_image(path))
    else:
        yield from sample_frames(path, frames)


_DETECTOR = None


def _detector(min_face: int):
    """The client's default detector (one detector for training and serving), one per process."""
    global _DETECTOR
    if _DETECTOR is None or _DETECTOR.min_face != min_face:
        from deepfake_client.faces import make_detector

        _DETECTOR = make_detector(DEFAULT_DETECTOR, min_face=min_face)
    return _DETECTOR


def item_record(item: Item) -> dict:
    """The manifest record of ``item`` before any of its faces is cropped."""
    return {
        "id": item.id,
        "label": item.label,
        "split": item.split,
        "group": item.group,
        "source": item.source,
        "kind": None,
        "faces": [],
    }


def failed_record(item: Item, error: str) -> dict:
    """The record of an item that could not be prepared (skipped by training, and by a re-run)."""
    return {**item_record(item), "status": "failed", "error": error}


def crop_item(
    item: Item,
    out_dir: pathlib.Path,
    *,
    size: int,
    margin: float,
    frames: int,
    max_faces: int | None,
    image_format: str,
    min_face: int,
) -> dict:
    """Crop every face of ``item``'s sampled frames into ``out_dir``; return its manifest record.

    Never raises for a bad video: the record then has ``status: failed`` and the error.
    """
    import cv2

    from deepfake_client.faces import faces_in_frames
    from deepfake_client.inputs import detect_kind

    cv2.setNumThreads(1)
    record = item_record(item)
    folder = out_dir / face_dir(item)
    shutil.rmtree(folder, ignore_errors=True)  # leftovers of an interrupted run
    try:
        record["kind"] = kind = detect_kind(item.path)  # the client's input gate: from content
        folder.mkdir(parents=True, exist_ok=True)
        for frame, faces in faces_in_frames(
            _frames(item.path, kind, frames), _detector(min_face), margin, size
        ):
            for k, face in enumerate(faces[:max_faces]):
                name = f"{face_dir(item)}/{frame.index:06d}_{k}.{image_format}"
                params = [cv2.IMWRITE_JPEG_QUALITY, 95] if image_format == "jpg" else []
                if not cv2.imwrite(str(out_dir / name), cv2.cvtColor(face.crop, cv2.COLOR_RGB2BGR), params):
                    raise OSError(f"cannot write {out_dir / name}")
                record["faces"].append(
                    {
                        "file": name,
                        "frame": face.frame_index,
                        "timestamp_s": round(face.timestamp_s, 3),
                        "face": k,
                        "box": face.box.as_list(),
                        "confidence": round(face.confidence, 4),
                    }
                )
            record["frames"] = record.get("frames", 0) + 1
        record["status"] = "ok" if record["faces"] else "no_face"
    except (DeepfakeError, OSError, cv2.error) as err:
        record.update(status="failed", error=str(err), faces=[])
        shutil.rmtree(folder, ignore_errors=True)
    return record


def read_manifest(out_dir: str | pathlib.Path) -> list[dict]:
    """The finished video records of a crops folder (a torn last line is ignored)."""
    path = pathlib.Path(out_dir) / MANIFEST
    records = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line torn by a crash: its video is simply done again
    return records


def read_info(out_dir: str | pathlib.Path) -> dict:
    """``prepare.json`` of a crops folder, or ``InvalidInputError`` naming what is missing."""
    path = pathlib.Path(out_dir) / INFO
    if not path.is_file():
        raise InvalidInputError(f"{path}: missing; is {out_dir} a folder written by deepfake-prepare?")
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InvalidInputError(f"{path}: not valid JSON ({err})") from err


def _append(handle, record: dict) -> None:
    handle.write(json.dumps(record) + "\n")
    handle.flush()
    os.fsync(handle.fileno())


def prepare_dataset(
    dataset: str,
    root: str | pathlib.Path,
    out_dir: str | pathlib.Path,
    *,
    size: int = DEFAULT_SIZE,
    margin: float = DEFAULT_CROP_MARGIN,
    frames: int = DEFAULT_FRAMES,
    max_faces: int | None = None,
    image_format: str = "png",
    min_face: int = 24,
    workers: int | None = None,
    limit: int | None = None,
    progress: bool = True,
    reader_options: dict | None = None,
    map_items=None,
) -> dict:
    """Prepare face crops of ``dataset`` (``dfdc``, ``ffpp``, ``celebdf``, ``folder``) at ``root``.

    Args:
        dataset: the reader name.
        root: the dataset folder.
        out_dir: the crops folder (created; re-running resumes it).
        size: crop side ``S`` in pixels (the model's input size).
        margin: crop margin of Contract 3, recorded and later served with the model.
        frames: frames sampled per video, evenly spaced.
        max_faces: keep at most this many faces per frame (largest first); None keeps all.
        image_format: ``png`` (lossless, the crop exactly) or ``jpg``.
        min_face: smallest face side, in pixels, the detector reports.
        workers: processes cropping videos in parallel (default: CPU count; 1 = in this process).
        limit: prepare only the first ``limit`` items per split (for a quick try).
        progress: show a progress bar on stderr.
        reader_options: keyword arguments for the dataset reader.
        map_items: ``map_items(crop, items)`` runs ``crop(item)`` (this module's ``crop_item``)
            elsewhere and yields the records in any order, each once (``deepfake-bulk prepare``:
            on Ray); the manifest is still written here. Default: ``workers`` local processes.

    Returns:
        The content of ``prepare.json`` (including counts of crops and videos per split).
    """
    if image_format not in IMAGE_FORMATS:
        raise InvalidInputError(f"unknown image format {image_format!r} (known: png, jpg)")
    if size < 8 or not 0.0 <= margin <= 3.0 or frames < 1:
        raise InvalidInputError(f"bad crop settings: size={size}, margin={margin}, frames={frames}")
    items = read_dataset(dataset, root, **(reader_options or {}))  # raises before anything is written
    if limit:
        kept, seen = [], {}
        for item in items:
            seen[item.split] = seen.get(item.split, 0) + 1
            if seen[item.split] <= limit:
                kept.append(item)
        items = kept
    out = pathlib.Path(out_dir)
    settings = {
        "dataset": dataset,
        "root": str(pathlib.Path(root).resolve()),
        "input_size": size,
        "crop_margin": margin,
        "frames": frames,
        "max_faces": max_faces,
        "format": image_format,
        "detector": {"name": DEFAULT_DETECTOR, "min_face": min_face, "follow": FOLLOW_SETTINGS},
    }
    if (out / INFO).is_file():
        previous = read_info(out)
        changed = [
            k
            for k in ("input_size", "crop_margin", "frames", "max_faces", "format", "detector")
            if previous.get(k) != settings[k]
        ]
        if changed:
            raise InvalidInputError(
                f"{out / INFO}: prepared with other settings ({', '.join(changed)}); use a new folder"
            )
    out.mkdir(parents=True, exist_ok=True)
    if not (out / INFO).is_file():
        _write_info(out, {**settings, "counts": None})  # so a resumed run can check its settings
    done = {r["id"] for r in read_manifest(out)}
    todo = [item for item in items if item.id not in done]
    log.info("%d items, %d already prepared, %d to do", len(items), len(items) - len(todo), len(todo))
    options = dict(
        size=size,
        margin=margin,
        frames=frames,
        max_faces=max_faces,
        image_format=image_format,
        min_face=min_face,
    )
    workers = max(1, workers if workers else (os.cpu_count() or 1))
    failed = 0
    from tqdm import tqdm

    with (
        (out / MANIFEST).open("a") as handle,
        tqdm(total=len(todo), desc="prepare", unit="video", disable=not progress, file=sys.stderr) as bar,
    ):
        if map_items is not None:
            for record in map_items(functools.partial(crop_item, out_dir=out, **options), todo):
                failed += _finish(handle, record, bar)
        elif workers == 1 or len(todo) <= 1:
            results = (crop_item(item, out, **options) for item in todo)
            for record in results:
                failed += _finish(handle, record, bar)
        else:
            context = multiprocessing.get_context("spawn")  # safe even if TensorFlow is loaded here
            with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
                futures = [pool.submit(crop_item, item, out, **options) for item in todo]
                for future in concurrent.futures.as_completed(futures):
                    failed += _finish(handle, future.result(), bar)
    records = [r for r in read_manifest(out) if r["id"] in {i.id for i in items}]
    counts = {
        s: {"videos": 0, "crops": 0, "real_crops": 0, "fake_crops": 0, "failed": 0, "no_face": 0}
        for s in ("train", "val", "test")
    }
    for r in records:
        c = counts[r["split"]]
        c["videos"] += 1
        c["crops"] += len(r["faces"])
        c["fake_crops" if r["label"] else "real_crops"] += len(r["faces"])
        c["failed"] += r["status"] == "failed"
        c["no_face"] += r["status"] == "no_face"
    info = {
        **settings,
        "items": summarize(items),
        "counts": counts,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    _write_info(out, info)
    if failed:
        log.warning("%d videos could not be read (see status 'failed' in %s)", failed, out / MANIFEST)
    return info


def _write_info(out: pathlib.Path, info: dict) -> None:
    tmp = out / (INFO + ".tmp")
    tmp.write_text(json.dumps(info, indent=2))
    tmp.replace(out / INFO)


def _finish(handle, record: dict, bar) -> int:
    _append(handle, record)
    bar.update(1)
    if record["status"] == "failed":
        log.warning("skipped %s: %s", record["id"], record["error"])
        return 1
    return 0
