"""Keep-alive, pipelining, Connection: close and half-close (bytes in, bytes out)."""

from __future__ import annotations

import asyncio

import pytest
from protocol_helpers import Conn, echo_body, echo_target, hello, request

from hump_listener.seam import Channel, RequestHead

pytestmark = pytest.mark.timeout(10)


async def test_many_requests_on_one_connection() -> None:
    conn = Conn(echo_target)
    for i in range(50):
        conn.send(request(b"/%d" % i))
        await conn.settle(lambda i=i: conn.out.count(b"HTTP/1.1 200") == i + 1)  # type: ignore[misc]
    assert [r.body for r in conn.responses(eof=False)] == [b"/%d" % i for i in range(50)]
    assert not conn.transport.closing


async def test_pipelined_requests_answered_in_order() -> None:
    order: list[bytes] = []

    async def app(head: RequestHead, channel: Channel) -> None:
        # the first request is the slowest: pipelining must not reorder answers
        if head.target == b"/0":
            for _ in range(10):
                await asyncio.sleep(0)
        order.append(head.target)
        await echo_target(head, channel)

    conn = Conn(app)
    conn.send(b"".join(request(b"/%d" % i) for i in range(5)))
    await conn.settle(lambda: conn.out.count(b"HTTP/1.1 200") == 5)
    assert [r.body for r in conn.responses(eof=False)] == [b"/0", b"/1", b"/2", b"/3", b"/4"]
    assert order == [b"/0", b"/1", b"/2", b"/3", b"/4"]  # one at a time, in order


async def test_pipelined_request_pauses_reading_until_its_turn() -> None:
    release = asyncio.Event()

    async def app(head: RequestHead, channel: Channel) -> None:
        if head.target == b"/first":
            await release.wait()
        await hello(head, channel)

    conn = Conn(app)
    conn.send(request(b"/first"))
    await conn.settle(lambda: bool(conn.state.tasks))  # /first is in flight
    assert conn.transport.reading
    conn.send(request(b"/second"))  # arrives while /first is in flight
    assert not conn.transport.reading  # read-ahead is bounded: the socket is paused
    release.set()
    await conn.settle(lambda: conn.out.count(b"HTTP/1.1 200") == 2)
    assert conn.transport.reading


async def test_pipelined_requests_after_a_body_in_the_same_read() -> None:
    data = request(method=b"POST", headers=b"Host: x\r\nContent-Length: 3\r\n", body=b"abc") + request(b"/2")
    conn = Conn(echo_body)
    conn.send(data)
    await conn.settle(lambda: conn.out.count(b"HTTP/1.1 200") == 2)
    assert [r.body for r in conn.responses(eof=False)] == [b"abc", b""]


async def test_connection_close_honoured_and_later_pipelined_requests_ignored() -> None:
    seen: list[bytes] = []

    async def app(head: RequestHead, channel: Channel) -> None:
        seen.append(head.target)
        await hello(head, channel)

    conn = Conn(app)
    conn.send(request(b"/a", headers=b"Host: x\r\nConnection: close\r\n") + request(b"/b"))
    await conn.settle(lambda: conn.transport.lost)
    await conn.settle(lambda: not conn.state.tasks)
    assert seen == [b"/a"]
    assert conn.out.count(b"HTTP/1.1 ") == 1
    assert conn.responses()[0].header(b"connection") == b"close"


async def test_app_connection_close_header_closes() -> None:
    async def app(head: RequestHead, channel: Channel) -> None:
        channel.respond(200, [(b"content-length", b"0"), (b"Connection", b"close")], b"")

    conn = Conn(app)
    conn.send(request() + request())
    await conn.settle(lambda: conn.transport.lost)
    assert conn.out.count(b"HTTP/1.1 ") == 1
    assert conn.responses()[0].header(b"connection") == b"close"


async def test_half_close_after_complete_request_still_answered() -> None:
    release = asyncio.Event()

    async def app(head: RequestHead, channel: Channel) -> None:
        await release.wait()
        await hello(head, channel)

    conn = Conn(app)
    conn.send(request())
    await conn.settle(lambda: bool(conn.state.tasks))  # the request is in flight
    assert conn.eof() is True  # keep the transport open for our answer
    assert not conn.transport.closing
    release.set()
    await conn.settle(lambda: conn.transport.closing)
    [resp] = conn.responses()
    assert resp.status == 200 and resp.body == b"hello"
    assert resp.header(b"connection") == b"close"


async def test_half_close_with_pipelined_requests_answers_all() -> None:
    conn = Conn(echo_target)
    conn.send(request(b"/1") + request(b"/2"))
    conn.eof()
    await conn.settle(lambda: conn.transport.closing)
    assert [r.body for r in conn.responses()] == [b"/1", b"/2"]


async def test_half_close_when_idle_closes() -> None:
    conn = Conn(hello)
    assert conn.eof() is False
    conn.send(request())
    await conn.settle(lambda: bool(conn.out))
    assert conn.eof() is False


async def test_half_close_mid_head_closes_quietly() -> None:
    conn = Conn(hello)
    conn.send(b"GET / HTTP/1.1\r\nHost")
    assert conn.eof() is False
    await conn.settle()
    assert conn.out == b""
