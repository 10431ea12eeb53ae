"""The upload page in a real headless Chromium (Debian's ``chromium`` + ``chromium-driver``, via Selenium).

Opens the page on a phone-sized window, uploads a generated video with the keyboard-reachable file
input, waits for the verdict, checks what is shown and saves a screenshot; then an unsupported file
shows its message. Skipped with the reason when Chromium, its driver or Selenium is missing.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import tempfile

import pytest

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", shutil.which("chromedriver") or "/usr/bin/chromedriver")
SCREENSHOT_DIR = os.environ.get("DEEPFAKE_SCREENSHOTS")  # keep the screenshots here (default: the test's tmp)


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


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
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
        f"--user-data-dir={profile}",
        "--window-size=390,1400",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_upload_a_video_and_see_the_verdict(
    browser, gateway, face_video: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 90)
    browser.get(gateway.url)
    wait.until(lambda d: "stable version 1" in d.find_element(By.ID, "health").text)
    browser.find_element(By.ID, "file").send_keys(str(face_video))
    wait.until(ec.visibility_of_element_located((By.ID, "result")))
    label = browser.find_element(By.ID, "verdict-label").text
    assert label in ("Likely a deepfake (FAKE)", "Likely real (REAL)")
    assert browser.find_element(By.ID, "model").text == "deepfake_detector v1"
    assert browser.find_element(By.ID, "probability").text.endswith("%")
    thumbnails = browser.find_elements(By.CSS_SELECTOR, "#faces img")
    assert thumbnails and all(
        browser.execute_script("return arguments[0].naturalWidth", t) == 96 for t in thumbnails
    )
    assert browser.find_element(By.ID, "plot-figure").is_displayed()
    assert len(browser.find_elements(By.CSS_SELECTOR, "#plot circle")) == len(thumbnails)
    # the verdict heading takes the focus, for keyboard and screen-reader users
    assert browser.switch_to.active_element.get_attribute("id") == "verdict-label"
    # no horizontal scrolling on a phone-sized screen
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    shots = pathlib.Path(SCREENSHOT_DIR) if SCREENSHOT_DIR else tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(shots / "verdict.png"))

    unsupported = tmp_path / "notes.txt"
    unsupported.write_text("not a video")
    browser.find_element(By.ID, "file").send_keys(str(unsupported))
    wait.until(lambda d: "not supported" in d.find_element(By.ID, "status").text)
    assert "error" in browser.find_element(By.ID, "status").get_attribute("class")
    assert not browser.find_element(By.ID, "result").is_displayed()
    assert browser.save_screenshot(str(shots / "unsupported.png"))
