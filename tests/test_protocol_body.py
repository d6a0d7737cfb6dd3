"""Request bodies: streaming, flow control, Expect: 100-continue, unread bodies."""

from __future__ import annotations

import asyncio

import pytest
from protocol_helpers import Conn, echo_body, hello, request

from hump_listener.config import ServerConfig
from hump_listener.protocol.body import BodyError, ChunkedReader, ContentLengthReader, reader_for, stray_line_end
from hump_listener.protocol.head import ParsedHead, read_head
from hump_listener.seam import Channel, ClientDisconnect, RequestHead

pytestmark = pytest.mark.timeout(10)

POST_CL = b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
POST_CHUNKED = b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"


class Reader:
    """Reads the body one receive() at a time, on command."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.channel: Channel | None = None
        self.step = asyncio.Event()
        self.error: BaseException | None = None

    async def __call__(self, head: RequestHead, channel: Channel) -> None:
        self.channel = channel
        try:
            while True:
                await self.step.wait()
                self.step.clear()
                chunk = await channel.receive()
                self.chunks.append(chunk)
                if not chunk:
                    break
        except ClientDisconnect as exc:
            self.error = exc
            raise
        channel.respond(200, [(b"content-length", b"2")], b"ok")


async def test_body_streamed_as_it_arrives() -> None:
    reader = Reader()
    conn = Conn(reader)
    conn.send(POST_CHUNKED + b"3\r\nabc\r\n")
    reader.step.set()
    await conn.settle(lambda: reader.chunks == [b"abc"])
    reader.step.set()  # now waiting for more
    await conn.settle(conn.waits_for_body)
    conn.send(b"2\r\nde\r\n")
    await conn.settle(lambda: reader.chunks == [b"abc", b"de"])
    conn.send(b"0\r\n\r\n")
    reader.step.set()
    await conn.settle(lambda: reader.chunks == [b"abc", b"de", b""])
    await conn.settle(lambda: bool(conn.out))
    assert conn.responses(eof=False)[0].body == b"ok"
    assert not conn.transport.closing  # the body was read: keep-alive


async def test_reading_paused_above_high_water_and_resumed_when_consumed() -> None:
    reader = Reader()
    conn = Conn(reader, body_high_water=1024)
    conn.send(POST_CL % 4000)
    conn.send(b"a" * 1000)
    assert conn.transport.reading  # below the mark
    conn.send(b"a" * 1000)
    assert not conn.transport.reading  # above it: the socket is paused
    reader.step.set()
    await conn.settle(lambda: len(reader.chunks) == 1)
    assert reader.chunks == [b"a" * 2000]  # everything buffered, in one chunk
    assert conn.transport.reading  # consumed: reading again
    conn.send(b"a" * 2000)
    reader.step.set()
    await conn.settle(lambda: len(reader.chunks) == 2)
    reader.step.set()
    await conn.settle(lambda: reader.chunks[-1] == b"")
    assert sum(map(len, reader.chunks)) == 4000


async def test_expect_100_continue_sent_on_first_receive() -> None:
    reader = Reader()
    conn = Conn(reader)
    conn.send(b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
    await conn.settle()
    assert conn.out == b""  # not before the app asks for the body
    reader.step.set()
    await conn.settle(lambda: bool(conn.out))
    assert conn.out == b"HTTP/1.1 100 Continue\r\n\r\n"
    conn.send(b"abc")
    reader.step.set()
    await conn.settle(lambda: reader.chunks[-1:] == [b""])
    await conn.settle(lambda: b"200" in conn.out)
    [resp] = conn.responses(methods=["POST"], eof=False)
    assert resp.informational == [100] and resp.status == 200
    assert conn.out.count(b"100 Continue") == 1


async def test_no_100_continue_for_http10() -> None:
    conn = Conn(echo_body)
    conn.send(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
    await conn.settle(conn.waits_for_body)
    conn.send(b"abc")
    await conn.settle(lambda: conn.transport.closing)
    assert b"100 Continue" not in conn.out
    assert conn.responses()[0].body == b"abc"


async def test_no_100_continue_when_app_answers_without_reading() -> None:
    conn = Conn(hello)
    conn.send(b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
    await conn.settle(lambda: conn.transport.closing)
    assert b"100 Continue" not in conn.out
    [resp] = conn.responses()
    assert resp.informational == [] and resp.status == 200
    assert resp.header(b"connection") == b"close"  # the unread body cannot be framed away


async def test_no_100_continue_after_final_response_started() -> None:
    async def app(head: RequestHead, channel: Channel) -> None:
        await channel.start(200, [])
        data = await channel.receive()
        await channel.write(data)
        await channel.end()

    conn = Conn(app)
    conn.send(b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
    await conn.settle(lambda: bool(conn.out))
    assert conn.out.startswith(b"HTTP/1.1 200 OK\r\n")
    conn.send(b"abc")
    await conn.settle(lambda: conn.transport.closing)
    assert b"100 Continue" not in conn.out
    [resp] = conn.responses(methods=["POST"])
    assert resp.informational == [] and resp.body == b"abc"


async def test_client_sending_body_without_waiting_is_framed() -> None:
    conn = Conn(echo_body)
    data = b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc"
    conn.send(data + request(b"/next"))
    await conn.settle(lambda: conn.out.count(b"HTTP/1.1 200") == 2)
    first, second = conn.responses(methods=["POST", "GET"], eof=False)
    assert first.body == b"abc" and second.body == b""
    assert first.informational == []  # the body was already here: no 100 needed


async def test_unread_body_closes_connection_after_response() -> None:
    conn = Conn(hello)
    conn.send(POST_CL % 10 + b"abc")  # 7 bytes still to come
    await conn.settle(lambda: conn.transport.closing)
    [resp] = conn.responses()
    assert resp.status == 200 and resp.header(b"connection") == b"close"


async def test_fully_received_but_unread_body_keeps_alive() -> None:
    conn = Conn(hello)
    conn.send(POST_CL % 3 + b"abc" + request(b"/2"))
    await conn.settle(lambda: conn.out.count(b"HTTP/1.1 200") == 2)
    assert not conn.transport.closing
    assert all(r.header(b"connection") is None for r in conn.responses(eof=False))


async def reading_mid_body() -> tuple[Conn, Reader]:
    """A handler that has read 3 bytes of a 10-byte body and waits for the rest."""
    reader = Reader()
    conn = Conn(reader)
    conn.send(POST_CL % 10 + b"abc")
    reader.step.set()
    await conn.settle(lambda: reader.chunks == [b"abc"])
    reader.step.set()
    await conn.settle(conn.waits_for_body)
    return conn, reader


async def test_disconnect_mid_body_raises_client_disconnect() -> None:
    conn, reader = await reading_mid_body()
    conn.proto.connection_lost(ConnectionResetError())
    await conn.settle(lambda: reader.error is not None)
    assert isinstance(reader.error, ClientDisconnect)
    assert conn.out == b""  # nothing written to a dead connection
    assert conn.transport.writes_after_close == 0


async def test_half_close_mid_body_raises_client_disconnect() -> None:
    conn, reader = await reading_mid_body()
    assert conn.eof() is False
    await conn.settle(lambda: reader.error is not None)
    assert isinstance(reader.error, ClientDisconnect)


# -- Content-Length bodies framed by counting (policy 10) ---------------------------------


async def test_length_body_split_across_reads_then_a_pipelined_request() -> None:
    conn = Conn(echo_body)
    conn.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
    conn.send(b"defg")
    conn.send(b"hij" + request(b"/next"))  # the body's end and the next request together
    await conn.settle(lambda: conn.out.count(b"HTTP/1.1 200") == 2)
    bodies = [r.body for r in conn.responses(eof=False)]
    assert bodies == [b"abcdefghij", b""]
    assert not conn.transport.closing


async def test_zero_length_body_and_bodiless_requests_keep_alive() -> None:
    conn = Conn(echo_body)
    conn.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n" + request(b"/2"))
    await conn.settle(lambda: conn.out.count(b"HTTP/1.1 200") == 2)
    assert [r.body for r in conn.responses(eof=False)] == [b"", b""]
    assert not conn.transport.closing


async def test_connection_close_token_is_honoured_among_others() -> None:
    conn = Conn(hello)
    conn.send(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Keep-Alive, CLOSE\r\n\r\n" + request(b"/never"))
    await conn.settle(lambda: conn.transport.closing)
    assert conn.out.count(b"HTTP/1.1 200") == 1 and b"connection: close" in conn.out


async def test_upgrade_request_is_answered_then_closed() -> None:
    conn = Conn(hello)
    conn.send(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n")
    await conn.settle(lambda: conn.transport.closing)
    assert conn.out.startswith(b"HTTP/1.1 200") and b"connection: close" in conn.out


# -- lingering close (policy 11), on real sockets ------------------------------------------


async def refuse_body(head: RequestHead, channel: Channel) -> None:
    channel.respond(413, [(b"content-length", b"8")], b"too big!")


async def test_answer_before_the_body_is_read_survives_a_client_still_sending() -> None:
    # Without lingering, our close with unread bytes in the kernel buffer is a reset,
    # which can destroy the 413 before the client reads it.
    from protocol_helpers import serve

    async with serve(refuse_body) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4000000\r\n\r\n")
        chunk = b"x" * 65536
        for _ in range(30):  # keep sending after the answer
            writer.write(chunk)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"too big!"), 10)
        assert head.startswith(b"HTTP/1.1 413 ") and b"connection: close" in head
        writer.write_eof()  # done sending: the server's linger ends and it closes
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()


# -- the readers alone, with bytes (body.py) ------------------------------------------------


def parsed(head: bytes) -> ParsedHead:
    result = read_head(head, ServerConfig(), False, None, None, "http")
    assert isinstance(result, ParsedHead)
    return result


def read_all(reader: ContentLengthReader | ChunkedReader, pieces: list[bytes]) -> tuple[bytes, bytes]:
    """The body, and every byte after it: what the reader handed back, then the pieces it
    was never given."""
    body = b""
    for i, piece in enumerate(pieces):
        got, rest = reader.read(piece)
        body += got
        if reader.done:
            return body, rest + b"".join(pieces[i + 1 :])
    return body, b""


def test_no_body_has_no_reader() -> None:
    assert reader_for(parsed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")) is None
    assert reader_for(parsed(POST_CL % 0)) is None


@pytest.mark.parametrize("step", [1, 3, 100])
def test_a_content_length_body_is_counted_and_the_rest_is_the_next_request(step: int) -> None:
    reader = reader_for(parsed(POST_CL % 5))
    assert isinstance(reader, ContentLengthReader)
    data = b"hello" + b"GET / HTTP/1.1\r\n"
    body, rest = read_all(reader, [data[i : i + step] for i in range(0, len(data), step)])
    assert body == b"hello" and reader.done and reader.left == 0
    assert rest == b"GET / HTTP/1.1\r\n"


@pytest.mark.parametrize("step", [1, 4, 100])
def test_a_chunked_body_is_decoded_across_any_cuts(step: int) -> None:
    reader = reader_for(parsed(POST_CHUNKED))
    assert isinstance(reader, ChunkedReader)
    data = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\nNEXT"
    body, rest = read_all(reader, [data[i : i + step] for i in range(0, len(data), step)])
    assert body == b"hello world" and reader.done
    assert rest == b"NEXT"


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"zz\r\n", 400),  # not a hexadecimal size
        (b"5\nhello\r\n", 400),  # a chunk-size line ended by a bare LF: refused at once, not waited on
        (b"5\rx", 400),  # a stray CR in the line
        (b"3\r\nabcXY", 400),  # no CRLF after the chunk's data
    ],
)
def test_a_malformed_chunked_body_is_a_body_error(data: bytes, status: int) -> None:
    reader = reader_for(parsed(POST_CHUNKED))
    assert isinstance(reader, ChunkedReader)
    with pytest.raises(BodyError) as caught:
        reader.read(data)
    assert caught.value.status == status and not reader.done


def test_stray_line_end_only_looks_at_an_unfinished_chunk_size_line() -> None:
    p = parsed(POST_CHUNKED)
    assert p.decoder is not None
    assert not stray_line_end(p.decoder)  # nothing pending
    p.decoder.receive_data(b"5\r")
    p.decoder.next_event()
    assert not stray_line_end(p.decoder)  # a CR at the end may be followed by its LF
