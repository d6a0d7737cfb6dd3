"""Timeouts, driven by a manual clock (no sleeping, no timing assertions)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from protocol_helpers import Conn, echo_body, hello, request

from hump_listener.seam import Channel, ClientDisconnect, RequestHead, SeamApp

pytestmark = pytest.mark.timeout(10)

POST_10 = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n"


def closes_after(conn: Conn, seconds: float) -> None:
    """The connection is still open 0.1 s before ``seconds`` from now, closing 0.1 s after."""
    assert conn.clock is not None
    conn.clock.advance(seconds - 0.1)
    assert not conn.transport.closing
    conn.clock.advance(0.2)
    assert conn.transport.closing


async def test_idle_new_connection_closed_quietly() -> None:
    conn = Conn(hello, clock=True, first_byte_timeout=10.0)
    assert conn.clock is not None
    closes_after(conn, 10)
    assert conn.out == b""


async def test_head_timeout_counts_from_first_byte_and_answers_408() -> None:
    conn = Conn(hello, clock=True, first_byte_timeout=10.0, head_timeout=5.0)
    assert conn.clock is not None
    conn.clock.advance(8)  # idle, but not past the first-byte timeout
    conn.send(b"GET / HTTP/1.1\r\n")
    conn.clock.advance(4)
    conn.send(b"Host: x\r\n")  # more bytes do not restart the head timer
    closes_after(conn, 1)
    assert conn.responses()[0].status == 408


async def test_head_completed_in_time_is_served() -> None:
    conn = Conn(hello, clock=True, head_timeout=5.0)
    assert conn.clock is not None
    conn.send(b"GET / HTTP/1.1\r\n")
    conn.clock.advance(4)
    conn.send(b"Host: x\r\n\r\n")
    await conn.settle(lambda: bool(conn.out))
    conn.clock.advance(2)  # past the old head deadline: the head timer is gone
    assert not conn.transport.closing
    assert conn.responses(eof=False)[0].status == 200


async def test_keep_alive_timeout_closes_quietly_and_is_reset_by_a_request() -> None:
    conn = Conn(hello, clock=True, keep_alive_timeout=5.0, head_timeout=100.0)
    assert conn.clock is not None
    conn.send(request())
    await conn.settle(lambda: bool(conn.out))
    conn.clock.advance(4)
    conn.send(request())
    await conn.settle(lambda: conn.out.count(b"HTTP/1.1 200") == 2)
    conn.clock.advance(4)  # 8 s since the first response, 4 s since the second
    assert not conn.transport.closing
    before = conn.out
    conn.clock.advance(1.1)
    assert conn.transport.closing and conn.out == before  # quiet: nothing written


async def test_stalled_body_is_408() -> None:
    errors: list[BaseException] = []

    async def app(head: RequestHead, channel: Channel) -> None:
        try:
            await channel.receive()
            await channel.receive()
        except ClientDisconnect as exc:
            errors.append(exc)
            raise

    conn = Conn(app, clock=True, body_timeout=10.0)
    assert conn.clock is not None
    conn.send(POST_10 + b"abc")
    await conn.settle(conn.waits_for_body)
    closes_after(conn, 10)
    assert conn.responses()[0].status == 408
    await conn.settle(lambda: bool(errors))  # the waiting app is told, not left hanging


async def trickle(rate: float, *, seconds: int) -> Conn:
    """Send a 100 000-byte body at ``rate`` bytes/s for up to ``seconds`` to a reading app."""
    conn = Conn(echo_body, clock=True, body_timeout=5.0, body_min_rate=240.0)
    assert conn.clock is not None
    conn.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
    await conn.settle(conn.waits_for_body)
    for _ in range(seconds):
        if conn.transport.closing:
            break
        conn.clock.advance(1.0)
        conn.send(b"x" * int(rate))
        await conn.settle(lambda: conn.waits_for_body() or conn.transport.closing or bool(conn.out))
    return conn


async def test_trickling_body_is_408() -> None:
    conn = await trickle(1, seconds=60)  # 1 byte/s: far below 240 B/s
    assert conn.transport.closing
    assert conn.responses()[0].status == 408


async def test_body_at_an_acceptable_rate_is_not_cut() -> None:
    conn = await trickle(1000, seconds=60)
    assert not conn.transport.closing


async def test_body_timer_only_runs_while_the_app_waits() -> None:
    go, busy = asyncio.Event(), asyncio.Event()

    async def app(head: RequestHead, channel: Channel) -> None:
        busy.set()
        await go.wait()  # busy elsewhere: the client is not to blame
        await echo_body(head, channel)

    conn = Conn(app, clock=True, body_timeout=1.0)
    assert conn.clock is not None
    conn.send(POST_10 + b"abc")
    await conn.settle(busy.is_set)
    conn.clock.advance(100)
    assert not conn.transport.closing
    go.set()
    await conn.settle(conn.waits_for_body)
    conn.send(b"defghij")
    await conn.settle(lambda: bool(conn.out))
    assert conn.responses(methods=["POST"], eof=False)[0].body == b"abcdefghij"


async def test_handler_timeout_is_503_and_cancels_the_app() -> None:
    cancelled: list[bool] = []

    waiting = asyncio.Event()

    async def app(head: RequestHead, channel: Channel) -> None:
        try:
            waiting.set()
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    conn = Conn(app, clock=True, handler_timeout=3.0)
    assert conn.clock is not None
    conn.send(request())
    await conn.settle(waiting.is_set)
    conn.clock.advance(3.1)
    assert conn.responses()[0].status == 503
    await conn.settle(lambda: bool(cancelled) and not conn.state.tasks)


async def test_handler_timeout_after_start_closes_without_503() -> None:
    async def app(head: RequestHead, channel: Channel) -> None:
        await channel.start(200, [])
        await asyncio.Event().wait()

    conn = Conn(app, clock=True, handler_timeout=3.0)
    assert conn.clock is not None
    conn.send(request())
    await conn.settle(lambda: bool(conn.out))  # the head is written, the app waits
    conn.clock.advance(3.1)
    assert conn.transport.closing
    assert b"503" not in conn.out
    await conn.settle(lambda: not conn.state.tasks)


async def test_no_timers_left_after_a_fast_request() -> None:
    conn = Conn(hello, clock=True, handler_timeout=3.0)
    assert conn.clock is not None
    conn.send(request())
    await conn.settle(lambda: bool(conn.out))
    # only the keep-alive timer remains (no head, body or handler timers leak)
    assert [t.callback.__name__ for t in conn.clock.pending()] == ["_on_keep_alive_check"]


async def test_keep_alive_counts_from_the_last_request_not_the_first() -> None:
    # The keep-alive timer is armed once and re-armed only when it fires early.
    conn = Conn(hello, clock=True, keep_alive_timeout=5.0)
    assert conn.clock is not None
    conn.send(request())
    await conn.settle(lambda: conn.out.count(b"HTTP/1.1 200") == 1)
    conn.clock.advance(3.0)
    conn.send(request())
    await conn.settle(lambda: conn.out.count(b"HTTP/1.1 200") == 2)
    conn.clock.advance(2.5)  # 5.5 s after the first request, 2.5 s after the second
    assert not conn.transport.closing
    assert len(conn.clock.pending()) == 1  # still one timer, re-armed for the rest
    conn.clock.advance(3.0)  # 5.5 s after the second request
    assert conn.transport.closing


# -- send timeout: output the client takes nothing of -------------------------------------


def big(size: int = 200_000) -> SeamApp:
    async def app(head: RequestHead, channel: Channel) -> None:
        channel.respond(200, [(b"content-length", b"%d" % size)], bytes(size))

    return app


def send_checks(conn: Conn) -> int:
    assert conn.clock is not None
    return sum(t.callback.__name__ == "_on_send_check" for t in conn.clock.pending())


async def test_send_timeout_aborts_a_respond_the_client_never_takes(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "hump_listener.error")
    conn = Conn(big(), clock=True, send_timeout=60.0, keep_alive_timeout=5.0)
    assert conn.clock is not None
    conn.transport.pause_on_write = True  # the whole response is more than the buffer's mark
    conn.transport.buffered = 150_000  # ... and the client takes none of it
    conn.send(request())
    await conn.settle(lambda: bool(conn.out))
    conn.clock.advance(5.1)  # the keep-alive close waits for the buffer, as a socket's does
    await conn.settle(lambda: conn.transport.closing)
    assert conn.transport.closing and not conn.transport.lost
    conn.clock.advance(54.8)
    assert not conn.transport.aborted
    conn.clock.advance(0.2)  # 60 s since the transport paused
    assert conn.transport.aborted
    await conn.settle(lambda: conn.proto not in conn.state.connections)
    assert send_checks(conn) == 0
    assert any("send timeout" in r.getMessage() and r.levelname == "INFO" for r in caplog.records)


async def test_send_timeout_counts_progress_not_time() -> None:
    conn = Conn(big(), clock=True, send_timeout=60.0, keep_alive_timeout=1000.0)
    assert conn.clock is not None
    conn.transport.pause_on_write = True
    conn.transport.buffered = 150_000
    conn.send(request())
    await conn.settle(lambda: bool(conn.out))
    for _ in range(5):  # a slow reader: a little progress every minute
        conn.transport.buffered -= 1000
        conn.clock.advance(60.0)
        assert not conn.transport.aborted
    conn.clock.advance(60.0)  # then a minute without progress
    assert conn.transport.aborted


async def test_send_timeout_wakes_a_waiting_write_with_client_disconnect(caplog: pytest.LogCaptureFixture) -> None:
    outcome: list[BaseException] = []

    async def app(head: RequestHead, channel: Channel) -> None:
        await channel.start(200, [])
        try:
            while True:
                await channel.write(b"x" * 65536)
        except ClientDisconnect as exc:
            outcome.append(exc)

    conn = Conn(app, clock=True, send_timeout=30.0)
    assert conn.clock is not None
    conn.transport.pause_on_write = True
    conn.transport.buffered = 70_000
    conn.send(request())
    await conn.settle(lambda: conn.proto.flow.write_paused)
    conn.clock.advance(30.1)
    await conn.settle(lambda: bool(outcome) and not conn.state.tasks)
    assert conn.transport.aborted
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_send_timeout_covers_the_rest_of_a_response_we_close_after() -> None:
    # Below the high-water mark (the transport never pauses), but the client takes nothing.
    conn = Conn(hello, clock=True, send_timeout=60.0)
    assert conn.clock is not None
    conn.transport.buffered = 1000
    conn.send(request(headers=b"Host: x\r\nConnection: close\r\n"))
    await conn.settle(lambda: conn.transport.closing)
    assert not conn.transport.lost  # the close waits for the client
    conn.clock.advance(60.1)
    assert conn.transport.aborted
    await conn.settle(lambda: conn.transport.lost)


async def test_send_timer_disarms_once_the_client_caught_up() -> None:
    conn = Conn(big(), clock=True, send_timeout=60.0, keep_alive_timeout=1000.0)
    assert conn.clock is not None
    conn.transport.pause_on_write = True
    conn.transport.buffered = 150_000
    conn.send(request())
    await conn.settle(lambda: bool(conn.out))
    assert send_checks(conn) == 1
    conn.transport.drained()
    conn.clock.advance(60.1)
    assert send_checks(conn) == 0 and not conn.transport.closing


async def test_send_timeout_none_disables_it() -> None:
    conn = Conn(big(), clock=True, send_timeout=None, keep_alive_timeout=1000.0)
    assert conn.clock is not None
    conn.transport.pause_on_write = True
    conn.transport.buffered = 150_000
    conn.send(request())
    await conn.settle(lambda: bool(conn.out))
    conn.clock.advance(3600)
    assert send_checks(conn) == 0 and not conn.transport.aborted


async def test_a_body_that_stalls_after_a_fast_start_is_408_after_body_timeout() -> None:
    # Found by the fuzz: 70 000 bytes at once earned ~290 s of rate allowance, and the
    # client then waited that long. The rate allowance never outlasts a stall.
    conn = Conn(echo_body, clock=True, body_timeout=5.0, body_min_rate=240.0)
    assert conn.clock is not None
    conn.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 70001\r\n\r\n" + bytes(70_000))
    await conn.settle(conn.waits_for_body)
    closes_after(conn, 5)
    assert conn.responses()[0].status == 408


async def test_send_timeout_counts_from_the_last_progress() -> None:
    conn = Conn(big(), clock=True, send_timeout=60.0, keep_alive_timeout=1000.0)
    assert conn.clock is not None
    conn.transport.pause_on_write = True
    conn.transport.buffered = 150_000
    conn.send(request())
    await conn.settle(lambda: bool(conn.out))
    conn.clock.advance(30.0)
    conn.proto.resume_writing()  # the client took a buffer's worth ...
    conn.proto.pause_writing()  # ... and the buffer filled again
    conn.clock.advance(59.9)  # 89.9 s in: 59.9 s since the last progress
    assert not conn.transport.aborted
    conn.clock.advance(0.2)
    assert conn.transport.aborted
