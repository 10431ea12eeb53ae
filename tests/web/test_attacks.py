"""The gateway under attack: stalled and trickling bodies, stalled headers, one client hogging, a crowd.

Each attacker connects from its own loopback address (127.0.0.x) the way separate machines would,
so the per-client cap does not hide what the other defences do.
"""

from __future__ import annotations

import pathlib
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.web.conftest import metric, read_reply, stall_upload, start_gateway, stop_gateway

pytestmark = pytest.mark.needs_tf  # the real uploads are scanned by the dev server's exported model

IDLE_S = 2.0
BODY_S = 5.0
PER_CLIENT = 3


@pytest.fixture(scope="module")
def guarded(devserver, tmp_path_factory: pytest.TempPathFactory):
    """A gateway with short timeouts: 2 s idle, 5 s per body, 3 uploads per client, 2 scans at once."""
    process = start_gateway(
        devserver.grpc_url,
        tmp_path_factory.mktemp("guarded"),
        f"--idle-timeout={IDLE_S}",
        f"--body-timeout={BODY_S}",
        f"--max-per-client={PER_CLIENT}",
        "--max-receiving=32",
        "--concurrency=2",
        "--max-waiting=16",
    )
    yield process
    stop_gateway(process)


def scan(
    url: str, data: bytes, source: str = "127.0.0.1", name: str = "clip.mp4", content_type: str = "video/mp4"
) -> httpx.Response:
    with httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=120) as client:
        return client.post(f"{url}/v1/scan", files={"file": (name, data, content_type)})


def timed_scan(url: str, data: bytes) -> float:
    start = time.perf_counter()
    reply = scan(url, data)
    assert reply.status_code == 200, reply.text
    return time.perf_counter() - start


def metrics_text(gateway) -> str:
    return httpx.get(f"{gateway.url}/metrics").text


def wait_for(condition, timeout_s: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.slow
def test_twenty_stalled_uploads_do_not_delay_a_real_one(guarded, face_video: pathlib.Path) -> None:
    data = face_video.read_bytes()
    timed_scan(guarded.url, data)  # warm
    alone = min(timed_scan(guarded.url, data) for _ in range(2))
    refused_before = metric(metrics_text(guarded), "deepfake_web_refused_total", reason="timeout")
    stalled = [stall_upload(guarded.port, f"127.0.0.{10 + i}") for i in range(20)]
    try:
        assert wait_for(
            lambda: metric(metrics_text(guarded), "deepfake_web_slots_in_use", stage="receiving") == 20,
            timeout_s=IDLE_S,
        ), "the 20 stalled uploads should each hold a receiving slot"
        with_attack = timed_scan(guarded.url, data)
        replies = [read_reply(sock) for sock in stalled]  # each is cut off after the idle timeout
    finally:
        for sock in stalled:
            sock.close()
    print(f"a real upload: {alone:.2f} s alone, {with_attack:.2f} s with 20 stalled uploads connected")
    assert with_attack < alone + 2.0
    assert all(r.startswith(b"HTTP/1.1 408") and b"stalled" in r for r in replies), replies[0][:300]
    text = metrics_text(guarded)
    assert metric(text, "deepfake_web_refused_total", reason="timeout") - refused_before == 20
    assert metric(text, "deepfake_web_slots_in_use", stage="receiving") == 0
    assert guarded.uploads_left() == []


def test_a_trickling_body_hits_the_deadline(guarded) -> None:
    """One byte a second never trips the idle timeout; the whole-body deadline ends it."""
    sock = stall_upload(guarded.port, "127.0.0.40")
    sock.settimeout(1.0)
    start = time.monotonic()
    reply = b""
    try:
        while time.monotonic() - start < BODY_S + 5:
            try:
                sock.sendall(b"\0")
            except OSError:
                break
            try:
                reply += sock.recv(65536)
            except TimeoutError:
                continue
            if reply:
                reply += read_reply(sock)
                break
    finally:
        sock.close()
    elapsed = time.monotonic() - start
    assert reply.startswith(b"HTTP/1.1 408"), reply[:300]
    assert b"did not arrive within 5 s" in reply
    assert BODY_S - 1 <= elapsed <= BODY_S + 2
    assert wait_for(lambda: guarded.uploads_left() == [], 5)


def test_one_client_cannot_take_more_than_its_share(guarded) -> None:
    stalled = [stall_upload(guarded.port, "127.0.0.60") for _ in range(PER_CLIENT)]
    try:
        assert wait_for(
            lambda: (
                metric(metrics_text(guarded), "deepfake_web_slots_in_use", stage="receiving") == PER_CLIENT
            )
        )
        start = time.monotonic()
        reply = scan(guarded.url, b"GIF89a" + b"\0" * 100, source="127.0.0.60", name="one-more.gif")
        assert reply.status_code == 429 and time.monotonic() - start < 1.0
        assert reply.headers["retry-after"] and "in flight" in reply.json()["error"]["message"]
        other = scan(
            guarded.url, b"not media", source="127.0.0.61", name="notes.txt", content_type="text/plain"
        )
        assert other.status_code == 415  # another client is admitted (and told what is wrong)
    finally:
        for sock in stalled:
            sock.close()
    # the client hanging up gives its slots back at once, not after the idle timeout
    assert wait_for(
        lambda: metric(metrics_text(guarded), "deepfake_web_slots_in_use", stage="receiving") == 0, IDLE_S / 2
    )


def test_corrupt_images_that_crash_the_decoder_never_keep_a_slot(guarded) -> None:
    """A TIFF whose damage makes Pillow raise TypeError (not OSError), sent more times than one
    client's share: each is refused as unsupported, and every slot comes back."""
    data = (pathlib.Path(__file__).parents[1] / "data" / "corrupt-ifd.tiff").read_bytes()
    for _ in range(PER_CLIENT + 3):
        reply = scan(guarded.url, data, source="127.0.0.70", name="scan.tiff", content_type="image/tiff")
        assert reply.status_code == 415, reply.text
        assert "corrupt" in reply.json()["error"]["message"]
    assert wait_for(
        lambda: metric(metrics_text(guarded), "deepfake_web_slots_in_use", stage="receiving") == 0, 5
    )


def test_a_connection_that_never_finishes_its_headers_is_closed(guarded) -> None:
    with socket.create_connection(("127.0.0.1", guarded.port), timeout=IDLE_S + 5) as sock:
        sock.sendall(b"POST /v1/scan HTTP/1.1\r\nHost: x\r\nContent-Type: multip")
        start = time.monotonic()
        assert read_reply(sock) == b""
        assert time.monotonic() - start < IDLE_S + 2


def test_a_kept_alive_connection_gets_the_same_header_deadline(guarded) -> None:
    """After a first request, a connection that starts a second one and stalls is closed too."""
    with socket.create_connection(("127.0.0.1", guarded.port), timeout=IDLE_S + 5) as sock:
        sock.sendall(b"GET /favicon.ico HTTP/1.1\r\nHost: x\r\n\r\n")
        first = b""
        while b"</svg>" not in first:
            chunk = sock.recv(65536)
            assert chunk, first
            first += chunk
        assert first.startswith(b"HTTP/1.1 200")
        sock.sendall(b"POST /v1/scan HTTP/1.1\r\nHost: x\r\nContent-Ty")
        start = time.monotonic()
        assert read_reply(sock) == b""
        assert time.monotonic() - start < IDLE_S + 2


@pytest.mark.slow
def test_thirty_concurrent_uploads_are_answered_and_bounded(guarded, face_video: pathlib.Path) -> None:
    """30 clients upload at once: each gets a verdict or a prompt 503 with Retry-After; nothing leaks."""
    data = face_video.read_bytes()
    start = time.monotonic()
    with ThreadPoolExecutor(30) as pool:
        replies = list(pool.map(lambda i: scan(guarded.url, data, source=f"127.0.1.{i + 1}"), range(30)))
    elapsed = time.monotonic() - start
    codes = [r.status_code for r in replies]
    print(f"30 concurrent uploads: {codes.count(200)} verdicts, {codes.count(503)} busy, {elapsed:.1f} s")
    assert set(codes) <= {200, 503}, [r.text for r in replies if r.status_code not in (200, 503)]
    assert codes.count(200) >= 18  # 2 scanning + 16 waiting are always admitted
    assert all(r.headers["retry-after"] and "busy" in r.text for r in replies if r.status_code == 503)
    assert len({r.json()["score"] for r in replies if r.status_code == 200}) == 1
    assert wait_for(lambda: guarded.uploads_left() == [], 5)
    text = metrics_text(guarded)
    assert all(
        metric(text, "deepfake_web_slots_in_use", stage=s) == 0 for s in ("receiving", "waiting", "scanning")
    )
    assert httpx.get(f"{guarded.url}/healthz").status_code == 200
