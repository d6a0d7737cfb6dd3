"""protocol/websocket.py: bytes in, bytes out over the in-memory transport, timers on the
manual clock. The apps are tiny seam apps (``channel.websocket``), never the App.

Groups: the handshake (policy 1), the upgrade (2), liveness (5), closing (6, 7),
backpressure (4), shutdown, closed-state errors, permessage-deflate.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import zlib
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from protocol_helpers import exchange, serve, settle
from ws_helpers import (
    ACCEPT,
    BINARY,
    CLOSE,
    PING,
    PONG,
    TEXT,
    B,
    C,
    Frame,
    MemWS,
    SockWS,
    T,
    binary,
    close,
    echo_app,
    frame,
    handshake,
    head_fields,
    text,
)

from hump_listener.protocol.websocket import WebSocketProtocol
from hump_listener.seam import Channel, RequestHead, WebSocketChannel, WebSocketDisconnect

pytestmark = pytest.mark.timeout(10)

App = Callable[[RequestHead, Channel], Any]


def errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "hump_listener.error" and r.levelno >= logging.ERROR]


def status_of(head: bytes) -> int:
    return int(head.split(b" ", 2)[1])


async def opened(app: App | None = None, **config: Any) -> MemWS:
    """A MemWS whose handshake was accepted (101 read)."""
    ws = MemWS(app if app is not None else echo_app(), **config)
    head = await ws.open()
    assert status_of(head) == 101, head
    return ws


class Holder:
    """An app that accepts and hands the channel to the test, which drives it; the
    handler returns when ``done`` is set, or raises ``fail`` if set first."""

    def __init__(self, **accept: Any) -> None:
        self.ws: WebSocketChannel | None = None
        self.accepted = asyncio.Event()
        self.done = asyncio.Event()
        self.fail: BaseException | None = None
        self.accept = accept
        self.before_accept: asyncio.Event | None = None

    async def __call__(self, head: RequestHead, channel: Channel) -> None:
        ws = channel.websocket
        assert ws is not None and ws.rejection is None
        self.ws = ws
        if self.before_accept is not None:
            await self.before_accept.wait()
        await ws.accept(**self.accept)
        self.accepted.set()
        await self.done.wait()
        if self.fail is not None:
            raise self.fail

    @property
    def channel(self) -> WebSocketChannel:
        assert self.ws is not None
        return self.ws


async def run(coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    """Start ``coro`` as a task and let it reach its first wait."""
    task = asyncio.ensure_future(coro)
    for _ in range(5):
        await asyncio.sleep(0)
    return task


# -- the handshake (policy 1) ------------------------------------------------------------


async def test_valid_handshake_is_101_with_the_accept_key_then_frames() -> None:
    ws = MemWS(echo_app())
    head = await ws.open()
    fields = head_fields(head)
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols")
    assert fields[b"sec-websocket-accept"] == [ACCEPT]  # RFC 6455 §1.3's worked example
    assert fields[b"upgrade"] == [b"websocket"] and fields[b"connection"] == [b"Upgrade"]
    assert fields[b"server"] == [b"hump_listener"]
    assert b"sec-websocket-protocol" not in fields and b"sec-websocket-extensions" not in fields
    ws.send(text("hello") + binary(b"\x00\xff"))
    assert await ws.wait_frames(2) == [T("hello"), B(b"\x00\xff")]


@pytest.mark.parametrize(
    "key",
    [None, b"abc", b"!!!!!!!!!!!!!!!!!!!!!!!!", base64.b64encode(b"x" * 15), base64.b64encode(b"x" * 17)],
    ids=["missing", "bad-padding", "not-base64", "15-bytes", "17-bytes"],
)
async def test_missing_or_invalid_key_is_400(key: bytes | None) -> None:
    ws = MemWS(echo_app())
    head = await ws.open(handshake(key=key))
    assert status_of(head) == 400
    assert b"Sec-WebSocket-Key" in ws.transport.out
    await ws.settle(lambda: ws.transport.closing)  # a rejection closes the connection


@pytest.mark.parametrize("version", [b"12", b"8", None, b"13, 8"], ids=["12", "8", "missing", "list"])
async def test_unsupported_version_is_426_naming_version_13(version: bytes | None) -> None:
    ws = MemWS(echo_app())
    head = await ws.open(handshake(version=version))
    assert status_of(head) == 426
    assert head_fields(head)[b"sec-websocket-version"] == [b"13"]  # RFC 6455 §4.4


@pytest.mark.parametrize(
    "request_",
    [
        handshake(connection=None),
        handshake(connection=b"keep-alive"),
        handshake(upgrade=b"websocket, h2c"),
    ],
    ids=["no-connection", "connection-without-upgrade", "two-upgrade-protocols"],
)
async def test_bad_upgrade_or_connection_tokens_are_426(request_: bytes) -> None:
    ws = MemWS(echo_app())
    head = await ws.open(request_)
    assert status_of(head) == 426
    assert head_fields(head)[b"upgrade"] == [b"websocket"]


async def test_connection_token_is_found_among_others_and_case_insensitively() -> None:
    ws = MemWS(echo_app())
    head = await ws.open(handshake(connection=b"keep-alive, UPGRADE", upgrade=b"WebSocket"))
    assert status_of(head) == 101


async def test_no_upgrade_header_is_plain_http() -> None:
    ws = MemWS(echo_app())
    head = await ws.open(handshake(upgrade=None))
    assert status_of(head) == 200  # channel.websocket is None: the app answered as HTTP
    assert ws.transport.out.endswith(b"plain")


async def test_post_is_405_allowing_get() -> None:
    ws = MemWS(echo_app())
    head = await ws.open(handshake(method=b"POST"))
    assert status_of(head) == 405
    assert head_fields(head)[b"allow"] == [b"GET"]


async def test_http_10_is_refused() -> None:
    ws = MemWS(echo_app())
    head = await ws.open(handshake(http=b"1.0"))
    assert status_of(head) == 505  # websockets' choice: RFC 6455 §4.1 asks for 1.1 or later
    assert not isinstance(ws.proto, WebSocketProtocol)


async def test_accept_on_a_rejected_handshake_raises() -> None:
    seen: list[BaseException] = []

    async def app(head: RequestHead, channel: Channel) -> None:
        ws = channel.websocket
        assert ws is not None and ws.rejection is not None
        try:
            await ws.accept()
        except RuntimeError as exc:
            seen.append(exc)
        channel.respond(*ws.rejection)

    ws = MemWS(app)
    assert status_of(await ws.open(handshake(version=b"12"))) == 426
    assert len(seen) == 1 and "426" in str(seen[0])


async def test_offered_subprotocol_is_accepted_and_named_in_the_101() -> None:
    offered: list[list[str]] = []

    async def app(head: RequestHead, channel: Channel) -> None:
        ws = channel.websocket
        assert ws is not None
        offered.append(ws.subprotocols)
        await ws.accept(subprotocol="superchat")
        await ws.close()

    ws = MemWS(app)
    head = await ws.open(handshake(extra=b"Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Protocol: v2\r\n"))
    assert status_of(head) == 101
    assert head_fields(head)[b"sec-websocket-protocol"] == [b"superchat"]
    assert offered == [["chat", "superchat", "v2"]]


async def test_a_subprotocol_the_client_did_not_offer_is_refused() -> None:
    seen: list[BaseException] = []

    async def app(head: RequestHead, channel: Channel) -> None:
        ws = channel.websocket
        assert ws is not None
        try:
            await ws.accept(subprotocol="graphql-ws")
        except ValueError as exc:
            seen.append(exc)
        channel.respond(400, [(b"content-length", b"0")], b"")

    ws = MemWS(app)
    head = await ws.open(handshake(extra=b"Sec-WebSocket-Protocol: chat\r\n"))
    assert status_of(head) == 400 and len(seen) == 1  # no 101 went out


async def test_extra_headers_are_sent_on_the_101() -> None:
    app = echo_app(headers=[(b"set-cookie", b"a=1"), (b"set-cookie", b"b=2"), (b"x-room", b"lobby")])
    ws = MemWS(app)
    fields = head_fields(await ws.open())
    assert fields[b"set-cookie"] == [b"a=1", b"b=2"] and fields[b"x-room"] == [b"lobby"]


async def test_a_header_with_cr_or_lf_is_refused_before_anything_is_written() -> None:
    seen: list[BaseException] = []

    async def app(head: RequestHead, channel: Channel) -> None:
        ws = channel.websocket
        assert ws is not None
        try:
            await ws.accept(headers=[(b"x-evil", b"a\r\nset-cookie: pwned=1")])
        except ValueError as exc:
            seen.append(exc)
        channel.respond(500, [(b"content-length", b"0")], b"")

    ws = MemWS(app)
    assert status_of(await ws.open()) == 500 and len(seen) == 1
    assert b"pwned" not in ws.transport.out


async def test_receive_and_send_before_accept_raise() -> None:
    seen: list[BaseException] = []

    async def app(head: RequestHead, channel: Channel) -> None:
        ws = channel.websocket
        assert ws is not None
        for call in (ws.receive(), ws.send("x"), ws.close()):
            try:
                await call
            except RuntimeError as exc:
                seen.append(exc)
        channel.respond(403, [(b"content-length", b"0")], b"")

    ws = MemWS(app)
    assert status_of(await ws.open()) == 403 and len(seen) == 3


# -- the upgrade (policy 2) ----------------------------------------------------------------


async def test_bytes_after_the_head_are_delivered_after_accept() -> None:
    holder = Holder()
    holder.before_accept = asyncio.Event()
    ws = MemWS(holder)
    # The first frame arrives with the head, the second before the handler accepts.
    ws.send(handshake() + text("first"))
    await settle(lambda: holder.ws is not None)
    ws.send(text("second"))
    holder.before_accept.set()
    await holder.accepted.wait()
    channel = holder.channel
    assert await channel.receive() == "first"
    assert await channel.receive() == "second"


async def test_the_connection_is_counted_before_and_after_the_upgrade_and_removed_when_lost() -> None:
    holder = Holder()
    holder.before_accept = asyncio.Event()
    ws = MemWS(holder)
    state = ws.conn.state
    ws.send(handshake())
    await settle(lambda: holder.ws is not None)
    assert state.connections == {ws.conn.proto}  # still HTTP
    holder.before_accept.set()
    await holder.accepted.wait()
    assert isinstance(ws.proto, WebSocketProtocol)
    assert state.connections == {ws.proto}  # the WebSocket took its place
    ws.transport.close()  # the network drops it
    await settle(lambda: not state.connections)


async def test_a_client_gone_before_accept_makes_accept_raise() -> None:
    seen: list[BaseException] = []
    gone = asyncio.Event()

    async def app(head: RequestHead, channel: Channel) -> None:
        ws = channel.websocket
        assert ws is not None
        await gone.wait()
        try:
            await ws.accept()
        except WebSocketDisconnect as exc:
            seen.append(exc)

    ws = MemWS(app)
    ws.send(handshake())
    await asyncio.sleep(0)
    ws.transport.close()
    await settle(lambda: ws.transport.lost)
    gone.set()
    await settle(lambda: bool(seen))
    assert isinstance(seen[0], WebSocketDisconnect) and seen[0].code == 1006
    assert b"101" not in ws.transport.out


async def test_websockets_count_towards_max_connections() -> None:
    ready = asyncio.Event()
    async with serve(echo_app(ready=ready), max_connections=1) as server:
        client = await SockWS.connect(server.port)
        await ready.wait()
        data = await exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert data.startswith(b"HTTP/1.1 503 ")
        await client.send(text("still here"))
        assert await client.recv() == [T("still here")]
        await client.send(close(1000))
        assert await client.until_eof() == [C(1000)]
        await client.aclose()


async def test_accept_twice_raises() -> None:
    holder = Holder()
    await opened(holder)
    await holder.accepted.wait()
    with pytest.raises(RuntimeError):
        await holder.channel.accept()
    holder.done.set()


async def test_the_handler_timeout_does_not_apply_after_accept() -> None:
    holder = Holder()
    ws = await opened(holder, clock=True, handler_timeout=5.0, ws_ping_interval=None)
    assert ws.clock is not None
    ws.clock.advance(60)
    assert ws.frames() == [] and not ws.transport.closing
    ws.send(text("late"))
    assert await holder.channel.receive() == "late"
    holder.done.set()


# -- keep-alive pings (policy 5) -------------------------------------------------------------


async def test_ping_after_the_interval_of_silence_and_a_pong_keeps_it_open() -> None:
    ws = await opened(clock=True, ws_ping_interval=20.0, ws_ping_timeout=10.0)
    assert ws.clock is not None
    ws.clock.advance(19.9)
    assert ws.frames() == []
    ws.clock.advance(0.2)
    [ping] = ws.frames()
    assert ping.opcode == PING and len(ping.payload) == 4
    ws.clock.advance(1)
    ws.send(frame(PONG, ping.payload))
    ws.clock.advance(9.5)  # past the ping timeout: the pong counted
    assert ws.frames() == [] and not ws.transport.closing
    ws.clock.advance(20)  # silent again for 20 s: the next ping
    assert [f.opcode for f in ws.frames()] == [PING]


async def test_any_inbound_byte_resets_the_ping_interval() -> None:
    ws = await opened(clock=True, ws_ping_interval=20.0, ws_ping_timeout=10.0)
    assert ws.clock is not None
    ws.clock.advance(15)
    ws.send(text("x")[:1])  # one byte of a frame: alive, though no message
    ws.clock.advance(15)  # 30 s since the upgrade, 15 since that byte
    assert ws.frames() == []
    ws.clock.advance(5.1)
    assert [f.opcode for f in ws.frames()] == [PING]


async def test_a_busy_sender_that_never_pongs_is_not_timed_out() -> None:
    ws = await opened(clock=True, ws_ping_interval=20.0, ws_ping_timeout=10.0)
    assert ws.clock is not None
    ws.clock.advance(20.1)
    assert [f.opcode for f in ws.frames()] == [PING]
    for i in range(5):  # data, never a pong: every byte counts as alive
        ws.clock.advance(5)
        ws.send(text(str(i)))
    ws.clock.advance(5)
    assert await ws.wait_frames(5) == [T(str(i)) for i in range(5)]
    assert not ws.transport.closing


async def test_no_byte_within_the_ping_timeout_closes_1011_then_aborts() -> None:
    seen: list[BaseException] = []
    ws = await opened(echo_app(seen=seen), clock=True, ws_ping_interval=20.0, ws_ping_timeout=10.0,
                      ws_close_timeout=5.0)
    assert ws.clock is not None
    ws.clock.advance(20.1)
    assert [f.opcode for f in ws.frames()] == [PING]
    ws.clock.advance(9.8)
    assert ws.frames() == []
    ws.clock.advance(0.2)
    [closing] = ws.frames()
    assert closing.opcode == CLOSE and closing.code == 1011
    await settle(lambda: bool(seen))
    assert isinstance(seen[0], WebSocketDisconnect) and seen[0].code == 1011
    assert not ws.transport.closing  # the peer gets ws_close_timeout to answer
    ws.clock.advance(5.1)
    assert ws.transport.aborted


async def test_pings_can_be_disabled() -> None:
    ws = await opened(clock=True, ws_ping_interval=None)
    assert ws.clock is not None
    ws.clock.advance(3600)
    assert ws.frames() == [] and not ws.transport.closing


# -- closing (policies 6, 7) ---------------------------------------------------------------------


async def test_client_close_is_echoed_then_the_server_half_closes() -> None:
    seen: list[BaseException] = []
    ws = await opened(echo_app(seen=seen))
    ws.send(close(1000, b"bye"))
    assert await ws.wait_frames() == [C(1000, b"bye")]
    assert ws.transport.eof_written and not ws.transport.closing  # our FIN, then the client's
    await settle(lambda: bool(seen))
    assert isinstance(seen[0], WebSocketDisconnect) and (seen[0].code, seen[0].reason) == (1000, "bye")
    ws.transport.feed_eof()
    await settle(lambda: ws.transport.lost)
    assert not ws.transport.aborted and not ws.conn.state.connections


async def test_no_client_close_after_ours_aborts_after_the_close_timeout() -> None:
    holder = Holder()
    ws = await opened(holder, clock=True, ws_close_timeout=5.0)
    assert ws.clock is not None
    await holder.accepted.wait()
    await holder.channel.close(3001, "done")
    assert ws.frames() == [C(3001, b"done")]
    ws.clock.advance(4.9)
    assert not ws.transport.closing
    ws.clock.advance(0.2)
    assert ws.transport.aborted
    await settle(lambda: not ws.conn.state.connections)
    holder.done.set()


async def test_close_is_idempotent() -> None:
    holder = Holder()
    ws = await opened(holder)
    await holder.accepted.wait()
    await holder.channel.close(1000)
    await holder.channel.close(1001)
    assert ws.frames() == [C(1000)]


async def test_handler_returning_closes_1000() -> None:
    holder = Holder()
    ws = await opened(holder)
    holder.done.set()
    assert await ws.wait_frames() == [C(1000)]


async def test_handler_raising_closes_1011_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    holder = Holder()
    holder.fail = ValueError("boom in the handler")
    ws = await opened(holder)
    holder.done.set()
    assert await ws.wait_frames() == [C(1011)]
    [record] = errors(caplog)
    assert record.exc_info is not None and "boom in the handler" in caplog.text


async def test_handler_raising_before_accept_is_an_http_500(caplog: pytest.LogCaptureFixture) -> None:
    async def app(head: RequestHead, channel: Channel) -> None:
        assert channel.websocket is not None
        raise LookupError("failed before accepting")

    ws = MemWS(app)
    assert status_of(await ws.open()) == 500
    assert not isinstance(ws.proto, WebSocketProtocol)
    assert "failed before accepting" in caplog.text


async def test_handler_letting_a_disconnect_through_is_not_an_error(caplog: pytest.LogCaptureFixture) -> None:
    async def app(head: RequestHead, channel: Channel) -> None:
        ws = channel.websocket
        assert ws is not None
        await ws.accept()
        while True:  # no try: WebSocketDisconnect ends the handler
            await ws.send(await ws.receive())

    ws = await opened(app)
    ws.send(close(4000))
    assert await ws.wait_frames() == [C(4000)]  # the echo only: no second close
    ws.transport.feed_eof()
    await settle(lambda: ws.transport.lost)
    await asyncio.sleep(0)
    assert errors(caplog) == []


# -- closed-state errors (seam rule 3) ------------------------------------------------------


async def test_receive_and_send_after_the_client_closed_raise_its_code_and_reason() -> None:
    holder = Holder()
    ws = await opened(holder)
    await holder.accepted.wait()
    channel = holder.channel
    ws.send(text("last") + close(4001, b"bye"))
    assert await channel.receive() == "last"  # messages before the close are still delivered
    for call in (channel.receive, lambda: channel.send("late")):
        with pytest.raises(WebSocketDisconnect) as info:
            await call()
        assert (info.value.code, info.value.reason) == (4001, "bye")
    assert channel.closed
    holder.done.set()


async def test_an_empty_client_close_is_code_1005() -> None:
    holder = Holder()
    ws = await opened(holder)
    await holder.accepted.wait()
    ws.send(close())
    with pytest.raises(WebSocketDisconnect) as info:
        await holder.channel.receive()
    assert info.value.code == 1005
    assert ws.frames() == [C()]  # echoed empty
    holder.done.set()


async def test_send_after_our_close_raises_our_code() -> None:
    holder = Holder()
    ws = await opened(holder)
    await holder.accepted.wait()
    channel = holder.channel
    await channel.close(3002, "later")
    with pytest.raises(WebSocketDisconnect) as info:
        await channel.send("x")
    assert (info.value.code, info.value.reason) == (3002, "later")
    assert ws.frames() == [C(3002, b"later")]
    holder.done.set()


async def test_a_dropped_connection_is_1006_for_receive_and_send() -> None:
    holder = Holder()
    ws = await opened(holder)
    await holder.accepted.wait()
    channel = holder.channel
    receiving = await run(channel.receive())
    ws.transport.close()
    await settle(receiving.done)
    assert isinstance(receiving.exception(), WebSocketDisconnect)
    assert receiving.exception().code == 1006  # type: ignore[union-attr]
    with pytest.raises(WebSocketDisconnect) as info:
        await channel.send(b"x")
    assert info.value.code == 1006
    holder.done.set()


async def test_send_rejects_other_types() -> None:
    holder = Holder()
    await opened(holder)
    await holder.accepted.wait()
    with pytest.raises(TypeError):
        await holder.channel.send(42)  # type: ignore[arg-type]
    holder.done.set()


# -- backpressure (policy 4) ---------------------------------------------------------------


async def test_reading_pauses_at_max_queue_and_resumes_when_the_handler_takes_them() -> None:
    holder = Holder()
    ws = await opened(holder, ws_max_queue=3)
    await holder.accepted.wait()
    ws.send(text("1") + text("2"))
    assert ws.transport.reading
    ws.send(text("3"))
    assert not ws.transport.reading  # 3 messages wait: no more socket reads
    channel = holder.channel
    assert await channel.receive() == "1"
    assert ws.transport.reading
    holder.done.set()


async def test_reading_pauses_while_writing_is_paused() -> None:
    # A client that sends pings and never reads cannot grow our buffer with pongs.
    holder = Holder()
    ws = await opened(holder)
    await holder.accepted.wait()
    ws.transport.pause_on_write = True
    ws.send(frame(PING, b"p"))  # its pong fills the (pretend) buffer
    assert not ws.transport.reading
    assert ws.frames() == [Frame(PONG, b"p")]
    ws.transport.pause_on_write = False
    ws.proto.resume_writing()
    assert ws.transport.reading
    holder.done.set()


async def test_reading_stays_paused_while_writing_is_paused_even_when_the_queue_drains() -> None:
    holder = Holder()
    ws = await opened(holder, ws_max_queue=1)
    await holder.accepted.wait()
    ws.send(text("1"))
    assert not ws.transport.reading
    ws.proto.pause_writing()
    assert await holder.channel.receive() == "1"
    assert not ws.transport.reading  # the queue has room, but writing is still paused
    ws.proto.resume_writing()
    assert ws.transport.reading
    holder.done.set()


async def test_send_waits_while_writing_is_paused() -> None:
    holder = Holder()
    ws = await opened(holder, clock=True, send_timeout=30.0)
    await holder.accepted.wait()
    ws.proto.pause_writing()
    sending = await run(holder.channel.send("after the drain"))
    assert not sending.done() and ws.frames() == []
    ws.proto.resume_writing()
    await settle(sending.done)
    assert sending.result() is None and ws.frames() == [T("after the drain")]
    holder.done.set()


async def test_send_timeout_drops_a_client_that_stopped_reading() -> None:
    holder = Holder()
    ws = await opened(holder, clock=True, send_timeout=30.0, ws_ping_interval=None)
    assert ws.clock is not None
    await holder.accepted.wait()
    ws.proto.pause_writing()
    sending = await run(holder.channel.send("never written"))
    ws.clock.advance(29.9)
    await asyncio.sleep(0)
    assert not sending.done() and not ws.transport.closing
    ws.clock.advance(0.2)
    await settle(sending.done)
    assert ws.transport.aborted
    exc = sending.exception()
    assert isinstance(exc, WebSocketDisconnect) and exc.code == 1006
    assert ws.frames() == []
    holder.done.set()


# -- shutdown --------------------------------------------------------------------------------


async def test_shutdown_sends_1001_and_the_handler_sees_it() -> None:
    seen: list[BaseException] = []
    ws = await opened(echo_app(seen=seen))
    ws.proto.shutdown()
    [closing] = ws.frames()
    assert closing.opcode == CLOSE and closing.code == 1001
    await settle(lambda: bool(seen))
    assert isinstance(seen[0], WebSocketDisconnect) and seen[0].code == 1001
    ws.send(close(1001))
    ws.transport.feed_eof()
    await settle(lambda: not ws.conn.state.connections)


async def test_cancel_request_aborts() -> None:
    holder = Holder()
    ws = await opened(holder)
    await holder.accepted.wait()
    receiving = await run(holder.channel.receive())
    ws.proto.cancel_request()
    assert ws.transport.aborted
    await settle(receiving.done)
    exc = receiving.exception()
    assert isinstance(exc, WebSocketDisconnect) and exc.code == 1001
    holder.done.set()


async def test_server_shutdown_over_a_real_socket_closes_1001_and_exits() -> None:
    seen: list[BaseException] = []
    ready = asyncio.Event()
    async with serve(echo_app(seen=seen, ready=ready)) as server:
        client = await SockWS.connect(server.port)
        await ready.wait()
        shutdown = asyncio.ensure_future(server.shutdown(timeout=5.0))
        [closing] = await client.recv()
        assert closing.opcode == CLOSE and closing.code == 1001
        await client.send(close(1001))
        assert await client.until_eof() == []
        await client.aclose()
        async with asyncio.timeout(5):
            await shutdown
    assert isinstance(seen[0], WebSocketDisconnect) and seen[0].code == 1001


async def test_server_shutdown_deadline_drops_a_handler_that_ignores_the_close() -> None:
    stuck = asyncio.Event()
    cancelled: list[bool] = []

    async def app(head: RequestHead, channel: Channel) -> None:
        ws = channel.websocket
        assert ws is not None
        await ws.accept()
        try:
            await asyncio.Event().wait()  # never reads, never returns
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        finally:
            stuck.set()

    async with serve(app) as server:
        client = await SockWS.connect(server.port)
        shutdown = asyncio.ensure_future(server.shutdown(timeout=0.05))
        frames = await client.until_eof()  # the client never answers the close
        assert [(f.opcode, f.code) for f in frames] == [(CLOSE, 1001)]
        await client.aclose()
        async with asyncio.timeout(5):
            await shutdown
    assert cancelled == [True] and stuck.is_set()


# -- permessage-deflate (RFC 7692) ---------------------------------------------------------------

DEFLATE_OFFER = b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"


def deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-12)
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


async def test_permessage_deflate_is_off_by_default_even_when_offered() -> None:
    ws = MemWS(echo_app())
    head = await ws.open(handshake(extra=DEFLATE_OFFER))
    assert status_of(head) == 101 and b"sec-websocket-extensions" not in head_fields(head)
    ws.send(frame(TEXT, deflate(b"x" * 100), rsv=4))  # RSV1 without the extension
    [closing] = await ws.wait_frames()
    assert closing.code == 1002


async def test_permessage_deflate_when_enabled_round_trips_compressed_messages() -> None:
    ws = MemWS(echo_app(), ws_per_message_deflate=True)
    head = await ws.open(handshake(extra=DEFLATE_OFFER))
    [extension] = head_fields(head)[b"sec-websocket-extensions"]
    assert extension.startswith(b"permessage-deflate")
    assert b"client_max_window_bits=12" in extension and b"server_max_window_bits=12" in extension
    decompressor = zlib.decompressobj(wbits=-12)
    for payload, opcode in ((b"a" * 10000, TEXT), (bytes(range(256)) * 40, BINARY), (b"a" * 10000, TEXT)):
        ws.send(frame(opcode, deflate(payload), rsv=4))
        [echoed] = await ws.wait_frames()
        assert echoed.opcode == opcode and echoed.rsv == 4  # compressed on the way back too
        assert len(echoed.payload) < len(payload) // 4
        assert decompressor.decompress(echoed.payload + b"\x00\x00\xff\xff") == payload
    ws.send(text("plain"))  # an uncompressed message is still allowed
    [echoed] = await ws.wait_frames()
    assert decompressor.decompress(echoed.payload + b"\x00\x00\xff\xff") == b"plain"


async def test_permessage_deflate_decompression_is_bounded_by_the_message_size() -> None:
    ws = MemWS(echo_app(), ws_per_message_deflate=True, ws_max_message_size=64 * 1024)
    await ws.open(handshake(extra=DEFLATE_OFFER))
    bomb = deflate(b"\x00" * (1024 * 1024))  # ~1 KiB on the wire, 1 MiB inflated
    assert len(bomb) < 2048
    ws.send(frame(BINARY, bomb, rsv=4))
    [closing] = await ws.wait_frames()
    assert closing.code == 1009


# -- regressions: each failed before the fix named in its docstring ------------------------


async def test_a_client_that_half_closed_before_accept_is_seen_after_it() -> None:
    """The HTTP protocol kept a half-closed connection open to answer the request; the
    WebSocket must learn of the EOF at accept, else it waits for frames that can never
    come (forever with pings off)."""
    holder = Holder()
    holder.before_accept = asyncio.Event()
    ws = MemWS(holder, ws_ping_interval=None)
    ws.send(handshake() + text("last words"))
    assert ws.transport.feed_eof() is True  # HTTP keeps it open: the request is unanswered
    await settle(lambda: holder.ws is not None)
    holder.before_accept.set()
    await holder.accepted.wait()
    channel = holder.channel
    assert await channel.receive() == "last words"
    with pytest.raises(WebSocketDisconnect) as info:
        await channel.receive()
    assert info.value.code == 1006
    await settle(lambda: ws.transport.lost)
    assert not ws.conn.state.connections
    holder.done.set()


async def test_a_client_close_sent_with_the_handshake_then_eof_is_echoed_and_closed() -> None:
    holder = Holder()
    holder.before_accept = asyncio.Event()
    ws = MemWS(holder, ws_ping_interval=None)
    ws.send(handshake() + close(1000, b"never mind"))
    ws.transport.feed_eof()
    await settle(lambda: holder.ws is not None)
    holder.before_accept.set()
    await holder.accepted.wait()
    with pytest.raises(WebSocketDisconnect) as info:
        await holder.channel.receive()
    assert (info.value.code, info.value.reason) == (1000, "never mind")
    assert ws.frames() == [C(1000, b"never mind")]
    await settle(lambda: ws.transport.lost)
    holder.done.set()


@pytest.mark.parametrize("how", ["handler-returns", "handler-closes"])
async def test_closing_with_a_full_queue_resumes_reading_for_the_close_echo(how: str) -> None:
    """Reading paused at ws_max_queue stayed paused after our close frame, so the client's
    echo was never read and every such close ended in an abort after ws_close_timeout."""
    holder = Holder()
    ws = await opened(holder, clock=True, ws_max_queue=1, ws_close_timeout=5.0)
    assert ws.clock is not None
    await holder.accepted.wait()
    ws.send(text("unread"))
    assert not ws.transport.reading
    if how == "handler-closes":
        await holder.channel.close(1000)
    else:
        holder.done.set()
        await settle(lambda: bool(ws.transport.out.endswith(C(1000).payload)))
    assert await ws.wait_frames() == [C(1000)]
    assert ws.transport.reading  # the echo can be read
    ws.send(text("still in flight") + close(1000))  # the client's last message, then its echo
    assert ws.transport.eof_written
    ws.transport.feed_eof()
    await settle(lambda: ws.transport.lost)
    assert not ws.transport.aborted
    holder.done.set()


async def test_accept_while_writing_is_paused_keeps_reading_paused() -> None:
    """The HTTP phase does not pause reading when writing pauses (a pipelined client that
    does not read our responses); accept resumed reading regardless, so a client that
    never reads could then grow our buffer with pongs (rule 4)."""
    holder = Holder()
    holder.before_accept = asyncio.Event()
    ws = MemWS(holder)
    ws.send(handshake())
    await settle(lambda: holder.ws is not None)
    ws.proto.pause_writing()  # the H11Protocol: the write buffer is above its mark
    holder.before_accept.set()
    await holder.accepted.wait()
    assert isinstance(ws.proto, WebSocketProtocol)
    assert not ws.transport.reading
    ws.proto.resume_writing()
    assert ws.transport.reading
    holder.done.set()


async def test_a_websocket_accepted_during_shutdown_is_sent_1001() -> None:
    """Server._drain sends 1001 to the WebSockets open when it starts; one accepted later
    (its handler was still deciding) got no close frame, only the abort at the deadline."""
    holder = Holder()
    holder.before_accept = asyncio.Event()
    ws = MemWS(holder)
    ws.send(handshake())
    await settle(lambda: holder.ws is not None)
    state = ws.conn.state
    state.shutting_down = True  # what Server._drain does first
    for connection in list(state.connections):
        connection.shutdown()
    holder.before_accept.set()
    await holder.accepted.wait()
    [closing] = ws.frames()
    assert closing.opcode == CLOSE and closing.code == 1001
    with pytest.raises(WebSocketDisconnect) as info:
        await holder.channel.receive()
    assert info.value.code == 1001
    holder.done.set()


async def test_keep_alive_does_not_time_out_while_we_stopped_reading_for_the_handler() -> None:
    """With the queue full we read nothing, so the client's pong (or any byte) cannot be
    seen: the keep-alive closed a live connection with 1011 whenever a handler did not
    take its messages for ws_ping_interval + ws_ping_timeout (a push-only handler)."""
    holder = Holder()
    ws = await opened(holder, clock=True, ws_max_queue=1, ws_ping_interval=20.0, ws_ping_timeout=10.0)
    assert ws.clock is not None
    await holder.accepted.wait()
    ws.send(text("unread"))
    assert not ws.transport.reading
    for _ in range(20):
        ws.clock.advance(5)
    assert ws.frames() == [] and not ws.transport.closing
    assert await holder.channel.receive() == "unread"  # reading again: liveness counts again
    ws.clock.advance(20.1)
    assert [f.opcode for f in ws.frames()] == [PING]
    ws.clock.advance(10.1)
    assert [f.code for f in ws.frames()] == [1011]
    holder.done.set()


async def test_a_client_that_leaves_a_paused_websocket_is_released() -> None:
    """Reading paused at ws_max_queue (the handler takes nothing) never sees the client
    leave on its own, and keep-alive does not ping while we stopped reading: the server's
    once-a-second check_peer notices the FIN and releases the connection."""
    accepted = asyncio.Event()

    async def holder(head: RequestHead, channel: Channel) -> None:
        ws = channel.websocket
        assert ws is not None
        await ws.accept()
        accepted.set()
        await asyncio.Event().wait()  # never receives

    async with serve(holder, ws_max_queue=2, ws_ping_interval=None, shutdown_timeout=0) as server:
        client = await SockWS.connect(server.port)
        await accepted.wait()
        await client.send(*(text(f"m{i}") for i in range(8)))
        state = server.state
        assert state is not None
        [ws_conn] = list(state.connections)
        await settle(lambda: ws_conn.flow.read_paused)
        client.writer.close()  # the client leaves while our reading is paused
        deadline = asyncio.get_running_loop().time() + 5.0  # the check runs once a second
        while state.connections and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0)
        assert not state.connections
