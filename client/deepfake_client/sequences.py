"""Face tracks as sequences for a version's ``sequence`` signature (the temporal model, Contract 2).

A track's crops, in frame order, are cut into consecutive windows of ``T`` crops (``T`` comes from
the version's ``model_info``). A window shorter than ``T`` is padded with black crops and sent with
its true length, which the model masks: padding never changes a score. A track needs at least
:data:`MIN_SEQUENCE` crops to be scored as a sequence, and so does a window: a 20-crop track with
``T = 16`` is one window of 16 and one of 4; in a 17-crop track the 17th crop is scored by the frame
model only. A track's ``temporal_score`` is the mean probability of its windows.

Training (``training.temporal_data``) cuts tracks with the same function.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

MIN_SEQUENCE = 4  # fewer crops than this show too little motion to judge over time


def track_windows(count: int, length: int, min_length: int = MIN_SEQUENCE) -> list[tuple[int, int]]:
    """``(start, stop)`` of the windows of a track of ``count`` crops, each at most ``length`` long."""
    windows = [(start, min(count, start + length)) for start in range(0, count, length)]
    return [(a, b) for a, b in windows if b - a >= min_length]


def pack_windows(
    crops: Sequence[np.ndarray] | np.ndarray, windows: Sequence[tuple[int, int]], length: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ``sequence`` signature's inputs: uint8 ``[b, T, S, S, 3]`` (zero-padded) and int32 ``[b]``."""
    crops = np.asarray(crops, dtype=np.uint8)
    frames = np.zeros((len(windows), length, *crops.shape[1:]), dtype=np.uint8)
    lengths = np.zeros(len(windows), dtype=np.int32)
    for i, (start, stop) in enumerate(windows):
        frames[i, : stop - start] = crops[start:stop]
        lengths[i] = stop - start
    return frames, lengths


def combine(frame_score: float | None, temporal_score: float | None) -> float | None:
    """A track's score from its frame score and its temporal score: the larger of the two.

    A person is fake if either head sees a fake: the frame model catches artefacts visible in a
    frame, the temporal model those visible only over time (flicker). Without a temporal score
    (a short track, a version without the head) the frame score alone.
    """
    if temporal_score is None:
        return frame_score
    if frame_score is None:
        return temporal_score
    return max(frame_score, temporal_score)


def temporal_scores(
    predict: Callable[[np.ndarray, np.ndarray], np.ndarray],
    crops: np.ndarray,
    tracks: Sequence[int],
    length: int,
    batch_size: int = 8,
) -> dict[int, float]:
    """``{track: temporal_score}`` of every track with a window of at least :data:`MIN_SEQUENCE` crops.

    Args:
        predict: sends one batch, ``predict(frames [b, T, S, S, 3], lengths [b]) -> probabilities [b]``.
        crops: every face crop of the video, in frame order.
        tracks: the track of each crop.
        length: ``T``, from the version's ``model_info``.
        batch_size: sequences per request (a 16 x 224 x 224 x 3 sequence is 2.4 MB).
    """
    windows, owners = [], []
    for track in sorted(set(tracks)):
        members = [i for i, t in enumerate(tracks) if t == track]
        for start, stop in track_windows(len(members), length):
            windows.append(members[start:stop])
            owners.append(track)
    per_track: dict[int, list[float]] = {}
    for first in range(0, len(windows), batch_size):
        batch = windows[first : first + batch_size]
        frames = np.zeros((len(batch), length, *crops.shape[1:]), dtype=np.uint8)
        lengths = np.array([len(w) for w in batch], dtype=np.int32)
        for i, members in enumerate(batch):
            frames[i, : len(members)] = crops[members]
        probs = np.asarray(predict(frames, lengths), dtype=np.float64).reshape(-1)
        if probs.size != len(batch):
            raise ValueError(f"the server answered {probs.size} scores for {len(batch)} sequences")
        for track, p in zip(owners[first : first + batch_size], probs, strict=True):
            per_track.setdefault(track, []).append(float(p))
    return {track: float(np.mean(values)) for track, values in per_track.items()}
