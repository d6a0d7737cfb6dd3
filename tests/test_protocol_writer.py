"""protocol/writer.py: status lines, ``serialise_head``'s framing decisions, chunk size
lines and the server's own ``simple_response``, checked as pure functions (and the
bytes read back with h11 as the client, an independent parser).

What a connection writes end to end is in test_protocol_response.py.
"""

from __future__ import annotations

import h11
import pytest

from hump_listener.protocol.writer import (
    CHUNKED,
    LENGTH,
    NO_BODY,
    STATUS_LINES,
    UNTIL_CLOSE,
    chunk_size_line,
    serialise_head,
    simple_response,
)
from hump_listener.seam import HeaderList

PREFIX = b"date: Thu, 01 Jan 1970 00:00:00 GMT\r\nserver: test\r\n"


def head(
    status: int = 200,
    headers: HeaderList | None = None,
    body: bytes | None = b"",
    method: str = "GET",
    http_version: str = "1.1",
    keep_alive: bool = True,
) -> tuple[bytes, int, int, bool]:
    return serialise_head(status, headers or [], body, method, http_version, keep_alive, PREFIX, 2)


def lines(out: bytes) -> list[bytes]:
    assert out.endswith(b"\r\n\r\n")
    return out[:-4].split(b"\r\n")


def test_every_status_line_has_a_reason_phrase() -> None:
    assert STATUS_LINES[200] == b"HTTP/1.1 200 OK\r\n"
    assert STATUS_LINES[404] == b"HTTP/1.1 404 Not Found\r\n"
    assert set(STATUS_LINES) == set(range(100, 600))
    for status, line in STATUS_LINES.items():
        prefix = b"HTTP/1.1 %d " % status
        assert line.startswith(prefix) and line.endswith(b"\r\n")
        assert line[len(prefix) : -2].strip(), status  # never an empty reason (h11 would send one)


def test_a_complete_body_gets_its_content_length() -> None:
    out, framing, remaining, keep_alive = head(headers=[(b"content-type", b"text/plain")], body=b"hello")
    assert lines(out) == [
        b"HTTP/1.1 200 OK", b"date: Thu, 01 Jan 1970 00:00:00 GMT", b"server: test",
        b"content-type: text/plain", b"content-length: 5",
    ]
    assert (framing, remaining, keep_alive) == (LENGTH, 5, True)


def test_the_apps_content_length_wins_and_is_not_repeated() -> None:
    out, framing, remaining, _ = head(headers=[(b"Content-Length", b"3")], body=None)
    assert lines(out).count(b"Content-Length: 3") == 1
    assert b"content-length" not in out
    assert (framing, remaining) == (LENGTH, 3)


def test_a_streamed_body_is_chunked_to_http_1_1_and_close_delimited_to_1_0() -> None:
    out, framing, _, keep_alive = head(body=None)
    assert b"transfer-encoding: chunked" in lines(out)
    assert (framing, keep_alive) == (CHUNKED, True)
    out, framing, _, keep_alive = head(body=None, http_version="1.0")
    assert b"transfer-encoding: chunked" not in lines(out)
    assert b"connection: close" in lines(out)
    assert (framing, keep_alive) == (UNTIL_CLOSE, False)


@pytest.mark.parametrize(("status", "method"), [(204, "GET"), (304, "GET"), (200, "HEAD")])
def test_head_204_and_304_never_carry_a_body(status: int, method: str) -> None:
    out, framing, remaining, _ = head(status, [(b"content-length", b"10")], body=None, method=method)
    assert (framing, remaining) == (NO_BODY, 0)
    out, framing, _, _ = head(status, body=b"ignored", method=method)
    assert framing == NO_BODY
    assert b"content-length" not in out


def test_the_apps_connection_header_is_dropped_and_only_read_for_close() -> None:
    out, _, _, keep_alive = head(headers=[(b"Connection", b"Close")], body=b"")
    assert b"Connection: Close" not in out
    assert b"connection: close" in lines(out)
    assert keep_alive is False
    out, _, _, keep_alive = head(headers=[(b"connection", b"keep-alive")], body=b"")
    assert b"connection" not in out.lower().replace(b"content-length", b"")
    assert keep_alive is True


def test_keep_alive_off_adds_close_and_an_http_1_0_keep_alive_says_so() -> None:
    out, _, _, keep_alive = head(body=b"", keep_alive=False)
    assert b"connection: close" in lines(out) and keep_alive is False
    out, _, _, keep_alive = head(body=b"", http_version="1.0", keep_alive=True)
    assert b"connection: keep-alive" in lines(out) and keep_alive is True


@pytest.mark.parametrize(
    ("status", "headers", "message"),
    [
        (199, [], "invalid final status code"),
        (600, [], "invalid final status code"),
        (200, [(b"transfer-encoding", b"chunked")], "Transfer-Encoding is chosen by the server"),
        (200, [(b"content-length", b"1x")], "invalid Content-Length"),
        (200, [(b"x-evil", b"a\r\nset-cookie: b")], "CR or LF in a response header"),
        (200, [(b"x-evil", b"a\nb")], "CR or LF in a response header"),
        (200, [(b"x-evil\r\n", b"a")], "CR or LF in a response header"),
    ],
)
def test_what_must_not_be_sent_is_a_value_error(status: int, headers: HeaderList, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        head(status, headers, body=b"")


def test_the_head_reads_back_with_an_independent_parser() -> None:
    out, _, _, _ = head(201, [(b"x-a", b"1")], body=b"abc")
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
    client.send(h11.EndOfMessage())
    client.receive_data(out + b"abc")
    response = client.next_event()
    assert isinstance(response, h11.Response)
    assert response.status_code == 201
    assert (b"x-a", b"1") in list(response.headers)
    data = client.next_event()
    assert isinstance(data, h11.Data) and data.data == b"abc"


def test_chunk_size_lines_are_hex() -> None:
    assert chunk_size_line(1) == b"1\r\n"
    assert chunk_size_line(255) == b"ff\r\n"
    assert chunk_size_line(65536) == b"10000\r\n"


def test_simple_response_is_complete_closes_and_says_its_reason() -> None:
    out = simple_response(503, PREFIX, [(b"retry-after", b"1")])
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
    client.send(h11.EndOfMessage())
    client.receive_data(out)
    response = client.next_event()
    assert isinstance(response, h11.Response)
    assert response.status_code == 503
    headers = dict(response.headers)
    assert headers[b"connection"] == b"close"
    assert headers[b"retry-after"] == b"1"
    assert headers[b"server"] == b"test"
    body = client.next_event()
    assert isinstance(body, h11.Data) and body.data == b"Service Unavailable"
    assert isinstance(client.next_event(), h11.EndOfMessage)
