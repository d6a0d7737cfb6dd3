"""protocol/http11.py: ``H11Protocol``, one connection: what ``connection_made`` learns and
refuses, the named methods its cycle asks (``closed``, ``half_closed``,
``keep_alive_possible``, ``who``), pipelining, half-close, and the server-driven endings
(``shutdown``, ``cancel_request``, ``abort``).

Timers are in test_protocol_timeouts.py, keep-alive rules in test_protocol_keepalive.py.
"""

from __future__ import annotations

import asyncio

import pytest
from protocol_helpers import Conn, Recorder, hello, request

from hump_listener.config import ServerConfig
from hump_listener.protocol.http11 import H11Protocol
from hump_listener.protocol.memory import MemoryTransport
from hump_listener.protocol.server import ServerState
from hump_listener.seam import Channel, RequestHead

pytestmark = pytest.mark.timeout(10)


class Gate:
    """A seam app that answers ``hello`` once released; counts the requests it saw."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.seen: list[bytes] = []

    async def __call__(self, head: RequestHead, channel: Channel) -> None:
        self.seen.append(head.target)
        await self.release.wait()
        await hello(head, channel)


async def test_connection_made_learns_the_peer_and_registers_the_connection() -> None:
    recorder = Recorder()
    conn = Conn(recorder)
    assert conn.proto in conn.state.connections
    assert (conn.proto.client, conn.proto.server, conn.proto.scheme) == (
        ("127.0.0.1", 50000), ("127.0.0.1", 8000), "http",
    )
    assert conn.proto.who() == "127.0.0.1:50000"
    conn.send(request())
    await conn.settle(lambda: bool(recorder.heads))
    assert recorder.heads[0].client == ("127.0.0.1", 50000)
    assert recorder.heads[0].scheme == "http"


async def test_a_tls_transport_makes_the_scheme_https_and_no_peer_says_client() -> None:
    loop = asyncio.get_running_loop()
    state = ServerState(Recorder(), ServerConfig(), loop)
    proto = H11Protocol(state)
    transport = MemoryTransport(loop, extra={"sslcontext": object(), "peername": None})
    transport.connect(proto)
    assert proto.scheme == "https"
    assert proto.client is None
    assert proto.who() == "client"
    transport.close()


async def test_connections_beyond_the_limit_get_a_503_and_are_closed() -> None:
    conn = Conn(hello, max_connections=0)
    assert conn.proto not in conn.state.connections
    assert [r.status for r in conn.responses()] == [503]
    assert conn.transport.closing and conn.proto.closed


async def test_connection_lost_unregisters_and_tells_the_cycle() -> None:
    gate = Gate()
    conn = Conn(gate)
    conn.send(request())
    await conn.settle(lambda: bool(gate.seen))
    cycle = conn.proto.cycle
    assert cycle is not None
    conn.proto.connection_lost(None)
    assert conn.proto.closed
    assert conn.proto not in conn.state.connections
    assert cycle.disconnected
    gate.release.set()
    await conn.settle(lambda: not conn.state.tasks)


async def test_pipelined_requests_wait_for_their_predecessor_and_pause_reading() -> None:
    gate = Gate()
    conn = Conn(gate)
    conn.send(request(b"/1") + request(b"/2"))
    await conn.settle(lambda: bool(gate.seen))
    assert gate.seen == [b"/1"]  # /2 is held, not parsed
    assert not conn.transport.is_reading()
    assert conn.proto.keep_alive_possible()
    gate.release.set()
    await conn.settle(lambda: conn.out.count(b"HTTP/1.1 200 OK") == 2)
    assert len(conn.responses(eof=False)) == 2
    assert gate.seen == [b"/1", b"/2"]
    assert conn.transport.is_reading()


async def test_a_half_close_after_a_complete_request_still_gets_its_answer() -> None:
    gate = Gate()
    conn = Conn(gate)
    conn.send(request())
    await conn.settle(lambda: bool(gate.seen))
    assert conn.eof() is True  # keep the transport open: the response is still to come
    assert conn.proto.half_closed
    assert not conn.proto.keep_alive_possible()  # no next request can come
    gate.release.set()
    await conn.settle(lambda: conn.transport.closing)
    [response] = conn.responses()
    assert response.status == 200
    assert response.header(b"connection") == b"close"


async def test_a_half_close_when_idle_lets_the_transport_close() -> None:
    conn = Conn(hello)
    assert conn.transport.feed_eof() is False  # eof_received: nothing to answer
    assert conn.transport.closing
    await conn.settle(lambda: conn.proto.closed)  # connection_lost, next loop turn
    assert conn.proto not in conn.state.connections


async def test_shutdown_closes_an_idle_connection_at_once() -> None:
    conn = Conn(hello)
    conn.proto.shutdown()
    assert conn.transport.closing


async def test_shutdown_lets_the_current_response_finish_then_closes() -> None:
    gate = Gate()
    conn = Conn(gate)
    conn.send(request())
    await conn.settle(lambda: bool(gate.seen))
    conn.state.shutting_down = True
    conn.proto.shutdown()
    assert not conn.transport.closing
    gate.release.set()
    await conn.settle(lambda: conn.transport.closing)
    [response] = conn.responses()
    assert (response.status, response.header(b"connection")) == (200, b"close")


async def test_cancel_request_answers_503_when_nothing_was_sent() -> None:
    gate = Gate()
    conn = Conn(gate)
    conn.send(request())
    await conn.settle(lambda: bool(gate.seen))
    conn.proto.cancel_request()
    assert [r.status for r in conn.responses()] == [503]
    assert conn.transport.closing
    gate.release.set()
    await conn.settle(lambda: not conn.state.tasks)


async def test_abort_drops_the_connection_without_a_response() -> None:
    conn = Conn(hello)
    conn.proto.abort()
    assert conn.transport.aborted
    assert conn.proto.closed
    assert conn.out == b""


async def test_a_bad_head_is_answered_and_the_connection_closed() -> None:
    conn = Conn(hello)
    conn.send(b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n")
    assert [r.status for r in conn.responses()] == [400]
    assert conn.proto.closed


async def test_data_after_the_close_is_discarded_while_lingering() -> None:
    conn = Conn(hello, half_close=True)
    conn.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
    await conn.settle(lambda: conn.proto.closed)
    assert conn.transport.eof_written  # half-closed: our FIN follows the response
    before = conn.out
    conn.send(b"more of the body nobody reads")
    assert conn.out == before
    assert conn.eof() is False  # the client finished: close now
