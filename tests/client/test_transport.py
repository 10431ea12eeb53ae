"""Transports against a live server: error mapping, retries with backoff, timeouts, label resolution."""

from __future__ import annotations

import random
import socket

import numpy as np
import pytest

from deepfake_client import contract
from deepfake_client.errors import (
    DeadlineExceededError,
    DeepfakeError,
    InvalidInputError,
    NotFoundError,
    ServerUnavailableError,
)
from deepfake_client.transport.base import Target, call_with_retries, error_for, make_transport, split_url

IMAGES = {contract.IMAGES_INPUT: np.full((2, 64, 64, 3), 51, np.uint8)}


def test_predict_and_metadata(server_url: str) -> None:
    with make_transport(server_url) as transport:
        result = transport.predict(Target(label="stable"), contract.DEFAULT_SIGNATURE, IMAGES)
        assert result.version == 1
        np.testing.assert_allclose(result.outputs[contract.PROBABILITY_OUTPUT], [0.2, 0.2], rtol=1e-6)
        meta = transport.metadata(Target(label="canary"))
        assert meta.version == 2
        assert meta.signatures[contract.DEFAULT_SIGNATURE].inputs[contract.IMAGES_INPUT].shape == (
            -1,
            96,
            96,
            3,
        )


@pytest.mark.parametrize(
    "target, signature, inputs, error",
    [
        (Target(version=9), contract.DEFAULT_SIGNATURE, IMAGES, NotFoundError),
        (Target(label="nope"), contract.DEFAULT_SIGNATURE, IMAGES, NotFoundError),
        (Target(model="other"), contract.DEFAULT_SIGNATURE, IMAGES, NotFoundError),
        (Target(version=2), contract.DEFAULT_SIGNATURE, IMAGES, InvalidInputError),  # wrong input size
    ],
    ids=["unknown-version", "unknown-label", "unknown-model", "wrong-shape"],
)
def test_server_errors_map_to_project_errors(server_url, target, signature, inputs, error) -> None:  # type: ignore[no-untyped-def]
    with make_transport(server_url) as transport:
        with pytest.raises(error):
            transport.predict(target, signature, inputs)


def test_injected_unavailable_is_retried_then_succeeds(server_url: str, fake_serving) -> None:  # type: ignore[no-untyped-def]
    fake_serving.model.faults[:] = ["UNAVAILABLE", "UNAVAILABLE"]
    waits: list[float] = []
    with make_transport(server_url) as transport:
        call = lambda: transport.predict(Target(version=1), contract.DEFAULT_SIGNATURE, IMAGES)  # noqa: E731
        with pytest.raises(ServerUnavailableError):
            call()  # without retries the first fault surfaces
        result = call_with_retries(call, retries=3, backoff_s=0.01, sleep=waits.append, rng=random.Random(0))
    assert result.version == 1 and len(waits) == 1 and 0 <= waits[0] <= 0.04


def test_retries_give_up_and_back_off_exponentially() -> None:
    waits: list[float] = []
    calls = []

    def failing() -> None:
        calls.append(1)
        raise ServerUnavailableError("down")

    with pytest.raises(ServerUnavailableError):
        call_with_retries(
            failing, retries=4, backoff_s=1.0, max_backoff_s=100, sleep=waits.append, rng=random.Random(1)
        )
    assert len(calls) == 5 and len(waits) == 4
    assert all(0 <= w <= 2 ** (k + 1) for k, w in enumerate(waits))
    calls.clear()
    with pytest.raises(InvalidInputError):  # not retryable
        call_with_retries(
            lambda: (calls.append(1), (_ for _ in ()).throw(InvalidInputError("bad")))[1], sleep=waits.append
        )
    assert len(calls) == 1


def test_timeout_is_deadline_exceeded_and_not_retried(server_url: str, fake_serving) -> None:  # type: ignore[no-untyped-def]
    fake_serving.model.delay_s = 1.0
    with make_transport(server_url) as transport:
        with pytest.raises(DeadlineExceededError):
            transport.predict(Target(version=1), contract.DEFAULT_SIGNATURE, IMAGES, timeout_s=0.2)
    assert error_for("DEADLINE_EXCEEDED", "x").exit_code == 4


@pytest.mark.parametrize("scheme", ["grpc", "http"])
def test_connection_refused_is_unavailable(scheme: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with make_transport(f"{scheme}://127.0.0.1:{port}") as transport:
        with pytest.raises(ServerUnavailableError) as info:
            transport.metadata(Target(), timeout_s=2)
    assert not isinstance(info.value, DeadlineExceededError) and info.value.exit_code == 4


def test_rest_label_resolution_is_cached_and_redone_on_404(fake_serving) -> None:  # type: ignore[no-untyped-def]
    from fakeserver import Version

    with make_transport(fake_serving.rest_url) as transport:
        target = Target(label="stable")
        assert transport.predict(target, contract.DEFAULT_SIGNATURE, IMAGES).version == 1
        fake_serving.model.versions[3] = Version(64)
        fake_serving.model.labels["stable"] = 3
        del fake_serving.model.versions[1]  # version 1 retired: the cached resolution 404s
        assert transport.predict(target, contract.DEFAULT_SIGNATURE, IMAGES).version == 3


def test_error_mapping_table() -> None:
    assert isinstance(
        error_for("INVALID_ARGUMENT", "Unrecognized servable version label: canary"), NotFoundError
    )
    assert isinstance(error_for("FAILED_PRECONDITION", "x"), InvalidInputError)
    assert type(error_for("INTERNAL", "x")) is DeepfakeError
    assert split_url("tfserving:8500") == ("grpc", "tfserving", 8500)
    assert split_url("https://a.example") == ("https", "a.example", 443)
    with pytest.raises(InvalidInputError):
        split_url("ftp://x")


@pytest.mark.parametrize("kind", ["grpc", "rest"])
def test_auth_header_is_sent_with_every_call(fake_serving, kind: str) -> None:
    from deepfake_client import DetectorClient

    url = fake_serving.grpc_url if kind == "grpc" else fake_serving.rest_url
    fake_serving.headers_seen.clear()
    with DetectorClient(url, label="stable", headers={"Authorization": "Bearer s3cret"}) as client:
        client.scan_crops(np.zeros((1, 32, 32, 3), np.uint8))
    assert fake_serving.headers_seen
    assert all(seen.get("authorization") == "Bearer s3cret" for seen in fake_serving.headers_seen)


def test_internal_server_error_is_the_same_error_over_both_transports(server_url: str, fake_serving) -> None:  # type: ignore[no-untyped-def]
    fake_serving.model.faults[:] = ["INTERNAL"]
    waits: list[float] = []
    with make_transport(server_url) as transport:
        call = lambda: transport.predict(Target(version=1), contract.DEFAULT_SIGNATURE, IMAGES)  # noqa: E731
        with pytest.raises(DeepfakeError) as info:
            call_with_retries(call, retries=3, sleep=waits.append)
    assert type(info.value) is DeepfakeError and info.value.exit_code == 1 and waits == []  # not retried


def test_rest_answer_that_is_not_an_object_is_a_server_error() -> None:
    from deepfake_client.transport.rest import decode_outputs

    for body in ([0.5], "oops", {"predictions": [0.5]}):
        with pytest.raises(DeepfakeError) as info:
            decode_outputs(body)
        assert type(info.value) is DeepfakeError
