"""testing.py: TestClient / AsyncTestClient drive the real protocol in-process."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tiny_listener import Param

from hump_listener import App, HTTPContext, Response
from hump_listener.testing import AsyncTestClient, TestClient


def make_app(log: list[str] | None = None) -> App:
    app = App(access_log=False)
    log = log if log is not None else []

    @app.startup
    async def up() -> None:
        log.append("startup")

    @app.shutdown
    async def down() -> None:
        log.append("shutdown")

    @app.get("/user/{name}")
    async def user(ctx: HTTPContext, name: Param) -> None:
        ctx.response(200, f"Hello, {name}!")

    @app.route("/echo", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
    async def echo(ctx: HTTPContext) -> None:
        body = await ctx.body()
        ctx.json({
            "method": ctx.request.method,
            "query": ctx.request.query.to_dict(),
            "ctype": ctx.request.content_type,
            "body": body.decode("latin-1"),
            "x": ctx.request.headers.get("x-test"),
            "length": ctx.request.headers.get("content-length"),
            "te": ctx.request.headers.get("transfer-encoding"),
        })

    @app.get("/crash")
    async def crash(ctx: HTTPContext) -> None:
        raise RuntimeError("boom")

    @app.get("/startup-log")
    async def startup_log(ctx: HTTPContext) -> None:
        ctx.json(log)

    return app


def test_startup_and_shutdown_run_around_the_block() -> None:
    log: list[str] = []
    app = make_app(log)
    with TestClient(app) as client:
        assert log == ["startup"]
        assert client.get("/startup-log").json() == ["startup"]
    assert log == ["startup", "shutdown"]


def test_response_fields() -> None:
    with TestClient(make_app()) as client:
        r = client.get("/user/bob")
        assert r.status_code == 200
        assert r.reason == "OK"
        assert r.text == "Hello, bob!"
        assert r.content == b"Hello, bob!"
        assert r.headers["Content-Type"] == r.headers["content-type"] == "text/plain; charset=utf-8"
        assert r.headers["content-length"] == "11"
        assert "date" in r.headers and r.http_version == "1.1"


def test_methods_params_headers_and_bodies() -> None:
    with TestClient(make_app()) as client:
        for method in ("get", "post", "put", "patch", "delete", "options"):
            assert getattr(client, method)("/echo").json()["method"] == method.upper()
        r = client.get("/echo?a=1", params={"b": ["2", "3"]}, headers={"X-Test": "yes"})
        assert r.json()["query"] == {"a": "1", "b": ["2", "3"]}
        assert r.json()["x"] == "yes"
        r = client.post("/echo", json={"k": [1, "é"]})
        assert r.json()["ctype"] == "application/json"
        assert r.json()["body"].encode("latin-1").decode() == '{"k": [1, "\\u00e9"]}'
        r = client.post("/echo", data={"a": "1", "b": "x y"})
        assert r.json()["ctype"] == "application/x-www-form-urlencoded"
        assert r.json()["body"] == "a=1&b=x+y"
        r = client.put("/echo", content=b"\x00raw")
        assert r.json()["body"] == "\x00raw" and r.json()["length"] == "4"
        assert client.request("PATCH", "/echo", data=b"bytes").json()["body"] == "bytes"


def test_streamed_request_body_is_chunked() -> None:
    async def parts() -> AsyncIterator[bytes]:
        for piece in (b"one,", b"two,", b"three"):
            yield piece

    with TestClient(make_app()) as client:
        got = client.post("/echo", content=parts()).json()
        assert got["body"] == "one,two,three"
        assert got["te"] == "chunked"
        assert client.post("/echo", content=[b"a", b"b"]).json()["body"] == "ab"


def test_large_body_goes_through_flow_control() -> None:
    app = App(access_log=False, max_body_size=None)

    @app.post("/size")
    async def size(ctx: HTTPContext) -> None:
        total = 0
        async for chunk in ctx.stream():
            total += len(chunk)
        ctx.response(200, str(total))

    with TestClient(app) as client:
        assert client.post("/size", content=b"x" * 3_000_000).text == "3000000"


def test_head_has_no_body() -> None:
    with TestClient(make_app()) as client:
        r = client.head("/user/bob")
        assert r.status_code == 200
        assert r.content == b""
        assert r.headers["content-length"] == "11"


def test_handler_errors_are_500_responses() -> None:
    with TestClient(make_app()) as client:
        r = client.get("/crash")
        assert r.status_code == 500
        assert r.text == "Internal Server Error"


def test_paths_are_sent_as_written() -> None:
    with TestClient(make_app()) as client:
        assert client.get("/user/al%20ice").text == "Hello, al ice!"
        assert client.get("/user/zoë").text == "Hello, zoë!"  # non-ASCII is escaped for us
        assert client.get("http://example.org/user/abs").text == "Hello, abs!"


def test_cookies_persist_like_a_browser() -> None:
    app = App(access_log=False)

    @app.get("/login")
    async def login(ctx: HTTPContext) -> None:
        ctx.set_cookie("sid", "s1")
        ctx.response(200, "ok")

    @app.get("/logout")
    async def logout(ctx: HTTPContext) -> None:
        ctx.delete_cookie("sid")
        ctx.response(200, "bye")

    @app.get("/whoami")
    async def whoami(ctx: HTTPContext) -> None:
        ctx.json(ctx.request.cookies)

    with TestClient(app, cookies={"pref": "dark"}) as client:
        assert client.get("/whoami").json() == {"pref": "dark"}
        r = client.get("/login")
        assert r.cookies == {"sid": "s1"}
        assert client.get("/whoami").json() == {"pref": "dark", "sid": "s1"}
        assert client.get("/whoami", cookies={"once": "1"}).json() == {"pref": "dark", "sid": "s1", "once": "1"}
        assert "once" not in client.cookies
        client.get("/logout")
        assert client.get("/whoami").json() == {"pref": "dark"}


def test_incomplete_response_raises() -> None:
    app = App(access_log=False)

    @app.get("/short")
    async def short(ctx: HTTPContext) -> None:
        async def body() -> AsyncIterator[bytes]:
            yield b"partial"
            raise RuntimeError("source died")

        ctx.stream_response(body())

    with TestClient(app) as client, pytest.raises(ConnectionError, match="before the response was complete"):
        client.get("/short")


def test_timeout_cancels_the_handler() -> None:
    app = App(access_log=False)
    cancelled: list[bool] = []

    @app.get("/hang")
    async def hang(ctx: HTTPContext) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    @app.get("/ok")
    async def ok(ctx: HTTPContext) -> None:
        ctx.response(200, "ok")

    with TestClient(app, timeout=0.05) as client:
        with pytest.raises(TimeoutError):
            client.get("/hang")
        assert cancelled == [True]
        assert client.get("/ok", timeout=None).text == "ok"  # the client is still usable


def test_state_created_at_startup_lives_on_the_request_loop() -> None:
    app = App(access_log=False)
    box: dict[str, Any] = {}

    @app.startup
    async def make_queue() -> None:
        box["queue"] = asyncio.Queue()
        box["queue"].put_nowait("from startup")

    @app.get("/pop")
    async def pop(ctx: HTTPContext) -> None:
        ctx.response(200, await box["queue"].get())

    with TestClient(app) as client:
        assert client.get("/pop").text == "from startup"


def test_the_loop_thread_is_gone_after_the_block() -> None:
    with TestClient(make_app()) as client:
        client.get("/user/a")
        assert any(t.name == "hump-testclient" for t in threading.enumerate())
    assert not any(t.name == "hump-testclient" for t in threading.enumerate())


def test_without_with_block_then_close() -> None:
    log: list[str] = []
    client = TestClient(make_app(log))
    assert client.get("/user/x").text == "Hello, x!"
    client.close()
    assert log == []  # no lifespan without the with block
    assert not any(t.name == "hump-testclient" for t in threading.enumerate())


def test_shared_response_object() -> None:
    app = App(access_log=False)
    shared = Response("same")

    @app.get("/s")
    async def s() -> Response:
        return shared

    with TestClient(app) as client:
        assert [client.get("/s").text for _ in range(3)] == ["same"] * 3


async def test_async_client() -> None:
    log: list[str] = []
    async with AsyncTestClient(make_app(log)) as client:
        assert log == ["startup"]
        responses = await asyncio.gather(*(client.get(f"/user/u{i}") for i in range(5)))
        assert [r.text for r in responses] == [f"Hello, u{i}!" for i in range(5)]
        r = await client.post("/echo", json={"a": 1})
        assert r.json()["body"] == '{"a": 1}'
    assert log == ["startup", "shutdown"]


async def test_sync_client_works_inside_a_running_loop() -> None:
    # The blocking client runs on its own loop thread, so an async test may use it too.
    with TestClient(make_app()) as client:
        assert client.get("/user/in-loop").text == "Hello, in-loop!"
