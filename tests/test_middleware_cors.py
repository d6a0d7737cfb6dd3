"""CORSMiddleware, driven through the seam (no sockets)."""

from __future__ import annotations

from typing import Any

import pytest
from framework_helpers import call

from hump_listener import App, HTTPContext
from hump_listener.middleware import CORSMiddleware

SITE = "https://site.example"
EVIL = "https://evil.example"


def make_app(**options: Any) -> App:
    app = App(access_log=False)
    app.middleware(CORSMiddleware(**options))

    @app.on_event("GET:/items")
    async def items(ctx: HTTPContext) -> None:
        ctx.json([1, 2], headers={"X-Total": "2"})

    @app.on_event("POST:/items")
    async def create(ctx: HTTPContext) -> None:
        ctx.response(201, "made")

    return app


def preflight(method: str = "POST", headers: str | None = None, origin: str = SITE) -> list[tuple[str, str]]:
    out = [("Origin", origin), ("Access-Control-Request-Method", method)]
    if headers is not None:
        out.append(("Access-Control-Request-Headers", headers))
    return out


def vary(channel: Any) -> list[str]:
    return [t.strip().lower() for k, v in channel.headers if k == b"vary" for t in v.decode().split(",")]


async def test_preflight_is_answered_without_an_options_route() -> None:
    app = make_app(allow_origins=[SITE], allow_methods=["GET", "POST"], allow_headers=["X-Token"], max_age=123)
    ch = await call(app, "OPTIONS", "/items", preflight("POST", "x-token, content-type"))
    assert ch.status == 204
    assert ch.header("access-control-allow-origin") == SITE
    assert ch.header("access-control-allow-methods") == "GET, POST"
    allowed = {h.strip() for h in (ch.header("access-control-allow-headers") or "").split(",")}
    assert {"x-token", "content-type"} <= allowed
    assert ch.header("access-control-max-age") == "123"
    assert "origin" in vary(ch)
    assert ch.header("access-control-allow-credentials") is None
    assert ch.sent == b""


async def test_options_without_request_method_is_not_a_preflight() -> None:
    app = make_app(allow_origins=[SITE])
    ch = await call(app, "OPTIONS", "/items", [("Origin", SITE)])
    assert ch.status == 405  # routed normally: no OPTIONS handler
    assert ch.header("access-control-allow-origin") == SITE


@pytest.mark.parametrize(
    ("origin", "method", "headers", "failure"),
    [
        (EVIL, "POST", None, "origin"),
        (SITE, "DELETE", None, "method"),
        (SITE, "POST", "x-secret", "headers"),
    ],
)
async def test_preflight_refusals(origin: str, method: str, headers: str | None, failure: str) -> None:
    app = make_app(allow_origins=[SITE], allow_methods=["GET", "POST"], allow_headers=["X-Token"])
    ch = await call(app, "OPTIONS", "/items", preflight(method, headers, origin))
    assert ch.status == 400
    assert failure in ch.text
    assert ch.header("access-control-allow-origin") is None


async def test_wildcard_methods_and_headers_echo_the_request() -> None:
    app = make_app(allow_origins=["*"], allow_methods=["*"], allow_headers=["*"])
    ch = await call(app, "OPTIONS", "/anything", preflight("PURGE", "X-A, X-B"))
    assert ch.status == 204
    assert ch.header("access-control-allow-origin") == "*"
    assert ch.header("access-control-allow-methods") == "PURGE"
    assert ch.header("access-control-allow-headers") == "x-a, x-b"


async def test_simple_request_any_origin_gets_star_without_vary() -> None:
    app = make_app(allow_origins=["*"], expose_headers=["X-Total"])
    ch = await call(app, "GET", "/items", [("Origin", SITE)])
    assert ch.status == 200
    assert ch.header("access-control-allow-origin") == "*"
    assert ch.header("access-control-expose-headers") == "X-Total"
    assert "origin" not in vary(ch)


async def test_simple_request_listed_origin_is_echoed_with_vary() -> None:
    app = make_app(allow_origins=[SITE, "https://other.example"])
    ch = await call(app, "GET", "/items", [("Origin", SITE)])
    assert ch.header("access-control-allow-origin") == SITE
    assert vary(ch) == ["origin"]
    assert ch.text == "[1,2]"


async def test_credentials_never_send_star() -> None:
    app = make_app(allow_origins=["*"], allow_credentials=True)
    ch = await call(app, "GET", "/items", [("Origin", SITE), ("Cookie", "a=1")])
    assert ch.header("access-control-allow-origin") == SITE
    assert ch.header("access-control-allow-credentials") == "true"
    assert "origin" in vary(ch)
    pre = await call(app, "OPTIONS", "/items", preflight("GET"))
    assert pre.header("access-control-allow-origin") == SITE
    assert pre.header("access-control-allow-credentials") == "true"


async def test_disallowed_origin_gets_no_cors_headers() -> None:
    app = make_app(allow_origins=[SITE])
    ch = await call(app, "POST", "/items", [("Origin", EVIL)])
    assert ch.status == 201  # the request still runs: enforcement is the browser's
    assert ch.header("access-control-allow-origin") is None
    assert "origin" in vary(ch)


async def test_no_origin_is_untouched_but_varies_when_origins_are_listed() -> None:
    app = make_app(allow_origins=[SITE])
    ch = await call(app, "GET", "/items")
    assert ch.header("access-control-allow-origin") is None
    assert vary(ch) == ["origin"]


async def test_origin_regex() -> None:
    app = make_app(allow_origin_regex=r"https://[a-z]+\.example\.org")
    ok = await call(app, "GET", "/items", [("Origin", "https://shop.example.org")])
    assert ok.header("access-control-allow-origin") == "https://shop.example.org"
    bad = await call(app, "GET", "/items", [("Origin", "https://shop.example.org.evil.net")])
    assert bad.header("access-control-allow-origin") is None


async def test_error_responses_are_labelled_and_vary_merges() -> None:
    app = make_app(allow_origins=[SITE])

    @app.on_event("GET:/varies")
    async def varies(ctx: HTTPContext) -> None:
        ctx.response(200, "x", headers={"Vary": "Accept-Language"})

    missing = await call(app, "GET", "/nope", [("Origin", SITE)])
    assert missing.status == 404
    assert missing.header("access-control-allow-origin") == SITE
    ch = await call(app, "GET", "/varies", [("Origin", SITE)])
    assert vary(ch) == ["accept-language", "origin"]


def test_a_string_instead_of_a_list_is_refused() -> None:
    with pytest.raises(TypeError, match="allow_origins"):
        CORSMiddleware(allow_origins="*")
    with pytest.raises(ValueError, match="max_age"):
        CORSMiddleware(max_age=-1)
