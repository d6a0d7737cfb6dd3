"""context.py: ``HTTPContext`` on its own (no app run): the reply helpers record exactly
one reply, cookies join whichever response is sent, cleanups run last-first, and the
body readers over a ``seam.Channel`` (``framework_helpers.MemoryChannel``); an
``EventContext`` held by a connection keeps no finished events."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
from framework_helpers import MemoryChannel
from tiny_listener import Param

from hump_listener import App, HTTPContext, HTTPError, Response, ResponseAlreadySent
from hump_listener.context import EventContext
from hump_listener.models import Headers, Request


def context(
    body: list[bytes] | None = None, headers: list[tuple[str, str]] | None = None, max_body_size: int | None = None
) -> HTTPContext:
    ctx = HTTPContext(App(access_log=False), "7")
    raw = [(k.lower().encode(), v.encode()) for k, v in headers or []]
    ctx.request = Request("POST", "/p", b"/p", b"", "1.1", Headers(raw))
    ctx.channel = MemoryChannel(body_chunks=list(body or []))
    ctx.max_body_size = max_body_size
    return ctx


def test_each_reply_helper_records_the_one_reply() -> None:
    cases = [
        (lambda c: c.response(201, "made"), 201, "text/plain; charset=utf-8", b"made"),
        (lambda c: c.text("hi", 202), 202, "text/plain; charset=utf-8", b"hi"),
        (lambda c: c.html("<p>"), 200, "text/html; charset=utf-8", b"<p>"),
        (lambda c: c.json({"a": [1]}, 207), 207, "application/json", b'{"a":[1]}'),
    ]
    for reply, status, content_type, body in cases:
        ctx = context()
        response = reply(ctx)
        assert ctx.reply is response
        assert (response.status, response.content_type, response.body) == (status, content_type, body)
    ctx = context()
    redirect = ctx.redirect("/elsewhere")
    assert (redirect.status, redirect.headers.get("location")) == (307, "/elsewhere")


def test_a_second_reply_raises_naming_the_request_and_the_first() -> None:
    ctx = context()
    ctx.text("first", 201)
    with pytest.raises(ResponseAlreadySent, match=r"POST /p: a response was already set \(201\)"):
        ctx.json({})
    assert ctx.reply is not None and ctx.reply.body == b"first"


def test_throw_raises_the_http_error() -> None:
    ctx = context()
    with pytest.raises(HTTPError) as info:
        ctx.throw(409, "taken", {"X-Why": "dup"})
    assert (info.value.status, info.value.detail, info.value.headers) == (409, "taken", {"X-Why": "dup"})
    with pytest.raises(HTTPError) as info:
        ctx.throw_404()
    assert (info.value.status, info.value.detail) == (404, "Not Found")
    with pytest.raises(HTTPError) as info:
        ctx.throw_500("db down")
    assert (info.value.status, info.value.detail) == (500, "db down")


def test_cookies_go_on_a_copy_of_the_response_never_on_a_5xx() -> None:
    ctx = context()
    ctx.set_cookie("session", "abc", httponly=True)
    ctx.set_cookie("session", "def")  # same name, path and domain: replaces
    ctx.delete_cookie("old")
    shared = Response("shared")
    finished = ctx._finish_response(shared)
    assert finished is not shared and "set-cookie" not in shared.headers  # the original is untouched
    cookies = finished.headers.getlist("set-cookie")
    assert len(cookies) == 2
    assert cookies[0].startswith("session=def;")
    assert cookies[1].startswith("old=;") and "Max-Age=0" in cookies[1]
    failed = Response("Internal Server Error", 500)
    assert ctx._finish_response(failed) is failed


def test_cleanups_run_last_first_and_a_failing_one_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    ctx = context()
    ran: list[str] = []
    ctx._add_cleanup(lambda: ran.append("first"))
    ctx._add_cleanup(lambda: 1 / 0)
    ctx._add_cleanup(lambda: ran.append("last"))
    with caplog.at_level(logging.ERROR, logger="hump_listener.error"):
        ctx._run_cleanups()
    assert ran == ["last", "first"]
    assert "request cleanup" in caplog.text and "ZeroDivisionError" in caplog.text
    ctx._run_cleanups()  # run once: the list was emptied
    assert ran == ["last", "first"]


async def test_body_is_read_once_and_cached() -> None:
    ctx = context([b"ab", b"cd"])
    assert await ctx.body() == b"abcd"
    assert await ctx.body() == b"abcd"
    channel = ctx.channel
    assert isinstance(channel, MemoryChannel) and channel.reads == 3  # two chunks and the end, once


async def test_stream_yields_chunks_and_refuses_a_second_stream() -> None:
    ctx = context([b"ab", b"cd"])
    chunks = [chunk async for chunk in ctx.stream()]
    assert chunks == [b"ab", b"cd"]
    with pytest.raises(RuntimeError, match="already been streamed"):
        await ctx.body()
    cached = context([b"xy"])
    await cached.body()
    stream: AsyncIterator[bytes] = cached.stream()
    assert [chunk async for chunk in stream] == [b"xy"]  # after body(): the cached bytes


async def test_max_body_size_is_413_declared_or_counted() -> None:
    declared = context([b"x" * 10], [("Content-Length", "10")], max_body_size=5)
    with pytest.raises(HTTPError) as info:
        await declared.body()
    assert (info.value.status, info.value.detail) == (413, "Request body larger than 5 bytes")
    channel = declared.channel
    assert isinstance(channel, MemoryChannel) and channel.reads == 0  # refused before reading
    counted = context([b"xxx", b"xxx"], max_body_size=5)
    with pytest.raises(HTTPError) as info:
        await counted.body()
    assert info.value.status == 413


async def test_read_text_follows_the_charset_and_read_json_parses() -> None:
    latin = context(["café".encode("latin-1")], [("Content-Type", "text/plain; charset=latin-1")])
    assert await latin.read_text() == "café"
    bad = context([b"\xff"], [("Content-Type", "text/plain")])
    with pytest.raises(HTTPError) as info:
        await bad.read_text()
    assert (info.value.status, info.value.detail) == (400, "Request body is not valid utf-8")
    assert await context([b'{"a": 1}']).read_json() == {"a": 1}
    with pytest.raises(HTTPError) as info:
        await context([b"{"]).read_json()
    assert info.value.status == 400 and info.value.detail.startswith("Invalid JSON body")


async def test_form_parses_urlencoded_and_refuses_other_types() -> None:
    ctx = context([b"a=1&b=x+y&a=2"], [("Content-Type", "application/x-www-form-urlencoded")])
    form = await ctx.form()
    assert form.getlist("a") == ["1", "2"] and form["b"] == "x y"
    assert await ctx.form() is form  # parsed once
    with pytest.raises(HTTPError) as info:
        await context([b"{}"], [("Content-Type", "application/json")]).form()
    assert info.value.status == 415
    with pytest.raises(HTTPError) as info:
        await context([b"a=1&b=2&c=3"]).form(max_fields=2)
    assert info.value.status == 413


def test_repr_names_the_request() -> None:
    assert repr(context()) == "HTTPContext(cid=7, POST /p)"
    assert repr(HTTPContext(App(), "event-1")) == "HTTPContext(cid=event-1, -)"


# -- long-lived (per-connection) contexts -------------------------------------------------------


async def test_a_held_context_that_keeps_no_done_events() -> None:
    app = App(access_log=False)

    @app.on_event("msg {i:int}")
    async def msg(i: Param) -> int:
        await asyncio.sleep(0)
        return i

    class ConnectionContext(EventContext):
        keep_done_events = False

    ctx = ConnectionContext(app, "ws-1")
    ctx.hold()
    for i in range(100):
        ctx.trigger_event(f"msg {i}")
    assert len(ctx.events[app.routes["msg {i:int}"]]) == 100
    assert await app.background.join(5)
    assert app.ctxs == {"ws-1": ctx} and not ctx.events  # alive, nothing piled up
    assert ctx.release() and app.ctxs == {}
    with pytest.raises(RuntimeError, match="without a matching hold"):
        ctx.release()


async def test_prune_events_drops_finished_ones() -> None:
    app = App(access_log=False)
    gate = asyncio.Event()

    @app.on_event("quick")
    async def quick() -> None: ...

    @app.on_event("slow")
    async def slow() -> None:
        await gate.wait()

    ctx = EventContext(app, "c")
    ctx.hold()
    await ctx.trigger_event("quick")
    ctx.trigger_event("slow")
    assert ctx.prune_events() == 1
    assert [e.name for events in ctx.events.values() for e in events] == ["slow"]
    gate.set()
    assert await app.background.join(5)
    ctx.release()
