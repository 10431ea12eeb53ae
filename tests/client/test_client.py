"""DetectorClient end to end against a live TF-Serving-shaped server (faults injected there)."""

from __future__ import annotations

import asyncio
import pathlib

import numpy as np
import pytest

from deepfake_client import AsyncDetectorClient, DetectorClient, contract
from deepfake_client.errors import InvalidInputError, NotFoundError, ServerUnavailableError

CROPS = np.stack([np.full((64, 64, 3), v, np.uint8) for v in (51, 102, 204, 230)])


def test_scan_image_uses_the_versions_crop_and_threshold(server_url: str, face_image: np.ndarray) -> None:
    with DetectorClient(server_url, label="canary") as client:
        info = client.info()
        assert (info.version, info.input_size, info.threshold) == (2, 96, pytest.approx(0.4))
        verdict = client.scan_image(face_image, name="astronaut")
    assert verdict.model_version == 2 and verdict.threshold == pytest.approx(0.4)
    assert len(verdict.faces) == 1 and verdict.faces[0].box is not None
    assert verdict.label in ("FAKE", "REAL") and set(verdict.timings_s) >= {
        "decode",
        "detect",
        "predict",
        "total",
    }


def test_scan_video_tracks_and_version(server_url: str, face_video: pathlib.Path) -> None:
    with DetectorClient(server_url, label="stable", frames=8) as client:
        verdict = client.scan_video(face_video)
    assert verdict.kind == "video" and verdict.frames == 8 and verdict.model_version == 1
    assert len(verdict.faces) >= 6 and len(verdict.tracks) >= 1
    assert max(t.faces for t in verdict.tracks) >= 6  # the moving face is one track


def test_a_scan_asks_for_the_metadata_once(server_url: str, fake_serving, face_image: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    """The version a label stands for is looked up once per scan, over gRPC and REST alike."""
    with DetectorClient(server_url, label="stable") as client:
        client.scan_image(face_image)
        assert fake_serving.model.metadata_calls == 1
        client.scan_image(face_image)  # a lookup at most (none within resolve_ttl_s of the first)
        assert fake_serving.model.metadata_calls <= 2


def test_no_face_image_is_no_face(server_url: str, tmp_path: pathlib.Path) -> None:
    import cv2

    path = tmp_path / "wall.png"
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 40, (240, 320, 3), dtype=np.uint8))
    with DetectorClient(server_url) as client:  # stable by default: version 1, not the canary 2
        verdict = client.scan(path)
    assert verdict.label == "NO_FACE" and verdict.score is None and verdict.model_version == 1


def test_batching_encoding_and_threshold_override(fake_serving) -> None:  # type: ignore[no-untyped-def]
    for url in (fake_serving.grpc_url, fake_serving.rest_url):
        fake_serving.model.calls.clear()
        with DetectorClient(url, version=1, batch_size=3, threshold=0.9, encoding="jpeg") as client:
            verdict = client.scan_crops(CROPS)
        scoring = [c for c in fake_serving.model.calls if c[0] != contract.INFO_SIGNATURE]
        assert scoring == [(contract.ENCODED_SIGNATURE, 1)] * 2
        assert [round(f.fake_probability, 2) for f in verdict.faces] == [0.2, 0.4, 0.8, 0.9]
        assert verdict.threshold == 0.9 and verdict.label == "REAL"


def test_label_moves_to_another_input_size_mid_scan(server_url: str, fake_serving) -> None:  # type: ignore[no-untyped-def]
    def swap(model) -> None:  # type: ignore[no-untyped-def]
        model.labels["stable"] = 2
        del model.versions[1]

    with DetectorClient(server_url, label="stable", batch_size=2) as client:
        assert client.info().input_size == 64
        fake_serving.model.after_predicts[len(fake_serving.model.calls) + 1] = swap  # after the first batch
        verdict = client.scan_crops(CROPS)
    assert verdict.model_version == 2 and verdict.threshold == pytest.approx(0.4)
    # encoding="auto": the uint8 tensor over gRPC, lossless PNG over REST
    signature = contract.ENCODED_SIGNATURE if server_url.startswith("http") else contract.DEFAULT_SIGNATURE
    assert fake_serving.model.calls[-2:] == [(signature, 2)] * 2
    assert [round(f.fake_probability, 2) for f in verdict.faces] == [0.2, 0.4, 0.8, 0.9]


def test_canary_share_records_the_answering_version(fake_serving) -> None:  # type: ignore[no-untyped-def]
    with DetectorClient(fake_serving.grpc_url, label="stable", canary_share=0.5, seed=3) as client:
        verdicts = [client.scan_crops(CROPS[:1]) for _ in range(20)]
    by_target = {(v.target, v.model_version) for v in verdicts}
    assert by_target == {("label:stable", 1), ("label:canary", 2)}
    del fake_serving.model.labels["canary"]
    with DetectorClient(fake_serving.grpc_url, label="stable", canary_share=1.0) as client:
        assert client.scan_crops(CROPS[:1]).model_version == 1  # no canary: falls back


def test_unknown_model_and_unreachable_server(fake_serving) -> None:  # type: ignore[no-untyped-def]
    with DetectorClient(fake_serving.grpc_url, model="nope") as client:
        with pytest.raises(NotFoundError):
            client.scan_crops(CROPS)
    with DetectorClient("grpc://127.0.0.1:9", retries=1, retry_for_s=1, timeout_s=2) as client:
        with pytest.raises(ServerUnavailableError):
            client.info()


def test_transient_unavailable_is_retried_inside_a_scan(server_url: str, fake_serving) -> None:  # type: ignore[no-untyped-def]
    with DetectorClient(server_url, version=1) as client:
        client.info()
        fake_serving.model.faults[:] = ["UNAVAILABLE"]
        assert len(client.scan_crops(CROPS).faces) == 4


def test_asyncio_client_runs_scans_concurrently(fake_serving, face_image: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    async def main() -> list:
        async with AsyncDetectorClient(fake_serving.grpc_url, label="stable", max_concurrency=2) as client:
            return await asyncio.gather(client.scan_image(face_image), client.scan_crops(CROPS))

    image, crops = asyncio.run(main())
    assert image.model_version == 1 and len(image.faces) == 1 and len(crops.faces) == 4


def test_canary_move_mid_scan_is_followed_with_a_version_pinned(server_url: str, fake_serving) -> None:  # type: ignore[no-untyped-def]
    def swap(model) -> None:  # type: ignore[no-untyped-def]
        model.labels["canary"] = 1
        del model.versions[2]

    with DetectorClient(server_url, version=1, canary_share=1.0, batch_size=2) as client:
        fake_serving.model.after_predicts[len(fake_serving.model.calls) + 2] = swap  # model_info, 1st batch
        verdict = client.scan_crops(CROPS)
    assert verdict.target == "label:canary" and verdict.model_version == 1
    assert [round(f.fake_probability, 2) for f in verdict.faces] == [0.2, 0.4, 0.8, 0.9]


def test_a_label_moved_between_batches_never_mixes_two_versions_in_a_verdict(fake_serving) -> None:  # type: ignore[no-untyped-def]
    """stable moves from 1 to 3 (same crop) after the first of two batches: every face of the
    verdict is scored by 3, the version it names, not half by the version being left."""
    from fakeserver import Version

    fake_serving.model.versions[3] = Version(64)

    def move(model) -> None:  # type: ignore[no-untyped-def]
        model.labels["stable"] = 3

    with DetectorClient(fake_serving.grpc_url, batch_size=2) as client:  # stable by default
        fake_serving.model.after_predicts[len(fake_serving.model.calls) + 2] = move  # model_info, 1st batch
        verdict = client.scan_crops(CROPS)
    assert verdict.model_version == 3
    scored = [v for sig, v in fake_serving.model.calls if sig == "serving_default"]
    assert scored[:2] == [1, 3] and scored[2:] == [3, 3]  # the mixed scan, then all again on 3


def test_bad_crops_are_invalid_input(fake_serving) -> None:  # type: ignore[no-untyped-def]
    from deepfake_client.errors import InvalidInputError

    with DetectorClient(fake_serving.grpc_url) as client:
        bad = (
            np.zeros((0, 0, 3), np.uint8),
            np.zeros((8, 8, 3), np.float32),
            np.zeros((8, 8), np.uint8),
            np.zeros((8, 12, 3), np.uint8),  # not square: resizing would stretch the face
        )
        for crop in bad:
            with pytest.raises(InvalidInputError, match="a crop must be"):
                client.scan_crops([crop])
        assert len(client.scan_crops([np.zeros((40, 40, 3), np.uint8)]).faces) == 1  # square: resized


def test_the_default_detector_is_shared_between_threads_haar_is_not(fake_serving, face_image) -> None:  # type: ignore[no-untyped-def]
    import concurrent.futures
    import threading

    for name, shared in (("centerface", True), ("haar", False)):
        with DetectorClient(fake_serving.grpc_url, detector=name) as client:
            barrier = threading.Barrier(3)

            def use(_: int, barrier=barrier, client=client):  # type: ignore[no-untyped-def]
                barrier.wait(timeout=30)  # three threads at once
                detector = client.detector
                return detector, [d.box for d in detector.detect(face_image)]

            with concurrent.futures.ThreadPoolExecutor(3) as pool:
                results = list(pool.map(use, range(3)))
        detectors = {id(d) for d, _ in results}
        assert len(detectors) == (1 if shared else 3), name
        assert all(boxes == results[0][1] and boxes for _, boxes in results)  # same faces, at once


def test_png_crops_are_decoded_to_the_very_same_pixels() -> None:
    import tensorflow as tf

    from deepfake_client.wire import encode_crops

    crops = np.random.default_rng(0).integers(0, 256, (3, 99, 99, 3), dtype=np.uint8)  # odd rows: padding
    signature, inputs = encode_crops(crops, "png")
    assert signature == contract.ENCODED_SIGNATURE
    for crop, data in zip(crops, inputs[contract.IMAGE_BYTES_INPUT], strict=True):
        decoded = tf.io.decode_image(data, channels=3, expand_animations=False).numpy()
        np.testing.assert_array_equal(decoded, crop)


@pytest.mark.slow
def test_rest_auto_encoding_scores_exactly_as_grpc_uint8(devserver, face_image: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    from deepfake_client.faces import Box, crop_face

    rng = np.random.default_rng(1)
    crops = [
        crop_face(face_image, Box(180 + rng.uniform(-9, 9), 60 + rng.uniform(-9, 9), 110, 130), 0.3, 96)
        for _ in range(5)
    ]
    scores = {}
    for name, url, encoding in (
        ("grpc", devserver.grpc_url, "auto"),
        ("rest", devserver.rest_url, "auto"),
        ("rest uint8", devserver.rest_url, "uint8"),
        ("jpeg", devserver.grpc_url, "jpeg"),
    ):
        with DetectorClient(url, encoding=encoding) as client:
            # float32, as the model answers (REST's JSON prints it in fewer digits than float64 has)
            scores[name] = np.float32([f.fake_probability for f in client.scan_crops(crops).faces]).tolist()
    assert scores["rest"] == scores["grpc"] == scores["rest uint8"]
    assert scores["jpeg"] != scores["grpc"]  # lossy: the model saw other pixels


def test_auto_encoding_by_transport() -> None:
    from deepfake_client.wire import resolve_encoding

    assert resolve_encoding("auto", "grpc://h:8500", True) == "uint8"
    assert resolve_encoding("auto", "https://h", True) == "png"
    assert resolve_encoding("auto", "http://h:8501", False) == "uint8"  # a version without `encoded`
    assert resolve_encoding("auto", "local", True) == "uint8"  # an in-process transport
    assert resolve_encoding("jpeg", "grpc://h", True) == "jpeg"
    with pytest.raises(InvalidInputError):
        resolve_encoding("webp", "grpc://h", True)
