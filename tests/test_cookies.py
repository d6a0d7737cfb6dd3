"""cookies.py + HTTPContext.set_cookie / delete_cookie: the Set-Cookie values, which
responses carry them, and the round trip through request parsing."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from framework_helpers import MemoryChannel, call

from hump_listener import App, HTTPContext, HTTPError, Response
from hump_listener.cookies import build_set_cookie
from hump_listener.models import parse_cookies
from hump_listener.testing import TestClient


def set_cookies(channel: MemoryChannel) -> list[str]:
    return [v.decode("latin-1") for k, v in channel.headers if k == b"set-cookie"]


# -- the header values -----------------------------------------------------------------------


def test_defaults() -> None:
    assert build_set_cookie("sid", "abc") == "sid=abc; Path=/; SameSite=Lax"


def test_all_attributes() -> None:
    header = build_set_cookie(
        "sid", "abc", max_age=3600, expires=datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
        path="/app", domain="example.com", secure=True, httponly=True, samesite="strict",
    )
    attrs = header.split("; ")
    assert attrs[0] == "sid=abc"
    assert set(attrs[1:]) == {
        "Max-Age=3600", "expires=Wed, 02 Jan 2030 03:04:05 GMT", "Path=/app",
        "Domain=example.com", "Secure", "HttpOnly", "SameSite=Strict",
    }


def test_naive_expires_is_utc() -> None:
    assert "expires=Wed, 02 Jan 2030 03:04:05 GMT" in build_set_cookie(
        "a", "b", expires=datetime(2030, 1, 2, 3, 4, 5)
    )


@pytest.mark.parametrize("value", ["plain", "with space", 'q"uote', "semi;colon", "comma,", "100%", "Zoë ☕", ""])
def test_values_round_trip_through_request_parsing(value: str) -> None:
    pair = build_set_cookie("k", value).split("; ")[0]
    assert ";" not in pair and " " not in pair and "," not in pair
    assert parse_cookies(pair) == {"k": value}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "bad name"}, "invalid cookie name"),
        ({"name": "a;b"}, "invalid cookie name"),
        ({"samesite": "sometimes"}, "samesite"),
        ({"samesite": "none"}, "requires secure"),
        ({"path": "/a;b"}, "invalid character"),
    ],
)
def test_invalid_arguments_raise(kwargs: dict[str, str], message: str) -> None:
    args = {"name": "ok", "value": "v", **kwargs}
    name, value = args.pop("name"), args.pop("value")
    with pytest.raises(ValueError, match=message):
        build_set_cookie(name, value, **args)  # type: ignore[arg-type]


def test_samesite_none_with_secure_is_fine() -> None:
    assert "SameSite=None" in build_set_cookie("a", "b", secure=True, samesite="none")


# -- which responses carry them -----------------------------------------------------------------


@pytest.fixture
def app() -> App:
    app = App(access_log=False)
    shared = Response("shared")

    @app.get("/set")
    async def set_(ctx: HTTPContext) -> None:
        ctx.set_cookie("a", "1")
        ctx.set_cookie("a", "2")  # same name, path, domain: replaces
        ctx.set_cookie("a", "3", path="/other")
        ctx.response(200, "ok")

    @app.get("/delete")
    async def delete(ctx: HTTPContext) -> None:
        ctx.delete_cookie("a")
        ctx.response(200, "bye")

    @app.get("/shared")
    async def shared_response(ctx: HTTPContext) -> Response:
        ctx.set_cookie("visit", ctx.request.query.get("n", "?"))
        return shared

    @app.get("/denied")
    async def denied(ctx: HTTPContext) -> None:
        ctx.set_cookie("attempts", "1")
        raise HTTPError(403)

    @app.get("/crash")
    async def crash(ctx: HTTPContext) -> None:
        ctx.set_cookie("session", "half-done")
        raise RuntimeError("bug")

    @app.get("/echo")
    async def echo(ctx: HTTPContext) -> None:
        ctx.json(ctx.request.cookies)

    return app


async def test_set_cookie_headers(app: App) -> None:
    ch = await call(app, "GET", "/set")
    assert set_cookies(ch) == ["a=2; Path=/; SameSite=Lax", "a=3; Path=/other; SameSite=Lax"]


async def test_delete_cookie(app: App) -> None:
    (header,) = set_cookies(await call(app, "GET", "/delete"))
    assert header.startswith("a=; ")
    assert "Max-Age=0" in header and "expires=Thu, 01 Jan 1970 00:00:00 GMT" in header


async def test_a_shared_response_object_does_not_collect_cookies(app: App) -> None:
    first = await call(app, "GET", "/shared?n=1")
    second = await call(app, "GET", "/shared?n=2")
    assert set_cookies(first) == ["visit=1; Path=/; SameSite=Lax"]
    assert set_cookies(second) == ["visit=2; Path=/; SameSite=Lax"]


async def test_http_error_answers_carry_cookies(app: App) -> None:
    ch = await call(app, "GET", "/denied")
    assert ch.status == 403
    assert set_cookies(ch) == ["attempts=1; Path=/; SameSite=Lax"]


async def test_server_errors_do_not(app: App) -> None:
    ch = await call(app, "GET", "/crash")
    assert ch.status == 500
    assert set_cookies(ch) == []


async def test_no_cookies_no_header(app: App) -> None:
    ch = await call(app, "GET", "/echo")
    assert set_cookies(ch) == []


# -- in a browser-like client --------------------------------------------------------------------


def test_the_client_keeps_and_drops_cookies(app: App) -> None:
    with TestClient(app) as client:
        client.get("/set")
        assert client.cookies == {"a": "3"}  # the client ignores paths: the last one wins
        assert client.get("/echo").json() == {"a": "3"}
        assert client.get("/echo", cookies={"extra": "x y"}).json() == {"a": "3", "extra": "x y"}
        client.get("/delete")
        assert client.cookies == {}
        assert client.get("/echo").json() == {}


def test_unicode_cookie_value_round_trip() -> None:
    app = App(access_log=False)

    @app.get("/login")
    async def login(ctx: HTTPContext) -> None:
        ctx.set_cookie("user", "Zoë; admin=1", httponly=True)
        ctx.response(200, "ok")

    @app.get("/me")
    async def me(ctx: HTTPContext) -> None:
        ctx.json(ctx.request.cookies)

    with TestClient(app) as client:
        r = client.get("/login")
        assert "HttpOnly" in r.headers["set-cookie"]
        assert client.get("/me").json() == {"user": "Zoë; admin=1"}
