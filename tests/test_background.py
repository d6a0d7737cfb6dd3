"""background.py: ``BackgroundEvents`` driven directly (``app.background``): tasks kept
until done, errors reported once with ``None`` as the result, ``join`` / ``drain`` /
``cut``, and the messages for triggering wrongly. Background events through handlers
and the test clients are test_events.py's; the shutdown drain, test_lifecycle.py's."""

from __future__ import annotations

import asyncio
import logging

import pytest

from hump_listener import App, HTTPContext


@pytest.fixture
def release() -> asyncio.Event:
    return asyncio.Event()


@pytest.fixture
def app(release: asyncio.Event) -> App:
    app = App(access_log=False)

    @app.on_event("quick")
    async def quick() -> str:
        return "quick"

    @app.on_event("slow")
    async def slow() -> str:
        await release.wait()
        return "slow"

    @app.on_event("stuck")
    async def stuck() -> None:
        await asyncio.Event().wait()

    @app.on_event("fails")
    async def fails() -> None:
        raise ValueError("bad")

    @app.get("/http")
    async def http() -> str:
        return "an HTTP route"

    return app


def context(app: App) -> HTTPContext:
    return app.contexts.for_event()


def test_trigger_outside_a_loop_says_what_to_use(app: App) -> None:
    with pytest.raises(RuntimeError, match="needs a running event loop; from another thread use"):
        app.background.trigger("quick", context(app))


async def test_an_http_route_is_not_triggered(app: App) -> None:
    with pytest.raises(ValueError, match="is an HTTP route"):
        app.background.trigger("GET:/http", context(app))


async def test_a_task_is_kept_until_done_and_gives_the_result(app: App) -> None:
    background = app.background
    task = background.trigger("quick", context(app))
    assert task in background.tasks
    assert background.loop is asyncio.get_running_loop()
    assert await task == "quick"
    assert task not in background.tasks
    assert app.ctxs == {}  # its context was released and dropped


async def test_a_failure_is_logged_once_and_the_result_is_none(app: App, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="hump_listener.error"):
        result = await app.background.trigger("fails", context(app))
    assert result is None
    [record] = [r for r in caplog.records if "background event" in r.getMessage()]
    assert record.getMessage() == "Exception in background event 'fails' (fired by app.trigger_event)"
    assert record.exc_info is not None and record.exc_info[0] is ValueError


async def test_join_waits_for_running_events_or_times_out(app: App, release: asyncio.Event) -> None:
    background = app.background
    assert await background.join(0) is True  # nothing running
    task = background.trigger("slow", context(app))
    assert await background.join(0.01) is False
    release.set()
    assert await background.join() is True
    assert task.done()


async def test_drain_cancels_what_outlives_the_timeout_saying_how_many(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    background = app.background
    stuck = background.trigger("stuck", context(app))
    with caplog.at_level(logging.INFO, logger="hump_listener.error"):
        assert await background.drain(0.01, "test") == 1
    assert stuck.cancelled()
    assert "test: waiting up to 0.01 s for 1 background event(s)" in caplog.text
    assert "test: cancelling 1 background event(s) still running" in caplog.text
    assert await background.drain(0.01) == 0  # nothing left


async def test_cut_stops_a_drain_at_once_and_started_resets_it(app: App) -> None:
    background = app.background
    stuck = background.trigger("stuck", context(app))
    drain = asyncio.ensure_future(background.drain(60))
    for _ in range(10):
        await asyncio.sleep(0)
    assert not drain.done()  # waiting for the stuck event
    background.cut()
    assert await drain == 1
    assert stuck.cancelled()
    background.started(asyncio.get_running_loop())
    other = background.trigger("slow", context(app))
    assert await background.join(0.01) is False  # joins again: the cut is over
    other.cancel()
    await asyncio.wait([other])


def test_trigger_threadsafe_needs_the_running_loop(app: App) -> None:
    with pytest.raises(RuntimeError, match="the app is not running"):
        app.background.trigger_threadsafe("quick")


async def test_beyond_the_limit_trigger_raises_at_once_and_a_request_gets_503(release: asyncio.Event) -> None:
    """Issue 18 item 8: nothing capped the tasks in flight behind a slow handler."""
    from framework_helpers import call

    from hump_listener.background import DEFAULT_MAX_BACKGROUND_EVENTS, BackgroundEventsFull

    app = App(access_log=False, max_background_events=2)
    assert App().background.limit == DEFAULT_MAX_BACKGROUND_EVENTS

    @app.on_event("slow")
    async def slow() -> str:
        await release.wait()
        return "slow"

    @app.get("/fire")
    async def fire(ctx: HTTPContext) -> str:
        ctx.trigger_event("slow")
        return "fired"

    assert (await call(app, "GET", "/fire")).text == "fired"
    running = [app.background.trigger("slow") for _ in range(1)]
    assert len(app.background.tasks) == 2
    with pytest.raises(BackgroundEventsFull, match=r"2 are already running \(App\(max_background_events=...\)\)"):
        app.background.trigger("slow")
    refused = await call(app, "GET", "/fire")
    assert (refused.status, refused.header("retry-after")) == (503, "1")
    assert len(app.background.tasks) == 2  # the refused ones left nothing behind
    assert app.ctxs.keys() == {"1", "event-2"}  # only the running events hold contexts
    release.set()
    assert await asyncio.gather(*running) == ["slow"]
    await app.background.join()
    assert app.ctxs == {}
    assert (await call(app, "GET", "/fire")).text == "fired"  # room again
    release.clear()


@pytest.mark.parametrize("limit", [0, -1, True, 1.5])
def test_the_limit_must_be_a_positive_integer(limit: object) -> None:
    with pytest.raises(ValueError, match="max_background_events must be a positive integer"):
        App(max_background_events=limit)  # type: ignore[arg-type]
