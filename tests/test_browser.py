"""What a person sees: headless Chromium opens /page, follows the link to /user/bob and
reads "Hello, bob!". Needs Debian's chromium and chromium-driver (./scripts/test installs
them as root); skipped with a reason where they are absent, except in CI, where a
missing browser is a failure."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from relay_helpers import Relay
from servers import RunningServer, run_server
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

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
from selenium.webdriver.common.keys import Keys  # noqa: E402
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


def _messages(browser: webdriver.Chrome) -> list[str]:
    return [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#messages li")]


def _wait_connected(browser: webdriver.Chrome) -> None:
    WebDriverWait(browser, 15).until(lambda b: b.find_element(By.ID, "chat-status").text == "connected")


def test_chat_in_two_pages(browser: webdriver.Chrome, demo: RunningServer) -> None:
    """A person types in one page; the message appears in the other (and in their own)."""
    first = browser.current_window_handle
    browser.get(f"{demo.url}/page")
    browser.find_element(By.ID, "chat").click()
    WebDriverWait(browser, 15).until(ec.url_to_be(f"{demo.url}/chat?room=lobby"))
    browser.get(f"{demo.url}/chat?room=browser&name=one")
    _wait_connected(browser)
    browser.switch_to.new_window("window")
    second = browser.current_window_handle
    try:
        browser.get(f"{demo.url}/chat?room=browser&name=two")
        _wait_connected(browser)
        assert browser.find_element(By.ID, "room").text == "browser"

        browser.switch_to.window(first)
        box = browser.find_element(By.ID, "chat-input")
        box.send_keys("hello from page one", Keys.ENTER)
        WebDriverWait(browser, 15).until(lambda b: "one: hello from page one" in _messages(b))
        assert box.get_attribute("value") == ""  # sent, and the box cleared

        browser.switch_to.window(second)
        WebDriverWait(browser, 15).until(lambda b: "one: hello from page one" in _messages(b))
        browser.find_element(By.ID, "chat-input").send_keys("<b>hi</b> from two")
        browser.find_element(By.ID, "chat-send").click()
        WebDriverWait(browser, 15).until(lambda b: "two: <b>hi</b> from two" in _messages(b))

        browser.switch_to.window(first)
        WebDriverWait(browser, 15).until(lambda b: "two: <b>hi</b> from two" in _messages(b))
        # Shown as text, never as markup.
        assert browser.find_elements(By.CSS_SELECTOR, "#messages b") == []
        assert _messages(browser) == ["one: hello from page one", "two: <b>hi</b> from two"]
    finally:
        browser.switch_to.window(second)
        browser.close()
        browser.switch_to.window(first)
    demo.wait_for_line(r'"GET /ws/chat/browser\?name=one HTTP/1.1" 101')


def test_chat_page_resumes_after_a_drop_with_nothing_missing_or_twice(
    browser: webdriver.Chrome, demo: RunningServer
) -> None:
    """Issue 20 item 4: page one loses its connection while page two sends five
    messages; back, it shows all five, in order, once each, and who is online."""
    first = browser.current_window_handle
    browser.get(f"{demo.url}/chat?room=resume&name=one")
    _wait_connected(browser)
    browser.switch_to.new_window("window")
    second = browser.current_window_handle
    try:
        browser.get(f"{demo.url}/chat?room=resume&name=two")
        _wait_connected(browser)
        WebDriverWait(browser, 15).until(lambda b: b.find_element(By.ID, "who").text == "one, two")
        box = browser.find_element(By.ID, "chat-input")
        box.send_keys("before", Keys.ENTER)
        browser.switch_to.window(first)
        WebDriverWait(browser, 15).until(lambda b: "two: before" in _messages(b))
        # The connection drops, and the page stays away (its hook) until told otherwise.
        browser.execute_script("window.chat.offline = true; window.chat.socket.close();")
        WebDriverWait(browser, 15).until(lambda b: b.find_element(By.ID, "chat-status").text == "offline")

        browser.switch_to.window(second)
        box = browser.find_element(By.ID, "chat-input")
        for i in range(5):
            box.send_keys(f"missed {i}", Keys.ENTER)
            WebDriverWait(browser, 15).until(lambda b, i=i: f"two: missed {i}" in _messages(b))

        browser.switch_to.window(first)
        assert "two: missed 0" not in _messages(browser)  # it really was away
        browser.execute_script("window.chat.offline = false;")
        _wait_connected(browser)
        WebDriverWait(browser, 15).until(lambda b: "two: missed 4" in _messages(b))
        assert _messages(browser) == ["two: before"] + [f"two: missed {i}" for i in range(5)]
        resumed = browser.execute_script("return window.chat.lastId")
        assert resumed and resumed.rsplit("-", 1)[1].isdigit()
    finally:
        browser.switch_to.window(second)
        browser.close()
        browser.switch_to.window(first)
    demo.wait_for_line(r'"GET /ws/chat/resume\?name=one&since=[0-9a-f]+-\d+ HTTP/1.1" 101')


#: The page's EventSource keeps what it receives in ``window.sse``: each message's
#: ``[lastEventId, parsed data]``, and how many times it opened and failed.
EVENT_SOURCE = """
window.sse = {items: [], opens: 0, errors: 0};
window.sseSource = new EventSource(arguments[0]);
window.sseSource.onopen = () => { window.sse.opens += 1; };
window.sseSource.onerror = () => { window.sse.errors += 1; };
window.sseSource.onmessage = (e) => { window.sse.items.push([e.lastEventId, JSON.parse(e.data)]); };
"""


def _sse(browser: webdriver.Chrome, key: str) -> Any:
    return browser.execute_script(f"return window.sse.{key}")


def _texts(browser: webdriver.Chrome) -> list[str]:
    return [data["text"] for _, data in _sse(browser, "items") if "text" in data]


def _say(talker: ClientConnection, text: str) -> None:
    """Send a chat message and wait until the server has published it (it comes back)."""
    talker.send(text)
    while True:
        frame = json.loads(talker.recv(timeout=15))
        if frame.get("text") == text:
            return


def test_event_source_gets_exactly_what_it_missed_after_a_drop(
    browser: webdriver.Chrome, demo: RunningServer
) -> None:
    """Issue 20 item 3: Chromium's own EventSource on /chat/{room}/events loses its
    connection (a relay between it and the demo cuts it; the server stays up) while five
    messages are sent; it reconnects by itself, with Last-Event-ID, and gets the five, in
    order, once each, then the live ones."""
    path = "/chat/sse-browser/events"
    with Relay(demo.port) as relay, \
            ws_connect(f"ws://127.0.0.1:{demo.port}/ws/chat/sse-browser?name=bea") as talker:
        browser.get(f"{relay.url}/static/hello.txt")  # same origin as the stream, through the relay
        browser.execute_script(EVENT_SOURCE, path)
        WebDriverWait(browser, 15).until(lambda b: _sse(b, "opens") == 1)
        _say(talker, "before")
        WebDriverWait(browser, 15).until(lambda b: _texts(b) == ["before"])

        relay.cut()  # the link breaks; reconnects wait at the relay until it is mended
        WebDriverWait(browser, 15).until(lambda b: _sse(b, "errors") >= 1)
        for i in range(5):
            _say(talker, f"missed {i}")  # straight to the server, not through the relay
        assert _texts(browser) == ["before"]  # it really was away
        relay.mend()
        WebDriverWait(browser, 15).until(lambda b: _sse(b, "opens") == 2)  # back by itself
        _say(talker, "live")
        WebDriverWait(browser, 15).until(lambda b: "live" in _texts(b), f"got {_texts(browser)}")

        items = _sse(browser, "items")
        assert _texts(browser) == ["before", *(f"missed {i}" for i in range(5)), "live"]
        assert all(data.get("type") != "reset" for _, data in items)  # resumed, not restarted
        assert all(data["id"] == event_id for event_id, data in items)  # id: is the position
        epochs = {event_id.rsplit("-", 1)[0] for event_id, _ in items}
        offsets = [int(event_id.rsplit("-", 1)[1]) for event_id, _ in items]
        assert len(epochs) == 1 and offsets == sorted(set(offsets))  # in order, none twice
        # The browser's reconnect carried the id of the last message it had.
        first, again = relay.requests(path)
        assert "last-event-id" not in first
        assert again["last-event-id"] == items[0][0]
        browser.execute_script("window.sseSource.close();")


def test_signup_form_in_the_browser(browser: webdriver.Chrome, demo: RunningServer) -> None:
    browser.get(f"{demo.url}/page")
    name = browser.find_element(By.ID, "signup-name")
    name.clear()
    name.send_keys("browser ann")
    browser.find_element(By.ID, "signup-submit").click()
    WebDriverWait(browser, 15).until(ec.url_to_be(f"{demo.url}/signup"))
    assert '"name":"browser ann"' in browser.find_element(By.TAG_NAME, "body").text
    for _ in range(100):  # the event runs after the response: bounded polls of the list
        browser.get(f"{demo.url}/signups")
        if "browser ann" in browser.find_element(By.TAG_NAME, "body").text:
            break
    assert '"browser ann"' in browser.find_element(By.TAG_NAME, "body").text


def test_tiny_listener_example_shows_hello_bob(browser: webdriver.Chrome) -> None:
    """Issue 22 item 2: tiny-listener's own example, ported, says "try this in your
    browser: /user/bob"; its bytes reply is shown as text, not downloaded as a file."""
    with run_server("http_web:app", cwd=Path(__file__).resolve().parent.parent / "examples" / "tiny_listener") as ex:
        browser.get(f"{ex.url}/user/bob")
        assert browser.find_element(By.TAG_NAME, "body").text == "Hello, bob!"


def test_page_has_a_viewport_and_its_favicon_loads(browser: webdriver.Chrome, demo: RunningServer) -> None:
    browser.get(f"{demo.url}/page")
    viewport = browser.find_element(By.CSS_SELECTOR, 'meta[name="viewport"]').get_attribute("content")
    assert viewport == "width=device-width, initial-scale=1"
    icon = browser.find_element(By.CSS_SELECTOR, 'link[rel="icon"]').get_attribute("href")
    assert icon == f"{demo.url}/static/favicon.svg"
    loaded = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0]).then(r => done([r.status, r.headers.get('content-type')]));", icon
    )
    assert loaded == [200, "image/svg+xml"]


def test_chat_keeps_the_text_when_a_send_fails(browser: webdriver.Chrome, demo: RunningServer) -> None:
    """Issue 22 item 5: a send the server refuses (close 1013: the chat cannot publish,
    Redis down) puts the typed text back in the box, to send again."""
    browser.get(f"{demo.url}/chat?room=retry&name=ann")
    WebDriverWait(browser, 15).until(lambda b: b.find_element(By.ID, "chat-status").text == "connected")
    # The publish fails: the message never comes back and the server closes with 1013.
    browser.execute_script("socket.send = () => {};")
    box = browser.find_element(By.ID, "chat-input")
    box.send_keys("hello again")
    browser.find_element(By.ID, "chat-send").click()
    assert box.get_attribute("value") == ""
    # The server's words for it (http_web.py); a 1013 "too far behind" is a resume instead.
    browser.execute_script(
        "socket.dispatchEvent(new CloseEvent('close', {code: 1013, reason: 'the chat is unavailable; try again'}));"
    )
    assert box.get_attribute("value") == "hello again"
    assert "send it again" in browser.find_element(By.ID, "messages").text


@pytest.mark.parametrize("room", ["a/b", "x" * 65])
def test_chat_refuses_a_room_the_server_cannot_have(browser: webdriver.Chrome, demo: RunningServer, room: str) -> None:
    """Issue 22 item 5: ?room=a/b is refused on the page, not retried against a 404 for ever."""
    browser.get(f"{demo.url}/chat?room={room}")
    status = browser.find_element(By.ID, "chat-status").text
    assert status.startswith("not connected: a room name ") and "pick another room" in status
    assert browser.find_element(By.ID, "chat-input").get_attribute("disabled") == "true"
    assert browser.execute_script("return socket") is None  # no connection was tried
