"""Route registration through the App: event names, one compiled template per route,
the seed projects' syntax, WebSocket routes (routing side only), Endpoint as a Route."""

from __future__ import annotations

from typing import Any

import pytest
from framework_helpers import call
from tiny_listener import Event, EventNotFound, Param, Route

from hump_listener import App, HTTPContext, WebSocket
from hump_listener import routing as routing_module
from hump_listener.endpoints import Endpoint
from hump_listener.errors import RouteConflict, RouteDefinitionError


@pytest.fixture
def app() -> App:
    return App(access_log=False)


# -- one template parser, one compilation --------------------------------------------------


async def test_param_after_a_path_param_is_injectable(app: App) -> None:
    @app.get("/files/{rest:path}/meta/{x}")
    async def meta(rest: Param, x: Param) -> str:
        return f"{rest}|{x}"

    ch = await call(app, "GET", "/files/a/b/meta/c")
    assert (ch.status, ch.text) == (200, "a/b|c")


@pytest.mark.parametrize(
    "path", ["/f/{rest:path}/{x:bogus}", "/f/{rest:path}/{rest}", "/f/{rest:path}/{9x}", "/f/{rest:path}/:9"]
)
def test_bad_param_after_a_path_param_is_a_route_definition_error(app: App, path: str) -> None:
    async def h(ctx: HTTPContext) -> str:
        return ""

    with pytest.raises(RouteDefinitionError):
        app.get(path)(h)
    assert app.routes == {}


def test_each_route_is_compiled_once(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    compiled: list[str] = []
    original = routing_module.Template.compile.__func__  # type: ignore[attr-defined]

    def spy(cls: type[routing_module.Template], path: str) -> routing_module.Template:
        compiled.append(path)
        result: routing_module.Template = original(cls, path)
        return result

    monkeypatch.setattr(routing_module.Template, "compile", classmethod(spy))

    async def h(ctx: HTTPContext) -> str:
        return ""

    app.get("/a/{x:int}")(h)
    app.post("/static")(h)
    assert compiled == ["/a/{x:int}", "/static"]


async def test_removing_a_route_keeps_the_others_as_they_were(app: App) -> None:
    @app.get("/keep/{x}")
    async def keep(x: Param) -> str:
        return x

    @app.get("/gone")
    async def gone() -> str:
        return "gone"

    @app.on_event("user.created")
    async def plain(ctx: HTTPContext) -> None:
        pass

    before = app.routes["GET:/keep/{x}"]
    plain_before = app.routes["user.created"]
    assert app.remove_on_event_hook(gone)
    assert app.routes["GET:/keep/{x}"] is before  # not re-planned, not re-compiled
    assert app.routes["user.created"] is plain_before
    assert app.match_route("user.created")[0] is plain_before
    assert (await call(app, "GET", "/keep/7")).text == "7"
    assert (await call(app, "GET", "/gone")).status == 404


# -- Endpoint stays a tiny-listener Route, without tiny-listener's regex ------------------------


async def test_endpoint_is_a_route_matched_by_our_template(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    import tiny_listener.routing

    def refuse(path: str) -> Any:
        raise AssertionError(f"tiny-listener compiled {path!r}")

    monkeypatch.setattr(tiny_listener.routing, "compile_path", refuse)
    seen: list[str] = []

    @app.on_event("GET /u/:name/{n:string}")
    async def user(event: Event, name: Param, n: Param) -> str:  # type: ignore[type-arg]
        seen.append(event.route.path)
        return f"{name} {n}"

    endpoint = app.routes["GET /u/:name/{n:string}"]
    assert isinstance(endpoint, Endpoint) and isinstance(endpoint, Route)
    assert endpoint.path == endpoint.event_name == "GET /u/:name/{n:string}"
    assert endpoint.name == "user" and endpoint.opts == {}
    assert endpoint.match("GET:/u/ann/x") == {"name": "ann", "n": "x"}
    assert endpoint.match("HEAD:/u/ann/x") == {"name": "ann", "n": "x"}
    assert endpoint.match("POST:/u/ann/x") is None
    assert endpoint.match("GET:/u/ann") is None
    assert endpoint.match("user.created") is None
    assert (await call(app, "GET", "/u/ann/x")).text == "ann x"
    assert seen == ["GET /u/:name/{n:string}"]


def test_wildcard_and_ws_endpoints_match_like_the_router(app: App) -> None:
    async def h(ctx: HTTPContext) -> str:
        return ""

    async def w(ws: WebSocket) -> None:
        pass

    app.on_event("* /any")(h)
    app.on_event("WS:/ws")(w)
    star, ws = app.routes["* /any"], app.routes["WS:/ws"]
    assert star.match("BREW:/any") == {} and star.match("WS:/any") is None
    assert ws.match("WS:/ws") == {} and ws.match("GET:/ws") is None


# -- the seed projects' syntax --------------------------------------------------------------


async def test_pymicrohttp_route_syntax_is_served(app: App) -> None:
    @app.on_event("GET /hello/:name")
    async def hello(name: Param) -> str:
        return f"hello {name}"

    @app.on_event("POST:/greet/:who")
    async def greet(who: Param) -> str:
        return f"greet {who}"

    @app.on_event("* /ping")
    async def ping(ctx: HTTPContext) -> str:
        return f"pong {ctx.request.method}"

    assert (await call(app, "GET", "/hello/ann")).text == "hello ann"
    assert (await call(app, "POST", "/greet/bob")).text == "greet bob"
    for method in ("GET", "POST", "DELETE"):
        assert (await call(app, method, "/ping")).text == f"pong {method}"
    ch = await call(app, "POST", "/hello/ann")
    assert (ch.status, ch.header("allow")) == (405, "GET, HEAD")
    assert all(isinstance(r, Endpoint) for r in app.routes.values())
    assert app.route_table.plain_routes == []


def test_a_handler_asking_for_a_colon_param_the_route_lacks_is_refused(app: App) -> None:
    async def hello(nam: Param) -> str:
        return ""

    with pytest.raises(RouteDefinitionError, match="'nam'"):
        app.on_event("GET /hello/:name")(hello)


def test_colon_and_brace_spellings_of_one_route_conflict(app: App) -> None:
    async def h(ctx: HTTPContext) -> str:
        return ""

    app.on_event("GET /u/:id")(h)
    with pytest.raises(RouteConflict):
        app.on_event("GET:/u/{id}")(h)


@pytest.mark.parametrize(
    "name", ["GET:hello", "GET  /x", "GET /a b", "POST /a b", "GET: /x", "DELETE:users", "WS:chat", "/a b", "* ping"]
)
def test_route_like_event_names_fail_at_registration(app: App, name: str) -> None:
    async def h(ctx: HTTPContext) -> str:
        return ""

    with pytest.raises(RouteDefinitionError):
        app.on_event(name)(h)
    assert app.routes == {} and app.route_table.plain_routes == []


@pytest.mark.parametrize("name", ["user_created", "user.created", "tick"])
def test_plain_event_names_stay_tiny_listener_events(app: App, name: str) -> None:
    async def h(ctx: HTTPContext) -> None:
        pass

    app.on_event(name)(h)
    route = app.routes[name]
    assert not isinstance(route, Endpoint) and route in app.route_table.plain_routes
    assert app.match_route(name) == (route, {})


def test_match_route_for_a_malformed_route_name_is_event_not_found(app: App) -> None:
    with pytest.raises(EventNotFound, match="GET:hello"):
        app.match_route("GET:hello")


# -- WebSocket routes: the routing side ----------------------------------------------------------


async def test_ws_routes_are_endpoints_invisible_to_http(app: App) -> None:
    @app.on_event("GET:/chat/{room}")
    async def page(room: Param) -> str:
        return f"page {room}"

    @app.on_event("WS:/chat/{room}")
    async def chat(ws: WebSocket, room: Param) -> None:
        pass

    @app.on_event("WS /only/:id")
    async def only(ws: WebSocket, id: Param) -> None:
        pass

    ws = app.routes["WS:/chat/{room}"]
    assert isinstance(ws, Endpoint) and ws.method == "WS"
    assert app.route_table.router.match("WS", "/chat/x") == (ws, {"room": "x"})
    assert app.route_table.router.match("WS", "/only/3")[0] is app.routes["WS /only/:id"]
    assert app.match_route("WS:/chat/x") == (ws, {"room": "x"})
    assert (await call(app, "GET", "/chat/x")).text == "page x"
    assert (await call(app, "GET", "/only/3")).status == 404
    ch = await call(app, "DELETE", "/chat/x")
    assert (ch.status, ch.header("allow")) == (405, "GET, HEAD")
