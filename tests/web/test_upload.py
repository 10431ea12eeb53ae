"""Pieces of the gateway that need no server: sizes as given, the slots, the body deadlines."""

from __future__ import annotations

import pathlib

import anyio
import pytest

from deepfake_client.web.guard import (
    GatewayBusyError,
    Limits,
    Slots,
    TooManyUploadsError,
    UploadTimeoutError,
    read_body,
)
from deepfake_client.web.upload import UnsupportedMediaError, accept_media, format_mb


def test_sizes_are_quoted_as_the_limit_was_given() -> None:
    assert format_mb(200 * 1024 * 1024) == "200 MB"
    assert format_mb(512 * 1024) == "0.5 MB"
    assert format_mb(int(209.7 * 1024 * 1024)) == "209.7 MB"


def test_the_input_gate_decides_and_its_reason_names_the_upload(tmp_path: pathlib.Path) -> None:
    text = tmp_path / "upload-1234.part"
    text.write_text("hello")
    with pytest.raises(UnsupportedMediaError) as info:
        accept_media(text, "notes.mp4")
    assert (
        info.value.http_status == 415 and "notes.mp4" in str(info.value) and str(text) not in str(info.value)
    )


def test_slots_per_client_receiving_and_queue() -> None:
    slots = Slots(Limits(max_concurrency=1, max_waiting=1, max_receiving=3, max_per_client=2))
    a1, a2 = slots.admit("a"), slots.admit("a")
    with pytest.raises(TooManyUploadsError):
        slots.admit("a")
    b1 = slots.admit("b")
    with pytest.raises(GatewayBusyError):  # three receiving: the fourth waits for one
        slots.admit("c")
    a1.received()
    a2.received()
    assert (slots.receiving, slots.queued) == (1, 2)
    with pytest.raises(GatewayBusyError):  # the queue (1 running + 1 waiting) is full
        b1.received()
    b1.release()
    assert slots.per_client == {"a": 2} and slots.receiving == 0
    for ticket in (a1, a2, a1):  # release is idempotent
        ticket.release()
    assert (slots.receiving, slots.queued, dict(slots.per_client)) == (0, 0, {})


async def _chunks(gaps_s: list[float]):  # type: ignore[no-untyped-def]
    for gap in gaps_s:
        await anyio.sleep(gap)
        yield b"x"


@pytest.mark.parametrize(
    ("gaps_s", "words"),
    [([0.0, 0.0, 0.3], "stalled: nothing arrived for 0.2 s"), ([0.1] * 8, "did not arrive within 0.5 s")],
)
def test_read_body_timeouts(gaps_s: list[float], words: str) -> None:
    async def main() -> list[bytes]:
        return [c async for c in read_body(_chunks(gaps_s), idle_timeout_s=0.2, body_timeout_s=0.5)]

    with pytest.raises(UploadTimeoutError, match=words):
        anyio.run(main)
    assert anyio.run(lambda: _collect([0.05] * 3)) == [b"x"] * 3


async def _collect(gaps_s: list[float]) -> list[bytes]:
    return [c async for c in read_body(_chunks(gaps_s), idle_timeout_s=0.2, body_timeout_s=0.5)]
