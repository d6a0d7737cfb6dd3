"""Request framing, request line and header validation (bytes in, bytes out)."""

from __future__ import annotations

import pytest
from protocol_helpers import Conn, Recorder, echo_body, echo_target, hello, request

from hump_listener.seam import Channel, RequestHead

pytestmark = pytest.mark.timeout(10)


async def run(data: bytes, app=hello, **config) -> Conn:  # type: ignore[no-untyped-def]
    conn = Conn(app, **config)
    conn.send(data)
    await conn.settle(lambda: conn.transport.closing or (not conn.state.tasks and conn.proto.cycle is None))
    await conn.settle()  # quiescence: pipelined requests after the first, their closes
    return conn


async def status_of(data: bytes, **config) -> tuple[int, Conn]:  # type: ignore[no-untyped-def]
    conn = await run(data, **config)
    responses = conn.responses(eof=True)
    assert len(responses) == 1, conn.out
    return responses[0].status, conn


async def assert_rejected(data: bytes, status: int = 400, **config) -> None:  # type: ignore[no-untyped-def]
    recorder = Recorder()
    got, conn = await status_of(data, app=recorder, **config)
    assert got == status
    assert recorder.heads == []  # the app never saw it
    assert conn.transport.closing  # and the connection is closed
    assert conn.responses(eof=True)[0].header(b"connection") == b"close"


# 1. Framing ----------------------------------------------------------------------------


async def test_content_length_body() -> None:
    conn = await run(request(method=b"POST", headers=b"Host: x\r\nContent-Length: 5\r\n", body=b"abcde"), echo_body)
    [resp] = conn.responses(eof=False)
    assert (resp.status, resp.body) == (200, b"abcde")
    assert not conn.transport.closing


async def test_chunked_body_extensions_ignored_trailers_consumed() -> None:
    body = b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: yes\r\n\r\n"
    data = request(method=b"POST", headers=b"Host: x\r\nTransfer-Encoding: chunked\r\n", body=body)
    conn = await run(data + request(b"/next"), echo_body)
    resps = conn.responses(eof=False)
    assert [r.body for r in resps] == [b"abcde", b""]  # the second request has no body


async def test_get_with_a_body_is_framed() -> None:
    data = request(headers=b"Host: x\r\nContent-Length: 3\r\n", body=b"xyz") + request(b"/2")
    conn = await run(data, echo_body)
    assert [r.body for r in conn.responses(eof=False)] == [b"xyz", b""]


async def test_http10_request_served_and_closed() -> None:
    conn = await run(b"GET / HTTP/1.0\r\n\r\n")
    [resp] = conn.responses()
    assert resp.status == 200 and resp.body == b"hello"
    assert resp.header(b"connection") == b"close"
    assert conn.transport.closing


async def test_http10_keep_alive_only_when_asked() -> None:
    # HTTP/1.0 keeps the connection only with "Connection: keep-alive" (RFC 9112 §C.2.2),
    # and says so; a second request on it is served, and one without the header closes.
    ask = b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    conn = await run(ask)
    assert conn.out.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"connection: keep-alive\r\n" in conn.out and b"connection: close" not in conn.out
    assert not conn.transport.closing
    conn.send(b"GET / HTTP/1.0\r\n\r\n")
    await conn.settle(lambda: conn.transport.closing)
    assert conn.out.count(b"HTTP/1.1 200 OK") == 2 and conn.out.endswith(b"hello")


async def test_http10_keep_alive_never_with_a_close_delimited_body() -> None:
    async def streamed(head: RequestHead, channel: Channel) -> None:
        await channel.start(200, [])
        await channel.write(b"abc")
        await channel.end()

    conn = await run(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", streamed)
    assert b"connection: close" in conn.out and b"transfer-encoding" not in conn.out
    assert conn.out.endswith(b"\r\n\r\nabc") and conn.transport.closing


async def test_content_length_and_transfer_encoding_rejected() -> None:
    body = b"0\r\n\r\n"
    headers = b"Host: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n"
    await assert_rejected(request(method=b"POST", headers=headers, body=body))


@pytest.mark.parametrize(
    "te", [b"gzip, chunked", b"chunked, gzip", b"identity", b"chunked, chunked", b"gzip"]
)
async def test_transfer_encoding_other_than_final_chunked_rejected(te: bytes) -> None:
    recorder = Recorder()
    status, conn = await status_of(
        request(method=b"POST", headers=b"Host: x\r\nTransfer-Encoding: " + te + b"\r\n"), app=recorder
    )
    assert status in (400, 501)
    assert recorder.heads == [] and conn.transport.closing


async def test_two_transfer_encoding_fields_rejected() -> None:
    recorder = Recorder()
    headers = b"Host: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"
    status, conn = await status_of(request(method=b"POST", headers=headers, body=b"0\r\n\r\n"), app=recorder)
    assert status in (400, 501) and recorder.heads == [] and conn.transport.closing


@pytest.mark.parametrize(
    "cl",
    [
        b"Content-Length: 3\r\nContent-Length: 4\r\n",
        b"Content-Length: 3, 4\r\n",
        b"Content-Length: -3\r\n",
        b"Content-Length: +3\r\n",
        b"Content-Length: 0x3\r\n",
        b"Content-Length: 3 3\r\n",
        b"Content-Length: \r\n",
    ],
)
async def test_bad_content_length_rejected(cl: bytes) -> None:
    await assert_rejected(request(method=b"POST", headers=b"Host: x\r\n" + cl, body=b"abcd"))


async def test_identical_duplicate_content_length_accepted() -> None:
    # RFC 9110 §8.6 lets a recipient accept a list of identical values.
    conn = await run(
        request(method=b"POST", headers=b"Host: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n", body=b"abc"),
        echo_body,
    )
    assert conn.responses(eof=False)[0].body == b"abc"


async def test_bad_chunk_size_rejected() -> None:
    headers = b"Host: x\r\nTransfer-Encoding: chunked\r\n"
    status, conn = await status_of(request(method=b"POST", headers=headers, body=b"zz\r\nabc\r\n0\r\n\r\n"))
    assert status == 400 and conn.transport.closing


CHUNKED = b"Host: x\r\nTransfer-Encoding: chunked\r\n"


@pytest.mark.parametrize(
    "body",
    [
        b"5\nhello\n0\n\n",  # bare LF everywhere: h11 would wait for a CRLF forever
        b"5\nhel",  # a bare LF after the size, the rest not sent yet
        b"5\r\nhello\r\n0\n\n",  # the last chunk
        b"5;ext=1\nhello\r\n",  # after an extension
        b"5\rhello",  # a CR not followed by LF
        b"5\r\nhello\r\n5\r\nworld\r\n0\n",  # after several good chunks
    ],
)
async def test_chunk_size_line_not_ended_by_crlf_is_400_at_once(body: bytes) -> None:
    conn = Conn(echo_body)
    conn.send(request(method=b"POST", headers=CHUNKED, body=body))
    await conn.settle(lambda: conn.transport.closing)  # at once: no timer had to fire
    assert conn.responses()[0].status == 400


@pytest.mark.parametrize(
    "body",
    [
        b"5\r\nhello\r\n0\r\nX-Trailer: 1\n\n",  # trailer fields may end with a bare LF
        b"5\r\nhello\r\n0\r\n\n",
        b"5\r\nhe\nlo\r\n0\r\n\r\n",  # an LF in chunk data is data
        b"5;a=b;c=\"d\"\r\nhello\r\n0\r\n\r\n",
    ],
)
async def test_chunked_bodies_accepted_whole_and_byte_by_byte(body: bytes) -> None:
    """No false alarm from the bare-LF check, however the bytes are split."""
    data = request(method=b"POST", headers=CHUNKED, body=body)
    for pieces in ([data], [data[i : i + 1] for i in range(len(data))]):
        conn = Conn(echo_body)
        for piece in pieces:
            conn.send(piece)
        await conn.settle(lambda: bool(conn.out))  # noqa: B023 (conn of this iteration)
        [resp] = conn.responses(methods=["POST"], eof=False)
        assert resp.status == 200 and resp.body == (b"he\nlo" if b"he\n" in body else b"hello")
        assert not conn.transport.closing


async def test_incomplete_chunk_lines_wait_for_more() -> None:
    for body in (b"5", b"5\r", b"5;a=b", b"5\r\nhello\r", b"5\r\nhello\r\n0\r\nX-T: 1\n"):
        conn = Conn(echo_body)
        conn.send(request(method=b"POST", headers=CHUNKED, body=body))
        await conn.settle(conn.waits_for_body)
        assert conn.out == b"" and not conn.transport.closing, body


# 2. Request line and target ----------------------------------------------------------------


async def test_absolute_form_target_passed_through() -> None:
    recorder = Recorder()
    await run(request(b"http://example.com/a%20b?x=1"), recorder)
    assert recorder.heads[0].target == b"http://example.com/a%20b?x=1"


async def test_request_head_fields() -> None:
    recorder = Recorder()
    await run(request(b"/p?q=1", headers=b"Host: example.com\r\nX-Thing: A b\r\n"), recorder)
    head = recorder.heads[0]
    assert head.method == "GET" and head.http_version == "1.1"
    assert head.headers == [(b"host", b"example.com"), (b"x-thing", b"A b")]
    assert head.client == ("127.0.0.1", 50000) and head.server == ("127.0.0.1", 8000)
    assert head.scheme == "http"


async def test_options_asterisk_accepted() -> None:
    status, _ = await status_of(request(b"*", method=b"OPTIONS"))
    assert status == 200


async def test_empty_lines_before_request_line_ignored() -> None:
    conn = await run(b"\r\n\r\n" + request(b"/a") + b"\r\n" + request(b"/b"), echo_target)
    assert [r.body for r in conn.responses(eof=False)] == [b"/a", b"/b"]


@pytest.mark.parametrize(
    "line",
    [
        b"G(T / HTTP/1.1",  # invalid method token
        b"GET / HTTP/1.x",  # invalid version
        b"GET / HTTP/1.1 ",  # trailing space
        b"GET /",  # HTTP/0.9
        b"GET  / HTTP/1.1",  # double space
        b"GET foo HTTP/1.1",  # not one of the four target forms
        b"GET * HTTP/1.1",  # asterisk-form is for OPTIONS only
        b"GET /a b HTTP/1.1",  # space in target
    ],
)
async def test_invalid_request_line_rejected(line: bytes) -> None:
    await assert_rejected(line + b"\r\nHost: x\r\n\r\n")


async def test_unsupported_major_version_is_505() -> None:
    await assert_rejected(b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", status=505)


async def test_request_line_of_8000_octets_served() -> None:
    target = b"/" + b"a" * (8000 - len(b"GET  HTTP/1.1") - 1)
    line = b"GET " + target + b" HTTP/1.1"
    assert len(line) == 8000
    recorder = Recorder()
    status, _ = await status_of(line + b"\r\nHost: x\r\n\r\n", app=recorder)
    assert status == 200 and recorder.heads[0].target == target


async def test_overly_long_target_is_414() -> None:
    await assert_rejected(request(b"/" + b"a" * 9000), status=414)


async def test_overly_long_target_is_414_before_line_ends() -> None:
    # The line never ends: we answer as soon as it is too long, not at the head limit.
    await assert_rejected(b"GET /" + b"a" * 9000, status=414)


@pytest.mark.parametrize("octet", [b"\xc3\xa9", b"\x01", b"\x7f", b"\x00", b"\x1b", b"\xff"])
async def test_raw_non_ascii_or_control_in_target_is_400(octet: bytes) -> None:
    await assert_rejected(request(b"/a" + octet + b"b"))


# 3. Header fields -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        b"",  # missing Host
        b"Host: a\r\nHost: b\r\n",  # repeated Host
        b"Host: a b\r\n",  # invalid Host
        b"Host: a/b\r\n",
        b"Host: a@b\r\n",
        b"Host: x\r\nFoo : bar\r\n",  # whitespace before colon
        b"Host: x\r\nFo(o: bar\r\n",  # invalid field name
        b"Host: x\r\n: bar\r\n",  # empty field name
        b"Host: x\r\nFoo: b\x00ar\r\n",  # NUL
        b"Host: x\r\nFoo: bar\r\n baz\r\n",  # obs-fold
        b"Host: x\r\nFoo: bar\r\n\tbaz\r\n",  # obs-fold with a tab
        b" Host: x\r\n",  # whitespace before the first field line
        b"Host: x\r\nNo colon here\r\n",
    ],
)
async def test_invalid_headers_rejected(headers: bytes) -> None:
    await assert_rejected(b"GET / HTTP/1.1\r\n" + headers + b"\r\n")


@pytest.mark.parametrize("host", [b"example.com", b"example.com:8080", b"[::1]:80", b"127.0.0.1", b""])
async def test_valid_hosts_accepted(host: bytes) -> None:
    status, _ = await status_of(request(headers=b"Host: " + host + b"\r\n"))
    assert status == 200


async def test_http10_without_host_accepted() -> None:
    status, _ = await status_of(b"GET / HTTP/1.0\r\n\r\n")
    assert status == 200


async def test_8k_header_accepted() -> None:
    recorder = Recorder()
    value = b"v" * 8192
    status, _ = await status_of(request(headers=b"Host: x\r\nCookie: " + value + b"\r\n"), app=recorder)
    assert status == 200 and recorder.heads[0].headers[1] == (b"cookie", value)


async def test_head_over_limit_is_431() -> None:
    many = b"".join(b"X-%d: %s\r\n" % (i, b"v" * 100) for i in range(400))  # ~42 KiB
    await assert_rejected(request(headers=b"Host: x\r\n" + many), status=431)


async def test_head_over_limit_is_431_while_incomplete() -> None:
    await assert_rejected(b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"v" * 40000, status=431)


async def test_head_limit_is_configurable() -> None:
    await assert_rejected(request(headers=b"Host: x\r\nX: " + b"v" * 600 + b"\r\n"), status=431, max_head_size=512)


async def test_head_split_across_many_reads() -> None:
    recorder = Recorder()
    conn = Conn(recorder)
    for byte in request(b"/slow", headers=b"Host: x\r\nA: b\r\n"):
        conn.send(bytes([byte]))
    await conn.settle(lambda: bool(conn.out))
    assert conn.responses(eof=False)[0].status == 200
    assert recorder.heads[0].target == b"/slow"


async def test_obs_fold_split_across_reads_rejected() -> None:
    conn = Conn(hello)
    conn.send(b"GET / HTTP/1.1\r\nHost: x\r\nFoo: bar\r\n")
    conn.send(b" baz\r\n\r\n")
    await conn.settle(lambda: conn.transport.closing)
    assert conn.responses()[0].status == 400


async def test_6400_tiny_header_fields_are_431() -> None:
    # The issue's head: just under max_head_size, ~200 GETs' worth of CPU to parse.
    headers = b"Host: x\r\n" + b"a:b\r\n" * 6400
    assert len(headers) < 32 * 1024
    await assert_rejected(request(headers=headers), status=431)


async def test_100_header_fields_accepted_101_are_431() -> None:
    hundred = b"Host: x\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(99))
    status, _ = await status_of(request(headers=hundred))
    assert status == 200
    await assert_rejected(request(headers=hundred + b"X-last: v\r\n"), status=431)


async def test_too_many_header_fields_is_431_while_incomplete() -> None:
    await assert_rejected(b"GET / HTTP/1.1\r\nHost: x\r\n" + b"a:b\r\n" * 200, status=431)


async def test_header_count_limit_is_configurable() -> None:
    headers = b"Host: x\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(10))
    await assert_rejected(request(headers=headers), status=431, max_header_count=10)
    status, _ = await status_of(request(headers=headers), max_header_count=11)
    assert status == 200
