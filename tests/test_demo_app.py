"""The demo's page-level features, in-process through the test client: the static
folder, the upload form, the SSE clock, the WebSocket echo and chat, and the signup
background event, all reachable from /page."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator

import pytest

import http_web
from hump_listener import WebSocketDisconnect
from hump_listener.broadcast import Position
from hump_listener.testing import (
    AsyncTestClient,
    AsyncWebSocketSession,
    TestClient,
    WebSocketRejected,
    WebSocketSession,
)


@pytest.fixture
def client() -> Iterator[TestClient]:
    # Per test: some tests run the same app (http_web.app) in a client of their own, and an
    # app is started by one runner at a time.
    with TestClient(http_web.app) as c:
        yield c


def test_page_links_every_feature(client: TestClient) -> None:
    page = client.get("/page").text
    for needle in ('href="/static/hello.txt"', 'action="/upload"', 'enctype="multipart/form-data"',
                   'new EventSource("/clock")', 'href="/user/bob"', 'href="/static/style.css"',
                   'href="/chat?room=lobby"', 'action="/signup"', 'href="/signups"'):
        assert needle in page


def test_static_folder(client: TestClient) -> None:
    r = client.get("/static/hello.txt")
    assert r.status_code == 200 and r.text == "Hello from a static file!\n"
    assert r.headers["content-type"] == "text/plain; charset=utf-8" and r.headers["etag"]
    assert client.get("/static/hello.txt", headers={"If-None-Match": r.headers["etag"]}).status_code == 304
    assert client.get("/static/style.css").headers["content-type"] == "text/css; charset=utf-8"
    assert client.get("/static/%2e%2e/http_web.py").status_code == 404
    assert client.get("/static/missing.txt").status_code == 404


def test_upload_form(client: TestClient) -> None:
    r = client.post("/upload", data={"title": "notes"}, files={"file": ("notes.txt", b"x" * 1000, "text/plain")})
    assert r.status_code == 200
    assert r.json() == {"title": "notes", "filename": "notes.txt", "size": 1000}
    r = client.post("/upload", data={"title": "no file"}, files={"other": ("a.txt", b"a", "text/plain")})
    assert r.status_code == 400 and "choose a file" in r.text


def test_sse_clock(client: TestClient) -> None:
    r = client.get("/clock?n=2")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert r.headers["cache-control"] == "no-cache"
    events = re.findall(r"event: tick\ndata: (\d\d:\d\d:\d\d UTC)\n\n", r.text)
    assert len(events) == 2


# -- WebSockets ---------------------------------------------------------------------------


def test_ws_echo_keeps_each_message_type(client: TestClient) -> None:
    with client.websocket_connect("/ws/echo") as ws:
        ws.send_text("héllo")
        assert ws.receive() == "héllo"  # str: a text frame came back
        ws.send_bytes(b"\x00\xffbin")
        assert ws.receive() == b"\x00\xffbin"  # bytes: a binary frame
        ws.send_text("")
        assert ws.receive() == ""
        ws.send_bytes(b"")
        assert ws.receive() == b""
        big = "x" * 100_000
        ws.send_text(big)
        assert ws.receive() == big


def test_ws_echo_keeps_order(client: TestClient) -> None:
    with client.websocket_connect("/ws/echo") as ws:
        for i in range(20):
            ws.send(str(i) if i % 2 else bytes([i]))
        assert [ws.receive() for _ in range(20)] == [str(i) if i % 2 else bytes([i]) for i in range(20)]


def said(ws: WebSocketSession) -> tuple[str, str]:
    """The next chat message a test-client session receives, as (from, text); presence
    frames (no "text") are skipped."""
    while True:
        frame = json.loads(ws.receive_text())
        assert isinstance(frame["id"], str) and frame["id"]
        if "text" in frame:
            return frame["from"], frame["text"]
        assert frame["type"] in ("join", "leave", "reset"), frame


async def said_async(ws: AsyncWebSocketSession) -> tuple[str, str]:
    while True:
        frame = json.loads(await ws.receive_text())
        if "text" in frame:
            return frame["from"], frame["text"]


def test_chat_fans_out_to_the_room_sender_included(client: TestClient) -> None:
    with client.websocket_connect("/ws/chat/fanout?name=a") as a, \
            client.websocket_connect("/ws/chat/fanout?name=b") as b:
        a.send_text("hello from a")
        assert said(a) == ("a", "hello from a")
        assert said(b) == ("a", "hello from a")
        b.send_text("hi from b")
        assert said(b) == ("b", "hi from b")
        assert said(a) == ("b", "hi from b")
        with client.websocket_connect("/ws/chat/fanout") as c:
            c.send_text("three of us")
            assert [said(a), said(b), said(c)] == [("anonymous", "three of us")] * 3


def test_chat_frames_are_json_with_an_id_from_and_text(client: TestClient) -> None:
    with client.websocket_connect("/ws/chat/frames?name=ann") as ws:
        ws.send_text('"quoted" <b>text</b>')
        frames = []
        while len(frames) < 2:  # the message, and the presence frame of ann's join
            frames.append(json.loads(ws.receive_text()))
        (join,) = [f for f in frames if "text" not in f]
        assert join == {"id": join["id"], "type": "join", "from": "ann"}  # presence: no "text"
        (message,) = [f for f in frames if "text" in f]
        assert list(message) == ["id", "from", "text"]
        assert message["from"] == "ann" and message["text"] == '"quoted" <b>text</b>'
        ids = [Position.parse(f["id"]) for f in frames]
        assert [p.offset for p in ids] == sorted(p.offset for p in ids)


def test_chat_since_replays_what_was_missed_in_order_once(client: TestClient) -> None:
    with client.websocket_connect("/ws/chat/resume?name=a") as a:
        a.send_text("first")
        assert said(a) == ("a", "first")
        with client.websocket_connect("/ws/chat/resume?name=b") as b:
            b.send_text("seen by b")
            frame = json.loads(b.receive_text())
            while frame.get("text") != "seen by b":
                frame = json.loads(b.receive_text())
            last_seen = frame["id"]
        for i in range(5):
            a.send_text(f"missed {i}")
        assert [said(a) for _ in range(6)][1:] == [("a", f"missed {i}") for i in range(5)]
        with client.websocket_connect(f"/ws/chat/resume?name=b&since={last_seen}") as back:
            back.send_text("back")
            got = []
            while not got or got[-1] != ("b", "back"):
                got.append(said(back))
        assert got == [("a", f"missed {i}") for i in range(5)] + [("b", "back")]


def test_chat_since_an_unknown_id_starts_with_a_reset(client: TestClient) -> None:
    with client.websocket_connect("/ws/chat/reset?name=r&since=nonsense") as ws:
        frame = json.loads(ws.receive_text())
        assert frame["type"] == "reset" and "text" not in frame
        ws.send_text("after")
        assert said(ws) == ("r", "after")


def test_chat_rooms_are_isolated(client: TestClient) -> None:
    with client.websocket_connect("/ws/chat/x") as x, client.websocket_connect("/ws/chat/y") as y:
        x.send_text("only for x")
        assert said(x)[1] == "only for x"  # published: delivered to every subscriber of x by now
        y.send_text("only for y")
        # y's next message is its own: "only for x" never reached room y.
        assert said(y)[1] == "only for y"
        x.send_text("x again")
        assert said(x)[1] == "x again"  # and "only for y" never reached room x


def test_chat_who_lists_the_open_connections_of_a_room(client: TestClient) -> None:
    assert client.get("/chat/who-room/who").json() == []
    with client.websocket_connect("/ws/chat/who-room?name=zed") as z, \
            client.websocket_connect("/ws/chat/who-room?name=amy") as a:
        z.send_text("hi")
        said(z)
        a.send_text("hi")
        said(a)
        r = client.get("/chat/who-room/who")
        assert r.headers["content-type"] == "application/json" and r.json() == ["amy", "zed"]
        assert client.get("/chat/elsewhere/who").json() == []
    assert client.get("/chat/who-room/who").json() == []
    assert client.get("/chat/" + "r" * 65 + "/who").status_code == 400


def test_chat_refuses_binary_and_oversized_messages(client: TestClient) -> None:
    with client.websocket_connect("/ws/chat/rules") as ws:
        ws.send_bytes(b"binary")
        with pytest.raises(WebSocketDisconnect) as info:
            while True:
                ws.receive()
        assert info.value.code == 1003
    with client.websocket_connect("/ws/chat/rules") as ws:
        ws.send_text("x" * (http_web.CHAT_MAX_CHARS + 1))
        with pytest.raises(WebSocketDisconnect) as info:
            while True:
                ws.receive()
        assert info.value.code == 1009
    with client.websocket_connect("/ws/chat/rules") as ws:
        ws.send_text("x" * http_web.CHAT_MAX_CHARS)  # at the limit: relayed
        assert said(ws)[1] == "x" * http_web.CHAT_MAX_CHARS


def test_chat_refuses_an_overlong_room_name_before_the_handshake(client: TestClient) -> None:
    with pytest.raises(WebSocketRejected) as info, client.websocket_connect("/ws/chat/" + "r" * 65):
        pass
    assert info.value.response.status_code == 400
    with client.websocket_connect("/ws/chat/" + "r" * 64) as ws:
        ws.send_text("ok")
        assert said(ws)[1] == "ok"


def test_chat_page(client: TestClient) -> None:
    page = client.get("/chat?room=lobby")
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    for needle in ('id="chat-input"', 'id="chat-status"', 'id="messages"', '<script src="/static/chat.js">'):
        assert needle in page.text
    script = client.get("/static/chat.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert "/ws/chat/" in script.text and "textContent" in script.text and "innerHTML" not in script.text


async def test_chat_connection_end_cancels_its_relay_and_leaves_nothing_behind() -> None:
    app = http_web.app
    channel = http_web.CHAT_CHANNEL + "cleanup"

    def relays() -> list[asyncio.Task[object]]:
        return [t for t in asyncio.all_tasks() if t.get_name().startswith("chat relay") and not t.done()]

    async with AsyncTestClient(app) as client:
        async with client.websocket_connect("/ws/chat/cleanup") as a, client.websocket_connect("/ws/chat/cleanup"):
            assert app.broadcast.subscriber_count(channel) == 2
            assert len(relays()) == 2
            await a.send_text("bye")
            assert (await said_async(a))[1] == "bye"
        # Both blocks left: each handler has returned (the client waits for it).
        assert app.broadcast.subscriber_count(channel) == 0
        assert relays() == []
        assert app.ctxs == {}



async def test_chat_closes_1001_when_the_broadcast_stops() -> None:
    """The relay ends when its subscription does (the app's broadcast stopped): the
    connection is closed with 1001 instead of left open with nobody relaying."""
    async with AsyncTestClient(http_web.app) as client, client.websocket_connect("/ws/chat/stopping") as ws:
        await ws.send_text("hi")
        assert (await said_async(ws))[1] == "hi"
        await http_web.app.broadcast.stop()
        with pytest.raises(WebSocketDisconnect) as info:
            await said_async(ws)
        assert info.value.code == 1001
    assert http_web.app.ctxs == {}

async def test_a_failing_relay_closes_1011_and_is_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The relay task's errors are never lost: the connection closes with 1011 and the
    handler re-raises the error, which the framework logs with its traceback."""
    real_send = http_web.WebSocket.send

    async def broken_send(self: http_web.WebSocket, message: str | bytes) -> None:
        if isinstance(message, str) and message.endswith('"text":"boom"}'):
            raise ValueError("relay bug")
        await real_send(self, message)

    monkeypatch.setattr(http_web.WebSocket, "send", broken_send)
    async with AsyncTestClient(http_web.app) as client, client.websocket_connect("/ws/chat/broken") as ws:
        await ws.send_text("fine")
        assert (await said_async(ws))[1] == "fine"
        await ws.send_text("boom")
        with pytest.raises(WebSocketDisconnect) as info:
            await said_async(ws)
        assert info.value.code == 1011
    errors = [r for r in caplog.records if r.name == "hump_listener.error" and r.exc_info]
    assert len(errors) == 1 and "relay bug" in str(errors[0].exc_info[1])  # type: ignore[index]
    assert http_web.app.ctxs == {}


# -- the signup background event ---------------------------------------------------------------


def test_signup_fires_a_background_event_listed_by_signups() -> None:
    http_web.signups.clear()
    with TestClient(http_web.app) as client:
        r = client.post("/signup", data={"name": "ann"})
        assert r.status_code == 202 and r.json() == {"name": "ann", "status": "accepted"}
        assert client.post("/signup", json={"name": " bob "}).json()["name"] == "bob"
        assert client.post("/signup?name=cid").status_code == 202
    # The block ended after the background events finished (the app's shutdown drain).
    assert list(http_web.signups) == ["ann", "bob", "cid"]
    with TestClient(http_web.app) as client:
        r = client.get("/signups")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == ["ann", "bob", "cid"]
    assert http_web.app.ctxs == {}



def test_signup_needs_a_name(client: TestClient) -> None:
    for kw in ({}, {"data": {"name": "  "}}, {"json": {"nom": "x"}}, {"json": ["ann"]}):
        r = client.post("/signup", **kw)  # type: ignore[arg-type]
        assert r.status_code == 400 and "give a name" in r.text, kw
    r = client.post("/signup", data={"name": "n" * (http_web.MAX_NAME + 1)})
    assert r.status_code == 400 and "at most" in r.text


async def test_a_chat_client_too_slow_for_its_room_is_closed_1013_and_resumes_with_nothing_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 20 item 6: the chat's overflow policy is "close": a client whose queue
    (CHAT_MAX_QUEUE) fills is closed with 1013, and resuming with since= loses nothing
    (the history is longer than the queue)."""
    assert http_web.app.broadcast.history_size > http_web.CHAT_MAX_QUEUE
    gate = asyncio.Event()
    real_send = http_web.WebSocket.send

    async def stuck_send(self: http_web.WebSocket, message: str | bytes) -> None:
        if self.request.query.get("name") == "slow":
            await gate.wait()  # a client that reads nothing: the relay's writes wait
        await real_send(self, message)

    monkeypatch.setattr(http_web.WebSocket, "send", stuck_send)
    channel = http_web.CHAT_CHANNEL + "slow"
    total = http_web.CHAT_MAX_QUEUE + 50
    async with AsyncTestClient(http_web.app) as client:
        async with client.websocket_connect("/ws/chat/slow?name=slow") as ws:
            for i in range(total):
                await http_web.app.broadcast.publish_json(channel, {"from": "bot", "text": str(i)})
            gate.set()
            frames = []
            with pytest.raises(WebSocketDisconnect) as info:
                while True:
                    frames.append(json.loads(await ws.receive_text()))
            assert info.value.code == 1013 and "since" in info.value.reason
        texts = [f["text"] for f in frames if "text" in f]
        assert texts == [str(i) for i in range(len(texts))] and len(texts) < total
        async with client.websocket_connect(f"/ws/chat/slow?name=back&since={frames[-1]['id']}") as back:
            while len(texts) < total:
                frame = json.loads(await back.receive_text())
                assert frame.get("type") != "reset"
                if "text" in frame:
                    texts.append(frame["text"])
        assert texts == [str(i) for i in range(total)]


@pytest.mark.parametrize("path", ["/page", "/chat?room=lobby"])
def test_pages_have_a_viewport_and_a_favicon(client: TestClient, path: str) -> None:
    """Issue 22 item 5: phones lay the pages out at their width; the tab has an icon."""
    html = client.get(path).text
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    icon = re.search(r'<link rel="icon" href="([^"]+)" type="image/svg\+xml">', html)
    assert icon is not None
    r = client.get(icon.group(1))
    assert (r.status_code, r.headers["content-type"]) == (200, "image/svg+xml")
    assert r.content.startswith(b"<svg")


def test_the_page_is_a_template(client: TestClient) -> None:
    """Issue 22 item 6: the demo's non-chat pages are Jinja2 templates (templates/)."""
    assert http_web.app.templates.directory == http_web.HERE / "templates"
    assert '<a id="user" href="/user/bob">Greet bob</a>' in client.get("/page").text


def test_without_jinja2_the_page_says_what_to_install(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """Installed with ``pip install -e .`` alone (no templates extra), /page tells the
    person at the browser the command, not just "Internal Server Error"."""
    from hump_listener.templating import JINJA2_HINT, Templates

    def no_jinja2(*args: object, **kwargs: object) -> str:
        raise ImportError(JINJA2_HINT)

    monkeypatch.setattr(Templates, "render", no_jinja2)
    r = client.get("/page")
    assert (r.status_code, r.text) == (500, f"{JINJA2_HINT}\n(./scripts/demo installs it)\n")
