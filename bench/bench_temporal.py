"""The temporal model's costs: payload, server time of the ``sequence`` signature, client time per clip.

- payload: one 16 x 224 x 224 x 3 track as a gRPC ``PredictRequest`` (the uint8 tensor's bytes) vs
  as the REST JSON body (TF Serving's JSON takes uint8 only as numbers), both built by the
  client's own encoders;
- server: the exported ``sequence`` signature on one track vs 16 ``serving_default`` calls of one
  crop (what scoring the track frame by frame costs in calls) and vs one call of the 16 crops,
  in-process on the SavedModel (no network), EfficientNet-B0 backbone at 224 px (random weights:
  time does not depend on them), medians;
- client: ``DetectorClient.scan_video`` of a 10 s generated clip (25 fps, 32 frames sampled, one
  face) through the dev server over gRPC, against a version with the temporal head vs the same
  frame model exported without it (``temporal_score`` costs one extra call per track), medians.
  Tiny backbone at 64 px: the client's own time (decode, detect, crop) dominates, as in the demo.
"""

from __future__ import annotations

import pathlib
import statistics
import tempfile
import time

import numpy as np


def _median(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    fn()  # warm
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _models(backbone: str, size: int, length: int):  # type: ignore[no-untyped-def]
    from training.models import build_model
    from training.temporal import build_sequence_model

    frame = build_model(backbone, size, None)
    return frame, build_sequence_model(frame, length, head="gru", mode="frozen")


def _payload_rows(length: int) -> list[dict]:
    from deepfake_client import contract
    from deepfake_client.transport.base import Target
    from deepfake_client.transport.grpc import make_predict_request
    from deepfake_client.transport.rest import encode_inputs

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(1, length, 224, 224, 3), dtype=np.uint8)
    inputs = {
        contract.SEQUENCE_FRAMES_INPUT: frames,
        contract.SEQUENCE_LENGTHS_INPUT: np.array([length], np.int32),
    }
    target = Target(contract.MODEL_NAME, version=1)
    grpc_bytes = len(make_predict_request(target, contract.SEQUENCE_SIGNATURE, inputs).SerializeToString())
    rest_bytes = len(encode_inputs(contract.SEQUENCE_SIGNATURE, inputs))
    return [
        {
            "name": f"payload of one {length}x224x224x3 track, REST JSON",
            "value": rest_bytes / 1e6,
            "unit": "MB",
            "baseline": grpc_bytes / 1e6,
            "baseline_name": "gRPC PredictRequest",
            "goal": "report (the client sends gRPC where it can)",
        },
        {
            "name": f"payload of one {length}x224x224x3 track, gRPC",
            "value": grpc_bytes / 1e6,
            "unit": "MB",
            "baseline": frames.nbytes / 1e6,
            "baseline_name": "raw pixels",
            "goal": "~1",
        },
    ]


def _server_rows(quick: bool, length: int) -> list[dict]:
    import tensorflow as tf

    from deepfake_client import contract
    from export.signatures import build_serving_module, save_serving_model

    backbone, size = ("tiny", 64) if quick else ("efficientnet_b0", 224)
    frame, sequence = _models(backbone, size, length)
    with tempfile.TemporaryDirectory() as tmp:
        save_serving_model(build_serving_module(frame, size, 0.3, 0.5, sequence_model=sequence), tmp)
        loaded = tf.saved_model.load(tmp)
        seq_fn = loaded.signatures[contract.SEQUENCE_SIGNATURE]
        frame_fn = loaded.signatures[contract.DEFAULT_SIGNATURE]
        rng = np.random.default_rng(0)
        track = tf.constant(rng.integers(0, 256, size=(1, length, size, size, 3), dtype=np.uint8))
        lengths = tf.constant([length], tf.int32)
        crops = [track[0, i : i + 1] for i in range(length)]
        repeats = 3 if quick else 7
        seq_s = _median(lambda: seq_fn(frames=track, lengths=lengths), repeats)
        calls_s = _median(lambda: [frame_fn(images=c) for c in crops], repeats)
        batch_s = _median(lambda: frame_fn(images=track[0]), repeats)
    name = f"{backbone} {size}px"
    return [
        {
            "name": f"server: sequence signature, 1 track of {length} ({name})",
            "value": seq_s,
            "unit": "s",
            "baseline": calls_s,
            "baseline_name": f"{length} serving_default calls of 1",
            "goal": "report",
        },
        {
            "name": f"server: sequence signature vs 1 call of {length} crops",
            "value": seq_s,
            "unit": "s",
            "baseline": batch_s,
            "baseline_name": f"serving_default, batch {length}",
            "goal": "~1 (the GRU is cheap beside the backbone)",
        },
    ]


def _client_rows(quick: bool, length: int) -> list[dict]:
    from deepfake_client import DetectorClient
    from export.modelconfig import initial_config, save_config
    from export.version import export_model
    from serving.devserver.launcher import start_devserver, stop_devserver
    from training.synthetic import flicker_frames, write_video

    frame, sequence = _models("tiny", 64, length)
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        repository = root / "models"
        temporal = {"sequence_length": length, "thresholds": {"combined": 0.5}}
        export_model(frame, repository, version=1, sequence_model=sequence, temporal=temporal)
        export_model(frame, repository, version=2)
        base = repository / "deepfake_detector"
        config = initial_config(str(base), 1)
        save_config(repository / "models.config", config)
        (repository / "models.config").write_text(
            (repository / "models.config")
            .read_text()
            .replace("versions: 1", "versions: 1\n        versions: 2")
        )
        seconds = 4 if quick else 10
        clip = root / "clip.mp4"
        write_video(clip, flicker_frames(True, 25 * seconds, 360, 640, seed=1), fps=25)
        server = start_devserver(repository / "models.config", root / "devserver.log")
        try:
            clients = {v: DetectorClient(server.grpc_url, version=v, label=None, frames=32) for v in (1, 2)}
            samples: dict[int, list[float]] = {1: [], 2: []}
            try:
                for version, client in clients.items():  # warm, and check what each version answers
                    verdict = client.scan_video(clip)
                    assert (verdict.tracks[0].temporal_score is not None) == (version == 1)
                # interleaved, so a change in the machine's load hits both alike
                for _ in range(3 if quick else 7):
                    for version, client in clients.items():
                        t = time.perf_counter()
                        client.scan_video(clip)
                        samples[version].append(time.perf_counter() - t)
            finally:
                for client in clients.values():
                    client.close()
            times = {v: statistics.median(x) for v, x in samples.items()}
        finally:
            stop_devserver(server)
    return [
        {
            "name": f"client: {seconds} s clip, 32 frames, with the sequence call",
            "value": times[1],
            "unit": "s",
            "baseline": times[2],
            "baseline_name": "same model without the head",
            "goal": "<= 1.2",
        }
    ]


def run(quick: bool) -> list[dict]:
    length = 16
    return _payload_rows(length) + _server_rows(quick, length) + _client_rows(quick, length)
