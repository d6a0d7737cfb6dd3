"""What a person sees: headless Chromium opens /page, follows the link to /user/bob and
reads "Hello, bob!". Needs Debian's chromium and chromium-driver (./scripts/test installs
them as root); skipped with a reason where they are absent, except in CI, where a
missing browser is a failure."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import RunningServer, run_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

if not (CHROMIUM and CHROMEDRIVER):
    if os.environ.get("CI"):
        raise RuntimeError("CI needs chromium and chromium-driver (Debian packages) for the browser test")
    pytest.skip("chromium / chromedriver not installed (apt-get install chromium chromium-driver)",
                allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def demo() -> Iterator[RunningServer]:
    with run_server("http_web:app") as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    assert CHROMIUM is not None and CHROMEDRIVER is not None
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="hump-chromium-")
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_page_links_to_user_bob(browser: webdriver.Chrome, demo: RunningServer) -> None:
    browser.get(f"{demo.url}/page")
    assert browser.title == "hump_listener demo"
    browser.find_element(By.ID, "user").click()
    WebDriverWait(browser, 15).until(ec.url_to_be(f"{demo.url}/user/bob"))
    assert browser.find_element(By.TAG_NAME, "body").text == "Hello, bob!"


def test_page_json_link(browser: webdriver.Chrome, demo: RunningServer) -> None:
    browser.get(f"{demo.url}/page")
    browser.find_element(By.ID, "api").click()
    WebDriverWait(browser, 15).until(ec.url_to_be(f"{demo.url}/api/users/42"))
    assert '"id":42' in browser.find_element(By.TAG_NAME, "body").text


def test_sse_clock_ticks_in_the_page(browser: webdriver.Chrome, demo: RunningServer) -> None:
    browser.get(f"{demo.url}/page")
    WebDriverWait(browser, 15).until(
        lambda b: b.find_element(By.ID, "clock").text.endswith("UTC")
    )
    assert browser.find_element(By.ID, "clock").text[:2].isdigit()


def test_upload_form_in_the_browser(browser: webdriver.Chrome, demo: RunningServer, tmp_path: Path) -> None:
    upload = tmp_path / "greeting.txt"
    upload.write_bytes(b"hello upload")
    browser.get(f"{demo.url}/page")
    browser.find_element(By.ID, "upload-file").send_keys(str(upload))
    browser.find_element(By.ID, "upload-submit").click()
    WebDriverWait(browser, 15).until(ec.url_to_be(f"{demo.url}/upload"))
    body = browser.find_element(By.TAG_NAME, "body").text
    assert '"filename":"greeting.txt"' in body and '"size":12' in body


def test_static_file_link(browser: webdriver.Chrome, demo: RunningServer) -> None:
    browser.get(f"{demo.url}/page")
    browser.find_element(By.ID, "static").click()
    WebDriverWait(browser, 15).until(ec.url_to_be(f"{demo.url}/static/hello.txt"))
    assert browser.find_element(By.TAG_NAME, "body").text == "Hello from a static file!"
