"""dispatch.py: ``RequestPath``, the object ``App`` composes to serve a request, on its
public methods: ``handle`` (the seam entry: the target, one context per request from the
one id counter, the answer, the access line where the status is decided, WebSocket
handshakes included), and ``trigger_event`` outside any request. The request path's
outcomes in depth (routing, injection, middleware, errors) are test_app.py's."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pytest
from framework_helpers import MemoryChannel, call, make_head
from tiny_listener import ContextNotFound

from hump_listener import App, HTTPContext, WebSocket
from hump_listener.dispatch import RequestPath


@pytest.fixture
def app() -> App:
    app = App(access_log=False)

    @app.get("/hello")
    async def hello(ctx: HTTPContext) -> str:
        assert app.ctxs[ctx.cid] is ctx  # in app.ctxs while it runs
        return f"hello {ctx.request.query.get('who', 'you')}"

    return app


def test_app_serves_the_seam_through_the_request_path(app: App) -> None:
    assert isinstance(app.request_path, RequestPath)
    assert app.handle == app.request_path.handle
    assert app.request_path.routes is app.route_table
    assert app.request_path.hooks is app.hooks


async def test_a_bad_target_is_a_400_before_any_context_exists(app: App) -> None:
    channel = await call(app, "GET", b"/a%zz")
    assert (channel.status, channel.text) == (400, "Invalid percent-encoding in request target")
    assert app.ctxs == {}
    assert app.contexts.last_id == 0  # no context was made


async def test_each_request_gets_a_context_of_its_own_dropped_at_the_end(app: App) -> None:
    first = await call(app, "GET", "/hello?who=bob")
    second = await call(app, "GET", "/hello")
    assert (first.status, first.text, second.text) == (200, "hello bob", "hello you")
    assert app.contexts.last_id == 2
    assert app.ctxs == {}


async def test_head_is_answered_by_get_without_a_body(app: App) -> None:
    channel = await call(app, "HEAD", "/hello")
    assert (channel.status, channel.sent, channel.header("content-length")) == (200, bytearray(), "9")


async def test_one_access_line_with_the_target_as_sent(caplog: pytest.LogCaptureFixture) -> None:
    app = App(access_log=True)

    @app.get("/a%20b")
    async def spaced() -> str:
        return "ok"

    with caplog.at_level(logging.INFO, logger="hump_listener.access"):
        await call(app, "GET", b"/a%20b?x=1")
        await call(app, "GET", b"/%zz")  # refused before routing: logged too
    lines = [r.getMessage() for r in caplog.records if r.name == "hump_listener.access"]
    assert lines == [
        '127.0.0.1:50000 - "GET /a%20b?x=1 HTTP/1.1" 200 OK',
        '127.0.0.1:50000 - "GET /%zz HTTP/1.1" 400 Bad Request',
    ]


@dataclass
class UpgradeChannel(MemoryChannel):
    """A plain request that asks for a WebSocket (``channel.websocket`` is set)."""

    websocket: Any = None


async def test_an_upgrade_request_without_a_ws_route_at_its_path_is_plain_http(app: App) -> None:
    @app.websocket("/ws")
    async def ws_route(ws: WebSocket) -> None: ...

    channel = UpgradeChannel(websocket=object())
    await app.handle(make_head(target=b"/hello", headers=[(b"host", b"x"), (b"upgrade", b"websocket")]), channel)
    assert (channel.status, channel.text) == (200, "hello you")


async def test_requests_and_events_share_one_counter_of_context_ids(app: App) -> None:
    @app.on_event("tick")
    async def tick(ctx: HTTPContext) -> str:
        return ctx.cid

    await call(app, "GET", "/hello")
    assert await app.trigger_event("tick") == "event-2"
    assert app.contexts.request().cid == "3"


async def test_trigger_event_runs_in_a_fresh_context_or_a_live_one(app: App) -> None:
    seen: list[str] = []

    @app.on_event("tick")
    async def tick(ctx: HTTPContext) -> str:
        seen.append(ctx.cid)
        return "done"

    assert await app.trigger_event("tick") == "done"
    assert seen == ["event-1"]
    with pytest.raises(ContextNotFound, match="context 'gone' is not alive"):
        app.trigger_event("tick", cid="gone")


def test_trigger_event_threadsafe_needs_the_app_running(app: App) -> None:
    with pytest.raises(RuntimeError, match="the app is not running"):
        app.trigger_event_threadsafe("tick")


# -- redirect_slashes (issue 22 item 5) -----------------------------------------------------


async def ok() -> str:
    return "ok"


async def test_a_path_that_exists_only_with_a_trailing_slash_redirects() -> None:
    app = App(access_log=False)
    app.get("/docs/")(ok)
    app.post("/items")(ok)
    app.get("/%C3%A9t%C3%A9/")(ok)
    channel = await call(app, "GET", "/docs?page=2")
    assert (channel.status, channel.header("location")) == (307, "/docs/?page=2")
    channel = await call(app, "POST", "/items/")
    assert (channel.status, channel.header("location")) == (307, "/items")  # 307 keeps the method
    channel = await call(app, "GET", "/%C3%A9t%C3%A9")
    assert channel.header("location") == "/%C3%A9t%C3%A9/"  # the target as sent, still encoded
    assert (await call(app, "GET", "/items/")).status == 404  # only POST answers /items
    assert (await call(app, "GET", "/nowhere/")).status == 404


async def test_redirect_slashes_comes_before_the_fallback_and_can_be_turned_off() -> None:
    app = App(access_log=False)
    app.get("/docs/")(ok)

    @app.on_event()
    async def not_found(ctx: HTTPContext) -> None:
        ctx.response(404, "custom")

    assert (await call(app, "GET", "/docs")).status == 307
    off = App(access_log=False, redirect_slashes=False)
    off.get("/docs/")(ok)
    assert (await call(off, "GET", "/docs")).status == 404
