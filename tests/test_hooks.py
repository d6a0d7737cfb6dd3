"""hooks.py: ``Hooks``, the one hook runner every kind of event uses (requests, WebSocket
connections, background events): before/after in order, and the one "on_error hooks,
else log" path (``report``) with its request-only ``answered`` rule."""

from __future__ import annotations

import logging

import pytest

from hump_listener import App, HTTPContext, HTTPError
from hump_listener.hooks import Hooks


@pytest.fixture
def app() -> App:
    app = App(access_log=False)

    @app.on_event("tick")
    async def tick() -> None: ...

    return app


def an_event(app: App) -> tuple[HTTPContext, object]:
    ctx = app.contexts.for_event()
    route, _ = app.match_route("tick")
    return ctx, ctx.new_event(route, {})


def test_the_app_hands_its_hook_lists_to_one_runner(app: App) -> None:
    assert isinstance(app.hooks, Hooks)
    assert app.request_path.hooks is app.hooks and app.background.hooks is app.hooks

    @app.before_event
    async def before() -> None: ...

    assert len(app.hooks.before) == 1  # tiny-listener's decorator filled the live list


async def test_before_and_after_run_in_order_with_the_event(app: App) -> None:
    seen: list[str] = []

    @app.before_event
    async def first(ctx: HTTPContext) -> None:
        seen.append(f"before 1 {ctx.cid}")

    @app.before_event
    async def second() -> None:
        seen.append("before 2")

    @app.after_event
    async def after() -> None:
        seen.append("after")

    ctx, event = an_event(app)
    await app.hooks.run_before(event)  # type: ignore[arg-type]
    await app.hooks.run_after(event)  # type: ignore[arg-type]
    assert seen == [f"before 1 {ctx.cid}", "before 2", "after"]


async def test_report_without_a_hook_logs_the_traceback_once(app: App, caplog: pytest.LogCaptureFixture) -> None:
    _, event = an_event(app)
    with caplog.at_level(logging.ERROR, logger="hump_listener.error"):
        await app.hooks.report(event, ValueError("bad"), "background event 'tick'")  # type: ignore[arg-type]
    [record] = caplog.records
    assert record.getMessage() == "Exception in background event 'tick'"
    assert record.exc_info is not None and isinstance(record.exc_info[1], ValueError)


async def test_report_runs_the_matching_hooks_and_a_failing_one_does_not_stop_the_next(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    @app.on_error(KeyError)
    async def not_this() -> None:
        seen.append("KeyError hook")

    @app.on_error(ValueError)
    async def broken() -> None:
        raise RuntimeError("the hook itself failed")

    @app.on_error(Exception)
    async def catch_all(ctx: HTTPContext) -> None:
        seen.append("Exception hook")

    _, event = an_event(app)
    exc = ValueError("bad")
    with caplog.at_level(logging.ERROR, logger="hump_listener.error"):
        await app.hooks.report(event, exc, "somewhere")  # type: ignore[arg-type]
    assert seen == ["Exception hook"]
    assert event.error is exc  # type: ignore[attr-defined]
    [record] = caplog.records  # the failing hook, not the handled error
    assert record.getMessage().startswith("on_error hook") and "failed handling ValueError('bad') in somewhere" in (
        record.getMessage()
    )


async def test_a_request_not_answered_by_its_hooks_is_logged_too(app: App, caplog: pytest.LogCaptureFixture) -> None:
    @app.on_error(ValueError)
    async def looks_only() -> None: ...

    _, event = an_event(app)
    with caplog.at_level(logging.ERROR, logger="hump_listener.error"):
        await app.hooks.report(event, ValueError("bad"), "handler x", answered=lambda: False)  # type: ignore[arg-type]
        await app.hooks.report(event, ValueError("bad"), "handler y", answered=lambda: True)  # type: ignore[arg-type]
    assert [r.getMessage() for r in caplog.records] == ["Exception in handler x"]


async def test_a_hooks_http_error_answers_a_request_but_is_logged_for_an_event(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    @app.on_error(ValueError)
    async def answers() -> None:
        raise HTTPError(409, "conflict")

    _, event = an_event(app)
    with pytest.raises(HTTPError) as raised:
        await app.hooks.report(event, ValueError("bad"), "handler", answered=lambda: False)  # type: ignore[arg-type]
    assert raised.value.status == 409
    with caplog.at_level(logging.ERROR, logger="hump_listener.error"):
        await app.hooks.report(event, ValueError("bad"), "background event")  # type: ignore[arg-type]
    assert "on_error hook" in caplog.text and "HTTPError" in caplog.text
