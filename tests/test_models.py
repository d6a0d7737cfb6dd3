"""models.py: Headers, MultiDict, cookies, Request, Response."""

from __future__ import annotations

import pytest

from hump_listener.models import (
    Headers,
    MultiDict,
    MutableHeaders,
    Request,
    Response,
    bytes_type,
    dump_json,
    parse_cookies,
)


def test_headers_are_case_insensitive_and_multi_valued() -> None:
    h = Headers([(b"accept", b"a"), (b"x-y", b"1"), (b"accept", b"b")])
    assert h["Accept"] == "a" and h.get("ACCEPT") == "a"
    assert h.getlist("accept") == ["a", "b"]
    assert "X-Y" in h and "nope" not in h and 3 not in h
    assert h.get("nope", "d") == "d"
    assert list(h) == ["accept", "x-y"] and len(h) == 2
    with pytest.raises(KeyError):
        h["missing"]


def test_mutable_headers_replace_add_delete_and_refuse_injection() -> None:
    h = MutableHeaders([])
    h["X-A"] = "1"
    h.add("set-cookie", "a=1")
    h.add("Set-Cookie", "b=2")
    h["x-a"] = "2"
    assert h.raw == [(b"set-cookie", b"a=1"), (b"set-cookie", b"b=2"), (b"x-a", b"2")]
    del h["SET-COOKIE"]
    assert h.raw == [(b"x-a", b"2")]
    with pytest.raises(KeyError):
        del h["gone"]
    with pytest.raises(ValueError):
        h["x"] = "a\r\nInjected: yes"


def test_multidict_first_value_and_lists() -> None:
    d = MultiDict([("q", "a"), ("n", "3"), ("q", "b")])
    assert d["q"] == "a" and d.getlist("q") == ["a", "b"] and d.getlist("z") == []
    assert d.to_dict() == {"q": ["a", "b"], "n": "3"}
    assert len(d) == 2


def test_cookie_parsing_is_lenient() -> None:
    assert parse_cookies('a=1; garbage; b="two"; =x; c=%C3%A9; a=shadowed') == {"a": "1", "b": "two", "c": "é"}


def test_request_query_and_url() -> None:
    r = Request("GET", "/a b", b"/a%20b", b"x=1&x=2&y=", "1.1", Headers([(b"host", b"h:1")]))
    assert r.query.getlist("x") == ["1", "2"] and r.query["y"] == ""
    assert r.url == "http://h:1/a%20b?x=1&x=2&y="


@pytest.mark.parametrize(
    ("status", "has_length"), [(200, True), (404, True), (204, False), (304, False), (101, False)]
)
def test_response_content_length_except_no_body_statuses(status: int, has_length: bool) -> None:
    names = [n for n, _ in Response("x", status).header_list()]
    assert (b"content-length" in names) is has_length


def test_response_content_types_and_charset() -> None:
    assert Response("x").content_type == "text/plain; charset=utf-8"
    assert Response(b"\x00x").content_type == "application/octet-stream"
    assert Response(b"x", content_type="application/octet-stream").content_type == "application/octet-stream"
    assert Response(b"").content_type is None
    assert Response({"a": 1}).body == b'{"a":1}'
    assert Response("x", content_type="text/csv").content_type == "text/csv; charset=utf-8"
    assert Response("x", content_type="image/svg+xml").content_type == "image/svg+xml"
    explicit = Response("x", headers={"Content-Type": "text/x-mine"})
    assert [v for n, v in explicit.header_list() if n == b"content-type"] == [b"text/x-mine"]


def test_response_length_follows_body_changes() -> None:
    r = Response("abc")
    r.body = b"abcdef"
    assert (b"content-length", b"6") in r.header_list()


def test_response_rejects_bad_status_and_types() -> None:
    with pytest.raises(ValueError):
        Response("x", 99)
    with pytest.raises(TypeError):
        Response(object())


@pytest.mark.parametrize("data", ["héllo", "", b"\x00raw", b"", bytearray(b"ba"), {"a": 1}, [1], None])
def test_response_body_and_type_are_what_render_gives(data: object) -> None:
    """``Response`` takes str and bytes without calling ``render``; the result is the same."""
    response = Response(data)
    assert (response.body, response.content_type) == Response.render(data)
    with pytest.raises(ValueError):
        Response("x", 600)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"Hello, bob!", "text/plain; charset=utf-8"),  # tiny-listener's own example
        ("\u00e9t\u00e9\n\ttab\r\n".encode(), "text/plain; charset=utf-8"),  # UTF-8, whitespace
        (b"\x1b[1mbold\x1b[0m", "text/plain; charset=utf-8"),  # ESC is text for WHATWG sniffing
        (b"\x00\x01", "application/octet-stream"),
        (b"\x89PNG\r\n\x1a\n", "application/octet-stream"),  # a PNG signature
        (b"\xff\xfe", "application/octet-stream"),  # not UTF-8
        ("caf\u00e9".encode("latin-1"), "application/octet-stream"),  # latin-1 is not UTF-8
    ],
)
def test_bytes_that_are_utf8_text_go_out_as_text(body: bytes, expected: str) -> None:
    """Issue 22 item 2: a browser shows ``ctx.response(200, "Hello, bob!".encode())``."""
    assert bytes_type(body) == expected
    assert Response(body).content_type == expected


def test_dump_json_is_compact_utf8_and_refuses_what_is_not_json() -> None:
    assert dump_json({"id": 42, "name": "café", "tags": [1, 2.5, None, True]}) == (
        '{"id":42,"name":"café","tags":[1,2.5,null,true]}'.encode()
    )
    assert dump_json("x") == b'"x"'
    with pytest.raises(ValueError, match="Out of range float"):
        dump_json({"x": float("nan")})
    with pytest.raises(TypeError, match="Object of type set is not JSON serializable"):
        dump_json({1, 2})
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference detected"):
        dump_json(loop)
    assert dump_json([1]) == b"[1]"  # a refused value leaves nothing behind for the next one
