"""Closing (http11 policies 7 and 8), bytes in, bytes out: when a close lingers, and how a
connection whose reading is paused learns that its client left.

The transport here can write EOF (``half_close=True``): ``eof_written`` without
``closing`` is a lingering close under way. Where the protocol polls its socket, the
transport carries one end of a real ``socketpair``; the test plays the client on the other.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Iterator

import pytest
from protocol_helpers import Conn, hello, request

from hump_listener.config import ServerConfig
from hump_listener.protocol.http11 import H11Protocol
from hump_listener.protocol.memory import MemoryTransport
from hump_listener.protocol.server import ServerState
from hump_listener.seam import Channel, RequestHead

pytestmark = pytest.mark.timeout(10)


def lingering(conn: Conn) -> bool:
    return conn.transport.eof_written and not conn.transport.closing


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """(the server's socket, the client's)."""
    server, client = socket.socketpair()
    yield server, client
    server.close()
    client.close()


# -- policy 7: a close that may leave request bytes unread lingers ------------------------


@pytest.mark.parametrize(
    "first",
    [
        request(headers=b"Host: x\r\nConnection: close\r\n"),
        b"GET / HTTP/1.0\r\n\r\n",
    ],
    ids=["connection-close", "http-1.0"],
)
async def test_pipelined_requests_behind_a_close_type_response_linger(first: bytes) -> None:
    conn = Conn(hello, half_close=True)
    conn.send(first + request(b"/next"))
    await conn.settle(lambda: bool(conn.out))
    assert conn.out.count(b"HTTP/1.1 ") == 1
    assert lingering(conn)
    assert conn.eof() is False  # the client finished: asyncio closes the transport now


async def test_app_close_with_pipelined_requests_lingers() -> None:
    async def app(head: RequestHead, channel: Channel) -> None:
        channel.respond(200, [(b"content-length", b"0"), (b"connection", b"close")], b"")

    conn = Conn(app, half_close=True)
    conn.send(request() + request())
    await conn.settle(lambda: bool(conn.out))
    assert lingering(conn)


async def test_a_close_type_response_with_nothing_unread_closes_at_once() -> None:
    conn = Conn(hello, half_close=True)
    conn.send(request(headers=b"Host: x\r\nConnection: close\r\n"))
    await conn.settle(lambda: conn.transport.closing)
    assert not conn.transport.eof_written


async def test_a_close_type_response_lingers_when_bytes_wait_in_the_kernel(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, client = pair
    conn = Conn(hello, half_close=True, extra={"socket": server})
    client.sendall(request(b"/pipelined"))  # sent, but the protocol has not read it
    conn.send(request(headers=b"Host: x\r\nConnection: close\r\n"))
    await conn.settle(lambda: bool(conn.out))
    assert lingering(conn)


async def test_shutdown_lingers_only_where_a_request_may_be_arriving(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    idle = Conn(hello, half_close=True)
    idle.proto.shutdown()
    assert idle.transport.closing and not idle.transport.eof_written  # plain close

    partial = Conn(hello, half_close=True)
    partial.send(b"GET / HTTP/1.1\r\nHo")
    partial.proto.shutdown()
    assert lingering(partial)

    server, client = pair
    arriving = Conn(hello, half_close=True, extra={"socket": server})
    client.sendall(request())
    arriving.proto.shutdown()
    assert lingering(arriving)


async def test_keep_alive_timeout_lingers_when_a_request_is_arriving(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, client = pair
    conn = Conn(hello, clock=True, half_close=True, extra={"socket": server}, keep_alive_timeout=5.0)
    assert conn.clock is not None
    conn.send(request())
    await conn.settle(lambda: bool(conn.out))
    client.sendall(request(b"/late"))  # in the kernel's buffer as the timer fires
    conn.clock.advance(5.1)
    assert lingering(conn)


async def test_beyond_max_connections_the_503_lingers_for_at_most_as_many_again() -> None:
    loop = asyncio.get_running_loop()
    state = ServerState(hello, ServerConfig(max_connections=1), loop)
    transports = []
    for _ in range(3):
        transport = MemoryTransport(loop, half_close=True)
        transport.connect(H11Protocol(state))
        transports.append(transport)
    served, refused, beyond = transports
    assert served.out == b"" and not served.closing
    assert refused.out.startswith(b"HTTP/1.1 503") and refused.eof_written and not refused.closing
    assert len(state.rejected) == 1 and len(state.connections) == 1
    assert beyond.out.startswith(b"HTTP/1.1 503") and beyond.closing and not beyond.eof_written
    assert refused.feed_eof() is False  # the client read its 503 and closed ...
    refused.close()  # ... so asyncio closes the transport
    await asyncio.sleep(0)  # connection_lost is reported on the next loop turn
    assert refused.lost and state.rejected == set()


# -- policy 8: a paused connection learns that its client left ----------------------------


class Stuck:
    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def __call__(self, head: RequestHead, channel: Channel) -> None:
        await self.release.wait()  # neither reads the body nor answers
        await hello(head, channel)


BODY_HEAD = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n"


def paused(conn: Conn) -> bool:
    return conn.proto.flow.read_paused and not conn.transport.reading


@pytest.mark.parametrize("how", ["close", "shutdown", "reset"])
async def test_a_client_that_left_a_paused_connection_is_read_again(
    pair: tuple[socket.socket, socket.socket], how: str
) -> None:
    server, client = pair
    stuck = Stuck()
    conn = Conn(stuck, extra={"socket": server})
    conn.send(BODY_HEAD + bytes(100_000))  # above the body high-water mark
    await conn.settle(lambda: paused(conn))
    conn.state.check_paused()
    assert paused(conn)  # the client is still there: nothing changes
    if how == "reset":
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
    elif how == "shutdown":
        client.shutdown(socket.SHUT_WR)
    else:
        client.close()
    conn.state.check_paused()
    assert conn.transport.reading and conn.proto.flow.released
    conn.send(bytes(100_000))  # the transport now reads what the kernel holds ...
    assert conn.transport.reading  # ... and never pauses again (the buffer is over the mark)
    assert conn.eof() is False  # ... then the EOF: mid-body, the request can never complete
    assert conn.proto.cycle is not None and conn.proto.cycle.disconnected
    stuck.release.set()
    await conn.settle(lambda: not conn.state.tasks)


async def test_a_paused_pipelined_connection_half_closed_still_answers_everything(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, client = pair
    stuck = Stuck()
    conn = Conn(stuck, extra={"socket": server})
    conn.send(request(b"/1") + request(b"/2"))
    await conn.settle(lambda: paused(conn))
    client.shutdown(socket.SHUT_WR)  # a half-close after its requests
    conn.state.check_paused()
    assert conn.transport.reading
    assert conn.eof() is True  # the request is complete: it is still answered
    stuck.release.set()
    await conn.settle(lambda: conn.transport.closing)
    assert conn.out.count(b"HTTP/1.1 200") == 2


async def test_the_probe_skips_connections_without_a_socket_or_not_paused() -> None:
    conn = Conn(Stuck())
    conn.send(BODY_HEAD + bytes(100_000))
    await conn.settle(lambda: paused(conn))
    conn.state.check_paused()  # no socket to poll: nothing to do, nothing raised
    assert paused(conn)


async def test_a_fin_while_a_response_streams_means_the_client_left() -> None:
    """Issue 18.7: a client that leaves an idle SSE stream (FIN after its complete
    request) is noticed at once: ``wait_closed()`` returns, no write has to fail first."""
    streaming = asyncio.Event()
    left = asyncio.Event()

    async def app(head: RequestHead, channel: Channel) -> None:
        await channel.start(200, [(b"content-type", b"text/event-stream")])
        await channel.write(b"data: hi\n\n")
        streaming.set()
        await channel.wait_closed()
        left.set()

    conn = Conn(app, half_close=True)
    conn.send(request(b"/clock"))
    await conn.settle(streaming.is_set)
    conn.eof()
    await conn.settle(left.is_set)
    await conn.settle(lambda: conn.transport.closing)
