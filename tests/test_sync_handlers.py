"""Sync (``def``) route handlers run in the app's bounded thread pool (issue 14 item 3):
injection and return values as for ``async def``, the event loop never blocked, errors
a 500, threads stopped with the app; sync middleware, dependencies and hooks refused at
registration with an error naming the fix."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from tiny_listener import Data, Depends, Event, Param

from hump_listener import App, HTTPContext, Response, RouteDefinitionError
from hump_listener.testing import AsyncTestClient, TestClient
from hump_listener.threads import DEFAULT_SYNC_WORKERS, SyncPool


@pytest.fixture
def app() -> Iterator[App]:
    app = App(access_log=False)
    yield app
    app.sync_pool.close()


async def wait_in_thread(event: threading.Event) -> None:
    """Wait for a threading.Event without blocking the loop (bounded)."""
    assert await asyncio.to_thread(event.wait, 10), "the thread never got there"


async def current_user(ctx: HTTPContext) -> str:
    return ctx.request.headers.get("x-user", "anonymous")


async def test_injection_and_return_values_as_for_async(app: App) -> None:
    @app.before_event
    async def add_data(event: Event) -> None:  # type: ignore[type-arg]
        event.data["tag"] = "t1"

    @app.get("/u/{name}")
    def user(
        ctx: HTTPContext, name: Param, event: Event, tag: Data,  # type: ignore[type-arg]
        who: str = Depends(current_user),
    ) -> dict[str, Any]:
        return {
            "name": name, "who": who, "tag": tag, "path": ctx.request.path,
            "same_ctx": event.ctx is ctx, "thread": threading.current_thread().name,
        }

    @app.get("/text")
    def text() -> str:
        return "plain"

    @app.get("/tuple")
    def created() -> tuple[str, int, dict[str, str]]:
        return "made", 201, {"X-Id": "7"}

    @app.get("/response")
    def response() -> Response:
        return Response(b"raw", 202)

    @app.get("/helper")
    def helper(ctx: HTTPContext) -> None:
        ctx.json({"via": "ctx.json"}, status=203)

    async with AsyncTestClient(app) as client:
        r = await client.get("/u/bob", headers={"X-User": "alice"})
        assert r.status_code == 200
        got = r.json()
        assert got.pop("thread").startswith("hump-sync")
        assert got == {"name": "bob", "who": "alice", "tag": "t1", "path": "/u/bob", "same_ctx": True}
        r = await client.get("/text")
        assert (r.status_code, r.text, r.headers["content-type"]) == (200, "plain", "text/plain; charset=utf-8")
        r = await client.get("/tuple")
        assert (r.status_code, r.text, r.headers["x-id"]) == (201, "made", "7")
        assert (await client.get("/response")).status_code == 202
        r = await client.get("/helper")
        assert (r.status_code, r.json()) == (203, {"via": "ctx.json"})
        assert (await client.head("/text")).headers["content-length"] == "5"


async def test_a_blocked_sync_handler_does_not_stall_the_loop(app: App) -> None:
    entered, release = threading.Event(), threading.Event()

    @app.get("/block")
    def block() -> str:
        entered.set()
        assert release.wait(10)
        return "released"

    @app.get("/fast")
    async def fast() -> str:
        return "fast"

    async with AsyncTestClient(app) as client:
        blocked = asyncio.ensure_future(client.get("/block"))
        try:
            await wait_in_thread(entered)
            # The handler sits in its thread; the loop still serves other requests.
            r = await client.get("/fast")
            assert r.text == "fast" and not blocked.done()
        finally:
            release.set()
        assert (await blocked).text == "released"


async def test_the_pool_is_bounded_and_configurable() -> None:
    assert DEFAULT_SYNC_WORKERS == 40 and App().sync_pool.max_workers == 40
    app = App(access_log=False, sync_workers=2)
    lock, release = threading.Lock(), threading.Event()
    running, peak = [0], [0]
    two_in = threading.Event()

    @app.get("/work")
    def work() -> str:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
            if running[0] == 2:
                two_in.set()
        assert release.wait(10)
        with lock:
            running[0] -= 1
        return "done"

    try:
        async with AsyncTestClient(app) as client:
            calls = [asyncio.ensure_future(client.get("/work")) for _ in range(3)]
            try:
                await wait_in_thread(two_in)
                executor = app.sync_pool._executor
                assert executor is not None
                # The third call waits in the pool's queue, not in a third thread.
                for _ in range(10_000):
                    if executor._work_queue.qsize() == 1:
                        break
                    await asyncio.sleep(0)
                assert executor._work_queue.qsize() == 1
                assert running[0] == 2
            finally:
                release.set()
            assert [r.text for r in await asyncio.gather(*calls)] == ["done"] * 3
        assert peak[0] == 2
    finally:
        app.sync_pool.close()
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="sync_workers"):
            App(sync_workers=bad)  # type: ignore[arg-type]


async def test_a_raising_sync_handler_is_a_logged_500_and_on_error_runs(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    @app.on_error(ZeroDivisionError)
    async def on_zero(event: Event) -> None:  # type: ignore[type-arg]
        seen.append(type(event.error).__name__)

    @app.get("/boom")
    def boom_handler() -> str:
        return str(1 // 0)

    async with AsyncTestClient(app) as client:
        with caplog.at_level(logging.ERROR, logger="hump_listener.error"):
            r = await client.get("/boom")
    assert (r.status_code, r.text) == (500, "Internal Server Error")
    assert seen == ["ZeroDivisionError"]
    assert "boom_handler" in caplog.text and "ZeroDivisionError" in caplog.text


async def test_contextvars_reach_the_thread(app: App) -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    @app.middleware
    async def set_var(ctx: HTTPContext, call_next: Any) -> Response:
        var.set("set by middleware")
        return await call_next()  # type: ignore[no-any-return]

    @app.get("/var")
    def read_var() -> str:
        return var.get()

    async with AsyncTestClient(app) as client:
        assert (await client.get("/var")).text == "set by middleware"


async def test_a_sync_callable_returning_a_coroutine_is_a_clear_500(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    async def hidden() -> str:
        return "never"

    app.on_event("GET:/hidden")(hidden.__call__)  # sync on the outside: a method-wrapper
    async with AsyncTestClient(app) as client:
        with caplog.at_level(logging.ERROR, logger="hump_listener.error"):
            assert (await client.get("/hidden")).status_code == 500
    assert "returned an awaitable" in caplog.text and "async def" in caplog.text


def test_sync_middleware_dependencies_and_hooks_are_refused_at_registration(app: App) -> None:
    def sync_mw(ctx: HTTPContext, call_next: Any) -> Any:
        return call_next()

    with pytest.raises(TypeError, match=r"middleware .*sync_mw must be an `async def`"):
        app.middleware(sync_mw)

    async def handler() -> str:
        return "x"

    with pytest.raises(TypeError, match="async def mw"):
        app.get("/m", middleware=[sync_mw])(handler)
    assert "GET:/m" not in app.routes

    def hook(event: Event) -> None:  # type: ignore[type-arg]
        pass

    for register in (app.before_event, app.after_event, app.on_error(KeyError)):
        with pytest.raises(RouteDefinitionError, match=r"must be an `async def`.*asyncio\.to_thread"):
            register(hook)

    def sync_dep() -> str:
        return "x"

    with pytest.raises(TypeError, match="coroutine function"):  # tiny-listener's own check
        Depends(sync_dep)


def test_threads_stop_with_the_app() -> None:
    """The pool is a service of the app: its close runs with the app's shutdown (the
    test client, the ASGI lifespan and the built-in server all run it): threads exit."""
    app = App(access_log=False)

    @app.get("/t")
    def t() -> str:
        return threading.current_thread().name

    @app.get("/t2")
    def t2() -> str:
        return "t2"

    with TestClient(app) as client:
        name = client.get("/t").text
        assert app.sync_pool.started
    assert not app.sync_pool.started
    for thread in [t for t in threading.enumerate() if t.name == name]:
        thread.join(timeout=10)
        assert not thread.is_alive()
    # Used again after close (a second client): a fresh executor.
    with TestClient(app) as client:
        assert client.get("/t2").text == "t2"
    assert not app.sync_pool.started


async def test_asgi_lifespan_shutdown_closes_the_pool(app: App) -> None:
    @app.get("/t")
    def t() -> str:
        return "ok"

    async with AsyncTestClient(app) as client:
        assert (await client.get("/t")).text == "ok"
    await SyncPool().aclose()  # closing a pool that never started is a no-op
    await app.sync_pool.run(str, (1,), {})
    assert app.sync_pool.started
    inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[Any] = []

    async def receive() -> Any:
        return inbox.pop(0)

    async def send(message: Any) -> None:
        sent.append(message["type"])

    await app({"type": "lifespan"}, receive, send)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert not app.sync_pool.started


async def test_a_sync_handler_reads_the_body_through_an_async_dependency(app: App) -> None:
    """The README's recipe: a ``def`` handler cannot await, its dependency can."""

    async def read_body(ctx: HTTPContext) -> bytes:
        return await ctx.body()

    @app.post("/reverse")
    def reverse(body: bytes = Depends(read_body)) -> str:
        return body.decode()[::-1]

    async with AsyncTestClient(app) as client:
        assert (await client.post("/reverse", content=b"abc")).text == "cba"
