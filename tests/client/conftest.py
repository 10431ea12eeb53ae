"""Fixtures of the client tests: a TF-Serving-shaped server for fault injection (see fakeserver.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

sys.path.insert(0, __file__.rsplit("/", 1)[0])

from fakeserver import FakeServing, Model, Version  # noqa: E402


@pytest.fixture
def fake_serving() -> Iterator[FakeServing]:
    """Version 1 (input 64) labelled stable; version 2 (input 96, margin 0.2, threshold 0.4) canary."""
    server = FakeServing(
        Model(versions={1: Version(64), 2: Version(96, 0.2, 0.4)}, labels={"stable": 1, "canary": 2})
    )
    yield server
    server.stop()


@pytest.fixture(params=["grpc", "rest"])
def server_url(request: pytest.FixtureRequest, fake_serving: FakeServing) -> str:
    return fake_serving.grpc_url if request.param == "grpc" else fake_serving.rest_url
