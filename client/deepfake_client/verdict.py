"""The verdict (Contract 4): per face, per track (person) and per video or image.

A verdict says which model version answered, the threshold it used, how the scores were
aggregated and how long each stage took. ``Verdict.to_dict`` is the JSON form; ``format_table``
is the short table for people.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deepfake_client.contract import FAKE, NO_FACE, REAL
from deepfake_client.errors import InvalidInputError
from deepfake_client.faces import Box
from deepfake_client.sequences import combine

AGGREGATIONS = ("confident", "mean", "max")
CONFIDENT_FAKE = 0.8  # a face "confidently fake" scores above this
CONFIDENT_REAL = 0.2  # a face "confidently real" scores below this
CONFIDENT_FAKE_SHARE = 0.4
CONFIDENT_REAL_SHARE = 0.9
MINOR_TRACK_SHARE = 0.2  # a track with fewer faces than this share of the longest one does not decide


def aggregate(probabilities: Sequence[float] | np.ndarray, method: str = "confident") -> float:
    """Turn per-face fake probabilities into one score.

    ``confident`` is the rule of the DFDC winner (selimsef), exactly: with ``n`` scores, if at least
    40 % of them (``count > 0.8`` >= ``0.4 * n``) are above 0.8, the score is the mean of those; else
    if at least 90 % (``count < 0.2`` >= ``0.9 * n``) are below 0.2, the mean of those; else the
    mean of all. (The original also required more than 11 confident fakes, which suits 32 frames of
    one video but makes a single image never count as confident; that clause is dropped.)
    ``mean`` is the mean, ``max`` the maximum.

    Raises:
        InvalidInputError: no scores, or an unknown method.
    """
    p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    if p.size == 0:
        raise InvalidInputError("cannot aggregate zero scores")
    if method == "mean":
        return float(p.mean())
    if method == "max":
        return float(p.max())
    if method != "confident":
        raise InvalidInputError(f"unknown aggregation {method!r} (known: {', '.join(AGGREGATIONS)})")
    fakes = p[p > CONFIDENT_FAKE]
    if fakes.size and fakes.size >= CONFIDENT_FAKE_SHARE * p.size:
        return float(fakes.mean())
    reals = p[p < CONFIDENT_REAL]
    if reals.size and reals.size >= CONFIDENT_REAL_SHARE * p.size:
        return float(reals.mean())
    return float(p.mean())


def decide(score: float | None, threshold: float) -> str:
    """``FAKE`` if ``score >= threshold``, ``REAL`` below it, ``NO_FACE`` without a score."""
    if score is None:
        return NO_FACE
    return FAKE if score >= threshold else REAL


@dataclass(frozen=True)
class FaceScore:
    """One scored face: where it was, how sure the detector was, and the model's fake probability."""

    frame_index: int
    timestamp_s: float
    box: Box | None  # None for crops sent as they are
    confidence: float
    fake_probability: float
    track: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "frame_index": self.frame_index,
            "timestamp_s": round(self.timestamp_s, 3),
            "box": self.box.as_list() if self.box is not None else None,
            "confidence": round(self.confidence, 4),
            "fake_probability": round(self.fake_probability, 6),
            "track": self.track,
        }


@dataclass(frozen=True)
class TrackVerdict:
    """The faces of one person across frames, scored together."""

    track: int
    faces: int
    first_frame: int
    last_frame: int
    score: float
    label: str
    minor: bool  # too short to decide the video's verdict (see ``make_verdict``)
    faces_found: int | None = None  # faces of this person found; ``faces`` of them were scored
    # with a temporal model (deepfake_client.sequences): the frame models' aggregate and the
    # sequence score; ``score`` is then their combination
    frame_score: float | None = None
    temporal_score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        extra = {}
        if self.frame_score is not None:
            extra["frame_score"] = round(self.frame_score, 6)
            extra["temporal_score"] = None if self.temporal_score is None else round(self.temporal_score, 6)
        return {
            "track": self.track,
            "faces": self.faces,
            "faces_found": self.faces if self.faces_found is None else self.faces_found,
            "first_frame": self.first_frame,
            "last_frame": self.last_frame,
            "score": round(self.score, 6),
            "label": self.label,
            "minor": self.minor,
            **extra,
        }


@dataclass(frozen=True)
class Verdict:
    """The verdict on one video, image or set of crops (Contract 4)."""

    source: str
    kind: str  # "video", "image" or "crops"
    label: str  # FAKE, REAL or NO_FACE
    score: float | None
    threshold: float
    aggregation: str
    model_name: str
    model_version: int | None
    target: str  # what was asked for: "version:7", "label:stable", "latest"
    frames: int  # frames sampled (images: 1)
    faces: tuple[FaceScore, ...] = ()
    tracks: tuple[TrackVerdict, ...] = ()
    timings_s: dict[str, float] = field(default_factory=dict)
    sampling: str = "all"  # "adaptive": only some faces were sent (see ``deepfake_client.adaptive``)
    frames_used: int | None = None  # frames whose faces were scored (None: all ``frames``)
    faces_found: int | None = None  # faces found; ``faces`` holds those scored (None: the same)

    def to_dict(self, faces: bool = True) -> dict[str, Any]:
        """The JSON form; ``faces=False`` leaves the per-face list out."""
        out: dict[str, Any] = {
            "source": self.source,
            "kind": self.kind,
            "label": self.label,
            "score": None if self.score is None else round(self.score, 6),
            "threshold": round(self.threshold, 6),
            "aggregation": self.aggregation,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "target": self.target,
            "frames": self.frames,
            "frames_used": self.frames if self.frames_used is None else self.frames_used,
            "face_count": len(self.faces),
            "faces_found": len(self.faces) if self.faces_found is None else self.faces_found,
            "sampling": self.sampling,
            "tracks": [t.to_dict() for t in self.tracks],
            "timings_s": {k: round(v, 4) for k, v in self.timings_s.items()},
        }
        if faces:
            out["faces"] = [f.to_dict() for f in self.faces]
        return out

    def to_json(self, faces: bool = True) -> str:
        import json

        return json.dumps(self.to_dict(faces=faces))


def make_verdict(
    *,
    source: str,
    kind: str,
    faces: Sequence[FaceScore],
    threshold: float,
    aggregation: str,
    model_name: str,
    model_version: int | None,
    target: str,
    frames: int,
    timings_s: dict[str, float] | None = None,
    sampling: str = "all",
    found_per_track: Mapping[int, int] | None = None,
    temporal_scores: Mapping[int, float] | None = None,
) -> Verdict:
    """Aggregate scored faces into tracks and a verdict.

    Each track is aggregated with ``aggregation``. The video's score is the highest score among its
    major tracks (a video is fake if any person in it is); a track is minor when it has fewer faces
    than 20 % of the longest track (a passing face or a false detection) and then does not decide.
    With one track this is simply that track's score. No face at all gives ``NO_FACE``.

    With adaptive sampling ``faces`` are the faces scored and ``found_per_track`` the faces found
    per track: whether a track is minor is decided on the faces found.

    ``temporal_scores`` (a version with the temporal model; ``None`` otherwise): each track's
    ``temporal_score``, and its ``score`` becomes ``sequences.combine(frame score, temporal score)``
    (the larger); pass the version's ``sequence_threshold`` as ``threshold`` then.
    """
    if aggregation not in AGGREGATIONS:
        raise InvalidInputError(f"unknown aggregation {aggregation!r} (known: {', '.join(AGGREGATIONS)})")
    by_track: dict[int, list[FaceScore]] = {}
    for face in faces:
        by_track.setdefault(face.track, []).append(face)
    found = {t: len(v) for t, v in by_track.items()}
    if found_per_track is not None:
        found.update(found_per_track)
    longest = max(found.values(), default=0)
    tracks = []
    for track, members in sorted(by_track.items()):
        score = frame_score = aggregate([m.fake_probability for m in members], aggregation)
        temporal = None if temporal_scores is None else temporal_scores.get(track)
        if temporal_scores is not None:
            score = combine(frame_score, temporal)
        tracks.append(
            TrackVerdict(
                track=track,
                faces=len(members),
                first_frame=min(m.frame_index for m in members),
                last_frame=max(m.frame_index for m in members),
                score=score,
                label=decide(score, threshold),
                minor=found[track] < MINOR_TRACK_SHARE * longest,
                faces_found=found[track],
                frame_score=None if temporal_scores is None else frame_score,
                temporal_score=temporal,
            )
        )
    deciding = [t.score for t in tracks if not t.minor]
    score = max(deciding) if deciding else None
    return Verdict(
        source=source,
        kind=kind,
        label=decide(score, threshold),
        score=score,
        threshold=threshold,
        aggregation=aggregation,
        model_name=model_name,
        model_version=model_version,
        target=target,
        frames=frames,
        faces=tuple(faces),
        tracks=tuple(tracks),
        timings_s=dict(timings_s or {}),
        sampling=sampling,
        frames_used=len({f.frame_index for f in faces}) if sampling != "all" and faces else None,
        faces_found=sum(found.values()),
    )


def format_table(verdicts: Sequence[Verdict]) -> str:
    """A short fixed-width table: one line per verdict, then one indented line per track."""
    header = f"{'LABEL':<8} {'SCORE':>6} {'THRESH':>6} {'FACES':>5} {'MODEL':<22} {'TIME':>7}  SOURCE"
    lines = [header]
    for v in verdicts:
        score = "-" if v.score is None else f"{v.score:.3f}"
        model = f"{v.model_name}/{v.model_version}"
        total = v.timings_s.get("total", sum(v.timings_s.values()))
        lines.append(
            f"{v.label:<8} {score:>6} {v.threshold:>6.3f} {len(v.faces):>5} {model:<22} "
            f"{total:>6.2f}s  {v.source}"
        )
        if len(v.tracks) > 1 or any(t.temporal_score is not None for t in v.tracks):
            for t in v.tracks:
                note = " (minor)" if t.minor else ""
                if t.frame_score is not None:
                    temporal = "-" if t.temporal_score is None else f"{t.temporal_score:.3f}"
                    note += f" (frame {t.frame_score:.3f}, temporal {temporal})"
                lines.append(
                    f"  track {t.track}: {t.label} {t.score:.3f} over {t.faces} faces, "
                    f"frames {t.first_frame}-{t.last_frame}{note}"
                )
    return "\n".join(lines)
