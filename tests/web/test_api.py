"""The gateway's API with real uploads: gateway subprocess -> dev server subprocess (real exported model)."""

from __future__ import annotations

import base64
import pathlib
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from tests.web.conftest import MAX_UPLOAD_MB, read_reply

pytestmark = pytest.mark.needs_tf  # the dev server fixture exports a model with TensorFlow


def post(
    url: str, name: str, data: bytes, content_type: str = "application/octet-stream", **params
) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/scan", files={"file": (name, data, content_type)}, params=params, timeout=120
    )


def wait_until_empty(gateway, timeout_s: float = 5.0) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while gateway.uploads_left() and time.monotonic() < deadline:
        time.sleep(0.05)
    return gateway.uploads_left()


@pytest.fixture(scope="module")
def face_jpeg(face_image: np.ndarray) -> bytes:
    import cv2

    return cv2.imencode(".jpg", cv2.cvtColor(face_image, cv2.COLOR_RGB2BGR))[1].tobytes()


def test_video_upload_gets_the_verdict_of_the_client(gateway, face_video: pathlib.Path) -> None:
    from deepfake_client.client import DetectorClient
    from deepfake_client.web.openapi import VERDICT

    reply = post(gateway.url, "my clip.mp4", face_video.read_bytes(), "video/mp4")
    assert reply.status_code == 200, reply.text
    verdict = reply.json()
    assert set(VERDICT["required"]) <= set(verdict)  # the OpenAPI document tells the truth
    assert verdict["source"] == "my clip.mp4" and verdict["kind"] == "video"
    assert verdict["model_version"] == 1 and verdict["target"] == "label:stable"
    assert verdict["label"] in ("FAKE", "REAL") and verdict["face_count"] > 0
    assert all("thumbnail" not in f for f in verdict["faces"])
    # The very numbers the client library gives for the same file.
    with DetectorClient(gateway_server(gateway), label="stable") as client:
        direct = client.scan(face_video).to_dict()
    assert verdict["score"] == pytest.approx(direct["score"], abs=1e-6)
    assert [f["frame_index"] for f in verdict["faces"]] == [f["frame_index"] for f in direct["faces"]]
    assert wait_until_empty(gateway) == []


def gateway_server(gateway) -> str:
    """The --server the gateway was started with."""
    return next(a.split("=", 1)[1] for a in gateway.process.args if a.startswith("--server="))


def test_image_upload_with_thumbnails(gateway, face_jpeg: bytes) -> None:
    import cv2

    reply = post(gateway.url, "astronaut.jpg", face_jpeg, "image/jpeg", thumbnails=1)
    assert reply.status_code == 200, reply.text
    verdict = reply.json()
    assert verdict["kind"] == "image" and verdict["face_count"] >= 1 and verdict["label"] in ("FAKE", "REAL")
    track = verdict["tracks"][0]
    assert verdict["faces"][track["face"]]["track"] == track["track"]  # its representative face
    thumb = track["thumbnail"]
    assert thumb.startswith("data:image/jpeg;base64,")
    pixels = cv2.imdecode(np.frombuffer(base64.b64decode(thumb.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
    assert pixels.shape == (128, 128, 3) and pixels.std() > 10  # a real picture, not a blank
    assert all("thumbnail" not in f for f in verdict["faces"])  # one per person, not one per face


def test_two_people_get_a_track_and_a_face_each(gateway, two_person_clip: pathlib.Path) -> None:
    reply = post(gateway.url, two_person_clip.name, two_person_clip.read_bytes(), "video/mp4", thumbnails=1)
    assert reply.status_code == 200, reply.text
    verdict = reply.json()
    assert len(verdict["tracks"]) == 2 and all(t["thumbnail"] for t in verdict["tracks"])
    for track in verdict["tracks"]:
        face = verdict["faces"][track["face"]]
        members = [f for f in verdict["faces"] if f["track"] == track["track"]]
        assert face["track"] == track["track"] and face["confidence"] == max(f["confidence"] for f in members)


def test_type_comes_from_the_content_not_the_name_or_declared_type(gateway, face_jpeg: bytes) -> None:
    plain = post(gateway.url, "photo.jpg", face_jpeg, "image/jpeg")
    for name, content_type in (("photo", "application/octet-stream"), ("clip.mp4", "video/mp4")):
        reply = post(gateway.url, name, face_jpeg, content_type)
        assert reply.status_code == 200 and reply.json()["kind"] == "image", reply.text
        assert reply.json()["score"] == plain.json()["score"]


def test_a_gif_is_scanned_like_deepfake_scan_scans_it(
    gateway, face_video: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    from PIL import Image

    from deepfake_client.client import DetectorClient
    from deepfake_client.video import sample_frames

    frames = [Image.fromarray(f.rgb) for f in sample_frames(face_video, 8)]
    gif = tmp_path / "moving.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100, loop=0)
    reply = post(gateway.url, "moving.gif", gif.read_bytes(), "image/gif")
    assert reply.status_code == 200, reply.text
    assert reply.json()["kind"] == "video" and reply.json()["face_count"] > 0
    with DetectorClient(gateway_server(gateway), label="stable") as client:
        assert reply.json()["score"] == pytest.approx(client.scan(gif).score, abs=1e-6)


def test_no_face_is_a_verdict_not_an_error(gateway) -> None:
    import cv2

    blank = cv2.imencode(".png", np.full((240, 320, 3), 128, np.uint8))[1].tobytes()
    reply = post(gateway.url, "wall.png", blank, "image/png")
    assert reply.status_code == 200, reply.text
    assert reply.json()["label"] == "NO_FACE" and reply.json()["score"] is None, reply.json()


@pytest.mark.parametrize(
    ("name", "data", "content_type", "status", "words"),
    [
        ("clip.mp4", b"this is not a video at all\n" * 100, "video/mp4", 415, "clip.mp4: not an image or a"),
        ("photo.jpg", b"\xff\xd8\xff\xe0 truncated", "image/jpeg", 415, "photo.jpg"),
        ("notes.txt", b"hello", "text/plain", 415, "a text file"),
        ("doc.pdf", b"%PDF-1.4\n", "application/pdf", 415, "doc.pdf"),
        ("empty.mp4", b"", "video/mp4", 415, "empty"),
    ],
)
def test_bad_uploads(gateway, name: str, data: bytes, content_type: str, status: int, words: str) -> None:
    reply = post(gateway.url, name, data, content_type)
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert error["status"] == status and words in error["message"]
    assert str(gateway.upload_dir) not in error["message"]  # the temporary path does not leak
    assert wait_until_empty(gateway) == []


def test_no_file_field_and_not_multipart(gateway) -> None:
    wrong_field = httpx.post(f"{gateway.url}/v1/scan", files={"video": ("a.mp4", b"x", "video/mp4")})
    assert (
        wrong_field.status_code == 400 and "form field named 'file'" in wrong_field.json()["error"]["message"]
    )
    as_json = httpx.post(f"{gateway.url}/v1/scan", json={"file": "a.mp4"})
    assert as_json.status_code == 415 and "multipart/form-data" in as_json.json()["error"]["message"]


def test_too_large_by_content_length_is_refused_before_reading(gateway) -> None:
    limit = MAX_UPLOAD_MB * 1024 * 1024
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/scan HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: %d\r\n\r\n" % (limit + 1)
        )
        reply = read_reply(sock).decode()  # answered (and closed) without a single body byte sent
    assert reply.startswith("HTTP/1.1 413"), reply
    assert f"the limit is {MAX_UPLOAD_MB} MB" in reply  # as given to --max-upload-mb, not 8.4
    assert gateway.uploads_left() == []


def test_too_large_is_refused_while_streaming(gateway) -> None:
    """A chunked upload (no Content-Length) is cut off at the limit, and its partial file removed."""
    sent = []

    def body():
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n\r\n'
        for _ in range(4 * MAX_UPLOAD_MB):  # 2x the limit, 512 KiB at a time
            sent.append(1)
            yield b"\0" * (512 * 1024)
        yield b"\r\n--b--\r\n"

    try:
        reply = httpx.post(
            f"{gateway.url}/v1/scan",
            content=body(),
            timeout=60,
            headers={"content-type": "multipart/form-data; boundary=b"},
        )
        assert reply.status_code == 413, reply.text
        assert "limit" in reply.json()["error"]["message"]
    except httpx.TransportError:
        pass  # the gateway may close the connection while the client still sends; the checks below hold
    assert wait_until_empty(gateway) == []
    assert httpx.get(f"{gateway.url}/healthz").status_code == 200


def test_client_disconnecting_mid_upload_leaves_no_file(gateway) -> None:
    head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="cut.mp4"\r\n\r\n'
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/scan HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: 5000000\r\n\r\n" + head + b"\0" * 1_000_000
        )
        deadline = time.monotonic() + 10
        while not gateway.uploads_left() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert gateway.uploads_left(), "the upload should be streaming to a temporary file"
    assert wait_until_empty(gateway) == []
    assert httpx.get(f"{gateway.url}/healthz").status_code == 200


def test_concurrent_uploads_are_all_answered_alike(
    gateway, face_video: pathlib.Path, face_jpeg: bytes
) -> None:
    video = face_video.read_bytes()
    jobs = [("v.mp4", video, "video/mp4")] * 4 + [("i.jpg", face_jpeg, "image/jpeg")] * 2
    with ThreadPoolExecutor(len(jobs)) as pool:
        replies = list(pool.map(lambda job: post(gateway.url, *job), jobs))
    assert [r.status_code for r in replies] == [200] * len(jobs), [
        r.text for r in replies if r.status_code != 200
    ]
    assert len({r.json()["score"] for r in replies[:4]}) == 1  # the same video, the same verdict
    assert len({r.json()["score"] for r in replies[4:]}) == 1
    assert wait_until_empty(gateway) == []


def test_healthz_names_the_stable_version(gateway) -> None:
    reply = httpx.get(f"{gateway.url}/healthz")
    assert reply.status_code == 200
    assert reply.json()["stable_version"] == 1 and reply.json()["versions"] == {"1": "AVAILABLE"}


def test_openapi_document_describes_the_routes(gateway) -> None:
    doc = httpx.get(f"{gateway.url}/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    scan = doc["paths"]["/v1/scan"]["post"]
    assert {"200", "400", "413", "415", "503"} <= set(scan["responses"])
    assert str(MAX_UPLOAD_MB * 1024 * 1024) in scan["responses"]["413"]["description"]
    assert "get" in doc["paths"]["/healthz"]


def test_every_route_is_documented_and_counted_by_name(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A route added to the app without its OpenAPI entry (or its metrics name) fails here."""
    from starlette.routing import Route

    from deepfake_client.client import DetectorClient
    from deepfake_client.web.app import create_app
    from deepfake_client.web.middleware import ROUTES
    from deepfake_client.web.openapi import openapi_document

    app = create_app(client=DetectorClient("grpc://127.0.0.1:9", retries=0), upload_dir=tmp_path)
    paths = {route.path for route in app.routes if isinstance(route, Route)}
    documented = set(openapi_document(max_upload_bytes=1)["paths"])
    assert paths - {"/favicon.ico", "/openapi.json"} == documented
    assert paths <= set(ROUTES)


def test_page_and_static_files_are_served(gateway) -> None:
    page = httpx.get(gateway.url)
    assert page.status_code == 200 and 'id="file"' in page.text and 'name="viewport"' in page.text
    for asset in ("app.js", "style.css", "favicon.svg"):
        assert httpx.get(f"{gateway.url}/static/{asset}").status_code == 200
    icon = httpx.get(f"{gateway.url}/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml")


def test_model_server_down_gives_503_and_the_gateway_keeps_serving(
    dead_gateway, face_video: pathlib.Path
) -> None:
    for _ in range(2):
        reply = post(dead_gateway.url, "clip.mp4", face_video.read_bytes(), "video/mp4")
        assert reply.status_code == 503, reply.text
        assert "unavailable" in reply.json()["error"]["message"] and reply.headers["retry-after"]
    health = httpx.get(f"{dead_gateway.url}/healthz")
    assert health.status_code == 503 and health.json()["status"] == "unavailable"
    assert httpx.get(dead_gateway.url).status_code == 200
    assert wait_until_empty(dead_gateway) == []
    assert dead_gateway.process.poll() is None


def test_uploads_beyond_the_queue_get_503_at_once(dead_gateway) -> None:
    """The dead gateway receives one upload at a time; a second, while the first streams, is refused."""
    with socket.create_connection(("127.0.0.1", dead_gateway.port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/scan HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
            b'Content-Length: 100000\r\n\r\n--b\r\nContent-Disposition: form-data; name="file"; '
            b'filename="slow.mp4"\r\n\r\n' + b"\0" * 1000
        )
        deadline = time.monotonic() + 10
        while not dead_gateway.uploads_left() and time.monotonic() < deadline:
            time.sleep(0.02)
        start = time.monotonic()
        reply = post(dead_gateway.url, "b.mp4", b"\0" * 100, "video/mp4")
        assert reply.status_code == 503 and "busy" in reply.json()["error"]["message"]
        assert time.monotonic() - start < 2 and reply.headers["connection"] == "close"
    assert wait_until_empty(dead_gateway) == []


def test_cli_help_is_fast_and_the_gateway_imports_no_tensorflow() -> None:
    code = (
        "import sys, deepfake_client.web.app, deepfake_client.web.upload, deepfake_client.web.cli; "
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    from deepfake_client.web.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
