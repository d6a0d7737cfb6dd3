"""registration.py: ``RouteTable``, the object ``App`` composes to hold its routes, and
the decorators that fill it (and the hooks), method by method: the event name each
decorator registers, where it is filed (the router, the fallback, the plain events), what
is refused at registration, removal, and ``match_route``. Route templates in depth:
test_route_templates.py, test_app_routes.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from framework_helpers import call
from tiny_listener import EventNotFound

from hump_listener import App, HTTPContext, WebSocket
from hump_listener.endpoints import CallNext, Endpoint, PlannedHook
from hump_listener.errors import RouteDefinitionError
from hump_listener.registration import FALLBACK, RouteTable


@pytest.fixture
def app() -> App:
    return App(access_log=False)


async def ok() -> str:
    return "ok"


def test_app_registers_into_its_route_table(app: App) -> None:
    assert isinstance(app.route_table, RouteTable)
    assert app.route_table.by_name is app.routes  # tiny-listener's dict, kept complete
    app.get("/g")(ok)
    assert app.route_table.match("GET", "/g")[0] is app.routes["GET:/g"]


def test_each_decorator_registers_its_event_name(app: App) -> None:
    app.get("/g")(ok)
    app.post("/p")(ok)
    app.put("/u")(ok)
    app.patch("/a")(ok)
    app.delete("/d")(ok)
    app.route("/r", methods=["get", "Post"])(ok)
    app.on_event("* /any")(ok)
    assert list(app.routes) == ["GET:/g", "POST:/p", "PUT:/u", "PATCH:/a", "DELETE:/d", "GET:/r", "POST:/r", "* /any"]
    endpoint = app.routes["POST:/r"]
    assert isinstance(endpoint, Endpoint) and (endpoint.method, endpoint.route_path) == ("POST", "/r")


def test_a_decorator_returns_the_function_unchanged(app: App) -> None:
    assert app.get("/x")(ok) is ok
    assert app.route("/y", methods=["GET", "POST"])(ok) is ok


async def test_no_path_is_the_fallback_and_a_plain_name_a_tiny_listener_event(app: App) -> None:
    async def fallback(ctx: HTTPContext) -> str:
        return "fallback"

    app.on_event()(fallback)
    app.on_event("user.created")(ok)
    assert app.route_table.fallback is app.routes[FALLBACK]
    assert [route.path for route in app.route_table.plain_routes] == ["user.created"]
    assert not isinstance(app.routes["user.created"], Endpoint)
    assert (await call(app, "GET", "/nowhere")).text == "fallback"


def test_a_duplicate_event_name_is_refused(app: App) -> None:
    app.get("/x")(ok)
    with pytest.raises(RouteDefinitionError, match="event 'GET:/x' is already registered"):
        app.get("/x")(ok)


def test_websocket_routes_need_async_handlers_and_no_http_middleware(app: App) -> None:
    async def chat(ws: WebSocket) -> None: ...

    assert not app.route_table.websocket_routes
    app.websocket("/ws")(chat)
    assert "WS:/ws" in app.routes and app.route_table.websocket_routes

    def sync_chat(ws: WebSocket) -> None: ...

    with pytest.raises(RouteDefinitionError, match="a WebSocket handler must be an `async def` function"):
        app.websocket("/ws2")(sync_chat)

    async def mw(ctx: HTTPContext, call_next: CallNext) -> Any:
        return await call_next()

    with pytest.raises(RouteDefinitionError, match=r"HTTP middleware .* cannot wrap a WebSocket"):
        app.websocket("/ws3", middleware=[mw])(chat)


async def test_set_context_cls_takes_only_http_contexts(app: App) -> None:
    class MyContext(HTTPContext):
        pass

    with pytest.raises(TypeError, match="must subclass HTTPContext"):
        app.set_context_cls(object)
    app.set_context_cls(MyContext)

    @app.get("/kind")
    async def kind(ctx: HTTPContext) -> str:
        return type(ctx).__name__

    assert (await call(app, "GET", "/kind")).text == "MyContext"


def test_hooks_are_planned_once_and_sync_ones_refused(app: App) -> None:
    async def before(ctx: HTTPContext) -> None: ...

    app.before_event(before)
    app.after_event(before)
    app.on_error(ValueError)(before)
    assert [type(h) for h in (*app.hooks.before, *app.hooks.after)] == [PlannedHook, PlannedHook]
    assert app.hooks.errors[0][0] is ValueError and isinstance(app.hooks.errors[0][1], PlannedHook)

    def sync_hook(ctx: HTTPContext) -> None: ...

    with pytest.raises(RouteDefinitionError, match="must be an `async def` function"):
        app.before_event(sync_hook)


async def test_remove_by_name_or_by_function_rebuilds_the_router(app: App) -> None:
    async def gone() -> str:
        return "gone"

    app.get("/keep")(ok)
    app.route("/gone", methods=["GET", "POST"])(gone)
    assert app.remove_on_event_hook("nothing") is False
    assert app.remove_on_event_hook(gone) is True  # both methods
    assert list(app.routes) == ["GET:/keep"]
    assert (await call(app, "GET", "/gone")).status == 404
    assert (await call(app, "GET", "/keep")).status == 200
    assert app.remove_on_event_hook("GET:/keep") is True
    assert app.routes == {}


async def test_static_registers_one_path_route_under_the_prefix(app: App, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("A")
    app.static("/assets/", tmp_path)
    [name] = app.routes
    assert name.startswith("GET:/assets/{") and name.endswith(":path}")
    channel = await call(app, "GET", "/assets/a.txt")
    assert (channel.status, channel.text) == (200, "A")


async def test_middleware_is_checked_composed_and_returned(app: App) -> None:
    def sync_mw(ctx: HTTPContext, call_next: CallNext) -> Any: ...

    with pytest.raises(TypeError, match="must be an `async def` function"):
        app.middleware(sync_mw)

    async def tag(ctx: HTTPContext, call_next: CallNext) -> Any:
        response = await call_next()
        response.headers["X-Tag"] = "1"
        return response

    assert app.middleware(tag) is tag
    app.get("/x")(ok)
    assert (await call(app, "GET", "/x")).header("x-tag") == "1"
    assert (await call(app, "GET", "/missing")).header("x-tag") == "1"  # it wraps the 404 too


def test_match_route_finds_http_and_plain_events_through_the_tree(app: App) -> None:
    app.get("/u/{id:int}")(ok)
    app.on_event("tick")(ok)
    route, params = app.match_route("GET:/u/3")
    assert (route, params) == (app.routes["GET:/u/{id:int}"], {"id": 3})
    assert app.match_route("tick") == (app.routes["tick"], {})
    with pytest.raises(EventNotFound):
        app.match_route("GET:/nope")
    with pytest.raises(EventNotFound):
        app.match_route("tock")
    app.on_event()(ok)
    assert app.match_route("GET:/nope") == (app.route_table.fallback, {"_": "/nope"})


# -- what registration catches (issue 22 item 3) --------------------------------------------


def test_an_unknown_method_is_refused_unless_declared(app: App) -> None:
    with pytest.raises(RouteDefinitionError, match=r"unknown HTTP method 'GTE' \(did you mean GET\?\)"):
        app.on_event("GTE:/x")(ok)
    with pytest.raises(RouteDefinitionError, match=r"unknown HTTP method 'PURGE'.*custom_method=True"):
        app.route("/cache", methods=["PURGE"])(ok)
    assert "GTE:/x" not in app.routes
    app.on_event("PURGE:/cache", custom_method=True)(ok)  # declared: accepted
    assert app.routes["PURGE:/cache"].method == "PURGE"  # type: ignore[attr-defined]
    app.on_event("get:/lower")(ok)  # known methods in any case, upper-cased
    assert app.routes["get:/lower"].method == "GET"  # type: ignore[attr-defined]


async def test_a_custom_method_is_served_and_listed_in_allow(app: App) -> None:
    app.on_event("PURGE:/cache", custom_method=True)(ok)
    assert (await call(app, "PURGE", "/cache")).status == 200
    channel = await call(app, "GET", "/cache")
    assert (channel.status, channel.header("allow")) == (405, "PURGE")


async def test_middleware_with_the_wrong_signature_is_refused_at_registration(app: App) -> None:
    async def one_argument(next: CallNext) -> Any:  # PyMicroHTTP's habit, async
        return await next()

    with pytest.raises(TypeError, match=r"cannot be called as mw\(ctx, call_next\)"):
        app.middleware(one_argument)
    with pytest.raises(TypeError, match=r"cannot be called as mw\(ctx, call_next\)"):
        app.get("/a", middleware=[one_argument])(ok)
    with pytest.raises(TypeError, match="must be callable"):
        app.get("/b", middleware=["auth"])(ok)
    with pytest.raises(TypeError, match="a middleware or a list of them"):
        app.get("/c", middleware=3)(ok)
    assert "GET:/a" not in app.routes


async def test_one_middleware_is_accepted_where_a_list_is_expected(app: App) -> None:
    async def tag(ctx: HTTPContext, call_next: CallNext) -> Any:
        response = await call_next()
        response.headers["X-Tag"] = "one"
        return response

    app.get("/x", middleware=tag)(ok)
    app.route("/y", methods="POST")(ok)  # one method, not the letters P, O, S, T
    assert (await call(app, "GET", "/x")).header("x-tag") == "one"
    assert "POST:/y" in app.routes
