"""Responses: the respond() fast path, streaming, framing, Date/Server, sendfile."""

from __future__ import annotations

import asyncio
import email.utils
import io
from collections.abc import Callable

import pytest
from protocol_helpers import Conn, hello, request, text

from hump_listener.protocol.writer import STATUS_LINES
from hump_listener.seam import Channel, ClientDisconnect, HeaderList, RequestHead, SeamApp

pytestmark = pytest.mark.timeout(10)


async def serve_one(app: SeamApp, data: bytes = request(), method: str = "GET") -> Conn:
    conn = Conn(app)
    conn.send(data)
    await conn.settle(lambda: not conn.state.tasks)
    await conn.settle(lambda: conn.transport.lost or not conn.transport.closing)
    return conn


def streaming(status: int, headers: HeaderList, parts: list[bytes]) -> SeamApp:
    async def app(head: RequestHead, channel: Channel) -> None:
        await channel.start(status, headers)
        for part in parts:
            await channel.write(part)
        await channel.end()

    return app


async def test_respond_is_one_write() -> None:
    conn = await serve_one(hello)
    assert conn.transport.writes == 1
    [resp] = conn.responses(eof=False)
    assert (resp.status, resp.reason, resp.body) == (200, b"OK", b"hello")
    assert resp.header(b"content-type") == b"text/plain"
    assert resp.header(b"server") == b"hump_listener"
    assert email.utils.parsedate_to_datetime(resp.header(b"date").decode())  # type: ignore[union-attr]


async def test_respond_adds_content_length_when_missing() -> None:
    async def app(head: RequestHead, channel: Channel) -> None:
        channel.respond(200, [], b"abc")

    conn = await serve_one(app)
    assert conn.responses(eof=False)[0].header(b"content-length") == b"3"


@pytest.mark.parametrize(
    ("status", "reason"),
    [(200, b"OK"), (404, b"Not Found"), (418, b"I'm a Teapot"), (299, b"Success"), (599, b"Server Error")],
)
async def test_reason_phrase_on_every_status_line(status: int, reason: bytes) -> None:
    conn = await serve_one(text(b"x", status=status))
    assert conn.out.startswith(b"HTTP/1.1 %d %s\r\n" % (status, reason))
    assert all(line.count(b" ") >= 2 for line in STATUS_LINES.values())


async def test_date_is_cached_not_formatted_per_request(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = email.utils.formatdate

    def counting(*args: object, **kwargs: object) -> str:
        calls.append(args)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    conn = Conn(hello)
    monkeypatch.setattr(email.utils, "formatdate", counting)
    for _ in range(5):
        conn.send(request())
    await conn.settle(lambda: conn.out.count(b"HTTP/1.1 200") == 5)
    assert calls == []
    dates = {r.header(b"date") for r in conn.responses(eof=False)}
    assert len(dates) == 1
    # the once-a-second tick is what refreshes it
    conn.state.clock = lambda: 0.0
    conn.state.refresh_date()
    conn.send(request())
    await conn.settle(lambda: conn.out.count(b"HTTP/1.1 200") == 6)
    assert conn.responses(eof=False)[-1].header(b"date") == b"Thu, 01 Jan 1970 00:00:00 GMT"


async def test_start_without_length_is_chunked_for_http11() -> None:
    conn = await serve_one(streaming(200, [(b"content-type", b"text/plain")], [b"ab", b"", b"cde"]))
    [resp] = conn.responses(eof=False)
    assert resp.header(b"transfer-encoding") == b"chunked"
    assert resp.body == b"abcde"
    assert b"2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n" in conn.out  # no empty chunk for the empty write
    assert not conn.transport.closing


async def test_start_without_length_is_close_delimited_for_http10() -> None:
    conn = await serve_one(streaming(200, [], [b"ab", b"cde"]), b"GET / HTTP/1.0\r\n\r\n")
    [resp] = conn.responses()
    assert resp.header(b"transfer-encoding") is None
    assert resp.header(b"connection") == b"close"
    assert resp.body == b"abcde"
    assert conn.transport.closing


async def test_start_with_length_is_identity_and_keeps_alive() -> None:
    conn = await serve_one(streaming(200, [(b"content-length", b"5")], [b"ab", b"cde"]))
    [resp] = conn.responses(eof=False)
    assert resp.header(b"transfer-encoding") is None and resp.body == b"abcde"
    assert not conn.transport.closing


@pytest.mark.parametrize("status", [204, 304])
async def test_204_and_304_never_carry_a_body(status: int) -> None:
    conn = await serve_one(streaming(status, [], [b"dropped"]))
    assert conn.out.endswith(b"\r\n\r\n")
    assert b"dropped" not in conn.out and b"transfer-encoding" not in conn.out
    assert conn.responses(eof=False)[0].status == status


async def test_head_response_has_headers_but_no_body() -> None:
    conn = await serve_one(text(b"hello"), request(method=b"HEAD"))
    [resp] = conn.responses(methods=["HEAD"], eof=False)
    assert resp.header(b"content-length") == b"5" and resp.body == b""
    assert conn.out.endswith(b"\r\n\r\n")


async def test_head_streamed_response_drops_data() -> None:
    conn = await serve_one(streaming(200, [], [b"dropped"]), request(method=b"HEAD"))
    assert b"dropped" not in conn.out and b"transfer-encoding" not in conn.out
    assert conn.responses(methods=["HEAD"], eof=False)[0].status == 200


def failing(action: Callable[[Channel], object]) -> SeamApp:
    async def app(head: RequestHead, channel: Channel) -> None:
        result = action(channel)
        if asyncio.iscoroutine(result):
            await result

    return app


@pytest.mark.parametrize(
    "action",
    [
        lambda ch: ch.respond(200, [(b"x-evil", b"a\r\nSet-Cookie: b")], b""),  # response splitting
        lambda ch: ch.respond(200, [(b"x-evil\r\nA", b"b")], b""),
        lambda ch: ch.respond(200, [(b"content-length", b"9")], b"short"),  # mismatch
        lambda ch: ch.respond(200, [(b"content-length", b"abc")], b""),
        lambda ch: ch.respond(200, [(b"transfer-encoding", b"chunked")], b""),
        lambda ch: ch.respond(103, [], b""),  # not a final status
        lambda ch: ch.start(700, []),
    ],
)
async def test_invalid_response_is_a_500(action: Callable[[Channel], object], caplog: pytest.LogCaptureFixture) -> None:
    conn = await serve_one(failing(action))
    [resp] = conn.responses()
    assert resp.status == 500
    assert b"Set-Cookie" not in conn.out
    assert conn.transport.closing
    assert any(r.name == "hump_listener.error" and r.exc_info for r in caplog.records)


async def test_respond_twice_raises() -> None:
    errors: list[Exception] = []

    async def app(head: RequestHead, channel: Channel) -> None:
        await hello(head, channel)
        try:
            channel.respond(200, [], b"")
        except RuntimeError as exc:
            errors.append(exc)

    conn = await serve_one(app)
    assert len(errors) == 1 and conn.out.count(b"HTTP/1.1") == 1
    assert not conn.transport.closing  # the first response was fine


async def test_write_beyond_content_length_closes() -> None:
    conn = await serve_one(streaming(200, [(b"content-length", b"2")], [b"abc"]))
    assert conn.transport.closing
    assert b"abc" not in conn.out


async def test_end_short_of_content_length_closes() -> None:
    conn = await serve_one(streaming(200, [(b"content-length", b"5")], [b"ab"]))
    assert conn.transport.closing


async def test_write_waits_while_transport_paused() -> None:
    progress: list[int] = []

    async def app(head: RequestHead, channel: Channel) -> None:
        await channel.start(200, [])
        for i in range(3):
            await channel.write(b"x" * 10)
            progress.append(i)
        await channel.end()

    conn = Conn(app)
    conn.transport.pause_on_write = True  # every write fills the transport buffer
    conn.send(request())
    await conn.settle(lambda: bool(conn.out))
    assert progress == []  # the head filled the buffer: the first write waits for a drain
    writes = conn.transport.writes
    await conn.settle()
    assert (progress, conn.transport.writes) == ([], writes)  # still waiting, nothing written
    conn.proto.resume_writing()
    await conn.settle(lambda: progress == [0])
    await conn.settle()
    assert progress == [0]  # one write per drain
    conn.transport.pause_on_write = False
    conn.proto.resume_writing()
    await conn.settle(lambda: conn.out.endswith(b"0\r\n\r\n"))
    assert conn.responses(eof=False)[0].body == b"x" * 30


async def test_write_after_disconnect_raises_and_writes_nothing() -> None:
    caught: list[BaseException] = []

    async def app(head: RequestHead, channel: Channel) -> None:
        await channel.start(200, [])
        conn.proto.connection_lost(ConnectionResetError())
        try:
            await channel.write(b"data")
        except ClientDisconnect as exc:
            caught.append(exc)
        await channel.end()

    conn = Conn(app)
    conn.send(request())
    await conn.settle(lambda: bool(caught))
    await conn.settle(lambda: not conn.state.tasks)  # the app's end() included
    assert b"data" not in conn.out and b"0\r\n\r\n" not in conn.out


async def test_writer_paused_then_disconnected_gets_client_disconnect() -> None:
    caught: list[BaseException] = []

    async def app(head: RequestHead, channel: Channel) -> None:
        await channel.start(200, [])
        try:
            await channel.write(b"data")
        except ClientDisconnect as exc:
            caught.append(exc)

    conn = Conn(app)
    conn.proto.pause_writing()
    conn.send(request())
    await conn.settle(lambda: conn.proto.cycle is not None and conn.proto.cycle.started)
    conn.proto.connection_lost(ConnectionResetError())
    await conn.settle(lambda: bool(caught))
    assert b"data" not in conn.out


@pytest.mark.parametrize("length", [True, False])
async def test_sendfile_fallback(length: bool) -> None:
    content = bytes(range(256)) * 1000  # 256 000 bytes

    async def app(head: RequestHead, channel: Channel) -> None:
        headers = [(b"content-length", b"%d" % 200_000)] if length else []
        await channel.start(200, headers)
        await channel.sendfile(io.BytesIO(content), 1000, 200_000)
        await channel.end()

    conn = await serve_one(app)
    [resp] = conn.responses(eof=False)
    assert resp.body == content[1000:201_000]
    assert (resp.header(b"transfer-encoding") == b"chunked") is not length


async def test_sendfile_of_a_short_file_closes() -> None:
    async def app(head: RequestHead, channel: Channel) -> None:
        await channel.start(200, [(b"content-length", b"10")])
        await channel.sendfile(io.BytesIO(b"abc"), 0, 10)
        await channel.end()

    conn = await serve_one(app)
    assert conn.transport.closing
