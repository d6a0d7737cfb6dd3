"""events.py and background.py together: background events keep their context, report
their errors, wake their waiters, run outside requests and from other threads; contexts
are dropped when done (the counting itself: tests/test_context.py).

Most tests drive the app through the seam (framework_helpers.call); the soaks go through
the in-process test client and through a real ``tiny-listener`` process on a socket.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import weakref
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from framework_helpers import call
from servers import run_server
from tiny_listener import ContextNotFound, Data, Depends, Event, EventNotFound, Param

from hump_listener import App, HTTPContext
from hump_listener.context import EventContext
from hump_listener.events import Event as TrackedEvent
from hump_listener.testing import AsyncTestClient, TestClient


@pytest.fixture
def app() -> App:
    return App(access_log=False)


@pytest.fixture
def asyncio_records() -> Iterator[list[logging.LogRecord]]:
    """Records asyncio logs (where "Task exception was never retrieved" goes)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(logging.DEBUG)
    logger = logging.getLogger("asyncio")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def never_retrieved(records: list[logging.LogRecord]) -> list[str]:
    gc.collect()  # asyncio logs it when the failed task is collected
    return [r.getMessage() for r in records if "never retrieved" in r.getMessage()]


async def spin(condition: Any, turns: int = 50) -> bool:
    """Let the loop run up to ``turns`` steps until ``condition()`` holds."""
    for _ in range(turns):
        if condition():
            return True
        await asyncio.sleep(0)
    return bool(condition())


# -- 1. background events keep their context ------------------------------------------------


async def test_fire_and_forget_event_keeps_the_request_context_after_the_response(app: App) -> None:
    go = asyncio.Event()
    seen: dict[str, Any] = {}

    @app.on_event("user_created")
    async def welcome(ctx: HTTPContext, event: Event, name: Data) -> None:  # type: ignore[type-arg]
        await go.wait()  # still running after the response went out
        seen.update(ctx=ctx, path=ctx.request.path, name=name, event=event.name, alive=ctx.cid in app.ctxs)

    @app.post("/signup")
    async def signup(ctx: HTTPContext) -> str:
        seen["request_ctx"] = ctx
        ctx.trigger_event("user_created", data={"name": "ann"})  # not awaited
        return "ok"

    channel = await call(app, "POST", "/signup")
    assert (channel.status, channel.text) == (200, "ok")
    ctx = seen["request_ctx"]
    assert app.ctxs == {ctx.cid: ctx}, "the context must stay alive while its event runs"
    assert ctx.holds == 1
    go.set()
    assert await app.background.join(5)
    assert seen["ctx"] is ctx and seen["alive"]
    assert (seen["path"], seen["name"], seen["event"]) == ("/signup", "ann", "user_created")
    assert app.ctxs == {} and ctx.holds == 0
    assert not ctx.events, "a dropped context holds no events"
    assert not app.background.tasks


async def test_awaited_event_returns_the_handler_result(app: App) -> None:
    @app.on_event("double")
    async def double(x: Data) -> int:
        return int(x) * 2

    @app.get("/d/{n:int}")
    async def d(ctx: HTTPContext, n: Param) -> str:
        return str(await ctx.trigger_event("double", data={"x": n}))

    assert (await call(app, "GET", "/d/21")).text == "42"
    assert app.ctxs == {} and not app.background.tasks


async def test_events_chain_in_one_context_and_it_is_dropped_after_the_last(app: App) -> None:
    order: list[str] = []
    contexts: set[int] = set()

    @app.on_event("first")
    async def first(ctx: HTTPContext) -> None:
        contexts.add(id(ctx))
        await asyncio.sleep(0)
        ctx.trigger_event("second")
        order.append("first")

    @app.on_event("second")
    async def second(ctx: HTTPContext) -> None:
        contexts.add(id(ctx))
        await asyncio.sleep(0)
        order.append(f"second in {ctx.request.path} alive={ctx.cid in app.ctxs}")

    @app.get("/chain")
    async def chain(ctx: HTTPContext) -> str:
        contexts.add(id(ctx))
        ctx.trigger_event("first")
        return "ok"

    assert (await call(app, "GET", "/chain")).status == 200
    assert await app.background.join(5)
    assert order == ["first", "second in /chain alive=True"]
    assert len(contexts) == 1
    assert app.ctxs == {}


async def test_event_params_and_dependencies_are_injected(app: App) -> None:
    seen: list[Any] = []

    async def who(event: Event) -> str:  # type: ignore[type-arg]
        return f"dep saw {event.name}"

    @app.on_event("save {user}'s data")
    async def save(user: Param, event: Event, dep: str = Depends(who)) -> None:  # type: ignore[type-arg]
        seen.append((user, event.name, dep))

    @app.get("/save")
    async def handler(ctx: HTTPContext) -> str:
        await ctx.trigger_event("save alice's data")
        return "ok"

    assert (await call(app, "GET", "/save")).status == 200
    assert seen == [("alice", "save alice's data", "dep saw save alice's data")]


async def test_before_and_after_hooks_see_the_background_event(app: App) -> None:
    seen: list[str] = []

    @app.before_event
    async def before(event: Event) -> None:  # type: ignore[type-arg]
        seen.append(f"before {event.route.path}")

    @app.after_event
    async def after(event: Event) -> None:  # type: ignore[type-arg]
        seen.append(f"after {event.route.path} -> {event.result}")

    @app.on_event("job")
    async def job() -> str:
        return "done"

    @app.get("/j")
    async def j(ctx: HTTPContext) -> str:
        await ctx.trigger_event("job")
        return "ok"

    assert (await call(app, "GET", "/j")).status == 200
    assert seen == ["before GET:/j", "before job", "after job -> done", "after GET:/j -> None"]


async def test_triggering_unknown_or_http_events_raises_at_once(app: App) -> None:
    @app.get("/page")
    async def page() -> str:
        return "page"

    errors: list[BaseException] = []

    @app.get("/t")
    async def t(ctx: HTTPContext) -> str:
        for name in ("nope", "GET:/page"):
            try:
                ctx.trigger_event(name)
            except (EventNotFound, ValueError) as exc:
                errors.append(exc)
        return "ok"

    assert (await call(app, "GET", "/t")).status == 200
    assert [type(e) for e in errors] == [EventNotFound, ValueError]
    assert "HTTP route" in str(errors[1])
    assert app.ctxs == {}


# -- 2. errors are never lost ----------------------------------------------------------------


async def test_unhandled_error_is_logged_with_event_and_request(
    app: App, caplog: pytest.LogCaptureFixture, asyncio_records: list[logging.LogRecord]
) -> None:
    events: list[Any] = []

    @app.on_event("user_created")
    async def welcome(event: Event) -> None:  # type: ignore[type-arg]
        events.append(event)
        raise ValueError("mail server down")

    @app.post("/signup")
    async def signup(ctx: HTTPContext) -> str:
        ctx.trigger_event("user_created")
        return "ok"

    with caplog.at_level(logging.ERROR, logger="hump_listener.error"):
        assert (await call(app, "POST", "/signup")).status == 200
        assert await app.background.join(5)
    [record] = [r for r in caplog.records if r.name == "hump_listener.error"]
    assert record.getMessage() == "Exception in background event 'user_created' (fired by POST /signup)"
    assert record.exc_info is not None and isinstance(record.exc_info[1], ValueError)
    assert "mail server down" in caplog.text and "Traceback" in caplog.text
    assert isinstance(events[0].error, ValueError)
    events.clear()  # let the failed event go before looking for asyncio's complaint
    assert never_retrieved(asyncio_records) == []
    assert app.ctxs == {}


async def test_awaiting_a_failed_event_gives_none_and_the_error_is_logged_once(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    @app.on_event("fails")
    async def fails() -> None:
        raise KeyError("k")

    @app.get("/f")
    async def f(ctx: HTTPContext) -> str:
        return repr(await ctx.trigger_event("fails"))

    with caplog.at_level(logging.ERROR, logger="hump_listener.error"):
        ch = await call(app, "GET", "/f")
    assert (ch.status, ch.text) == (200, "None")
    assert len([r for r in caplog.records if r.name == "hump_listener.error"]) == 1


async def test_on_error_hooks_handle_background_errors(app: App, caplog: pytest.LogCaptureFixture) -> None:
    handled: list[str] = []

    @app.on_error(ValueError)
    async def on_value_error(event: Event) -> None:  # type: ignore[type-arg]
        handled.append(f"{event.name}: {event.error!r}")

    @app.on_event("bad")
    async def bad() -> None:
        raise ValueError("x")

    @app.get("/b")
    async def b(ctx: HTTPContext) -> str:
        ctx.trigger_event("bad")
        return "ok"

    with caplog.at_level(logging.ERROR, logger="hump_listener.error"):
        assert (await call(app, "GET", "/b")).status == 200
        assert await app.background.join(5)
    assert handled == ["bad: ValueError('x')"]
    assert not [r for r in caplog.records if r.name == "hump_listener.error"]


async def test_a_failing_on_error_hook_is_logged_too(app: App, caplog: pytest.LogCaptureFixture) -> None:
    @app.on_error(ValueError)
    async def broken_hook(event: Event) -> None:  # type: ignore[type-arg]
        raise RuntimeError("hook broke")

    @app.on_event("bad")
    async def bad() -> None:
        raise ValueError("x")

    with caplog.at_level(logging.ERROR, logger="hump_listener.error"):
        await app.trigger_event("bad")
    [record] = [r for r in caplog.records if r.name == "hump_listener.error"]
    assert "on_error hook" in record.getMessage() and "ValueError('x')" in record.getMessage()
    assert "'bad' (fired by app.trigger_event)" in record.getMessage()
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)


async def test_event_timeout_is_reported(app: App, caplog: pytest.LogCaptureFixture) -> None:
    @app.on_event("hangs")
    async def hangs() -> None:
        await asyncio.Event().wait()

    with caplog.at_level(logging.ERROR, logger="hump_listener.error"):
        assert await app.trigger_event("hangs", timeout=0.01) is None
    [record] = [r for r in caplog.records if r.name == "hump_listener.error"]
    assert record.exc_info is not None and isinstance(record.exc_info[1], asyncio.TimeoutError)
    assert app.ctxs == {}


async def test_cancelled_before_its_first_step_still_releases_the_context(app: App) -> None:
    ran: list[bool] = []

    @app.on_event("never")
    async def never() -> None:
        ran.append(True)

    task = app.trigger_event("never")
    assert len(app.ctxs) == 1
    task.cancel()
    await asyncio.wait([task])
    assert task.cancelled() and ran == []
    assert app.ctxs == {} and not app.background.tasks


# -- 3. waiting without polling ---------------------------------------------------------------


async def test_wait_event_done_started_before_the_events_wakes_without_polling(app: App) -> None:
    gates = [asyncio.Event(), asyncio.Event()]

    @app.on_event("step {i:int}")
    async def step(i: Param) -> int:
        await gates[i].wait()
        return i * 10

    waiting: list[bool] = []

    @app.on_event("collect")
    async def collect(event: Event) -> list[Any]:  # type: ignore[type-arg]
        waiting.append(True)  # no suspension point between here and the wait itself
        return await event.wait_event_done("step {i:int}", n=2)

    ctx = EventContext(app, "conn")  # a context held by someone else (a connection)
    ctx.hold()
    waiter = app.trigger_event("collect", cid="conn")
    assert await spin(lambda: bool(waiting))  # collect is waiting, no step triggered yet
    assert not waiter.done()
    app.trigger_event("step 0", cid="conn")
    app.trigger_event("step 1", cid="conn")
    gates[1].set()
    gates[0].set()
    # Woken by the events themselves: a few loop turns, not tiny-listener's 0.5 s poll.
    assert await spin(waiter.done, turns=30)
    assert waiter.result() == [0, 10]  # trigger order
    ctx.release()
    assert await app.background.join(5)
    assert app.ctxs == {}


async def test_wait_event_done_with_more_events_than_n_takes_the_first_n(app: App) -> None:
    @app.on_event("item {i:int}")
    async def item(i: Param) -> int:
        return i

    @app.get("/w")
    async def w(ctx: HTTPContext, event: Event) -> list[Any]:  # type: ignore[type-arg]
        for i in range(3):
            ctx.trigger_event(f"item {i}")
        first_two = await event.wait_event_done("item {i:int}", n=2)
        everything = await event.wait_event_done("item 7", n=3)  # any name the route matches
        return [first_two, everything]

    assert (await call(app, "GET", "/w")).text == "[[0,1],[0,1,2]]"


async def test_wait_event_done_timeout_and_self_wait(app: App) -> None:
    @app.on_event("loop")
    async def loop_event(event: Event) -> None:  # type: ignore[type-arg]
        await event.wait_event_done("loop")

    @app.get("/t")
    async def t(event: Event) -> str:  # type: ignore[type-arg]
        try:
            await event.wait_event_done("loop", timeout=0.01)
        except asyncio.TimeoutError:
            return "timed out"
        return "no"

    assert (await call(app, "GET", "/t")).text == "timed out"
    caught: list[BaseException] = []

    @app.on_error(RuntimeError)
    async def keep(event: Event) -> None:  # type: ignore[type-arg]
        assert event.error is not None
        caught.append(event.error)

    await app.trigger_event("loop")
    assert "waiting for itself" in str(caught[0])


# -- 4. events outside any request -------------------------------------------------------------


async def test_app_trigger_event_runs_in_a_fresh_context_dropped_when_done(app: App) -> None:
    seen: list[Any] = []

    @app.on_event("tick")
    async def tick(ctx: HTTPContext, event: Event) -> str:  # type: ignore[type-arg]
        seen.append((ctx.cid, ctx.describe(), ctx.cid in app.ctxs, hasattr(ctx, "request")))
        return "tocked"

    assert await app.trigger_event("tick") == "tocked"
    loop = asyncio.get_running_loop()
    timer_fired: asyncio.Future[asyncio.Task[Any]] = loop.create_future()
    loop.call_soon(lambda: timer_fired.set_result(app.trigger_event("tick")))  # from a timer
    assert await (await timer_fired) == "tocked"
    assert [s[1:] for s in seen] == [("app.trigger_event", True, False)] * 2
    assert seen[0][0] != seen[1][0]
    assert app.ctxs == {}


async def test_app_trigger_event_in_a_live_context_by_cid(app: App) -> None:
    @app.on_event("note")
    async def note(ctx: HTTPContext) -> str:
        return ctx.cid

    ctx = EventContext(app, "mine")
    ctx.hold()
    assert await app.trigger_event("note", cid="mine") == "mine"
    assert app.ctxs == {"mine": ctx}  # still held by us
    ctx.release()
    assert app.ctxs == {}
    with pytest.raises(ContextNotFound):
        app.trigger_event("note", cid="mine")


def test_app_trigger_event_outside_a_loop_says_what_to_use(app: App) -> None:
    @app.on_event("x")
    async def x() -> None: ...

    with pytest.raises(RuntimeError, match="trigger_event_threadsafe"):
        app.trigger_event("x")
    assert app.ctxs == {}


def test_startup_callback_and_threads_trigger_events_through_the_test_client() -> None:
    app = App(access_log=False)
    done: list[str] = []

    @app.on_event("warm {what}")
    async def warm(what: Param, ctx: HTTPContext) -> str:
        done.append(f"{what} in {ctx.describe()}")
        return what.upper()

    @app.startup
    async def start() -> None:
        app.trigger_event("warm cache")  # not awaited: the startup goes on

    with pytest.raises(RuntimeError, match="not running"):
        app.trigger_event_threadsafe("warm x")
    with TestClient(app):
        results: list[Any] = []

        def worker() -> None:
            results.append(app.trigger_event_threadsafe("warm thread").result(timeout=10))
            missing = app.trigger_event_threadsafe("nope")
            results.append(type(missing.exception(timeout=10)))

        thread = threading.Thread(target=worker)
        thread.start()
        thread.join(timeout=20)
        assert results == ["THREAD", EventNotFound]
    assert sorted(done) == ["cache in app.trigger_event", "thread in app.trigger_event"]
    assert app.ctxs == {} and not app.background.tasks


# -- soaks: nothing held once idle -------------------------------------------------------------


def soak_app(events: weakref.WeakSet[TrackedEvent]) -> App:
    app = App(access_log=False)

    @app.on_event("bg {i:int}")
    async def bg(event: Event, i: Param) -> None:  # type: ignore[type-arg]
        events.add(event)  # type: ignore[arg-type]
        await asyncio.sleep(0)
        if i % 7 == 0:
            raise ValueError(f"every seventh fails ({i})")

    @app.on_error(ValueError)
    async def quiet(event: Event) -> None:  # type: ignore[type-arg]
        pass

    @app.get("/bg/{i:int}")
    async def handler(ctx: HTTPContext, i: Param) -> str:
        ctx.trigger_event(f"bg {i}")
        if i % 2:
            await ctx.trigger_event(f"bg {i + 1000}")
        return "ok"

    return app


SOAK_REQUESTS = 300


async def test_soak_through_the_async_test_client_leaves_nothing_held(
    asyncio_records: list[logging.LogRecord],
) -> None:
    events: weakref.WeakSet[TrackedEvent] = weakref.WeakSet()
    app = soak_app(events)
    async with AsyncTestClient(app) as client:
        for start in range(0, SOAK_REQUESTS, 50):
            responses = await asyncio.gather(*(client.get(f"/bg/{i}") for i in range(start, start + 50)))
            assert {r.status_code for r in responses} == {200}
        assert await app.background.join(10)
        assert app.ctxs == {}
        assert not app.background.tasks
        gc.collect()
        assert len(events) == 0, "events are still held"
    assert never_retrieved(asyncio_records) == []


def test_soak_through_the_test_client_is_drained_by_its_shutdown() -> None:
    events: weakref.WeakSet[TrackedEvent] = weakref.WeakSet()
    app = soak_app(events)
    with TestClient(app) as client:
        for i in range(SOAK_REQUESTS):
            assert client.get(f"/bg/{i}").status_code == 200
    assert app.ctxs == {} and not app.background.tasks
    gc.collect()
    assert len(events) == 0


def test_soak_through_a_real_server_leaves_nothing_held() -> None:
    with run_server("apps.events_app:app", env={"HUMP_ACCESS_LOG": "0"}) as server, httpx.Client(
        base_url=server.url, timeout=10
    ) as client:
        for i in range(SOAK_REQUESTS):
            assert client.post("/signup", params={"name": f"u{i}"}).text == "ok"
        assert client.post("/boom").text == "fired"
        stats: dict[str, int] = {}
        for _ in range(200):  # bounded: the background events finish within a few requests
            stats = client.get("/stats").json()
            if stats["tasks"] == 0 and stats["signups"] == SOAK_REQUESTS:
                break
        assert stats == {"ctxs": 0, "tasks": 0, "events_alive": 0, "signups": SOAK_REQUESTS}
        assert client.get("/signups").json()[0] == "u0 via POST /signup"
        server.wait_for_line(r"Exception in background event 'explode' \(fired by POST /boom\)")
        assert "never retrieved" not in server.output()


async def test_an_event_handler_that_cannot_be_injected_fails_on_its_first_trigger(app: App) -> None:
    from hump_listener import RouteDefinitionError

    @app.on_event("odd")
    async def odd(mystery: int) -> None: ...

    with pytest.raises(RouteDefinitionError, match="mystery"):
        app.trigger_event("odd")
    assert app.ctxs == {} and not app.background.tasks
