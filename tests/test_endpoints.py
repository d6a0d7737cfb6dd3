"""endpoints.py on its own: ``build_plan`` reads a signature once and refuses at
registration what it cannot inject; ``call_plan`` injects by the plan; ``Endpoint`` is a
tiny-listener ``Route`` matched by our template; ``PlannedHook``, ``check_middleware``,
``run_in_pool``. Through an app: test_app.py, test_app_routes.py, test_sync_handlers.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tiny_listener import Data, Depends, Event, Param, PathParamsError

from hump_listener import App, Headers, HTTPContext, Request, WebSocket
from hump_listener.endpoints import (
    Endpoint,
    PlannedHook,
    build_plan,
    call_plan,
    check_middleware,
    is_sync_handler,
    run_in_pool,
)
from hump_listener.errors import RouteDefinitionError
from hump_listener.route_templates import Template


def context() -> HTTPContext:
    return HTTPContext(App(access_log=False), "1")


async def handler(ctx: HTTPContext, name: Param, *, flag: Data, event: Event) -> tuple[Any, ...]:  # type: ignore[type-arg]
    return ctx, name, flag, event


async def by_id(ctx: HTTPContext, id: Param) -> None: ...


async def no_params(ctx: HTTPContext) -> None: ...


def test_a_plan_is_a_tuple_of_steps_positional_or_keyword() -> None:
    plan = build_plan(handler, ["name"], "route 'GET:/u/{name}'")
    assert isinstance(plan, tuple) and len(plan) == 4
    assert [keyword for _, _, keyword in plan] == [None, None, "flag", "event"]


async def test_call_plan_injects_context_params_data_and_event() -> None:
    ctx = context()
    ctx.endpoint = Endpoint("GET:/u/{name}", "GET", Template.compile("/u/{name}"), handler)
    plan = build_plan(handler, ["name"], "route")
    event = ctx.new_event(ctx.endpoint, {"flag": True})
    got = await call_plan(handler, plan, ctx, {"name": "bob"}, event)
    assert got == (ctx, "bob", True, event)


async def test_missing_params_and_data_are_tiny_listeners_errors() -> None:
    async def wants(name: Param) -> None: ...

    with pytest.raises(PathParamsError, match="path param `name` is missing"):
        await call_plan(wants, build_plan(wants, None, "dependency"), context(), {})


async def test_depends_is_resolved_once_per_context() -> None:
    calls: list[int] = []

    async def dependency(ctx: HTTPContext) -> int:
        calls.append(1)
        return len(calls)

    dep = Depends(dependency)

    async def uses(a: int = dep, b: int = dep) -> tuple[int, int]:
        return a, b

    plan = build_plan(uses, [], "route")
    ctx = context()
    assert await call_plan(uses, plan, ctx, {}) == (1, 1)
    assert await call_plan(uses, plan, ctx, {}) == (1, 1)  # cached in ctx.cache
    assert await call_plan(uses, plan, context(), {}) == (2, 2)  # a new context: resolved again


def test_parameters_with_a_default_are_left_to_python() -> None:
    async def with_default(ctx: HTTPContext, limit: int = 10) -> None: ...

    assert len(build_plan(with_default, [], "route")) == 1


@pytest.mark.parametrize(
    ("fn_source", "message"),
    [
        ("async def f(x): ...", "cannot inject parameter 'x'"),
        ("async def f(name: Param): ...", "asks for path parameter 'name', but the route has none"),
        ("def f(ctx: HTTPContext): ...", "must be an `async def` function"),
        ("async def f(ctx: 'Nope'): ...", "cannot resolve the annotations"),
    ],
)
def test_what_cannot_be_injected_is_refused_at_registration(fn_source: str, message: str) -> None:
    namespace: dict[str, Any] = {"Param": Param, "HTTPContext": HTTPContext}
    exec(fn_source, namespace)
    with pytest.raises(RouteDefinitionError, match=message) as info:
        build_plan(namespace["f"], [], "route 'GET:/x'")
    assert "route 'GET:/x'" in str(info.value)


def test_an_object_with_an_async_call_is_refused() -> None:
    class Handler:
        async def __call__(self, ctx: HTTPContext) -> None: ...

    with pytest.raises(RouteDefinitionError, match="an object with an `async def __call__`"):
        build_plan(Handler(), [], "route", sync_ok=True)


def test_a_context_of_the_wrong_kind_is_refused_in_dependencies_too() -> None:
    async def dependency(ctx: HTTPContext) -> None: ...

    async def ws_handler(ws: WebSocket, d: None = Depends(dependency)) -> None: ...

    wrong_kind = "asks for ctx: HTTPContext, but this route's handler gets a WebSocket"
    with pytest.raises(RouteDefinitionError, match=wrong_kind):
        build_plan(ws_handler, [], "route 'WS:/ws'", WebSocket)


def test_is_sync_handler() -> None:
    def plain() -> None: ...

    assert is_sync_handler(plain)
    assert not is_sync_handler(handler)


async def test_run_in_pool_keeps_the_name_and_refuses_a_returned_awaitable() -> None:
    async def run_sync(fn: Any, args: Any, kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    def add(a: int, b: int) -> int:
        return a + b

    stand_in = run_in_pool(add, run_sync, "route")
    assert stand_in.__name__ == "add" and asyncio.iscoroutinefunction(stand_in)
    assert await stand_in(1, b=2) == 3

    async def coro() -> None: ...

    def returns_a_coroutine() -> Any:
        return coro()

    with pytest.raises(TypeError, match="returned an awaitable; declare it `async def`"):
        await run_in_pool(returns_a_coroutine, run_sync, "route")()


def test_check_middleware_refuses_a_sync_function() -> None:
    def sync_mw(ctx: HTTPContext, call_next: Any) -> Any: ...

    with pytest.raises(TypeError, match="must be an `async def` function"):
        check_middleware(sync_mw, "app.middleware")

    async def async_mw(ctx: HTTPContext, call_next: Any) -> Any: ...

    check_middleware(async_mw, "app.middleware")  # accepted


async def test_planned_hook_injects_the_events_context() -> None:
    seen: list[Any] = []

    async def hook(ctx: HTTPContext, event: Event) -> None:  # type: ignore[type-arg]
        seen.append((ctx, event))

    planned = PlannedHook(hook, "before_event")
    assert repr(planned).startswith("PlannedHook(") and "hook" in repr(planned)
    ctx = context()
    ctx.endpoint = Endpoint("GET:/x", "GET", Template.compile("/x"), no_params)
    await planned(ctx.event, {})
    assert seen == [(ctx, ctx.event)]


def test_an_endpoint_matches_event_names_as_the_router_would() -> None:
    endpoint = Endpoint("GET:/u/{id:int}", "GET", Template.compile("/u/{id:int}"), by_id)
    assert endpoint.param_names == ("id",)
    assert (endpoint.method, endpoint.route_path, endpoint.event_name) == ("GET", "/u/{id:int}", "GET:/u/{id:int}")
    assert endpoint.match("GET:/u/7") == {"id": 7}
    assert endpoint.match("HEAD:/u/7") == {"id": 7}  # HEAD is served by GET
    assert endpoint.match("POST:/u/7") is None
    assert endpoint.match("user.created") is None  # a plain event name
    assert endpoint.match("GET:bad") is None  # a malformed one never raises here
    assert repr(endpoint) == f"Endpoint('GET:/u/{{id:int}}' -> {endpoint.qualname})"
    assert endpoint.role == f"handler {endpoint.qualname}"


def test_the_fallback_endpoint_has_no_template_and_answers_every_http_event() -> None:
    async def fallback(ctx: HTTPContext, _: Param) -> None: ...

    endpoint = Endpoint("{_:path}", "*", None, fallback)
    assert (endpoint.template, endpoint.param_names, endpoint.route_path) == (None, ("_",), "/{_:path}")
    assert endpoint.match("DELETE:/any/where") == {"_": "/any/where"}


async def test_a_request_annotation_gets_the_contexts_request() -> None:
    """Hump's habit (issue 22 item 2): ``async def index(request: Request)``."""
    async def index(request: Request, *, again: Request) -> tuple[Request, Request]:
        return request, again

    plan = build_plan(index, (), "route")
    ctx = context()
    ctx.request = Request("GET", "/", b"/", b"", "1.1", Headers())
    assert await call_plan(index, plan, ctx, {}) == (ctx.request, ctx.request)


def test_check_middleware_refuses_what_cannot_take_ctx_and_call_next() -> None:
    async def one(next: Any) -> Any: ...

    async def three(ctx: Any, call_next: Any, extra: Any) -> Any: ...

    async def flexible(*args: Any) -> Any: ...

    class Wrapping:
        async def __call__(self, ctx: Any, call_next: Any) -> Any: ...

    for bad in (one, three):
        with pytest.raises(TypeError, match=r"cannot be called as mw\(ctx, call_next\)"):
            check_middleware(bad, "app.middleware")
    with pytest.raises(TypeError, match="must be callable"):
        check_middleware("auth", "app.middleware")
    check_middleware(flexible, "app.middleware")
    check_middleware(Wrapping(), "app.middleware")
