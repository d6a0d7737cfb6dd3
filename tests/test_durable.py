"""durable.py: the durable events' API, engine and in-process queue, without Redis.

Declared on the handler, refused where it makes no sense (at registration, naming the
route); triggering checks its arguments and the JSON of ``data=`` at the call; the event
runs in a fresh context with its id and attempt; keys, delays, retries with backoff, dead
letters, ``on_error`` hooks and requeueing; the test client's ``with`` block waiting for
durable events; the drain's counts. Redis Streams are test_durable_redis.py's; crashes of
real worker processes, test_durable_kill.py's."""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
from typing import Any

import pytest
from tiny_listener import Data, Event, Param

from hump_listener import App, HTTPContext, RouteDefinitionError
from hump_listener.durable import (
    DEFAULT_ATTEMPTS,
    DEFAULT_BACKOFF,
    DEFAULT_BACKOFF_MAX,
    DEFAULT_CONCURRENCY,
    DEFAULT_KEY_RETENTION,
    DEFAULT_TIMEOUT,
    DEFAULT_VISIBILITY_TIMEOUT,
    Delivery,
    Durable,
    DurableEvent,
    DurableEvents,
    MemoryQueue,
    WorkerLost,
    decode,
    encode,
)
from hump_listener.testing import AsyncTestClient, TestClient

#: The loop clock's resolution: uvloop's ``loop.time()`` counts whole milliseconds, so a
#: difference of two readings can fall short of the delay by up to one.
TICK = 0.001

# -- the policy ------------------------------------------------------------------------------


def test_the_documented_defaults() -> None:
    assert (DEFAULT_ATTEMPTS, DEFAULT_BACKOFF, DEFAULT_BACKOFF_MAX, DEFAULT_TIMEOUT) == (5, 2.0, 300.0, 300.0)
    assert (DEFAULT_VISIBILITY_TIMEOUT, DEFAULT_CONCURRENCY, DEFAULT_KEY_RETENTION) == (30.0, 10, 3600.0)
    assert Durable() == Durable(attempts=5, backoff=2.0, backoff_max=300.0, timeout=300.0)


def test_the_backoff_doubles_up_to_its_cap() -> None:
    assert [Durable().retry_delay(n) for n in range(1, 5)] == [2.0, 4.0, 8.0, 16.0]
    assert [Durable(backoff=100, backoff_max=250).retry_delay(n) for n in (1, 2, 3, 9)] == [100, 200, 250, 250]
    assert Durable(backoff=0).retry_delay(3) == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"attempts": 0}, r"attempts=\.\.\.\) must be an integer of at least 1, got 0"),
        ({"attempts": True}, "attempts"),
        ({"backoff": -1}, r"backoff=\.\.\.\) must be a number of seconds, 0 or more, got -1"),
        ({"backoff_max": math.inf}, "backoff_max"),
        ({"timeout": 0}, r"timeout=\.\.\.\) must be a positive number of seconds, got 0"),
    ],
)
def test_a_bad_policy_fails_where_it_is_written(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Durable(**kwargs)


# -- registration ----------------------------------------------------------------------------


def test_durable_true_or_a_policy_makes_an_event_durable() -> None:
    app = App()

    @app.on_event("plain")
    async def plain() -> None: ...

    @app.on_event("resize {image_id}", durable=True)
    async def resize(image_id: Param) -> None: ...

    @app.on_event("mail", durable=Durable(attempts=2))
    async def mail() -> None: ...

    @app.on_event("not durable", durable=False)
    async def not_durable() -> None: ...

    assert [app.durable.handles(app.routes[name]) for name in ("plain", "resize {image_id}", "mail", "not durable")] \
        == [False, True, True, False]


@pytest.mark.parametrize("path", ["GET:/x", "WS:/ws", None])
def test_durable_on_an_http_route_or_the_fallback_is_refused(path: str | None) -> None:
    app = App()
    with pytest.raises(RouteDefinitionError, match="durable= is for named events fired with trigger_event"):
        app.on_event(*([path] if path else []), durable=True)(_noop)
    assert app.routes == {}


async def _noop() -> None: ...


def test_a_handler_that_cannot_be_injected_fails_at_registration_and_registers_nothing() -> None:
    app = App()

    async def wrong(image: Param) -> None: ...

    with pytest.raises(RouteDefinitionError, match=r"durable event 'resize \{image_id\}'.*'image'"):
        app.on_event("resize {image_id}", durable=True)(wrong)
    with pytest.raises(RouteDefinitionError, match="durable= takes True or a Durable"):
        app.on_event("x", durable="yes")(_noop)
    assert "resize {image_id}" not in app.routes and "x" not in app.routes


# -- triggering --------------------------------------------------------------------------------


def durable_app(**configure: Any) -> tuple[App, list[DurableEvent]]:
    """An app whose ``record {n:int}`` event records the events it ran as."""
    app = App(access_log=False)
    if configure:
        app.durable.configure(**configure)
    ran: list[DurableEvent] = []

    @app.on_event("record {n:int}", durable=True)
    async def record(event: DurableEvent, n: Param, ctx: HTTPContext) -> int:
        ran.append(event)
        return n

    return app, ran


def test_a_durable_event_runs_in_a_fresh_context_with_its_id_and_attempt() -> None:
    app, _ran = durable_app()
    seen: dict[str, Any] = {}

    @app.on_event("resize {w:int}", durable=True)
    async def resize(event: DurableEvent, ctx: HTTPContext, w: Param, name: Data) -> None:
        seen.update(id=event.id, attempt=event.attempt, attempts=event.attempts, key=event.key, w=w, name=name,
                    ctx=ctx, has_request=hasattr(ctx, "request"), last=event.last_attempt, event_name=event.name)

    @app.post("/resize")
    async def post(ctx: HTTPContext) -> dict[str, Any]:
        seen["request_ctx"] = ctx
        event_id = await ctx.trigger_event("resize 640", data={"name": "cat.png"})
        return {"id": event_id}

    with TestClient(app) as client:
        answer = client.post("/resize").json()
    assert seen["id"] == answer["id"] and len(answer["id"]) == 32
    assert (seen["attempt"], seen["attempts"], seen["key"], seen["last"]) == (1, 5, None, False)
    assert (seen["w"], seen["name"], seen["event_name"]) == (640, "cat.png", "resize 640")  # Param converted
    assert seen["ctx"] is not seen["request_ctx"] and not seen["has_request"]  # fresh, never the request's
    assert app.ctxs == {}  # and dropped when done


def test_leaving_the_with_block_waits_for_durable_events_not_awaited() -> None:
    app, ran = durable_app()

    @app.post("/fire")
    async def fire(ctx: HTTPContext) -> str:
        for n in range(3):
            ctx.trigger_event(f"record {n}")  # not awaited
        return "fired"

    with TestClient(app) as client:
        assert client.post("/fire").text == "fired"
    assert sorted(event.data == {} and event.name for event in ran) == ["record 0", "record 1", "record 2"]


def test_app_trigger_event_and_the_threadsafe_one_give_the_id() -> None:
    app, ran = durable_app()
    with TestClient(app):
        event_id = app.trigger_event_threadsafe("record 7").result(timeout=10)
    assert [event.id for event in ran] == [event_id]


async def test_await_app_trigger_event_gives_the_id() -> None:
    app, ran = durable_app()
    async with AsyncTestClient(app):
        event_id = await app.trigger_event("record 1")
        assert isinstance(event_id, str)
    assert [event.id for event in ran] == [event_id]


async def test_data_must_be_json_checked_when_triggered() -> None:
    app, ran = durable_app()
    async with AsyncTestClient(app):
        with pytest.raises(TypeError, match=r"durable event 'record 1': data= must be JSON-serialisable.*bytes"):
            app.trigger_event("record 1", data={"blob": b"\x00"})
        with pytest.raises(TypeError, match="JSON-serialisable"):
            app.trigger_event("record 1", data={"x": math.nan})
        with pytest.raises(TypeError, match="data= must be a dict with str keys"):
            app.trigger_event("record 1", data={1: "one"})  # type: ignore[dict-item]
    assert ran == []


async def test_data_comes_back_as_json_gives_it() -> None:
    app = App()
    got: list[Any] = []

    @app.on_event("keep", durable=True)
    async def keep(pair: Data, nested: Data) -> None:
        got.append((pair, nested))

    async with AsyncTestClient(app):
        await app.trigger_event("keep", data={"pair": (1, 2), "nested": {"é": [None, True, 1.5]}})
    assert got == [([1, 2], {"é": [None, True, 1.5]})]


async def test_key_and_delay_are_for_durable_events_only() -> None:
    app, _ = durable_app()

    @app.on_event("plain")
    async def plain() -> None: ...

    async with AsyncTestClient(app):
        with pytest.raises(ValueError, match=r"event 'plain' is not durable: key= and delay="):
            app.trigger_event("plain", key="k")
        with pytest.raises(ValueError, match="not durable"):
            app.trigger_event("plain", delay=1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"key": ""}, "key must be a non-empty string"),
        ({"delay": -1}, "delay must be a number of seconds, 0 or more"),
        ({"delay": math.nan}, "delay"),
        ({"timeout": 0}, "timeout must be a positive number of seconds"),
    ],
)
async def test_bad_trigger_arguments_fail_at_the_call(kwargs: dict[str, Any], message: str) -> None:
    app, _ = durable_app()
    async with AsyncTestClient(app):
        with pytest.raises(ValueError, match=message):
            app.trigger_event("record 1", **kwargs)


async def test_triggering_before_the_app_started_says_what_is_missing() -> None:
    app, _ = durable_app()
    with pytest.raises(RuntimeError, match="the app has not started"):
        app.trigger_event("record 1")
    with pytest.raises(RuntimeError, match="has not started"):
        await app.durable.stats()


async def test_an_app_without_durable_events_starts_no_queue(caplog: pytest.LogCaptureFixture) -> None:
    app = App()
    async with AsyncTestClient(app):
        with pytest.raises(RuntimeError, match="no durable event"):
            await app.durable.dead_letters()
    assert "Durable events" not in caplog.text


async def test_the_in_process_queue_says_once_at_start_that_it_is_not_durable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, _ = durable_app()
    with caplog.at_level(logging.INFO, logger="hump_listener.error"):
        async with AsyncTestClient(app):
            await app.trigger_event("record 1")
            await app.trigger_event("record 2")
    lines = [r.getMessage() for r in caplog.records if "NOT durable" in r.getMessage()]
    assert len(lines) == 1 and "lost" in lines[0] and "HUMP_BROADCAST_URL=redis://" in lines[0]


# -- idempotency keys ----------------------------------------------------------------------------


async def test_a_key_queues_one_event_while_it_is_known() -> None:
    app, ran = durable_app()
    async with AsyncTestClient(app):
        first = await app.trigger_event("record 1", key="order-17")
        again = await app.trigger_event("record 2", key="order-17")  # a retried request
        other = await app.trigger_event("record 3", key="order-18")
    assert first == again != other
    assert sorted(event.name for event in ran) == ["record 1", "record 3"]
    assert {event.key for event in ran} == {"order-17", "order-18"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_key_is_forgotten_key_retention_after_its_event_finished() -> None:
    clock = Clock()
    queue = MemoryQueue(key_retention=60, clock=clock)
    first = message("a", key="k")
    assert await queue.enqueue(first, encode(first), 0) == "a"
    assert await queue.enqueue(message("b", key="k"), encode(message("b", key="k")), 0) == "a"  # queued
    [delivery] = await queue.fetch(10)
    assert await queue.enqueue(message("c", key="k"), encode(message("c", key="k")), 0) == "a"  # running
    await queue.ack(delivery)
    clock.now += 59
    assert await queue.enqueue(message("d", key="k"), encode(message("d", key="k")), 0) == "a"  # retained
    clock.now += 2
    assert await queue.enqueue(message("e", key="k"), encode(message("e", key="k")), 0) == "e"  # forgotten


def message(event_id: str, name: str = "record 1", attempt: int = 1, **extra: Any) -> dict[str, Any]:
    return {"id": event_id, "name": name, "data": {}, "attempt": attempt, **extra}


# -- delays ----------------------------------------------------------------------------------------


async def test_a_delayed_event_runs_no_earlier_than_asked() -> None:
    app = App()
    started: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    @app.on_event("later", durable=True)
    async def later() -> None:
        started.set_result(asyncio.get_running_loop().time())

    async with AsyncTestClient(app):
        before = asyncio.get_running_loop().time()
        await app.trigger_event("later", delay=0.2)
        stats = await app.durable.stats()
        assert (stats["delayed"], stats["queued"], stats["pending"]) == (1, 0, 1)
        assert await asyncio.wait_for(started, 10) - before >= 0.2 - TICK


async def test_the_in_process_queue_hands_out_delayed_events_by_its_clock() -> None:
    clock = Clock()
    queue = MemoryQueue(clock=clock)
    soon, later = message("soon"), message("later")
    await queue.enqueue(later, encode(later), 30)
    await queue.enqueue(soon, encode(soon), 10)
    assert queue.pending == 2
    fetching = asyncio.ensure_future(queue.fetch(10))
    await asyncio.sleep(0)
    assert not fetching.done()
    clock.now += 10
    queue.wake()
    assert [d.message["id"] for d in await asyncio.wait_for(fetching, 10)] == ["soon"]
    clock.now += 20
    assert [d.message["id"] for d in await queue.fetch(10)] == ["later"]


# -- retries, dead letters, on_error -----------------------------------------------------------------


async def test_a_failing_event_is_retried_with_backoff_then_dead_lettered_and_reported() -> None:
    app = App()
    attempts: list[tuple[int, float]] = []
    reported: list[tuple[str, int, str]] = []
    fixed = False
    loop = asyncio.get_running_loop()

    @app.on_event("charge {order}", durable=Durable(attempts=3, backoff=0.05))
    async def charge(event: DurableEvent, order: Param) -> None:
        attempts.append((event.attempt, loop.time()))
        if not fixed:
            raise ValueError(f"card declined for {order}")

    @app.on_error(ValueError)
    async def on_value_error(event: Event) -> None:
        assert isinstance(event, DurableEvent)
        reported.append((event.id, event.attempt, str(event.error)))

    async with AsyncTestClient(app):
        event_id = await app.trigger_event("charge 17", data={"cents": 500})
        letters = await wait_for_dead(app, 1)
        assert [n for n, _ in attempts] == [1, 2, 3]
        gaps = [b - a for (_, a), (_, b) in itertools.pairwise(attempts)]
        assert gaps[0] >= 0.05 - TICK and gaps[1] >= 0.1 - TICK  # 0.05 s, then doubled
        assert reported == [(event_id, 3, "card declined for 17")]  # once, after the last attempt
        [letter] = letters
        assert (letter.id, letter.name, letter.data, letter.attempts) == (event_id, "charge 17", {"cents": 500}, 3)
        assert letter.error == "ValueError: card declined for 17"
        assert "raise ValueError" in letter.traceback and letter.failed_at > 0
        assert (await app.durable.stats())["dead"] == 1

        fixed = True
        assert await app.durable.requeue([event_id]) == 1
        await wait_until(lambda: len(attempts) == 4)
        assert attempts[-1][0] == 1  # attempts counted afresh
        assert await app.durable.dead_letters() == []
        assert await app.durable.requeue() == 0


async def wait_for_dead(app: App, n: int) -> list[Any]:
    for _ in range(1000):
        letters = await app.durable.dead_letters()
        if len(letters) >= n:
            return letters
        await asyncio.sleep(0.01)
    raise AssertionError(f"fewer than {n} dead letters")


async def wait_until(ok: Any) -> None:
    for _ in range(1000):
        if ok():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met")


async def test_without_on_error_hooks_the_last_failure_is_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    app = App()

    @app.on_event("once", durable=Durable(attempts=1))
    async def once() -> None:
        raise KeyError("gone")

    async with AsyncTestClient(app):
        event_id = await app.trigger_event("once")
        await wait_for_dead(app, 1)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].getMessage() == (
        f"Exception in durable event 'once' ({event_id}), which failed its last attempt (1) "
        "and went to the dead letters"
    )
    assert errors[0].exc_info is not None and errors[0].exc_info[0] is KeyError


async def test_a_run_past_its_timeout_is_a_failed_attempt() -> None:
    app = App()

    @app.on_event("hang", durable=Durable(attempts=1, timeout=0.05))
    async def hang() -> None:
        await asyncio.Event().wait()

    async with AsyncTestClient(app):
        await app.trigger_event("hang")
        await app.trigger_event("hang", timeout=0.01)  # per event
        letters = await wait_for_dead(app, 2)
    assert {letter.error.split(":")[0] for letter in letters} == {"TimeoutError"}


async def test_an_event_whose_worker_died_in_every_attempt_is_dead_lettered_as_worker_lost() -> None:
    app, ran = durable_app()
    reported: list[Exception | None] = []

    @app.on_error(WorkerLost)
    async def lost(event: Event) -> None:
        reported.append(event.error)

    async with AsyncTestClient(app):
        queue = app.durable._queue
        assert isinstance(queue, MemoryQueue)
        poisoned = message("p" * 32, attempt=DEFAULT_ATTEMPTS + 1)  # as a claim would count it
        await queue.enqueue(poisoned, encode(poisoned), 0)
        [letter] = await wait_for_dead(app, 1)
    assert ran == []
    assert letter.error.startswith("WorkerLost: its worker stopped") and letter.attempts == DEFAULT_ATTEMPTS + 1
    assert len(reported) == 1 and isinstance(reported[0], WorkerLost)


async def test_an_event_this_app_does_not_have_is_retried_then_dead_lettered() -> None:
    app, _ = durable_app()
    async with AsyncTestClient(app):
        queue = app.durable._queue
        assert isinstance(queue, MemoryQueue)
        stranger = message("s" * 32, name="from another app", attempt=DEFAULT_ATTEMPTS)
        await queue.enqueue(stranger, encode(stranger), 0)
        [letter] = await wait_for_dead(app, 1)
    assert letter.error == "LookupError: no durable event 'from another app' is registered in this app"


async def test_hooks_run_around_durable_events_and_their_context_names_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = App()
    order: list[str] = []

    @app.before_event
    async def before(event: Event) -> None:
        order.append(f"before {event.name}")

    @app.after_event
    async def after(event: Event) -> None:
        order.append(f"after {event.name}")

    @app.on_event("outer", durable=True)
    async def outer(ctx: HTTPContext) -> None:
        order.append("outer")
        await ctx.trigger_event("inner")  # a background event of the durable one

    @app.on_event("inner")
    async def inner() -> None:
        raise RuntimeError("inner failed")

    async with AsyncTestClient(app):
        event_id = await app.trigger_event("outer")
    assert order[:3] == ["before outer", "outer", "before inner"]
    assert "after outer" in order
    assert f"Exception in background event 'inner' (fired by durable event {event_id})" in caplog.text


# -- workers and the drain -------------------------------------------------------------------------


async def test_concurrency_bounds_the_events_running_at_once() -> None:
    app = App()
    app.durable.configure(concurrency=2)
    release = asyncio.Event()
    running: list[int] = []
    done: list[int] = []
    most = 0

    @app.on_event("step {n:int}", durable=True)
    async def step(n: Param) -> None:
        nonlocal most
        running.append(n)
        most = max(most, len(running))
        await release.wait()
        running.remove(n)
        done.append(n)

    async with AsyncTestClient(app):
        for n in range(5):
            await app.trigger_event(f"step {n}")
        await wait_until(lambda: len(running) == 2)
        stats = await app.durable.stats()
        assert (stats["running"], stats["queued"], stats["pending"]) == (2, 3, 5)
        release.set()
        await wait_until(lambda: len(done) == 5)
        assert most == 2
        assert (await app.durable.stats())["pending"] == 0


async def test_the_consumer_survives_an_error_taking_events(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    app, ran = durable_app()
    fetch = MemoryQueue.fetch
    failures = [RuntimeError("the queue hiccuped")]

    async def flaky_fetch(self: MemoryQueue, n: int) -> list[Delivery]:
        if failures:
            raise failures.pop()
        return await fetch(self, n)

    monkeypatch.setattr(MemoryQueue, "fetch", flaky_fetch)
    async with AsyncTestClient(app):
        await app.trigger_event("record 1")
    assert [event.name for event in ran] == ["record 1"]
    assert "durable events: taking events failed (RuntimeError: the queue hiccuped): trying again in 0.1 s" in (
        caplog.text)


async def test_concurrency_zero_only_stores(caplog: pytest.LogCaptureFixture) -> None:
    app, ran = durable_app(concurrency=0)
    app.configure(shutdown_timeout=0.05)
    async with AsyncTestClient(app):
        await app.trigger_event("record 1")
        assert (await app.durable.stats())["queued"] == 1
    assert ran == []
    assert "shutdown: 1 durable event(s) lost (in-process queue, not durable)" in caplog.text


async def test_the_drain_runs_what_is_queued_then_says_what_it_lost(caplog: pytest.LogCaptureFixture) -> None:
    app = App(shutdown_timeout=0.2)
    app.durable.configure(concurrency=1)
    done: list[int] = []

    @app.on_event("quick {n:int}", durable=True)
    async def quick(n: Param) -> None:
        done.append(n)

    @app.on_event("stuck", durable=True)
    async def stuck() -> None:
        await asyncio.Event().wait()

    with caplog.at_level(logging.INFO, logger="hump_listener.error"):
        async with AsyncTestClient(app):
            for n in range(3):
                await app.trigger_event(f"quick {n}")
            await app.trigger_event("stuck")
            await app.trigger_event("quick 3")  # behind the stuck one: never runs
    assert done == [0, 1, 2]
    assert "shutdown: waiting up to 0.2 s for 5 durable event(s)" in caplog.text
    assert "shutdown: 2 durable event(s) lost (in-process queue, not durable)" in caplog.text


async def test_the_in_process_queue_hands_back_first_in_line_with_the_attempt_counted() -> None:
    queue = MemoryQueue()
    first, second = message("1"), message("2")
    await queue.enqueue(first, encode(first), 0)
    await queue.enqueue(second, encode(second), 0)
    [delivery] = await queue.fetch(1)
    await queue.release([delivery])
    out = await queue.fetch(10)
    assert [(d.message["id"], d.attempt) for d in out] == [("1", 2), ("2", 1)]
    assert queue.describe() == "memory://"
    await queue.close()
    assert queue.pending == 0


# -- configuration ------------------------------------------------------------------------------------


def test_the_url_is_the_broadcast_s_redis_unless_configured_apart() -> None:
    assert App().durable.url == "memory://"
    assert App(broadcast_url="memory://").durable.url == "memory://"
    app = App(broadcast_url="redis://127.0.0.1:6390/1")
    assert app.durable.url == "redis://127.0.0.1:6390/1"
    app.durable.configure(url="memory://")
    assert app.durable.url == "memory://"
    app.durable.configure(url="rediss://cache:6380/2")
    assert app.durable.url == "rediss://cache:6380/2"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": "http://x"}, "durable url must be memory:// or redis://host:port/db"),
        ({"concurrency": -1}, "concurrency must be an integer of at least 0"),
        ({"visibility_timeout": 0}, "visibility_timeout must be a positive number of seconds"),
        ({"key_retention": "1h"}, "key_retention"),
        ({"prefix": ""}, "prefix must be a non-empty string"),
    ],
)
def test_bad_settings_fail_where_they_are_written(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        App().durable.configure(**kwargs)


async def test_settings_cannot_change_once_started() -> None:
    app, _ = durable_app()
    async with AsyncTestClient(app):
        with pytest.raises(RuntimeError, match="must come before the app starts"):
            app.durable.configure(concurrency=3)


def test_the_wire_format_is_compact_json() -> None:
    msg = message("a" * 32, key="k")
    assert encode(msg) == '{"id":"' + "a" * 32 + '","name":"record 1","data":{},"attempt":1,"key":"k"}'
    assert decode(encode(msg).encode()) == msg
    assert repr(Delivery(msg, None, 2)) == f"Delivery('record 1', id={'a' * 32}, attempt=2)"
    assert isinstance(App().durable, DurableEvents)
