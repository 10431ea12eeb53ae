"""Linking faces across sampled frames into tracks, so a video with two people gets a score per person.

Faces are linked by box overlap: in frame order, each face joins the live track whose last box
overlaps it most (IoU at least ``min_iou``), each track taking at most one face per frame; a face
that overlaps no live track starts a new one. A track stays live across ``max_gap`` sampled frames
without a face (the detector misses a face now and then).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from deepfake_client.faces import Box

DEFAULT_MIN_IOU = 0.2
DEFAULT_MAX_GAP = 3


@dataclass
class _Track:
    last_box: Box
    last_order: int  # position of the last frame in the sorted list of frame indices


def link_tracks(
    frame_indices: Sequence[int],
    boxes: Sequence[Box],
    *,
    min_iou: float = DEFAULT_MIN_IOU,
    max_gap: int = DEFAULT_MAX_GAP,
) -> list[int]:
    """Give each face a track id (0, 1, ... in order of first appearance).

    Args:
        frame_indices: the frame index of each face.
        boxes: the box of each face, in full-frame pixels.
        min_iou: the least overlap with a track's last box for a face to join it.
        max_gap: how many sampled frames a track may miss and still be continued.

    Returns:
        One track id per face, in the order of the input.
    """
    if len(frame_indices) != len(boxes):
        raise ValueError("frame_indices and boxes must have the same length")
    order = sorted(set(frame_indices))
    position = {index: i for i, index in enumerate(order)}
    by_frame: dict[int, list[int]] = {}
    for face, index in enumerate(frame_indices):
        by_frame.setdefault(index, []).append(face)
    tracks: list[_Track] = []
    ids = [-1] * len(boxes)
    for index in order:
        here = position[index]
        live = [t for t, track in enumerate(tracks) if here - track.last_order <= max_gap + 1]
        pairs = sorted(
            ((boxes[f].iou(tracks[t].last_box), f, t) for f in by_frame[index] for t in live),
            reverse=True,
        )
        used_faces: set[int] = set()
        used_tracks: set[int] = set()
        for iou, face, track in pairs:
            if iou < min_iou:
                break
            if face in used_faces or track in used_tracks:
                continue
            used_faces.add(face)
            used_tracks.add(track)
            ids[face] = track
            tracks[track].last_box, tracks[track].last_order = boxes[face], here
        for face in by_frame[index]:
            if face not in used_faces:
                ids[face] = len(tracks)
                tracks.append(_Track(boxes[face], here))
    return ids
