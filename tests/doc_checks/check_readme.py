"""Checks for the README's program (``readme``, see ``tests/doc_blocks.py``): every route
the README shows is requested, and answers what the README says it does.

Run by ``tests/test_readme.py`` in a plain pytest, in a temporary working directory.
"""

from __future__ import annotations

import asyncio
import gzip
from pathlib import Path

import pytest
from readme import app, small, tuned

from hump_listener import WebSocketDisconnect
from hump_listener.testing import AsyncTestClient, TestClient


@pytest.fixture
def client():
    with TestClient(app) as client:
        yield client


def test_quickstart_and_routes(client: TestClient) -> None:
    assert client.get("/user/bob").text == "Hello, bob!"
    assert client.get("/").text == "Hello, world!"
    assert client.get("/api/users/7").json() == {"id": 7}
    assert client.get("/api/users/x").status_code == 404  # the convertor refuses: the fallback
    assert client.get("/files/a/b.txt").text == "a/b.txt"
    assert client.request("PATCH", "/anything").text == "PATCH"
    assert client.get("/hello/ann").text == "Hello, ann!"
    missing = client.get("/no/such/page")
    assert (missing.status_code, missing.text) == (404, "nothing at /no/such/page")
    assert client.head("/").content == b""


def test_injection(client: TestClient) -> None:
    assert client.get("/me/pen").json() == {"user": "anonymous", "item": "pen"}
    assert client.get("/me/pen", headers={"X-User": "ann"}).json()["user"] == "ann"


def test_the_request(client: TestClient) -> None:
    r = client.post(
        "/inspect?q=1&q=2", json={"a": 1}, headers={"Accept": "text/html"}, cookies={"k": "v"}
    )
    body = r.json()
    assert r.status_code == 200, r.text
    assert body["method"] == "POST" and body["path"] == "/inspect" and body["query_string"] == "q=1&q=2"
    assert body["q"] == "1" and body["all_q"] == ["1", "2"]
    assert body["content_type"] == "application/json" and body["accept"] == ["text/html"]
    assert body["cookies"] == {"k": "v"} and body["data"] == {"a": 1} and body["size"] == len('{"a": 1}')
    assert body["http_version"] == "1.1" and body["scheme"] == "http"
    # Without a Content-Type the handler still answers (issue 14: it was a KeyError).
    bare = client.post("/inspect", content=b'{"a": 2}')
    assert (bare.status_code, bare.json()["content_type"], bare.json()["data"]) == (200, None, {"a": 2})
    assert client.post("/inspect", content=b"").status_code == 400  # an empty body is not JSON
    assert client.post("/count-bytes", content=[b"ab", b"cde"]).text == "5"


def test_replies(client: TestClient) -> None:
    created = client.get("/reply/created")
    assert (created.status_code, created.text, created.headers["X-Id"]) == (201, "created", "7")
    assert created.headers["Content-Type"].startswith("text/plain")
    assert client.get("/reply/text").headers["Content-Type"] == "text/plain; charset=utf-8"
    assert client.get("/reply/html").text == "<h1>hi</h1>"
    as_json = client.get("/reply/json")
    assert (as_json.status_code, as_json.json()) == (202, {"ok": True})
    moved = client.get("/reply/moved")
    assert (moved.status_code, moved.headers["Location"]) == (307, "/elsewhere")
    forbidden = client.get("/reply/forbidden")
    assert (forbidden.status_code, forbidden.text) == (403, "go away")
    assert client.get("/reply/other").status_code == 404
    raw = client.get("/returned/bytes")
    assert (raw.content, raw.headers["Content-Type"]) == (b"\x00\x01", "application/octet-stream")
    tup = client.get("/returned/tuple")
    assert (tup.status_code, tup.text, tup.headers["X-Queue"]) == (202, "accepted", "3")
    resp = client.get("/returned/response")
    assert (resp.status_code, resp.json()) == (201, {"ok": True})
    teapot = client.get("/returned/other")
    assert (teapot.status_code, teapot.text) == (418, "I'm a Teapot")


def test_sync_handlers(client: TestClient) -> None:
    assert client.get("/slow/monday").json() == {"day": "monday", "path": "/slow/monday"}
    assert client.post("/reverse", content=b"abc").text == "cba"


def test_middleware(client: TestClient) -> None:
    assert client.get("/").headers["X-Served-By"] == "hump"
    assert client.get("/private").status_code == 401
    ok = client.get("/private", headers={"Authorization": "Bearer secret"})
    assert (ok.status_code, ok.text) == (200, "secret")


def test_static_files(client: TestClient) -> None:
    css = client.get("/static/css/site.css")
    assert css.status_code == 200 and css.text == "body { color: teal }\n"
    assert css.headers["Cache-Control"] == "public, max-age=3600"
    assert client.get("/static/css/site.css", headers={"If-None-Match": css.headers["ETag"]}).status_code == 304
    assert client.get("/static/../readme.py").status_code == 404


def test_forms(client: TestClient) -> None:
    r = client.post("/upload", data={"title": "Q3"}, files={"file": ("q3.pdf", b"%PDF", "application/pdf")})
    assert r.json() == {"title": "Q3", "filename": "q3.pdf", "size": 4}
    no_file = client.post("/upload", data={"title": "no file"}, files={"other": ("x", b"", "text/plain")})
    assert no_file.status_code == 400


def test_cookies(client: TestClient) -> None:
    client.cookies = {}
    login = client.post("/login", data={"user": "ann"})
    assert login.status_code == 303 and login.headers["Location"] == "/whoami"
    assert "HttpOnly" in login.headers["Set-Cookie"] and "Secure" in login.headers["Set-Cookie"]
    assert client.get("/whoami").text == "user:ann"  # the route the login redirects to exists
    logout = client.post("/logout")
    assert logout.status_code == 303 and client.get("/whoami").text == "nobody"


def test_streaming(client: TestClient) -> None:
    assert client.get("/count").text == "0\n1\n2\n"
    ticks = client.get("/ticks")
    assert ticks.headers["Content-Type"] == "text/event-stream; charset=utf-8"
    assert ticks.text.count("event: tick") == 3 and "data: 2" in ticks.text
    assert client.get("/report").status_code == 404  # no file yet
    Path("exports").mkdir(exist_ok=True)
    Path("exports/report.csv").write_text("a,b\n1,2\n")
    download = client.get("/report")
    assert download.text == "a,b\n1,2\n"
    assert "filename*=UTF-8''rapport%20%C3%A9t%C3%A9.csv" in download.headers["Content-Disposition"]
    partial = client.get("/report", headers={"Range": "bytes=0-2"})
    assert (partial.status_code, partial.text) == (206, "a,b")


def test_cors_and_gzip(client: TestClient) -> None:
    preflight = client.options(
        "/private",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example"
    big = client.get("/files/" + "x" * 600, headers={"Accept-Encoding": "gzip"})
    assert big.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(big.content) == b"x" * 600


def test_configuration() -> None:
    assert tuned.config.max_connections == 10_000
    assert small.config.access_log is False


def test_websocket_errors_and_states(client: TestClient) -> None:
    # A binary message where the handler reads text: close 1003.
    token = {"Authorization": "Bearer secret"}
    with client.websocket_connect("/ws/private/bo", headers=token) as ws:
        assert ws.subprotocol is None  # none offered, none chosen
        ws.receive_json()
        ws.send_bytes(b"\x00")
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive()
        assert closed.value.code == 1003


def test_steps_wait_without_polling(client: TestClient) -> None:
    assert client.post("/steps/ann").text == "saved ann, mailed ann"


def test_sse_from_the_broadcast() -> None:
    async def main() -> str:
        async with AsyncTestClient(app) as client:
            listening = asyncio.ensure_future(client.get("/rooms/blue/events"))
            for _ in range(10_000):  # bounded: until the SSE stream has subscribed
                if app.broadcast.subscriber_count("chat:blue"):
                    break
                await asyncio.sleep(0)
            sent = await client.post("/rooms/blue", content="hello")
            assert sent.text == "sent to 1"
        # The app's shutdown stopped the broadcast: the stream ended, the response is whole.
        return (await listening).text

    text = asyncio.run(main())
    assert "data: hello" in text


def test_background_state_is_idle_after_the_tests() -> None:
    with TestClient(app) as client:
        client.post("/signup")
    assert app.ctxs == {}
