"""compat/pymicrohttp.py on its own (in-process): routes on the real App, the request
dict, PyMicroHTTP's middleware order and returns. Over a socket: test_examples.py."""

from __future__ import annotations

from typing import Any

import pytest

from hump_listener import RouteDefinitionError
from hump_listener.compat.pymicrohttp import Server
from hump_listener.testing import TestClient


def make() -> Server:
    s = Server()
    s.app.configure(access_log=False)
    return s


def test_the_request_dict() -> None:
    s = make()
    seen: list[dict[str, Any]] = []

    @s.register("POST /items/:group/:id")
    def item(request: dict[str, Any]) -> dict[str, Any]:
        seen.append(request)
        return {"ok": True}

    with TestClient(s.app) as client:
        r = client.post("/items/tools/7?x=1&x=2&y=", content="caf\u00e9".encode(), headers={"X-Thing": "yes"})
    assert r.json() == {"ok": True}
    (request,) = seen
    assert (request["verb"], request["path"], request["body"]) == ("POST", "/items/tools/7", "caf\u00e9")
    assert request["params"] == {"group": "tools", "id": "7"}
    assert request["query"] == {"x": "1", "y": ""}
    assert request["headers"]["x-thing"] == request["headers"]["X-Thing"] == "yes"


def test_middleware_one_or_a_list_first_outermost_and_before_all_outside() -> None:
    s = make()
    order: list[str] = []

    def tagged(name: str) -> Any:
        def mw(next: Any) -> Any:
            def handler(request: dict[str, Any]) -> Any:
                order.append(name)
                return next(request)
            return handler
        return mw

    @s.register("GET /one", tagged("route"))
    def one(request: dict[str, Any]) -> str:
        return "one"

    @s.register("GET /chain", [tagged("a"), tagged("b")])
    def chain(request: dict[str, Any]) -> str:
        return "chain"

    s.beforeAll()(tagged("all"))  # added after the routes: still wraps them
    with TestClient(s.app) as client:
        assert client.get("/one").text == "one"
        assert client.get("/chain").text == "chain"
    assert order == ["all", "route", "all", "a", "b"]


def test_returns_and_any_verb() -> None:
    s = make()

    @s.register("* /ping")
    def ping(request: dict[str, Any]) -> str:
        return request["verb"]

    @s.register("GET /created")
    def created(request: dict[str, Any]) -> Any:
        return {"id": 1}, 201, {"Location": "/things/1"}

    @s.register("GET /none")
    def none(request: dict[str, Any]) -> None:
        return None

    @s.register("GET /number")
    def number(request: dict[str, Any]) -> int:
        return 3

    s.register_handler("GET /plain", lambda request: "plain")
    with TestClient(s.app) as client:
        assert client.request("PATCH", "/ping").text == "PATCH"
        r = client.get("/created")
        assert (r.status_code, r.json(), r.headers["location"]) == (201, {"id": 1}, "/things/1")
        assert (client.get("/none").status_code, client.get("/none").text) == (200, "")
        assert client.get("/number").text == "3"
        assert client.get("/plain").text == "plain"
        assert client.get("/nowhere").status_code == 404


def test_a_bad_route_fails_at_registration() -> None:
    s = make()
    with pytest.raises(RouteDefinitionError, match="unknown HTTP method 'GTE'"):
        s.register("GTE /x")(lambda request: "x")


def test_start_server_configures_the_app_address(monkeypatch: pytest.MonkeyPatch) -> None:
    s = make()
    ran: list[tuple[str, int]] = []
    monkeypatch.setattr(s.app, "run", lambda: ran.append((s.app.config.host, s.app.config.port)))
    s.start_server(port=8080)
    s.start_server("127.0.0.1", 0, listen_msg=True)
    assert ran == [("localhost", 8080), ("127.0.0.1", 0)]
