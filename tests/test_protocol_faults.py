"""Faults: app errors, disconnects, garbage on the port, errors inside callbacks."""

from __future__ import annotations

import logging

import pytest
from protocol_helpers import Conn, hello, request

from hump_listener.seam import Channel, RequestHead

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
