"""Faults: app errors, disconnects, garbage on the port, errors inside callbacks."""

from __future__ import annotations

import asyncio
import io
import logging
import socket
from typing import Any

import pytest
from protocol_helpers import Conn, hello, request

from hump_listener.protocol.cycle import SENDFILE_PIECE
from hump_listener.protocol.http11 import H11Protocol
from hump_listener.protocol.memory import MemoryTransport
from hump_listener.seam import Channel, ClientDisconnect, RequestHead, SeamApp

pytestmark = pytest.mark.timeout(10)


def errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "hump_listener.error"]


async def test_app_error_before_response_is_500_with_traceback(caplog: pytest.LogCaptureFixture) -> None:
    async def app(head: RequestHead, channel: Channel) -> None:
        raise KeyError("boom")

    conn = Conn(app)
    conn.send(request())
    await conn.settle(lambda: conn.transport.closing)
    [resp] = conn.responses()
    assert resp.status == 500 and resp.body == b"Internal Server Error"
    [record] = errors(caplog)
    assert record.exc_info is not None and record.exc_info[0] is KeyError


async def test_app_error_after_start_closes(caplog: pytest.LogCaptureFixture) -> None:
    async def app(head: RequestHead, channel: Channel) -> None:
        await channel.start(200, [])
        await channel.write(b"partial")
        raise RuntimeError("boom")

    conn = Conn(app)
    conn.send(request())
    await conn.settle(lambda: conn.transport.closing)
    assert conn.out.count(b"HTTP/1.1") == 1 and b"500" not in conn.out
    assert not conn.out.endswith(b"0\r\n\r\n")  # the client sees a truncated body, not a complete one
    assert errors(caplog)[0].exc_info is not None


async def test_app_returning_without_responding_is_500(caplog: pytest.LogCaptureFixture) -> None:
    async def app(head: RequestHead, channel: Channel) -> None:
        return None

    conn = Conn(app)
    conn.send(request())
    await conn.settle(lambda: conn.transport.closing)
    assert conn.responses()[0].status == 500
    assert "without responding" in errors(caplog)[0].getMessage()


async def test_app_returning_without_ending_stream_closes() -> None:
    async def app(head: RequestHead, channel: Channel) -> None:
        await channel.start(200, [])

    conn = Conn(app)
    conn.send(request() + request())
    await conn.settle(lambda: conn.transport.closing)
    assert conn.out.count(b"HTTP/1.1") == 1


async def test_respond_after_disconnect_is_a_silent_no_op() -> None:
    async def app(head: RequestHead, channel: Channel) -> None:
        conn.proto.connection_lost(ConnectionResetError())
        assert channel.disconnected
        await hello(head, channel)  # no exception
        assert channel.started

    conn = Conn(app)
    conn.send(request())
    await conn.settle(lambda: not conn.state.tasks)
    assert conn.out == b"" and conn.transport.writes_after_close == 0
    assert conn.proto not in conn.state.connections


async def test_disconnect_before_response_does_not_500(caplog: pytest.LogCaptureFixture) -> None:
    async def app(head: RequestHead, channel: Channel) -> None:
        conn.proto.connection_lost(None)

    conn = Conn(app)
    conn.send(request())
    await conn.settle(lambda: not conn.state.tasks)
    assert conn.out == b"" and errors(caplog) == []


async def test_tls_handshake_closes_with_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "hump_listener.error")
    conn = Conn(hello)
    conn.send(bytes.fromhex("16030100f5010000f10303") + bytes(40))
    await conn.settle(lambda: conn.transport.lost)
    [record] = errors(caplog)
    assert "TLS" in record.getMessage() and record.exc_info is None
    assert "\n" not in record.getMessage()


@pytest.mark.parametrize("garbage", [b"\x00\x01\x02\x03", b"\xff\xfe\r\n\r\n", b"  GET / HTTP/1.1\r\n\r\n"])
async def test_binary_garbage_is_400_with_one_log_line(garbage: bytes, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "hump_listener.error")
    conn = Conn(hello)
    conn.send(garbage)
    await conn.settle(lambda: conn.transport.lost)
    assert conn.responses()[0].status == 400
    [record] = errors(caplog)
    assert record.exc_info is None


async def test_no_exception_escapes_a_protocol_callback(caplog: pytest.LogCaptureFixture) -> None:
    conn = Conn(hello)

    def broken(data: bytes) -> None:
        raise ValueError("bug")

    conn.proto._receive_head = broken  # type: ignore[method-assign]
    conn.send(request())  # must not raise
    assert conn.transport.aborted
    assert errors(caplog)[0].exc_info is not None


async def test_connection_keeps_serving_after_an_app_error() -> None:
    calls = 0

    async def app(head: RequestHead, channel: Channel) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("first one fails")
        await hello(head, channel)

    first = Conn(app)
    first.send(request())
    await first.settle(lambda: first.transport.closing)
    second = Conn(app)
    second.send(request())
    await second.settle(lambda: bool(second.out))
    assert first.responses()[0].status == 500
    assert second.responses(eof=False)[0].status == 200


# -- a client that left is never an error (issue 10, item 2) -----------------------------


class GoneTransport(MemoryTransport):
    """A socket whose client already left: ``write_eof`` fails as the kernel's does."""

    def write_eof(self) -> None:
        raise OSError(107, "Transport endpoint is not connected")


def gone(app: SeamApp) -> Conn:
    conn = Conn(app)
    conn.transport = GoneTransport(asyncio.get_running_loop(), half_close=True)
    conn.proto = H11Protocol(conn.state)
    conn.transport.connect(conn.proto)
    return conn


@pytest.mark.parametrize("garbage", [b"\x01\r\n\r\n", b"GE\x0c\x7fT / HTTP/1.0\r\n\r\n"])
async def test_lingering_close_after_the_client_left_aborts_quietly(
    garbage: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    conn = gone(hello)
    conn.send(garbage)  # answered 400, then the lingering close's write_eof fails
    assert conn.transport.aborted
    await conn.settle(lambda: conn.transport.lost)
    assert conn.proto not in conn.state.connections
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_respond_is_not_hit_by_the_lingering_close_of_a_client_that_left(
    caplog: pytest.LogCaptureFixture,
) -> None:
    returned: list[bool] = []

    async def too_large(head: RequestHead, channel: Channel) -> None:
        channel.respond(413, [(b"content-length", b"0")], b"")  # without reading the body
        returned.append(True)

    conn = gone(too_large)
    conn.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10737418240\r\n\r\n" + b"x" * 1000)
    await conn.settle(lambda: not conn.state.tasks)
    assert returned == [True] and conn.transport.aborted
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_a_stream_cut_short_by_the_client_leaving_is_no_error(caplog: pytest.LogCaptureFixture) -> None:
    async def events(head: RequestHead, channel: Channel) -> None:
        await channel.start(200, [(b"content-type", b"text/event-stream")])
        await channel.write(b"data: 1\n\n")
        conn.proto.connection_lost(ConnectionResetError())
        with pytest.raises(ClientDisconnect):
            await channel.write(b"data: 2\n\n")
        # and returns without ending the response, as an SSE generator that stops does

    conn = Conn(events)
    conn.send(request())
    await conn.settle(lambda: not conn.state.tasks)
    assert errors(caplog) == []


class FakeSendfile:
    """Stands in for ``loop.sendfile`` (a socket transport's zero-copy path)."""

    def __init__(self, fail: BaseException | None = None, hang: bool = False) -> None:
        self.calls: list[tuple[int, int]] = []
        self.fail = fail
        self.hang = hang
        self.cancelled = False

    async def __call__(self, transport: Any, file: Any, offset: int, count: int) -> int:
        self.calls.append((offset, count))
        if self.fail is not None:
            raise self.fail
        if self.hang:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled = True
                raise
        return count


def sendfile_conn(app: SeamApp, fake: FakeSendfile) -> Conn:
    sock, peer = socket.socketpair()
    conn = Conn(app, clock=True, extra={"socket": sock})
    assert conn.clock is not None
    conn.clock.sendfile = fake  # type: ignore[attr-defined]
    conn.sockets = (sock, peer)  # type: ignore[attr-defined]
    return conn


def close_sockets(conn: Conn) -> None:
    for sock in conn.sockets:  # type: ignore[attr-defined]
        sock.close()


async def test_sendfile_reset_by_the_client_is_client_disconnect(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[BaseException] = []

    async def app(head: RequestHead, channel: Channel) -> None:
        await channel.start(200, [(b"content-length", b"1000")])
        try:
            await channel.sendfile(io.BytesIO(bytes(1000)), 0, 1000)
        except ClientDisconnect as exc:
            seen.append(exc)
            raise

    conn = sendfile_conn(app, FakeSendfile(fail=ConnectionResetError(104, "Connection reset by peer")))
    conn.send(request())
    await conn.settle(lambda: not conn.state.tasks)
    close_sockets(conn)
    assert len(seen) == 1 and errors(caplog) == []


async def test_sendfile_goes_in_pieces_each_one_progress() -> None:  # for the send timeout
    fake = FakeSendfile()
    size = 3 * SENDFILE_PIECE + 10

    async def app(head: RequestHead, channel: Channel) -> None:
        await channel.start(200, [(b"content-length", b"%d" % size)])
        await channel.sendfile(io.BytesIO(bytes(size)), 5, size)
        await channel.end()

    conn = sendfile_conn(app, fake)
    assert conn.clock is not None and conn.proto.flow.progressed < conn.clock.now
    conn.send(request())
    await conn.settle(lambda: not conn.state.tasks)
    close_sockets(conn)
    assert fake.calls == [(5 + i * SENDFILE_PIECE, SENDFILE_PIECE) for i in range(3)] + [(5 + 3 * SENDFILE_PIECE, 10)]
    assert conn.proto.flow.progressed == conn.clock.now


@pytest.mark.parametrize("closer", ["send timeout", "shutdown abort", "handler timeout"])
async def test_closing_the_connection_stops_a_sendfile_in_flight(closer: str) -> None:
    """asyncio's sendfile never completes once its socket is closed under it: the close
    paths cancel it first, and the app hears of it (its file gets closed)."""
    fake = FakeSendfile(hang=True)
    outcome: list[type[BaseException]] = []

    async def app(head: RequestHead, channel: Channel) -> None:
        await channel.start(200, [(b"content-length", b"1000")])
        try:
            await channel.sendfile(io.BytesIO(bytes(1000)), 0, 1000)
        except BaseException as exc:
            outcome.append(type(exc))
            raise

    conn = sendfile_conn(app, fake)
    conn.send(request())
    await conn.settle(lambda: bool(fake.calls))
    assert conn.clock is not None
    if closer == "send timeout":
        conn.clock.advance(conn.state.config.send_timeout or 0.0)
    elif closer == "shutdown abort":
        conn.proto.abort()
    else:
        conn.proto.cycle.start_handler_timer(1.0)  # type: ignore[union-attr]
        conn.clock.advance(1.0)
    await conn.settle(lambda: bool(outcome) and not conn.state.tasks)
    close_sockets(conn)
    assert fake.cancelled and conn.transport.closing
    # The app's own task is cancelled only by the handler timeout.
    assert outcome == [asyncio.CancelledError if closer == "handler timeout" else ClientDisconnect]
