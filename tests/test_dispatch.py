"""dispatch.py: ``RequestPath``, the part of ``App`` that serves a request, on its own
public methods: ``handle`` (the seam entry: the target, one context per request, the
answer, the access line), the WebSocket helpers ``next_cid`` / ``run_hooks`` /
``log_websocket``, and ``trigger_event`` outside any request. The request path's
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
from hump_listener.models import Headers, Request


@pytest.fixture
def app() -> App:
    app = App(access_log=False)

    @app.get("/hello")
    async def hello(ctx: HTTPContext) -> str:
        assert app.ctxs[ctx.cid] is ctx  # in app.ctxs while it runs
        return f"hello {ctx.request.query.get('who', 'you')}"

    return app


def test_app_serves_the_seam_through_the_request_path() -> None:
    assert issubclass(App, RequestPath)
    assert App.handle is RequestPath.handle


async def test_a_bad_target_is_a_400_before_any_context_exists(app: App) -> None:
    channel = await call(app, "GET", b"/a%zz")
    assert (channel.status, channel.text) == (400, "Invalid percent-encoding in request target")
    assert app.ctxs == {}
    assert app._next_cid == 0  # no context was made


async def test_each_request_gets_a_context_of_its_own_dropped_at_the_end(app: App) -> None:
    first = await call(app, "GET", "/hello?who=bob")
    second = await call(app, "GET", "/hello")
    assert (first.status, first.text, second.text) == (200, "hello bob", "hello you")
    assert app._next_cid == 2
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


def test_next_cid_counts_with_the_requests(app: App) -> None:
    assert [app.next_cid(), app.next_cid()] == ["1", "2"]


async def test_run_hooks_runs_before_or_after_hooks_for_the_contexts_event(app: App) -> None:
    seen: list[str] = []

    @app.before_event
    async def before(ctx: HTTPContext) -> None:
        seen.append(f"before {ctx.cid}")

    @app.after_event
    async def after(ctx: HTTPContext) -> None:
        seen.append(f"after {ctx.cid}")

    ctx = HTTPContext(app, app.next_cid())
    ctx.endpoint = app.router.match("GET", "/hello")[0]
    await app.run_hooks(ctx, before=True)
    await app.run_hooks(ctx, before=False)
    assert seen == ["before 1", "after 1"]


def test_log_websocket_logs_the_handshake_only_with_the_access_log_on(caplog: pytest.LogCaptureFixture) -> None:
    request = Request("GET", "/ws", b"/ws", b"room=1", "1.1", Headers([]), ("10.0.0.9", 4000), "ws")
    with caplog.at_level(logging.INFO, logger="hump_listener.access"):
        App(access_log=False).log_websocket(make_head(target=b"/ws"), request, 101, 0.0)
        App(access_log=True).log_websocket(make_head(target=b"/ws"), request, 101, 0.0)
    lines = [r.getMessage() for r in caplog.records if r.name == "hump_listener.access"]
    assert lines == ['10.0.0.9:4000 - "GET /ws?room=1 HTTP/1.1" 101 Switching Protocols']


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
