"""The upload page in a real headless Chromium (Debian's ``chromium`` + ``chromium-driver``, via Selenium).

Uploads a two-person clip at desktop and phone widths and checks what a person sees: one card per
person with a face, a chart line per person with a legend, the boxes drawn on the video preview
at the sampled times, upload progress, the verdict download. Then the friendly errors, the page
while the model server is down, and the token asked once per tab. Screenshots are saved as test
artefacts (``$DEEPFAKE_SCREENSHOTS``, else ``deepfake-web-screenshots/`` in the system temp
folder, which pytest's rotation of its own temp folders does not touch; the paths are listed at
the end of the run). Skipped with the reason when Chromium, its driver or
Selenium is missing.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import tempfile

import pytest

from tests.web.conftest import SCREENSHOTS, start_gateway, stop_gateway

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", shutil.which("chromedriver") or "/usr/bin/chromedriver")
SIZES = {"desktop": (1280, 1000), "phone": (390, 1500)}
TOKEN = "browser-token-0123456789abcdef"


def _missing() -> str | None:
    if not pathlib.Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium chromium-driver)"
    if not pathlib.Path(CHROMEDRIVER).exists():
        return f"no chromedriver at {CHROMEDRIVER} (apt-get install chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    return None


pytestmark = [
    pytest.mark.slow,
    pytest.mark.needs_tf,
    pytest.mark.skipif(_missing() is not None, reason=str(_missing())),
]


@pytest.fixture(scope="module")
def shots() -> pathlib.Path:
    folder = pathlib.Path(
        os.environ.get("DEEPFAKE_SCREENSHOTS")
        or pathlib.Path(tempfile.gettempdir()) / "deepfake-web-screenshots"
    )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def screenshot(driver, folder: pathlib.Path, name: str) -> None:  # type: ignore[no-untyped-def]
    """A full-page screenshot (the window grown to the page's height), listed at the end of the run."""
    width = driver.get_window_size()["width"]
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, min(max(height + 140, 600), 4000))
    path = folder / f"{name}.png"
    assert driver.save_screenshot(str(path))
    SCREENSHOTS.append(path)


@pytest.fixture
def open_browser(tmp_path: pathlib.Path):  # type: ignore[no-untyped-def]
    """A factory of headless Chromium windows of a given size, downloading into ``tmp_path``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    drivers, profiles = [], []

    def make(size: str):  # type: ignore[no-untyped-def]
        profile = tempfile.mkdtemp(prefix="chromium-profile-")
        profiles.append(profile)
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        width, height = SIZES[size]
        for flag in (
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--autoplay-policy=no-user-gesture-required",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
        ):
            options.add_argument(flag)
        options.add_experimental_option("prefs", {"download.default_directory": str(tmp_path / "downloads")})
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        driver.set_page_load_timeout(30)
        drivers.append(driver)
        return driver

    yield make
    for driver in drivers:
        driver.quit()
    for profile in profiles:
        shutil.rmtree(profile, ignore_errors=True)


def boxes(driver) -> list[tuple[str, float]]:  # type: ignore[no-untyped-def]
    """(person, x) of each box drawn over the preview, read at once (the page redraws them as it plays)."""
    found = driver.execute_script(
        "return [...document.querySelectorAll('#boxes rect.box')]"
        ".map((r) => [r.getAttribute('data-track'), Number(r.getAttribute('x'))])"
    )
    return [(track, x) for track, x in found]


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_two_people_one_card_each_a_legend_and_the_boxes(
    open_browser,
    gateway,
    two_person_clip: pathlib.Path,
    shots: pathlib.Path,
    tmp_path: pathlib.Path,
    size: str,
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver = open_browser(size)
    wait = WebDriverWait(driver, 90)
    driver.get(gateway.url)
    wait.until(lambda d: "stable version 1" in d.find_element(By.ID, "health").text)
    assert driver.find_element(By.ID, "file").is_enabled()
    driver.find_element(By.ID, "file").send_keys(str(two_person_clip))
    wait.until(ec.visibility_of_element_located((By.ID, "result")))
    assert driver.find_element(By.ID, "progress").get_attribute("value") == "100"  # XHR upload progress

    cards = driver.find_elements(By.CSS_SELECTOR, "#people li.person")
    assert len(cards) == 2
    assert [c.find_element(By.TAG_NAME, "h4").text for c in cards] == ["Person 1", "Person 2"]
    for card in cards:
        face = card.find_element(By.TAG_NAME, "img")
        assert driver.execute_script("return arguments[0].naturalWidth", face) == 128
        assert card.find_element(By.CSS_SELECTOR, ".label").text.split(" · ")[0] in ("FAKE", "REAL")
        assert "frames" in card.find_element(By.CSS_SELECTOR, ".frames").text
    assert driver.find_element(By.ID, "people-count").text == "2"

    legend = [li.text for li in driver.find_elements(By.CSS_SELECTOR, "#legend li")]
    assert len(legend) == 2 and legend[0].startswith("Person 1") and legend[1].startswith("Person 2")
    lines = driver.find_elements(By.CSS_SELECTOR, "#plot polyline.person-line")
    assert len(lines) == 2 and len({line.get_attribute("stroke") for line in lines}) == 2

    # the first sampled frame (t = 0) shows a box per person, each in its person's colour
    wait.until(lambda d: len(boxes(d)) == 2)
    first = dict(boxes(driver))
    assert set(first) == {"0", "1"}
    # a point late in the chart seeks the video there: the boxes move with the people
    driver.find_elements(By.CSS_SELECTOR, "#plot circle")[-1].click()
    wait.until(lambda d: len(boxes(d)) >= 1 and dict(boxes(d)) != first)
    # the verdict as JSON, the very answer the page shows
    driver.find_element(By.ID, "download").click()
    downloaded = tmp_path / "downloads" / "two people.verdict.json"
    WebDriverWait(driver, 20).until(lambda d: downloaded.exists())
    assert len(json.loads(downloaded.read_text())["tracks"]) == 2
    # no horizontal scrolling at either width
    assert driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    driver.execute_script("document.getElementById('preview-video').pause()")
    screenshot(driver, shots, f"two-people-{size}")


def test_friendly_errors_with_the_details_folded(
    open_browser, gateway, tmp_path: pathlib.Path, shots: pathlib.Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = open_browser("phone")
    driver.get(gateway.url)
    WebDriverWait(driver, 30).until(lambda d: d.find_element(By.ID, "file").is_enabled())
    notes = tmp_path / "notes.txt"
    notes.write_text("not a video")
    driver.find_element(By.ID, "file").send_keys(str(notes))
    WebDriverWait(driver, 30).until(lambda d: d.find_element(By.ID, "error").is_displayed())
    assert driver.find_element(By.ID, "error-what").text == (
        "This file is not a video or an image the detector can read."
    )
    assert "Upload a video (MP4" in driver.find_element(By.ID, "error-todo").text
    details = driver.find_element(By.ID, "error-details")
    assert not details.is_displayed()  # folded away until asked for
    assert "HTTP 415" in details.get_attribute("textContent")
    assert "request id:" in details.get_attribute("textContent")
    assert not driver.find_element(By.ID, "result").is_displayed()
    screenshot(driver, shots, "error-unsupported-phone")


def test_uploads_are_disabled_while_the_model_server_is_down(
    open_browser, dead_gateway, shots: pathlib.Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = open_browser("desktop")
    driver.get(dead_gateway.url)
    WebDriverWait(driver, 30).until(lambda d: "down" in d.find_element(By.ID, "health").text)
    assert not driver.find_element(By.ID, "file").is_enabled()
    assert driver.find_element(By.ID, "drop").get_attribute("aria-disabled") == "true"
    assert "paused" in driver.find_element(By.ID, "drop-title").text
    # the raw gRPC error is said once, folded away
    page = driver.find_element(By.TAG_NAME, "body").text
    assert "failed to connect" not in page
    assert "failed to connect" in driver.find_element(By.ID, "health-error").get_attribute("textContent")
    screenshot(driver, shots, "server-down-desktop")


def test_the_token_is_asked_once_per_tab(
    open_browser, devserver, tmp_path: pathlib.Path, face_image, shots: pathlib.Path
) -> None:
    import cv2
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    (tmp_path / "token").write_text(TOKEN)
    photo = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(photo), cv2.cvtColor(face_image, cv2.COLOR_RGB2BGR))
    gateway = start_gateway(devserver.grpc_url, tmp_path / "gw", f"--auth-token-file={tmp_path / 'token'}")
    try:
        driver = open_browser("phone")
        wait = WebDriverWait(driver, 60)
        driver.get(gateway.url)
        wait.until(ec.visibility_of_element_located((By.ID, "token-form")))
        screenshot(driver, shots, "token-asked-phone")
        driver.find_element(By.ID, "token").send_keys(TOKEN)
        driver.find_element(By.CSS_SELECTOR, "#token-form button").click()
        assert not driver.find_element(By.ID, "token-form").is_displayed()
        driver.find_element(By.ID, "file").send_keys(str(photo))
        wait.until(ec.visibility_of_element_located((By.ID, "result")))
        wait.until(lambda d: len(boxes(d)) == 1)  # the image preview with its face box
        driver.refresh()  # same tab: the token is kept
        wait.until(lambda d: d.find_element(By.ID, "file").is_enabled())
        assert not driver.find_element(By.ID, "token-form").is_displayed()
        driver.execute_script("sessionStorage.setItem('deepfake-web-token', 'a-wrong-token-0123456789')")
        driver.find_element(By.ID, "file").send_keys(str(photo))
        wait.until(lambda d: d.find_element(By.ID, "error").is_displayed())
        assert driver.find_element(By.ID, "error-what").text == "This gateway needs an access token."
        assert driver.find_element(By.ID, "token-form").is_displayed()  # asked again
    finally:
        stop_gateway(gateway)
