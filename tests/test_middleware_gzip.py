"""GZipMiddleware, driven through the seam (no sockets)."""

from __future__ import annotations

import gzip
from typing import Any

import pytest
from framework_helpers import call

from hump_listener import App, HTTPContext, Response
from hump_listener.middleware import GZipMiddleware
from hump_listener.middleware.gzip import accepts_gzip, is_compressible

TEXT = "hello gzip " * 100  # 1100 bytes
GZ = [("Accept-Encoding", "gzip, deflate, br")]


class OtherResponse(Response):
    """Stands in for a streaming subclass: its body is not all in ``body``."""


def make_app(minimum_size: int = 500) -> App:
    app = App(access_log=False)
    app.middleware(GZipMiddleware(minimum_size=minimum_size, compresslevel=6))

    @app.on_event("GET:/text")
    async def text(ctx: HTTPContext) -> None:
        ctx.response(200, TEXT, headers={"ETag": '"v1"'})

    @app.on_event("GET:/json")
    async def json_(ctx: HTTPContext) -> None:
        ctx.json({"items": list(range(300))})

    @app.on_event("GET:/small")
    async def small(ctx: HTTPContext) -> None:
        ctx.response(200, "tiny")

    @app.on_event("GET:/png")
    async def png(ctx: HTTPContext) -> None:
        ctx.response(200, b"\x89PNG" + bytes(2000), content_type="image/png")

    @app.on_event("GET:/encoded")
    async def encoded(ctx: HTTPContext) -> None:
        ctx.response(200, gzip.compress(TEXT.encode()), headers={"Content-Encoding": "gzip"},
                     content_type="text/plain")

    @app.on_event("GET:/partial")
    async def partial(ctx: HTTPContext) -> None:
        ctx.response(206, TEXT[:600], headers={"Content-Range": "bytes 0-599/1100"})

    @app.on_event("GET:/no-transform")
    async def no_transform(ctx: HTTPContext) -> None:
        ctx.response(200, TEXT, headers={"Cache-Control": "public, no-transform"})

    @app.on_event("GET:/subclass")
    async def subclass(ctx: HTTPContext) -> None:
        ctx.set_reply(OtherResponse(TEXT))

    @app.on_event("GET:/big")
    async def big(ctx: HTTPContext) -> None:
        ctx.response(200, "z" * (2 * 1024 * 1024))

    return app


def vary(channel: Any) -> list[str]:
    return [t.strip().lower() for k, v in channel.headers if k == b"vary" for t in v.decode().split(",")]


@pytest.mark.parametrize("path", ["/text", "/json"])
async def test_compresses_text_and_json(path: str) -> None:
    app = make_app()
    plain = await call(app, "GET", path)
    ch = await call(app, "GET", path, GZ)
    assert ch.status == 200
    assert ch.header("content-encoding") == "gzip"
    assert gzip.decompress(bytes(ch.sent)) == bytes(plain.sent)
    assert int(ch.header("content-length") or -1) == len(ch.sent) < len(plain.sent)
    assert vary(ch) == ["accept-encoding"]


async def test_without_gzip_in_accept_encoding_body_is_identity_but_varies() -> None:
    app = make_app()
    for headers in ([], [("Accept-Encoding", "br")], [("Accept-Encoding", "gzip;q=0, *;q=1")]):
        ch = await call(app, "GET", "/text", headers)
        assert ch.header("content-encoding") is None
        assert ch.text == TEXT
        assert ch.header("content-length") == str(len(TEXT))
        assert vary(ch) == ["accept-encoding"]


@pytest.mark.parametrize(
    ("path", "status"),
    [("/small", 200), ("/png", 200), ("/encoded", 200), ("/partial", 206), ("/no-transform", 200),
     ("/subclass", 200)],
)
async def test_ineligible_responses_are_untouched(path: str, status: int) -> None:
    app = make_app()
    plain = await call(app, "GET", path)
    ch = await call(app, "GET", path, GZ)
    assert ch.status == status
    assert bytes(ch.sent) == bytes(plain.sent)
    assert ch.header("content-length") == str(len(plain.sent))
    assert "accept-encoding" not in vary(ch)
    if path == "/encoded":
        assert gzip.decompress(bytes(ch.sent)) == TEXT.encode()  # compressed once, not twice


async def test_strong_etag_becomes_weak() -> None:
    ch = await call(make_app(), "GET", "/text", GZ)
    assert ch.header("etag") == 'W/"v1"'


async def test_head_keeps_the_compressed_length() -> None:
    app = make_app()
    get = await call(app, "GET", "/text", GZ)
    head = await call(app, "HEAD", "/text", GZ)
    assert head.sent == b""
    assert head.header("content-encoding") == "gzip"
    assert head.header("content-length") == get.header("content-length")


async def test_large_body_is_compressed_off_the_loop_and_correct() -> None:
    ch = await call(make_app(), "GET", "/big", GZ)
    assert gzip.decompress(bytes(ch.sent)) == b"z" * (2 * 1024 * 1024)


async def test_minimum_size_boundary() -> None:
    app = make_app(minimum_size=len(TEXT))
    assert (await call(app, "GET", "/text", GZ)).header("content-encoding") == "gzip"
    app = make_app(minimum_size=len(TEXT) + 1)
    assert (await call(app, "GET", "/text", GZ)).header("content-encoding") is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("gzip", True), ("GZIP;q=0.5", True), ("x-gzip", True), ("*", True), ("deflate, *;q=0.1", True),
        (None, False), ("", False), ("br", False), ("gzip;q=0", False), ("gzip;q=0.000", False),
        ("*;q=0", False), ("gzip;q=0, *", False), ("gzip;q=nope", False), ("identity", False),
    ],
)
def test_accepts_gzip(header: str | None, expected: bool) -> None:
    assert accepts_gzip(header) is expected


@pytest.mark.parametrize(
    ("ctype", "expected"),
    [
        ("text/html; charset=utf-8", True), ("application/json", True), ("application/problem+json", True),
        ("image/svg+xml", True), ("application/javascript", True), ("image/png", False),
        ("application/zip", False), ("application/octet-stream", False), (None, False),
    ],
)
def test_is_compressible(ctype: str | None, expected: bool) -> None:
    assert is_compressible(ctype) is expected


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="compresslevel"):
        GZipMiddleware(compresslevel=10)
    with pytest.raises(ValueError, match="minimum_size"):
        GZipMiddleware(minimum_size=-1)
