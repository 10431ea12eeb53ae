"""The upload page's "on this device" mode in a real headless Chromium: the face detector and the
model run in the browser (onnxruntime-web, vendored by ``scripts/vendor_web.py``), nothing is
uploaded, and the verdict matches the server's.

- A shared test vector set: frames sampled from a video by the Python client -> boxes -> crops ->
  scores, made by the client's own functions (and checked against ``DetectorClient.local``), run
  through the page's pipeline (``static/device.js``) from the same pixels: the same boxes, crops
  and scores.
- The helpers one by one against their Python originals (sampling, both resizes, the crop, the MP4
  frame table).
- The whole page: a video scanned on the device, the browser's network log (Chrome DevTools
  Protocol) showing no request to ``/v1/scan``, and the same label as the server path.
"""

from __future__ import annotations

import base64
import pathlib
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import orjson
import pytest

from tests.conftest import ROOT
from tests.web.conftest import start_gateway, stop_gateway
from tests.web.test_browser import CHROMEDRIVER, CHROMIUM, _missing

pytestmark = [
    pytest.mark.slow,
    pytest.mark.needs_tf,
    pytest.mark.skipif(_missing() is not None, reason=str(_missing())),
]


def _vendored() -> None:
    """onnxruntime-web in static/vendor: vendored now if npm is there, else the test is skipped."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import vendor_web
    finally:
        sys.path.pop(0)
    if vendor_web.check() is None:
        return
    if shutil.which("npm") is None:
        pytest.skip("onnxruntime-web is not vendored and npm is missing (python scripts/vendor_web.py)")
    subprocess.run([sys.executable, str(ROOT / "scripts/vendor_web.py")], check=True, timeout=900)


@pytest.fixture(scope="module")
def device_model(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """The session dev server's model (``tiny_keras_model()``) exported for the browser."""
    from export.formats.edge import export_edge
    from tests.conftest import tiny_keras_model

    _vendored()
    root = tmp_path_factory.mktemp("device")
    run = root / "run"
    run.mkdir()
    tiny_keras_model().save(run / "model.keras")
    (run / "run.json").write_bytes(orjson.dumps({"backbone": "tiny-test", "threshold": 0.5}))
    return pathlib.Path(export_edge(run, "tfjs", root / "web").path)


@pytest.fixture(scope="module")
def device_gateway(devserver, device_model: pathlib.Path, tmp_path_factory: pytest.TempPathFactory):
    process = start_gateway(
        devserver.grpc_url, tmp_path_factory.mktemp("device-gateway"), f"--device-model={device_model}"
    )
    yield process
    stop_gateway(process)


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    """One headless Chromium with the DevTools network log on."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="chromium-device-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        f"--user-data-dir={profile}",
        "--window-size=1280,1000",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_script_timeout(240)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


RUN = """
const [body, args, done] = arguments;
(async () => {
  await loadRuntime();
  const info = await (await fetch('/v1/device')).json();
  const runtime = await deviceScan.load(info);
  const AsyncFunction = (async () => {}).constructor;
  return await new AsyncFunction('runtime', 'args', body)(runtime, args);
})().then(done, (err) => done({error: String((err && err.stack) || err)}));
"""


def in_page(driver, body: str, args: object = None):  # type: ignore[no-untyped-def]
    """Run ``body`` (an async function body of ``runtime`` and ``args``) in the page; its result."""
    result = driver.execute_async_script(RUN, body, args)
    if isinstance(result, dict) and "error" in result:
        raise AssertionError(result["error"])
    return result


def png_b64(rgb: np.ndarray) -> str:
    import cv2

    return base64.b64encode(cv2.imencode(".png", rgb[:, :, ::-1])[1].tobytes()).decode()


FRAMES_FROM_PNG = """
const load = (b64) => new Promise((resolve) => {
  const img = new Image(); img.onload = () => resolve(img); img.src = 'data:image/png;base64,' + b64; });
const frames = [];
for (const f of args.frames) {
  const img = await load(f.png), canvas = new OffscreenCanvas(img.width, img.height);
  const ctx = canvas.getContext('2d', {willReadFrequently: true}); ctx.drawImage(img, 0, 0);
  const rgba = ctx.getImageData(0, 0, img.width, img.height).data;
  const image = deviceScan.fromRGBA(img.width, img.height, rgba);
  frames.push({index: f.index, timestamp_s: f.timestamp_s, image});
}
"""


def test_shared_vectors_give_the_same_boxes_crops_and_scores(
    device_gateway, device_model: pathlib.Path, face_video: pathlib.Path, browser
) -> None:
    from deepfake_client import DetectorClient
    from deepfake_client.faces import CenterFaceDetector, faces_in_frames
    from deepfake_client.transport.local import EdgeModel
    from deepfake_client.video import sample_frames

    facts = orjson.loads((device_model / "model.json").read_bytes())
    size, margin = facts["input_size"], facts["crop_margin"]
    # The vectors: frames -> boxes -> crops -> scores, by the Python client's functions.
    frames = list(sample_frames(face_video, 12))
    faces = [f for _, found in faces_in_frames(frames, CenterFaceDetector(), margin, size) for f in found]
    scores = EdgeModel(device_model)(np.stack([f.crop for f in faces]))["fake_probability"]
    assert len(faces) >= 10
    # ... which are the client's: DetectorClient.local gives the same faces and scores
    local = DetectorClient.local(device_model, frames=12).scan_video(face_video).to_dict()
    assert [f["box"] for f in local["faces"]] == [f.box.as_list() for f in faces]
    np.testing.assert_allclose([f["fake_probability"] for f in local["faces"]], scores, atol=1e-6)

    browser.get(device_gateway.url)
    vectors = {
        "frames": [{"index": f.index, "timestamp_s": f.timestamp_s, "png": png_b64(f.rgb)} for f in frames]
    }
    got = in_page(
        browser,
        FRAMES_FROM_PNG
        + """
const {verdict, crops} = await deviceScan.scanFrames(runtime, frames, {source: 'vectors'});
return {verdict, crops: crops.map((c) => btoa(String.fromCharCode(...c.data)))};
""",
        vectors,
    )
    verdict = got["verdict"]
    assert verdict["face_count"] == len(faces)
    for face, mine, crop, score in zip(faces, verdict["faces"], got["crops"], scores, strict=True):
        assert mine["frame_index"] == face.frame_index
        assert np.max(np.abs(np.array(mine["box"]) - np.array(face.box.as_list()))) <= 0.5, (mine, face.box)
        pixels = np.frombuffer(base64.b64decode(crop), np.uint8).reshape(size, size, 3)
        diff = np.abs(pixels.astype(int) - face.crop.astype(int))
        assert diff.max() <= 2 and diff.mean() <= 0.1, (diff.max(), diff.mean())
        assert abs(mine["fake_probability"] - float(score)) <= 1e-3
    assert verdict["label"] == local["label"] and abs(verdict["score"] - local["score"]) <= 1e-3
    assert [t["faces"] for t in verdict["tracks"]] == [t["faces"] for t in local["tracks"]]


def test_helpers_match_their_python_originals(device_gateway, face_video: pathlib.Path, browser) -> None:
    import cv2

    from deepfake_client.decoding import open_video
    from deepfake_client.faces import Box, crop_face
    from deepfake_client.video import sample_indices

    rng = np.random.default_rng(0)
    src = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    cases = [(50, 32), (7, 32), (100, 1), (33, 32), (1000, 17)]
    boxes = [
        (-10.4, 5.5, 30.2, 25.0, 0.3, 64),
        (20.0, 3.0, 12.5, 14.5, 0.3, 64),
        (1.0, 2.0, 40.0, 30.0, 0.5, 20),
    ]
    # the video goes in as a data URL (the page never uploads; the test hands it the bytes)
    browser.get(device_gateway.url)
    video_url = "data:video/mp4;base64," + base64.b64encode(face_video.read_bytes()).decode()
    got = in_page(
        browser,
        """
const src = {width: 53, height: 37, data: Uint8Array.from(atob(args.src), (c) => c.charCodeAt(0))};
const bytes = (img) => btoa(String.fromCharCode(...img.data));
const blob = await (await fetch(args.video)).blob();
return {
  indices: args.cases.map(([n, k]) => deviceScan.sampleIndices(n, k)),
  area: bytes(deviceScan.resizeArea(src, 20, 15)),
  linear: bytes(deviceScan.resizeLinear(src, 80, 64)),
  crops: args.boxes.map(([x, y, w, h, m, s]) => bytes(deviceScan.cropFace(src, {x, y, w, h}, m, s))),
  mp4: await deviceScan.mp4Info(blob),
};
""",
        {"src": base64.b64encode(src.tobytes()).decode(), "cases": cases, "boxes": boxes, "video": video_url},
    )

    def array(b64: str, shape: tuple[int, ...]) -> np.ndarray:
        return np.frombuffer(base64.b64decode(b64), np.uint8).reshape(shape).astype(int)

    assert got["indices"] == [sample_indices(n, k) for n, k in cases]
    # bit for bit: one pixel off can move a face box by a heatmap cell (4 px) where two cells tie
    area = cv2.resize(src, (20, 15), interpolation=cv2.INTER_AREA).astype(int)
    assert np.array_equal(array(got["area"], (15, 20, 3)), area)
    linear = cv2.resize(src, (80, 64), interpolation=cv2.INTER_LINEAR).astype(int)
    assert np.array_equal(array(got["linear"], (64, 80, 3)), linear)
    for (x, y, w, h, m, s), crop in zip(boxes, got["crops"], strict=True):
        assert np.array_equal(array(crop, (s, s, 3)), crop_face(src, Box(x, y, w, h), m, s))
    video = open_video(face_video)
    assert got["mp4"]["frameCount"] == video.frame_count and abs(got["mp4"]["fps"] - video.fps) < 1e-6
    video.close()


def network_urls(driver) -> list[str]:  # type: ignore[no-untyped-def]
    """Every request the browser sent since the last call (DevTools ``Network.requestWillBeSent``)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = orjson.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def test_on_device_mode_scans_without_uploading_and_agrees_with_the_server(
    device_gateway, devserver, face_video: pathlib.Path, browser
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from deepfake_client import DetectorClient

    wait = WebDriverWait(browser, 240)
    browser.get(device_gateway.url)
    wait.until(lambda d: d.find_element(By.ID, "mode-device").is_enabled())
    assert "onnxruntime-web 1.30.0" in browser.find_element(By.ID, "mode-hint").text
    browser.find_element(By.ID, "mode-device").click()
    network_urls(browser)  # the page's own loading so far
    browser.find_element(By.ID, "file").send_keys(str(face_video))
    wait.until(ec.visibility_of_element_located((By.ID, "result")))
    sent = network_urls(browser)
    resources = browser.execute_script("return performance.getEntriesByType('resource').map((e) => e.name)")
    assert not [u for u in sent + resources if "/v1/scan" in u], sent
    assert any(u.endswith("/v1/model.onnx") for u in resources)
    note = browser.find_element(By.ID, "mode-note").text
    assert note.startswith("Scanned on this device") and "not uploaded" in note
    verdict = browser.execute_script("return state.verdict")
    assert verdict["mode"] == "device" and verdict["frames"] == 32 and verdict["face_count"] > 0
    with DetectorClient(devserver.grpc_url) as client:
        served = client.scan(face_video).to_dict()
    assert verdict["label"] == served["label"]
    assert abs(verdict["score"] - served["score"]) <= 0.02
    assert verdict["face_count"] == served["face_count"]
    assert browser.find_element(By.ID, "verdict-label").text.endswith(f"({served['label']})")
    # the server path from the same page says so too
    browser.find_element(By.ID, "mode-server").click()
    browser.find_element(By.ID, "file").send_keys(str(face_video))
    wait.until(lambda d: d.execute_script("return state.verdict && state.verdict.mode !== 'device'"))
    wait.until(ec.visibility_of_element_located((By.ID, "result")))
    assert browser.find_element(By.ID, "mode-note").text.startswith("Scanned on the server")
    assert any("/v1/scan" in u for u in network_urls(browser))
