"""compat/hump.py on its own (in-process): Hump's decorators register on the real App,
the handler gets the request, Hump's return rules. Over a socket: test_examples.py."""

from __future__ import annotations

import pytest

from hump_listener import RouteDefinitionError
from hump_listener.compat.hump import Hump, Request, Response, statuses
from hump_listener.testing import TestClient


def make() -> Hump:
    app = Hump("", 8342)
    app.app.configure(access_log=False)
    return app


def test_hump_wraps_one_app_with_humps_address() -> None:
    app = Hump("", 8342, backlog=10)
    assert (app.app.config.host, app.app.config.port, app.app.config.backlog) == ("0.0.0.0", 8342, 10)
    assert Hump("127.0.0.1", 0).app.config.host == "127.0.0.1"


def test_each_method_decorator_registers_on_the_app_and_returns_the_function() -> None:
    app = make()

    async def handler(request: Request) -> str:
        return request.method

    for name in ("get", "head", "options", "post", "put", "patch", "delete"):
        assert getattr(app, name)(f"/{name}")(handler) is handler
        assert f"{name.upper()}:/{name}" in app.app.routes
    with TestClient(app.app) as client:
        assert client.get("/get").text == "GET"
        assert client.delete("/delete").text == "DELETE"
        assert client.post("/get").status_code == 405


def test_humps_return_rules() -> None:
    app = make()

    @app.get("/text")
    async def text(request: Request) -> str:
        return f"path {request.path}"

    @app.get("/teapot")
    async def teapot(request: Request) -> Response:
        return Response("Howdy!", statuses.IM_A_TEAPOT)

    @app.get("/tuple")
    async def as_tuple(request: Request) -> tuple[int, str]:
        return 1, "a"  # Hump: JSON, where a native handler's tuple is (body, status)

    @app.get("/none")
    async def nothing(request: Request) -> None:
        return None

    @app.get("/number")
    async def number(request: Request) -> int:
        return 7

    with TestClient(app.app) as client:
        assert client.get("/text").text == "path /text"
        r = client.get("/teapot")
        assert (r.status_code, r.text) == (418, "Howdy!")
        assert client.get("/tuple").json() == [1, "a"]
        assert (client.get("/none").status_code, client.get("/none").text) == (200, "")
        assert client.get("/number").text == "7"


def test_a_second_handler_for_the_same_route_is_an_error_not_a_silent_replacement() -> None:
    app = make()

    async def index(request: Request) -> str:
        return "a"

    app.get("/")(index)
    with pytest.raises(RouteDefinitionError, match="already registered"):
        app.get("/")(index)
