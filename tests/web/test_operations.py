"""Running the gateway: Prometheus metrics, JSON logs with request ids, health, and storage trouble.

Storage trouble is real where the machine allows it (a file where the folder should be; a small or
read-only tmpfs when this process may mount one) and injected otherwise (``os.write`` raising
``ENOSPC``, ``os.open`` raising ``EROFS``, in an in-process gateway on a real uvicorn server).
"""

from __future__ import annotations

import errno
import json
import os
import pathlib
import subprocess
import types
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import numpy as np
import pytest

from tests.web.conftest import metric, serve_in_process, start_gateway, stop_gateway


def post(url: str, name: str, data: bytes, content_type: str, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/scan", files={"file": (name, data, content_type)}, headers=headers, timeout=120
    )


def log_lines(gateway) -> list[dict]:  # type: ignore[no-untyped-def]
    return [json.loads(line) for line in gateway.log().splitlines() if line.startswith("{")]


@pytest.mark.needs_tf
def test_metrics_and_request_ids_follow_a_scan(gateway, face_video: pathlib.Path) -> None:
    import cv2

    before = httpx.get(f"{gateway.url}/metrics").text
    data = face_video.read_bytes()
    reply = post(gateway.url, "clip.mp4", data, "video/mp4", **{"x-request-id": "ops-test-1"})
    assert reply.status_code == 200 and reply.headers["x-request-id"] == "ops-test-1"
    blank = cv2.imencode(".png", np.full((64, 64, 3), 127, np.uint8))[1].tobytes()
    assert post(gateway.url, "blank.png", blank, "image/png").json()["label"] == "NO_FACE"
    odd = post(gateway.url, "blank.png", blank, "image/png", **{"x-request-id": "no spaces allowed"})
    assert len(odd.headers["x-request-id"]) == 32  # replaced by a fresh one

    text = httpx.get(f"{gateway.url}/metrics").text
    assert httpx.get(f"{gateway.url}/metrics").headers["content-type"].startswith("text/plain")

    def grew(name: str, **labels: str) -> float:
        return metric(text, name, **labels) - metric(before, name, **labels)

    assert grew("deepfake_web_requests_total", route="/v1/scan", code="200") == 3
    assert grew("deepfake_web_upload_bytes_total") == len(data) + 2 * len(blank)
    assert grew("deepfake_web_scan_seconds_count", kind="video") == 1
    assert grew("deepfake_web_verdicts_total", label="NO_FACE") == 2
    assert grew("deepfake_web_verdicts_total", label=reply.json()["label"]) == 1
    assert metric(text, "deepfake_web_model_version", model="deepfake_detector") == 1
    assert 0 < metric(text, "deepfake_web_no_face_ratio") < 1
    assert metric(text, "deepfake_web_slots", stage="scanning") == 2
    assert metric(text, "deepfake_web_slots_in_use", stage="scanning") == 0

    lines = log_lines(gateway)
    mine = [line for line in lines if line.get("request_id") == "ops-test-1"]
    assert any(line["message"].startswith("verdict") and line["label"] for line in mine)
    assert any(line.get("path") == "/v1/scan" and line.get("status") == 200 for line in mine)
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)


@pytest.mark.needs_tf
def test_unusable_upload_folder_fails_health_and_uploads_plainly(
    devserver, tmp_path: pathlib.Path, face_video: pathlib.Path
) -> None:
    (tmp_path / "not-a-folder").write_text("a file where the upload folder should be")
    gateway = start_gateway(devserver.grpc_url, tmp_path, f"--upload-dir={tmp_path / 'not-a-folder' / 'up'}")
    try:
        health = httpx.get(f"{gateway.url}/healthz")
        assert health.status_code == 503
        checks = health.json()["checks"]
        assert checks["model_server"] == "ok" and "not a directory" in checks["upload_folder"].lower()
        assert "upload folder" in health.json()["error"]
        reply = post(gateway.url, "clip.mp4", face_video.read_bytes(), "video/mp4")
        assert reply.status_code == 503 and reply.headers["retry-after"]
        assert reply.json()["error"]["message"].startswith("the gateway cannot store uploads right now")
        assert gateway.process.poll() is None
    finally:
        stop_gateway(gateway)


@contextmanager
def tmpfs(path: pathlib.Path, size: str, *, read_only: bool = False) -> Iterator[pathlib.Path]:
    """A small tmpfs at ``path`` (skips the test where this process may not mount one)."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.mark.needs_tf
def test_a_full_disk_is_507_and_a_read_only_folder_503_on_real_tmpfs(
    devserver, tmp_path: pathlib.Path, face_video: pathlib.Path
) -> None:
    with tmpfs(tmp_path / "small", "1m") as small, tmpfs(tmp_path / "ro", "1m", read_only=True) as ro:
        full = start_gateway(devserver.grpc_url, tmp_path / "g1", f"--upload-dir={small}")
        stuck = start_gateway(devserver.grpc_url, tmp_path / "g2", f"--upload-dir={ro}")
        try:
            reply = post(full.url, "big.mp4", b"\0\0\0\x20ftypisom" + os.urandom(3 << 20), "video/mp4")
            assert reply.status_code == 507, reply.text
            assert reply.json()["error"]["message"].startswith("the gateway has no room for this upload")
            assert list(small.iterdir()) == []  # the partial file is gone
            assert post(full.url, "clip.mp4", face_video.read_bytes(), "video/mp4").status_code == 200

            reply = post(stuck.url, "clip.mp4", face_video.read_bytes(), "video/mp4")
            assert reply.status_code == 503 and "read-only file system" in reply.json()["error"]["message"]
            health = httpx.get(f"{stuck.url}/healthz").json()
            assert "read-only" in health["checks"]["upload_folder"].lower()
        finally:
            stop_gateway(full)
            stop_gateway(stuck)


def fail_on(call: str, code: int) -> types.SimpleNamespace:
    """The ``os`` module as upload.py sees it, with ``call`` raising ``OSError(code)``."""

    def failing(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError(code, os.strerror(code))

    return types.SimpleNamespace(**{**vars(os), call: failing})


def test_an_unexpected_error_is_a_plain_500_with_its_request_id(
    monkeypatch, tmp_path: pathlib.Path, caplog
) -> None:  # type: ignore[no-untyped-def]
    """The id the operator greps the logs for is on the 500 too, and the request is counted."""
    from deepfake_client.client import DetectorClient
    from deepfake_client.web import app as web_app

    def broken(client):  # type: ignore[no-untyped-def]
        raise RuntimeError("a bug")

    client = DetectorClient("grpc://127.0.0.1:9", retries=0, timeout_s=1)
    app = web_app.create_app(client=client, upload_dir=tmp_path)
    monkeypatch.setattr(web_app, "check_health", broken)
    with serve_in_process(app) as url:
        reply = httpx.get(f"{url}/healthz", headers={"X-Request-ID": "trace-me-42"})
        assert reply.status_code == 500 and reply.headers["x-request-id"] == "trace-me-42"
        assert reply.json()["error"]["message"] == "internal error: RuntimeError"  # no trace, no "a bug"
        text = httpx.get(f"{url}/metrics").text
        assert metric(text, "deepfake_web_requests_total", route="/healthz", code="500") == 1
    assert any("unexpected error on GET /healthz" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("call", "code", "status", "words"),
    [
        ("write", errno.ENOSPC, 507, "no room for this upload"),
        ("write", errno.EDQUOT, 507, "no room for this upload"),
        ("open", errno.EROFS, 503, "read-only file system"),
        ("open", errno.EACCES, 503, "permission denied"),
    ],
)
def test_injected_storage_errors_are_plain(
    monkeypatch, tmp_path: pathlib.Path, call: str, code: int, status: int, words: str
) -> None:
    from deepfake_client.client import DetectorClient
    from deepfake_client.web import upload
    from deepfake_client.web.app import create_app

    client = DetectorClient("grpc://127.0.0.1:9", retries=0, timeout_s=1)
    app = create_app(client=client, upload_dir=tmp_path)
    with serve_in_process(app) as url:
        monkeypatch.setattr(upload, "os", fail_on(call, code))
        reply = post(url, "clip.mp4", b"\0\0\0\x20ftypisom" + b"\0" * 100_000, "video/mp4")
        monkeypatch.undo()
        assert reply.status_code == status
        body = reply.json()["error"]
        assert (
            words in body["message"] and "OSError" not in body["message"] and "Errno" not in body["message"]
        )
        assert reply.headers["retry-after"]
        text = httpx.get(f"{url}/metrics").text
        assert metric(text, "deepfake_web_refused_total", reason="storage") == 1
    assert list(tmp_path.iterdir()) == []
