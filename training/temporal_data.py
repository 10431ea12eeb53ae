"""Prepared crops grouped by face track into sequences for the temporal model.

Each video's faces (from the prepared folder's manifest) are linked into tracks by the client's own
``link_tracks`` and cut into windows by the client's ``track_windows``, so training sees the
sequences a client sends. A window shorter than ``T`` is zero-padded and carries its length.
A split's sequences are decoded once into memory: right for the generated data and a few
thousand tracks (a 16-crop sequence is 0.2 MB at 64 px, 2.4 MB at 224 px); a split of tens of
thousands of tracks at 224 px needs them streamed from disk as ``training.data`` streams crops,
which this module does not do yet.

Augmentation (train split only) draws one seed per sequence and applies ``training.augment``
with that same seed to every crop of it: a flip, a rotation or a colour change holds along the
whole track, as in a real video, and never adds a flicker of its own.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass

import numpy as np

from deepfake_client.faces import Box
from deepfake_client.sequences import pack_windows, track_windows
from deepfake_client.tracks import link_tracks
from training.config import TrainConfig
from training.prepare import read_info, read_manifest


@dataclass(frozen=True)
class Sequences:
    """The sequences of one split: pixels, lengths, labels, and the video and track of each."""

    frames: np.ndarray  # uint8 [n, T, S, S, 3]
    lengths: np.ndarray  # int32 [n]
    labels: np.ndarray  # int64 [n], 1 = fake
    videos: list[str]
    tracks: list[int]

    def __len__(self) -> int:
        return len(self.labels)


def _read(path: pathlib.Path, size: int) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"{path}: cannot read the crop")
    if image.shape[:2] != (size, size):
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def track_sequences(record: dict) -> list[tuple[int, list[dict]]]:
    """``(track id, faces in frame order)`` of one manifest record (the client's track linking)."""
    faces = sorted(record["faces"], key=lambda f: (int(f.get("frame", 0)), int(f.get("face", 0))))
    if not faces:
        return []
    boxes = [Box(*[float(v) for v in f["box"]]) for f in faces]
    ids = link_tracks([int(f.get("frame", 0)) for f in faces], boxes)
    by_track: dict[int, list[dict]] = {}
    for face, track in zip(faces, ids, strict=True):
        by_track.setdefault(track, []).append(face)
    return sorted(by_track.items())


def load_sequences(data_dir: str | pathlib.Path, split: str, sequence_length: int, size: int) -> Sequences:
    """Every window of every track of ``split`` in the prepared folder ``data_dir``, in video order."""
    data_dir = pathlib.Path(data_dir)
    read_info(data_dir)
    frames, lengths, labels, videos, tracks = [], [], [], [], []
    for record in sorted(read_manifest(data_dir), key=lambda r: r["id"]):
        if record["split"] != split:
            continue
        for track, faces in track_sequences(record):
            windows = track_windows(len(faces), sequence_length)
            if not windows:
                continue
            crops = np.stack([_read(data_dir / f["file"], size) for f in faces])
            packed, packed_lengths = pack_windows(crops, windows, sequence_length)
            frames.append(packed)
            lengths.append(packed_lengths)
            labels += [int(record["label"])] * len(windows)
            videos += [record["id"]] * len(windows)
            tracks += [track] * len(windows)
    if not frames:
        shape = (0, sequence_length, size, size, 3)
        return Sequences(np.zeros(shape, np.uint8), np.zeros(0, np.int32), np.zeros(0, np.int64), [], [])
    return Sequences(
        np.concatenate(frames), np.concatenate(lengths), np.asarray(labels, np.int64), videos, tracks
    )


def augment_sequence(frames, seed, config: TrainConfig):
    """Augment every crop of ``frames`` ``[T, S, S, 3]`` with the one seed ``seed``: the same change."""
    import tensorflow as tf

    from training.augment import augment_image

    return tf.map_fn(
        lambda image: augment_image(image, seed, config),
        frames,
        fn_output_signature=tf.TensorSpec(frames.shape[1:], tf.uint8),
    )


def sequence_dataset(sequences: Sequences, config: TrainConfig, *, training: bool):
    """Batched ``({"frames", "mask"}, labels [B, 1])``: shuffled and augmented when ``training``."""
    import tensorflow as tf

    from training.temporal import sequence_mask

    length = sequences.frames.shape[1]
    ds = tf.data.Dataset.from_tensor_slices(
        (sequences.frames, sequences.lengths, sequences.labels.astype(np.float32))
    )
    if training:
        ds = ds.shuffle(max(1, len(sequences)), seed=config.seed, reshuffle_each_iteration=True)
        if config.augment:
            seeds = tf.data.Dataset.random(seed=config.seed + 3, rerandomize_each_iteration=True).batch(2)
            ds = tf.data.Dataset.zip(ds, seeds).map(
                lambda xyz, seed: (augment_sequence(xyz[0], seed, config), xyz[1], xyz[2]),
                num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=True,
            )

    def to_inputs(frames, lengths, label):
        mask = sequence_mask(lengths[None], length)[0]
        return {"frames": tf.cast(frames, tf.float32), "mask": mask}, tf.reshape(label, [1])

    return ds.map(to_inputs).batch(config.batch_size).prefetch(tf.data.AUTOTUNE)
