"""protocol/cycle.py: ``RequestCycle``, the server's ``seam.Channel``, one request at a time:
its state after each call, the misuse it refuses, and its five rules.

A cycle is made by its connection (``H11Protocol``), so each test drives one through a
``Conn`` (tests/protocol_helpers.py: the real protocol on the in-memory transport) and
holds on to the channel the app was given.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from protocol_helpers import Conn, request

from hump_listener.protocol.cycle import RequestCycle
from hump_listener.seam import Channel, ClientDisconnect, RequestHead

pytestmark = pytest.mark.timeout(10)

Body = Callable[[RequestCycle], Awaitable[None]]


class Capture:
    """A seam app that runs ``body`` on the cycle it gets and keeps what happened."""

    def __init__(self, body: Body) -> None:
        self.body = body
        self.cycle: RequestCycle | None = None
        self.error: BaseException | None = None
        self.done = asyncio.Event()

    async def __call__(self, head: RequestHead, channel: Channel) -> None:
        assert isinstance(channel, RequestCycle)
        self.cycle = channel
        try:
            await self.body(channel)
        except BaseException as exc:
            self.error = exc
            raise
        finally:
            self.done.set()


async def run(body: Body, data: bytes = b"", **config: Any) -> tuple[Conn, Capture]:
    app = Capture(body)
    conn = Conn(app, **config)
    conn.send(data or request())
    await conn.settle(app.done.is_set)
    await conn.settle(lambda: not conn.state.tasks)  # the task's own end too
    return conn, app


async def test_respond_completes_the_cycle_and_keeps_the_connection() -> None:
    async def body(cycle: RequestCycle) -> None:
        assert (cycle.started, cycle.complete, cycle.body_done) == (False, False, True)
        cycle.respond(200, [(b"content-type", b"text/plain")], b"hi")
        assert (cycle.started, cycle.complete) == (True, True)

    conn, app = await run(body)
    assert app.error is None
    [response] = conn.responses(eof=False)
    assert (response.status, response.body, response.header(b"content-length")) == (200, b"hi", b"2")
    assert not conn.transport.closing
    assert conn.proto.cycle is None  # the connection is ready for the next request


async def test_streaming_start_write_end_is_chunked() -> None:
    async def body(cycle: RequestCycle) -> None:
        await cycle.start(200, [])
        await cycle.write(b"ab")
        await cycle.write(b"")  # nothing to frame: no empty (last) chunk
        await cycle.write(b"cd")
        await cycle.end()
        await cycle.end()  # a second end is a no-op

    conn, _ = await run(body)
    assert b"2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n" in conn.out
    assert conn.responses(eof=False)[0].body == b"abcd"


@pytest.mark.parametrize(
    ("misuse", "error"),
    [
        ("respond twice", "response already started"),
        ("start twice", "response already started"),
        ("write before start", "write\\(\\) needs a started, unfinished response"),
        ("end before start", "end\\(\\) before start\\(\\)"),
        ("write past content-length", "more data than the declared Content-Length"),
    ],
)
async def test_misuse_is_a_runtime_error_in_the_app(misuse: str, error: str) -> None:
    async def body(cycle: RequestCycle) -> None:
        if misuse == "respond twice":
            cycle.respond(200, [], b"")
            cycle.respond(200, [], b"")
        elif misuse == "start twice":
            await cycle.start(200, [])
            await cycle.start(200, [])
        elif misuse == "write before start":
            await cycle.write(b"x")
        elif misuse == "end before start":
            await cycle.end()
        else:
            await cycle.start(200, [(b"content-length", b"1")])
            await cycle.write(b"xy")

    _, app = await run(body)
    assert isinstance(app.error, RuntimeError)
    assert re.search(error, str(app.error)), app.error


async def test_a_body_that_contradicts_content_length_is_a_value_error() -> None:
    async def body(cycle: RequestCycle) -> None:
        cycle.respond(200, [(b"content-length", b"5")], b"abc")

    conn, app = await run(body)
    assert isinstance(app.error, ValueError)
    assert conn.responses()[0].status == 500  # rule 1: nothing was sent, so a 500 is


async def test_rule_1_returning_without_a_response_is_a_500_and_a_close() -> None:
    async def body(cycle: RequestCycle) -> None:
        return None

    conn, _ = await run(body)
    assert [r.status for r in conn.responses()] == [500]
    assert conn.transport.closing


async def test_rule_1_failing_mid_response_closes_without_completing_it() -> None:
    async def body(cycle: RequestCycle) -> None:
        await cycle.start(200, [])
        await cycle.write(b"partial")
        raise RuntimeError("boom")

    conn, _ = await run(body)
    assert conn.transport.closing
    assert b"0\r\n\r\n" not in conn.out  # no last chunk: the client sees a truncated body
    assert conn.out.count(b"HTTP/1.1 ") == 1  # the 200 that started, and no 500 after it


async def test_rule_1_abort_after_completion_is_a_no_op() -> None:
    async def body(cycle: RequestCycle) -> None:
        cycle.respond(204, [], b"")
        cycle.abort(503)

    conn, _ = await run(body)
    assert [r.status for r in conn.responses(eof=False)] == [204]
    assert not conn.transport.closing


async def test_rule_2_after_the_client_left_respond_is_silent_and_write_raises() -> None:
    seen: list[str] = []

    async def body(cycle: RequestCycle) -> None:
        cycle.lost()
        assert cycle.disconnected
        cycle.respond(200, [], b"never sent")
        seen.append("respond was silent")
        assert cycle.complete
        with pytest.raises(ClientDisconnect):
            await cycle.write(b"x")
        seen.append("write raised")

    conn, _ = await run(body)
    assert seen == ["respond was silent", "write raised"]
    assert b"never sent" not in conn.out


async def test_receive_gives_the_body_then_empty_bytes() -> None:
    chunks: list[bytes] = []

    async def body(cycle: RequestCycle) -> None:
        while chunk := await cycle.receive():
            chunks.append(chunk)
        assert await cycle.receive() == b""  # and again: the body stays ended
        assert cycle.buffered == 0
        cycle.respond(200, [], b"")

    data = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
    await run(body, data)
    assert b"".join(chunks) == b"hello"


async def test_rule_3_100_continue_only_when_the_app_waits_for_the_body() -> None:
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"
    reading = asyncio.Event()

    async def reads(cycle: RequestCycle) -> None:
        reading.set()
        assert await cycle.receive() == b"ok"
        cycle.respond(200, [], b"")

    app = Capture(reads)
    conn = Conn(app)
    conn.send(head)
    await conn.settle(lambda: b"100 Continue" in conn.out)
    assert conn.out.count(b"100 Continue") == 1
    conn.send(b"ok")
    await conn.settle(app.done.is_set)
    assert app.error is None

    async def answers(cycle: RequestCycle) -> None:
        cycle.respond(417, [], b"")

    conn, _ = await run(answers, head)
    assert b"100 Continue" not in conn.out
    assert conn.responses()[0].status == 417


async def test_rule_5_a_response_before_the_whole_body_closes_the_connection() -> None:
    async def body(cycle: RequestCycle) -> None:
        assert not cycle.body_done
        cycle.respond(413, [], b"")

    data = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\npart"
    conn, _ = await run(body, data)
    [response] = conn.responses()
    assert response.status == 413
    assert response.header(b"connection") == b"close"


async def test_an_end_short_of_content_length_closes_the_connection() -> None:
    async def body(cycle: RequestCycle) -> None:
        await cycle.start(200, [(b"content-length", b"10")])
        await cycle.write(b"abc")
        await cycle.end()

    conn, _ = await run(body)
    assert conn.transport.closing  # the client cannot frame what would follow
