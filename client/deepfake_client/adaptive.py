"""Adaptive sampling: score a video's faces a few at a time per person; stop once the verdict is clear.

A clip's frames are decoded and its faces found and cropped as always (the same 32 sampled frames,
the same tracks); what adapts is how many of each person's faces are *sent*. Each person (track)
is scored in at most ``ROUNDS`` (4) rounds: first a quarter of its faces (at least ``MIN_ROUND``),
spread evenly over the clip (every 4th of 32), then another quarter filling the gaps, for as long
as the test below cannot tell which side of the threshold the person is on.

The sequential test is a confidence bound on the mean logit. With the scores' logits
``l_1..l_n`` (``log(p / (1 - p))``), their mean ``m`` and standard deviation ``s``, a track is
*settled* when ``m - Z * max(s, MIN_SD) / sqrt(n)`` is above ``logit(threshold)`` (fake) or
``m + Z * max(s, MIN_SD) / sqrt(n)`` below it (real), and the track's aggregate over the faces
scored so far (the verdict's own rule, e.g. ``confident``) falls on the same side. ``Z = 3``: for
independent scores each look errs with probability < 0.0014 and a track gets at most 4 looks
(8, 16, 24 and 32 faces of 32), so < 0.6 % per track (Bonferroni). Faces of one clip are not independent
(neighbouring frames look alike), which is why ``MIN_SD`` floors the spread (0.5 in logits: a
handful of identical scores near the threshold never settle) and why the agreement with the full
32 frames is measured, not assumed (``bench client_adaptive``: same labels on the smoke test set
and the bench clips). A minor track (fewer faces than ``verdict.MINOR_TRACK_SHARE`` of the
longest one, which does not decide the verdict) gets the first round only.

It is an option (``DetectorClient(sampling="adaptive")``, ``deepfake-scan --adaptive``), not the
default: the *label* agrees with 32 frames, but the *score* is the aggregate of fewer faces and
moves a little, and scores are what a CSV submission or a calibrated downstream threshold uses.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from deepfake_client.verdict import MINOR_TRACK_SHARE, aggregate, decide

ROUNDS = 4  # a track's faces are sent in at most this many rounds, a quarter at a time
MIN_ROUND = 4  # ... but at least this many faces a round
Z = 3.0  # the confidence bound, in standard errors
MIN_SD = 0.5  # the least spread of a track's logits assumed by the bound
SAMPLINGS = ("all", "adaptive")
_EPS = 1e-6


def round_size(faces: int) -> int:
    """How many of a track's ``faces`` each round sends."""
    return max(MIN_ROUND, math.ceil(faces / ROUNDS))


def spread_order(n: int) -> list[int]:
    """``0..n-1`` ordered so that every prefix is spread evenly (van der Corput: 0, n/2, n/4, 3n/4...)."""
    order, seen = [], set()
    i = 0
    while len(order) < n and i < 4 * n + 4:
        fraction, bit, k = 0.0, 0.5, i
        while k:
            fraction += bit * (k & 1)
            k >>= 1
            bit /= 2
        index = int(fraction * n)
        if index not in seen:
            seen.add(index)
            order.append(index)
        i += 1
    return order + [j for j in range(n) if j not in seen]


def _logit(p: np.ndarray | float) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def settled(probabilities: Sequence[float] | np.ndarray, threshold: float, aggregation: str) -> bool:
    """Whether these scores of one track put it clearly on one side of ``threshold`` (see module doc)."""
    p = np.asarray(probabilities, dtype=np.float64)
    if p.size < 2:
        return False
    logits = _logit(p)
    half = Z * max(float(logits.std(ddof=1)), MIN_SD) / math.sqrt(p.size)
    cut, mean = float(_logit(threshold)), float(logits.mean())
    if mean - half > cut:
        side = "FAKE"
    elif mean + half < cut:
        side = "REAL"
    else:
        return False
    return decide(aggregate(p, aggregation), threshold) == side


def score_adaptively(
    tracks: Sequence[int],
    score: Callable[[list[int]], np.ndarray],
    *,
    threshold: float,
    aggregation: str,
) -> np.ndarray:
    """Fake probabilities of the faces, ``NaN`` for those never sent.

    Args:
        tracks: each face's track, faces in frame order.
        score: scores the faces at these positions (one predict call, or a few batches).
        threshold: the decision threshold.
        aggregation: the verdict's aggregation rule.
    """
    members: dict[int, list[int]] = {}
    for position, track in enumerate(tracks):
        members.setdefault(track, []).append(position)
    longest = max((len(m) for m in members.values()), default=0)
    order = {t: [m[i] for i in spread_order(len(m))] for t, m in members.items()}
    sent = dict.fromkeys(members, 0)
    probs = np.full(len(tracks), np.nan)
    pending = set(members)
    while pending:
        batch: list[int] = []
        for track in sorted(pending):
            take = round_size(len(members[track]))
            batch += order[track][sent[track] : sent[track] + take]
            sent[track] += take
        probs[batch] = np.asarray(score(batch), dtype=np.float64).reshape(-1)
        for track in list(pending):
            minor = len(members[track]) < MINOR_TRACK_SHARE * longest
            done = probs[[i for i in members[track] if not np.isnan(probs[i])]]
            if minor or sent[track] >= len(members[track]) or settled(done, threshold, aggregation):
                pending.discard(track)
    return probs
