"""``DetectorClient``: video or image -> faces -> crops -> TF Serving -> verdict.

```python
with DetectorClient("grpc://tfserving:8500", label="stable") as client:
    verdict = client.scan_video("upload.mp4")
```

What a version needs from the client (its input size ``S``, crop margin and threshold) is read
from the server per version (metadata signature shape and the ``model_info`` signature) and cached;
a version never changes once published. The crops are made for the version the target resolves
to; if another version answers (a label moved mid-scan) with a different crop, or the server
refuses the shape, the metadata is read again and the scan retried once on that version.
"""

from __future__ import annotations

import functools
import logging
import pathlib
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from deepfake_client import contract
from deepfake_client.adaptive import SAMPLINGS, score_adaptively
from deepfake_client.contract import DEFAULT_DETECTOR
from deepfake_client.errors import DeepfakeError, InvalidInputError, NotFoundError
from deepfake_client.faces import Face, FaceDetector, extract_faces, faces_in_frames, make_detector
from deepfake_client.inputs import detect_kind
from deepfake_client.sequences import temporal_scores
from deepfake_client.tracks import link_tracks
from deepfake_client.transport.base import (
    DEFAULT_RESOLVE_TTL_S,
    DEFAULT_RETRY_FOR_S,
    DEFAULT_TIMEOUT_S,
    UNKNOWN_LABEL_TEXT,
    RetryPolicy,
    Target,
    Transport,
    make_transport,
)
from deepfake_client.verdict import FaceScore, Verdict, make_verdict
from deepfake_client.versions import VersionInfo, read_version_info
from deepfake_client.video import (
    DEFAULT_FRAMES,
    load_image,
    prefetch_frames,
    sample_frames,
)
from deepfake_client.wire import encode_crops, resolve_encoding

log = logging.getLogger("deepfake_client")

DEFAULT_BATCH_SIZE = 32


@dataclass
class Prepared:
    """Faces cropped for one version, ready to score (the CLI prepares the next file while scoring)."""

    source: str
    kind: str
    target: Target
    info: VersionInfo
    faces: list[Face]
    frames: int
    timings_s: dict[str, float] = field(default_factory=dict)
    redo: Callable[[VersionInfo], Prepared] | None = None  # crop again for another version


def _require_kind(path: str | pathlib.Path, kind: str) -> None:
    found = detect_kind(path)
    if found != kind:
        raise InvalidInputError(f"{path}: the content is {found}, not {kind} (scan() takes either)")


class DetectorClient:
    """A client of the deepfake detector on TF Serving (or the dev server), over gRPC or REST.

    Args:
        url: ``grpc://host:8500`` (``grpcs://`` for TLS) or ``http(s)://host:8501``.
        model: the model name.
        version: a version number to target, or
        label: a version label (``stable``, the default, or ``canary``); ``label=None`` without a
            version means the latest version. While the model has no ``stable`` label, a client on
            ``stable`` scores with the latest version and logs one warning, unless that version is
            the ``canary`` (a canary only answers clients that asked for it): then it refuses.
        canary_share: the fraction of scans sent to the ``canary`` label instead.
        timeout_s: the deadline of each call (once the server is reachable).
        retry_for_s: how long an unreachable server (a restart) is ridden out: calls that fail
            with UNAVAILABLE / 503 / a connection reset are retried with backoff and jitter until
            the outage has lasted this long; over gRPC they wait for the channel to connect
            (``wait_for_ready``), over REST the server is polled. 0: no waiting (see
            ``transport.RetryPolicy``).
        retries: also cap the retries of one call at this number (None: the budget decides).
        batch_size: faces per predict request.
        encoding: how crops go on the wire (see :mod:`deepfake_client.wire`): ``auto`` (the
            default: the uint8 tensor over gRPC, lossless PNG over REST, the same pixels either
            way), ``uint8``, ``png`` or ``jpeg`` (lossy).
        detector: the face detector's name (see ``faces.make_detector``) or an instance factory.
        frames: frames sampled per video, or
        per_second: frames sampled per second of video.
        aggregation: ``confident``, ``mean`` or ``max`` (see ``verdict.aggregate``).
        sampling: ``all`` (every face of the sampled frames is scored) or ``adaptive`` (each
            person's faces are sent a few at a time until the verdict is clear; see
            :mod:`deepfake_client.adaptive`; the verdict says how many were used).
        threshold: overrides the version's decision threshold.
        root_certificates: PEM roots for TLS.
        headers: sent with every call (e.g. ``{"authorization": "Bearer ..."}``).
        transport: a ready transport (instead of ``url``'s).
        seed: seeds the canary draw and the retry jitter.
    """

    def __init__(
        self,
        url: str,
        *,
        model: str = contract.MODEL_NAME,
        version: int | None = None,
        label: str | None = contract.STABLE_LABEL,
        canary_share: float = 0.0,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        retry_for_s: float = DEFAULT_RETRY_FOR_S,
        retries: int | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        encoding: str = "auto",
        detector: str | Callable[[], FaceDetector] = DEFAULT_DETECTOR,
        frames: int = DEFAULT_FRAMES,
        per_second: float | None = None,
        aggregation: str = "confident",
        sampling: str = "all",
        threshold: float | None = None,
        root_certificates: bytes | None = None,
        headers: dict[str, str] | None = None,
        transport: Transport | None = None,
        seed: int | None = None,
    ):
        if not 0.0 <= canary_share <= 1.0:
            raise InvalidInputError(f"canary_share must be in [0, 1], got {canary_share}")
        if batch_size < 1:
            raise InvalidInputError(f"batch_size must be positive, got {batch_size}")
        resolve_encoding(encoding, "", True)  # refuses an unknown one now
        # A version number wins over the default label; a version and an explicit other label clash.
        if version is not None and label == contract.STABLE_LABEL:
            label = None
        self.target = Target(model, version=version, label=label)
        self.transport = transport or make_transport(
            url, root_certificates=root_certificates, headers=headers
        )
        self.canary_share = canary_share
        self.timeout_s = timeout_s
        self._rng = random.Random(seed)
        self.retry = RetryPolicy(retry_for_s, retries=retries, rng=self._rng)
        self.batch_size = batch_size
        self.encoding = encoding
        self.frames = frames
        self.per_second = per_second
        if sampling not in SAMPLINGS:
            raise InvalidInputError(f"unknown sampling {sampling!r} (known: {', '.join(SAMPLINGS)})")
        self.aggregation = aggregation
        self.sampling = sampling
        self.threshold = threshold
        self._detector_factory = (lambda: make_detector(detector)) if isinstance(detector, str) else detector
        self._local = threading.local()
        self._shared_detector: FaceDetector | None = None
        self._lock = threading.Lock()
        self._versions: dict[int, VersionInfo] = {}
        self._resolved: dict[Target, tuple[int, float]] = {}
        self._latest_until = 0.0  # no stable label: the latest version is used until then
        self._warned_latest = False

    # -- model versions -------------------------------------------------------------------------

    def _call(self, fn: Callable[[float], object]) -> object:
        """``fn(wait_s=...)`` under the retry budget (``wait_s``: how long it may wait for the server)."""
        return self.retry.call(fn)

    def info(self, target: Target | None = None, *, fresh: bool = False) -> VersionInfo:
        """The input size, crop margin and threshold of the version ``target`` stands for now."""
        target = target or self.target
        version = target.version
        if version is None:
            cached = self._resolved.get(target)
            if cached and not fresh and time.monotonic() - cached[1] < DEFAULT_RESOLVE_TTL_S:
                version = cached[0]
        if version is not None and version in self._versions:
            return self._versions[version]
        meta = self._call(
            lambda wait_s: self.transport.metadata(target, timeout_s=self.timeout_s, wait_s=wait_s)
        )
        version = meta.version  # type: ignore[attr-defined]
        with self._lock:
            if target.version is None:
                self._resolved[target] = (version, time.monotonic())
            if version in self._versions:
                return self._versions[version]
        info = self._read_info(target.pinned(version), meta)
        with self._lock:
            self._versions[version] = info
        return info

    def _read_info(self, pinned: Target, meta: object) -> VersionInfo:
        def ask_info() -> dict[str, np.ndarray]:
            result = self._call(
                lambda wait_s: self.transport.predict(
                    pinned,
                    contract.INFO_SIGNATURE,
                    {contract.INFO_INPUT: np.zeros(1, np.int32)},
                    timeout_s=self.timeout_s,
                    wait_s=wait_s,
                )
            )
            return result.outputs  # type: ignore[attr-defined,no-any-return]

        return read_version_info(pinned, meta, ask_info)  # type: ignore[arg-type]

    def _choose_target(self) -> tuple[Target, VersionInfo]:
        if self.canary_share > 0 and self._rng.random() < self.canary_share:
            canary = Target(self.target.model, label=contract.CANARY_LABEL)
            try:
                return canary, self.info(canary)
            except NotFoundError as err:
                log.warning("no canary to send to (%s); using %s", err, self.target.describe())
        if self.target.label != contract.STABLE_LABEL:
            return self.target, self.info(self.target)
        if time.monotonic() >= self._latest_until:
            try:
                return self.target, self.info(self.target)
            except NotFoundError as err:
                if UNKNOWN_LABEL_TEXT.lower() not in str(err).lower():
                    raise  # the model itself is missing, not its label
        return self._latest_for_stable()

    def _latest_for_stable(self) -> tuple[Target, VersionInfo]:
        """Stable by default: with no ``stable`` label, the latest version, unless it is the canary."""
        latest = Target(self.target.model)
        info = self.info(latest)
        try:
            canary = self.info(Target(self.target.model, label=contract.CANARY_LABEL))
        except NotFoundError:
            canary = None
        if canary is not None and canary.version == info.version:
            raise NotFoundError(
                f"{self.target.model} has no label 'stable' and its latest version {info.version} is the "
                "canary; pass a label or a version to score with it"
            )
        with self._lock:
            self._latest_until = time.monotonic() + DEFAULT_RESOLVE_TTL_S
            warn, self._warned_latest = not self._warned_latest, True
        if warn:
            log.warning(
                "%s has no label 'stable': scoring with the latest version (%s)",
                self.target.model,
                info.version,
            )
        return latest, info

    # -- preparation (CPU: decode, detect, crop) ------------------------------------------------

    @property
    def detector(self) -> FaceDetector:
        """The face detector: one for all threads if it says it is ``thread_safe``, else one per thread."""
        detector = getattr(self._local, "detector", None) or self._shared_detector
        if detector is None:
            detector = self._detector_factory()
            if getattr(detector, "thread_safe", False):
                with self._lock:
                    self._shared_detector = self._shared_detector or detector
                    detector = self._shared_detector
            else:
                self._local.detector = detector
        return detector

    def prepare(self, source: str | pathlib.Path) -> Prepared:
        """Decode, detect and crop a video or image file for the version the target stands for now."""
        kind = detect_kind(source)  # the one input gate: from content, never the suffix
        target, info = self._choose_target()
        if kind == "image":
            return self._prepare_image(str(source), None, target, info)
        return self._prepare_video(str(source), target, info)

    def _prepare_video(self, path: str, target: Target, info: VersionInfo) -> Prepared:
        # Frames are decoded in a background thread while faces are detected here (see
        # video.prefetch_frames): "decode" is the time spent waiting for a frame, not all decoding.
        timings: dict[str, float] = {}
        faces: list[Face] = []
        frames = 0
        iterator = prefetch_frames(sample_frames(path, self.frames, per_second=self.per_second))
        try:
            for _, found in faces_in_frames(
                iterator, self.detector, info.crop_margin, info.input_size, timings
            ):
                frames += 1
                faces.extend(found)
        finally:
            iterator.close()  # stops the decoding thread at once if detection failed
        return Prepared(
            path,
            "video",
            target,
            info,
            faces,
            frames,
            timings,
            redo=lambda new: self._prepare_video(path, target, new),
        )

    def _prepare_image(
        self, source: str, image: np.ndarray | None, target: Target, info: VersionInfo
    ) -> Prepared:
        t0 = time.perf_counter()
        rgb = load_image(source) if image is None else image
        t1 = time.perf_counter()
        faces = extract_faces(rgb, self.detector, info.crop_margin, info.input_size)
        t2 = time.perf_counter()
        return Prepared(
            source,
            "image",
            target,
            info,
            faces,
            1,
            {"decode": t1 - t0, "detect": t2 - t1},
            redo=lambda new: self._prepare_image(source, rgb, target, new),
        )

    # -- scoring (network) ----------------------------------------------------------------------

    def _predict(
        self, target: Target, crops: np.ndarray, info: VersionInfo
    ) -> tuple[np.ndarray, set[int | None]]:
        encoding = resolve_encoding(self.encoding, self.transport.url, info.encoded)
        scores, versions = [], set()
        for start in range(0, len(crops), self.batch_size):
            batch = crops[start : start + self.batch_size]
            signature, inputs = encode_crops(batch, encoding)
            result = self._call(
                functools.partial(
                    self.transport.predict,
                    target,
                    signature,
                    inputs,
                    output_filter=[contract.PROBABILITY_OUTPUT],
                    timeout_s=self.timeout_s,
                )
            )
            probs = np.asarray(result.outputs[contract.PROBABILITY_OUTPUT], dtype=np.float64).reshape(-1)  # type: ignore[attr-defined]
            if probs.size != len(batch):
                raise DeepfakeError(f"the server answered {probs.size} scores for {len(batch)} faces")
            scores.append(probs)
            versions.add(result.version)  # type: ignore[attr-defined]
        return (np.concatenate(scores) if scores else np.zeros(0)), versions

    def score(self, prepared: Prepared) -> Verdict:
        """Send prepared faces to the server and build the verdict."""
        t0 = time.perf_counter()
        target, info = prepared.target, prepared.info
        crops = (
            np.stack([f.crop for f in prepared.faces]) if prepared.faces else np.zeros((0, 1, 1, 3), np.uint8)
        )
        probs, answered = np.zeros(0), info.version
        tracks = self._tracks(prepared.faces)
        for attempt in range(2):
            if not len(crops):
                break
            try:
                probs, versions = self._score_crops(prepared.kind, target, crops, info, tracks)
            except (InvalidInputError, NotFoundError):
                if attempt or prepared.target.version is not None:  # the target scanned, canary or not
                    raise
                fresh = self.info(prepared.target, fresh=True)  # a label moved, or a version went away
                if fresh.version == info.version:
                    raise
                answered = fresh.version
            else:
                answering = {v for v in versions if v is not None}
                others = answering - {info.version}
                if not others:
                    answered = info.version
                    break
                answered = max(others)  # a label moved mid-scan
                new = self.info(target.pinned(answered))
                if new.crop_params() == info.crop_params():
                    info = new  # same crop: the answering version's threshold
                    if len(answering) == 1:
                        break  # and one version answered every batch: the answer stands
                    if attempt:
                        raise DeepfakeError(f"{prepared.source}: the answering version kept changing")
                    # Batches answered by two versions (a rollback mid-scan): one verdict must come
                    # from one version, so every crop is scored again by the newer one.
                    target = target.pinned(answered)
                    continue
                if attempt:
                    raise DeepfakeError(f"version {answered} answered a scan cropped for another version")
            if prepared.redo is None:
                raise DeepfakeError(
                    f"version {answered} needs another crop and {prepared.source} cannot be redone"
                )
            new = self.info(target.pinned(answered))
            log.info(
                "scanning %s again for version %s (input size %s)", prepared.source, answered, new.input_size
            )
            prepared = prepared.redo(new)
            info, target = new, target.pinned(answered)
            crops = np.stack([f.crop for f in prepared.faces]) if prepared.faces else crops[:0]
            tracks = self._tracks(prepared.faces)
        predict_s = time.perf_counter() - t0
        temporal = None
        if prepared.kind == "video" and info.sequence_length and len(crops):
            t1 = time.perf_counter()
            pinned = target.pinned(answered) if answered is not None else target
            temporal = self._score_sequences(pinned, crops, tracks, info)
            prepared.timings_s["sequence"] = time.perf_counter() - t1
        faces = prepared.faces
        scored = [
            FaceScore(f.frame_index, f.timestamp_s, f.box, f.confidence, float(p), t)
            for f, p, t in zip(faces, probs, tracks, strict=True)
            if not np.isnan(p)  # adaptive sampling: a face never sent
        ]
        found: dict[int, int] = {}
        for track in tracks:
            found[track] = found.get(track, 0) + 1
        timings = {**prepared.timings_s, "predict": predict_s}
        timings["total"] = sum(timings.values())
        return make_verdict(
            source=prepared.source,
            kind=prepared.kind,
            faces=scored,
            threshold=self.threshold
            if self.threshold is not None
            else info.sequence_threshold
            if temporal and info.sequence_threshold is not None
            else info.threshold,
            aggregation=self.aggregation,
            model_name=info.model,
            model_version=answered if faces else info.version,
            target=prepared.target.describe(),
            frames=prepared.frames,
            timings_s=timings,
            sampling=self.sampling if prepared.kind == "video" else "all",
            found_per_track=found,
            temporal_scores=temporal,
        )

    def _score_sequences(
        self, target: Target, crops: np.ndarray, tracks: list[int], info: VersionInfo
    ) -> dict[int, float]:
        """Each long enough track's ``temporal_score`` from the ``sequence`` signature (``sequences``)."""

        def predict(frames: np.ndarray, lengths: np.ndarray) -> np.ndarray:
            inputs = {contract.SEQUENCE_FRAMES_INPUT: frames, contract.SEQUENCE_LENGTHS_INPUT: lengths}
            result = self._call(
                functools.partial(
                    self.transport.predict,
                    target,
                    contract.SEQUENCE_SIGNATURE,
                    inputs,
                    output_filter=[contract.PROBABILITY_OUTPUT],
                    timeout_s=self.timeout_s,
                )
            )
            return np.asarray(result.outputs[contract.PROBABILITY_OUTPUT])  # type: ignore[attr-defined]

        try:
            return temporal_scores(predict, crops, tracks, info.sequence_length)
        except ValueError as err:
            raise DeepfakeError(str(err)) from err

    @staticmethod
    def _tracks(faces: Sequence[Face]) -> list[int]:
        if faces and faces[0].box is not None:
            return link_tracks([f.frame_index for f in faces], [f.box for f in faces])
        return [0] * len(faces)

    def _score_crops(
        self, kind: str, target: Target, crops: np.ndarray, info: VersionInfo, tracks: list[int]
    ) -> tuple[np.ndarray, set[int | None]]:
        """Every crop's score, or with adaptive sampling those sent (``NaN`` for the others)."""
        if self.sampling != "adaptive" or kind != "video":
            return self._predict(target, crops, info)
        versions: set[int | None] = set()

        def score(positions: list[int]) -> np.ndarray:
            probs, answered = self._predict(target, crops[positions], info)
            versions.update(answered)
            return probs

        threshold = self.threshold if self.threshold is not None else info.threshold
        probs = score_adaptively(tracks, score, threshold=threshold, aggregation=self.aggregation)
        return probs, versions

    # -- the public scans -----------------------------------------------------------------------

    def scan(self, source: str | pathlib.Path) -> Verdict:
        """Scan a video or image file (told apart by its content, see ``inputs.detect_kind``)."""
        return self.score(self.prepare(source))

    def scan_video(self, path: str | pathlib.Path) -> Verdict:
        """Sample frames of a video, find and crop every face, score them: one verdict, per track too."""
        _require_kind(path, "video")
        target, info = self._choose_target()
        return self.score(self._prepare_video(str(path), target, info))

    def scan_image(self, image: str | pathlib.Path | np.ndarray, *, name: str = "<array>") -> Verdict:
        """Score every face in an image file or an RGB uint8 array ``[H, W, 3]``."""
        target, info = self._choose_target()
        if isinstance(image, np.ndarray):
            return self.score(self._prepare_image(name, image, target, info))
        _require_kind(image, "image")
        return self.score(self._prepare_image(str(image), None, target, info))

    def scan_crops(self, crops: np.ndarray | Sequence[np.ndarray], *, name: str = "<crops>") -> Verdict:
        """Score face crops made elsewhere (RGB uint8, square); resized to the version's input size."""
        import cv2

        target, info = self._choose_target()
        arrays = [np.asarray(c) for c in crops]
        for c in arrays:
            if (
                c.dtype != np.uint8
                or c.ndim != 3
                or c.shape[2] != 3
                or 0 in c.shape
                or c.shape[0] != c.shape[1]
            ):
                raise InvalidInputError(
                    f"a crop must be square RGB uint8 [S, S, 3] (Contract 3), got {c.dtype} {list(c.shape)}"
                )

        def make(new: VersionInfo) -> Prepared:
            size = new.input_size
            faces = [
                Face(
                    i,
                    0.0,
                    None,
                    1.0,
                    c
                    if c.shape[:2] == (size, size)  # type: ignore[arg-type]
                    else cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA),
                )
                for i, c in enumerate(arrays)
            ]
            return Prepared(name, "crops", target, new, faces, len(arrays), {}, redo=make)

        return self.score(make(info))

    def close(self) -> None:
        """Close the connections."""
        self.transport.close()

    def __enter__(self) -> DetectorClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @classmethod
    def local(
        cls, path: str | pathlib.Path, *, threads: int | None = None, **options: object
    ) -> DetectorClient:
        """A client that scores in this process with a TFLite or ONNX export (no server, no TensorFlow).

        ``path``: the folder ``deepfake-export --format tflite|onnx|tfjs`` wrote (or its model file).
        The same pipeline and verdicts as over a server (see :mod:`deepfake_client.transport.local`);
        ``options`` are the constructor's (``frames``, ``detector``, ``aggregation``, ...).
        """
        from deepfake_client.transport.local import LocalTransport

        transport = LocalTransport(path, threads=threads)
        options.setdefault("model", transport.model_name)
        return cls("local", transport=transport, **options)  # type: ignore[arg-type]
