"""chain.py: ``compose`` on its own, with tiny steps and a bare context: the order of the
layers, what ``call_next`` returns for each kind of error below it, and the reply rule at
every layer (``replies.reconcile``). Through a whole app: test_app.py and test_replies.py."""

from __future__ import annotations

from typing import Any

import pytest

from hump_listener import App, HTTPContext, HTTPError, Response
from hump_listener.chain import compose
from hump_listener.endpoints import CallNext
from hump_listener.errors import ClientDisconnect
from hump_listener.models import Headers, Request


def bare_context() -> HTTPContext:
    ctx = HTTPContext(App(access_log=False), "1")
    ctx.request = Request("GET", "/x", b"/x", b"", "1.1", Headers([]))
    return ctx


def raising(exc: Exception) -> Any:
    async def step(ctx: HTTPContext) -> Response:
        raise exc

    return step


async def inner(ctx: HTTPContext) -> Response:
    return ctx.set_reply(Response("inner"))


async def test_no_middleware_is_the_inner_step_itself() -> None:
    assert compose([], inner) is inner


async def test_the_first_middleware_is_outermost() -> None:
    order: list[str] = []

    def named(name: str) -> Any:
        async def mw(ctx: HTTPContext, call_next: CallNext) -> Any:
            order.append(f"{name} in")
            response = await call_next()
            order.append(f"{name} out")
            return response

        return mw

    response = await compose([named("a"), named("b")], inner)(bare_context())
    assert response.body == b"inner"
    assert order == ["a in", "b in", "b out", "a out"]


async def test_returning_none_keeps_the_recorded_reply_and_a_value_replaces_it() -> None:
    async def passive(ctx: HTTPContext, call_next: CallNext) -> None:
        await call_next()

    async def replacing(ctx: HTTPContext, call_next: CallNext) -> str:
        await call_next()
        return "replaced"

    ctx = bare_context()
    assert (await compose([passive], inner)(ctx)).body == b"inner"
    ctx = bare_context()
    response = await compose([replacing], inner)(ctx)
    assert response.body == b"replaced"
    assert ctx.reply is response  # recorded in place of the inner one


async def test_an_http_error_below_is_the_response_call_next_returns() -> None:
    seen: list[int] = []

    async def mw(ctx: HTTPContext, call_next: CallNext) -> Response:
        response: Response = await call_next()
        seen.append(response.status)
        return response

    response = await compose([mw], raising(HTTPError(418)))(bare_context())
    assert seen == [418]
    assert response.status == 418


async def test_a_client_disconnect_passes_through_every_layer() -> None:
    async def mw(ctx: HTTPContext, call_next: CallNext) -> Any:
        return await call_next()

    async def on_error(ctx: HTTPContext, exc: Exception) -> Response:
        raise AssertionError("a disconnect is not an error to answer")

    with pytest.raises(ClientDisconnect):
        await compose([mw], raising(ClientDisconnect()), on_error)(bare_context())


async def test_other_errors_go_to_on_error_when_the_chain_has_one() -> None:
    handled: list[Exception] = []

    async def on_error(ctx: HTTPContext, exc: Exception) -> Response:
        handled.append(exc)
        return Response("Internal Server Error", 500)

    async def mw(ctx: HTTPContext, call_next: CallNext) -> Any:
        response = await call_next()
        response.headers["X-Seen"] = "1"
        return response

    boom = RuntimeError("boom")
    response = await compose([mw], raising(boom), on_error)(bare_context())
    assert handled == [boom]
    assert (response.status, response.headers.get("x-seen")) == (500, "1")


async def test_without_on_error_the_middleware_sees_the_exception_and_may_catch_it() -> None:
    async def catching(ctx: HTTPContext, call_next: CallNext) -> Any:
        try:
            return await call_next()
        except LookupError as exc:
            return Response(f"caught {exc!r}", 503)

    response = await compose([catching], raising(KeyError("k")))(bare_context())
    assert (response.status, response.body) == (503, b"caught KeyError('k')")

    async def passing(ctx: HTTPContext, call_next: CallNext) -> Any:
        return await call_next()

    with pytest.raises(KeyError):
        await compose([passing], raising(KeyError("k")))(bare_context())
