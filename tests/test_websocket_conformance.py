"""RFC 6455 conformance over real sockets on 127.0.0.1, modelled on the Autobahn|Testsuite
groups (which cannot run here): 1 framing, 2 pings/pongs, 3 reserved bits, 4 opcodes,
5 fragmentation, 6 UTF-8, 7 close handling, 9/10 limits. Frames are made by hand
(``ws_helpers.frame``) so invalid ones reach the server exactly as written.

Every case asserts the exact frames the server sent and that the server then closed the
TCP connection (``until_eof`` under a bounded wait). The last group drives the server
with the ``websockets`` client library.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest
from protocol_helpers import serve
from ws_helpers import (
    BINARY,
    CLOSE,
    CONT,
    PING,
    PONG,
    TEXT,
    B,
    C,
    Frame,
    SockWS,
    T,
    close,
    echo_app,
    frame,
    handshake,
    random_key,
)

from hump_listener.protocol.server import Server
from hump_listener.seam import Channel, RequestHead, WebSocketDisconnect

pytestmark = pytest.mark.timeout(30)

#: A small message limit for group 9, so the cases stay fast.
MAX = 4096


@contextlib.asynccontextmanager
async def echo_server(**config: Any) -> AsyncIterator[tuple[Server, list[BaseException]]]:
    seen: list[BaseException] = []
    config.setdefault("ws_max_message_size", MAX)
    async with serve(echo_app(seen=seen), **config) as server:
        yield server, seen


@pytest.fixture
async def echo() -> AsyncIterator[tuple[Server, list[BaseException]]]:
    async with echo_server() as pair:
        yield pair


async def session(server: Server, *data: bytes, warm_up: bool = False) -> list[Frame]:
    """Connect, send ``data`` in one write, and return every frame the server sent until
    it closed the connection; then check the server dropped the connection. With
    ``warm_up``, a message is echoed first (Autobahn's "send a message, then the bad frame")."""
    client = await SockWS.connect(server.port)
    try:
        if warm_up:
            await client.send(frame(TEXT, b"before"))
            assert await client.recv() == [T("before")]
        await client.send(*data)
        frames = await client.until_eof()
    finally:
        await client.aclose()
    await gone(server)
    return frames


async def echoed(server: Server, *data: bytes, n: int = 1) -> list[Frame]:
    """Send ``data`` in one write, read ``n`` frames, then close normally (the close echo
    and the server's FIN must follow); return the ``n`` frames.

    The close is sent only after the replies arrived: a close in the same write as a
    message is answered at once (RFC 6455 §5.5.1), before the handler could echo it, and
    after a close no data frame may be sent."""
    client = await SockWS.connect(server.port)
    try:
        await client.send(*data)
        frames = await client.recv(n)
        await client.send(close(1000))
        assert await client.until_eof() == [C(1000)]
    finally:
        await client.aclose()
    await gone(server)
    return frames


async def gone(server: Server) -> None:
    """The server's connection is closed (bounded wait, no sleeping)."""
    assert server.state is not None
    async with asyncio.timeout(5):
        while server.state.connections:
            await asyncio.sleep(0)


def close_code(frames: list[Frame]) -> int | None:
    """The code of the one frame sent, a close (a failure's reason is free text)."""
    assert len(frames) == 1 and frames[0].opcode == CLOSE, frames
    reason = frames[0].reason
    reason.decode()  # valid UTF-8, as RFC 6455 §5.5.1 requires
    return frames[0].code


Echo = tuple[Server, list[BaseException]]

# -- 1 framing ---------------------------------------------------------------------------------

@pytest.mark.parametrize("opcode", [TEXT, BINARY], ids=["text", "binary"])
@pytest.mark.parametrize("length", [0, 125, 126, 127, 65535, 65536])
async def test_1_messages_of_every_length_encoding_are_echoed_exactly(opcode: int, length: int) -> None:
    async with echo_server(ws_max_message_size=1 << 20) as (server, _):
        payload = (b"*" if opcode == TEXT else bytes(range(256))) * (length // (1 if opcode == TEXT else 256) + 1)
        payload = payload[:length]
        client = await SockWS.connect(server.port)
        await client.send(frame(opcode, payload))
        frames = await client.recv()
        await client.send(close(1000))
        frames += await client.until_eof()
        await client.aclose()
    assert frames == [Frame(opcode, payload), C(1000)]
    # The server used the minimal length encoding (RFC 6455 §5.2).
    marker = client.raw[1] & 0x7F
    assert marker == (length if length < 126 else 126 if length < 65536 else 127)


@pytest.mark.parametrize("bits", [16, 64])
async def test_1_non_minimal_length_encodings_are_accepted(echo: Echo, bits: int) -> None:
    # RFC 6455 §5.2 asks senders for the minimal encoding; websockets, like browsers,
    # reads the others (Autobahn does not test this): documented here, not a promise.
    server, _ = echo
    assert await echoed(server, frame(TEXT, b"short", length_bits=bits)) == [T("short")]


async def test_1_an_unmasked_client_frame_is_a_protocol_error(echo: Echo) -> None:
    server, seen = echo
    frames = await session(server, frame(TEXT, b"bare", masked=False))
    assert close_code(frames) == 1002  # RFC 6455 §5.1
    assert isinstance(seen[0], WebSocketDisconnect) and seen[0].code == 1002


async def test_1_a_frame_in_many_small_writes_is_reassembled(echo: Echo) -> None:
    server, _ = echo
    client = await SockWS.connect(server.port)
    data = frame(TEXT, b"byte by byte", mask=b"\x01\x02\x03\x04")
    for i in range(len(data)):
        await client.send(data[i : i + 1])
    assert await client.recv() == [T("byte by byte")]
    await client.send(close(1000))
    assert await client.until_eof() == [C(1000)]
    await client.aclose()


# -- 2 pings and pongs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload", [b"", b"hello", b"\x00\xff\xfe" * 10, b"*" * 125], ids=["empty", "text", "binary", "125"]
)
async def test_2_ping_is_answered_with_the_same_payload(echo: Echo, payload: bytes) -> None:
    server, _ = echo
    # Pongs come from the protocol, not the handler: even a close in the same write
    # follows the pong.
    assert await session(server, frame(PING, payload), close(1000)) == [Frame(PONG, payload), C(1000)]


async def test_2_ping_of_126_bytes_is_a_protocol_error(echo: Echo) -> None:
    server, _ = echo
    frames = await session(server, frame(PING, b"*" * 126))
    assert close_code(frames) == 1002  # no pong: control frames carry at most 125 bytes


async def test_2_unsolicited_pong_is_ignored(echo: Echo) -> None:
    server, _ = echo
    assert await echoed(server, frame(PONG, b"unasked"), frame(PONG, b""), frame(TEXT, b"x")) == [T("x")]


async def test_2_ten_pings_get_ten_pongs_in_order(echo: Echo) -> None:
    server, _ = echo
    pings = [frame(PING, b"ping %d" % i) for i in range(10)]
    frames = await session(server, *pings, close(1000))
    assert frames == [*(Frame(PONG, b"ping %d" % i) for i in range(10)), C(1000)]


async def test_2_ping_between_fragments_is_answered_at_once(echo: Echo) -> None:
    server, _ = echo
    client = await SockWS.connect(server.port)
    await client.send(frame(TEXT, b"frag", fin=False), frame(PING, b"now"))
    assert await client.recv() == [Frame(PONG, b"now")]  # before the message is complete
    await client.send(frame(CONT, b"mented"))
    assert await client.recv() == [T("fragmented")]
    await client.send(close(1000))
    assert await client.until_eof() == [C(1000)]
    await client.aclose()


async def test_2_a_ping_after_the_close_is_not_answered(echo: Echo) -> None:
    server, _ = echo
    assert await session(server, close(1000), frame(PING, b"late")) == [C(1000)]


# -- 3 reserved bits -----------------------------------------------------------------------------


@pytest.mark.parametrize("rsv", range(1, 8))
@pytest.mark.parametrize("opcode", [TEXT, BINARY, PING], ids=["text", "binary", "ping"])
async def test_3_reserved_bits_without_an_extension_are_a_protocol_error(echo: Echo, rsv: int, opcode: int) -> None:
    server, _ = echo
    frames = await session(server, frame(opcode, b"rsv", rsv=rsv), frame(PING, b"after"), warm_up=True)
    assert close_code(frames) == 1002  # nothing after the bad frame is processed


# -- 4 opcodes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("opcode", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
async def test_4_reserved_opcodes_are_a_protocol_error(echo: Echo, opcode: int) -> None:
    server, _ = echo
    frames = await session(server, frame(opcode, b"reserved"), frame(PING, b"after"), warm_up=True)
    assert close_code(frames) == 1002


# -- 5 fragmentation -----------------------------------------------------------------------------


async def test_5_fragmented_text_and_binary_are_reassembled(echo: Echo) -> None:
    server, _ = echo
    frames = await echoed(
        server,
        frame(TEXT, b"fragm", fin=False),
        frame(CONT, b"ented"),
        frame(BINARY, b"\x00", fin=False),
        frame(CONT, b"", fin=False),  # empty fragments are allowed
        frame(CONT, b"\x01", fin=False),
        frame(CONT, b"\x02"),
        n=2,
    )
    assert frames == [T("fragmented"), B(b"\x00\x01\x02")]


async def test_5_a_message_in_one_byte_fragments_is_reassembled(echo: Echo) -> None:
    server, _ = echo
    body = b"one byte at a time"
    fragments = [frame(TEXT if i == 0 else CONT, body[i : i + 1], fin=i == len(body) - 1) for i in range(len(body))]
    assert await echoed(server, *fragments) == [T(body)]


@pytest.mark.parametrize(
    "frames_",
    [
        [frame(CONT, b"no start")],
        [frame(CONT, b"no start", fin=False), frame(CONT, b"end")],
        [frame(CONT, b"after a complete message")],  # after the warm-up's message
        [frame(TEXT, b"start", fin=False), frame(TEXT, b"a new message")],
        [frame(BINARY, b"start", fin=False), frame(BINARY, b"a new message", fin=False)],
        [frame(TEXT, b"start", fin=False), frame(BINARY, b"a new message")],
    ],
    ids=["cont-alone", "cont-fragments", "cont-after-message", "text-mid-text", "binary-mid-binary", "binary-mid-text"],
)
async def test_5_broken_fragmentation_is_a_protocol_error(echo: Echo, frames_: list[bytes]) -> None:
    server, _ = echo
    assert close_code(await session(server, *frames_, warm_up=True)) == 1002


@pytest.mark.parametrize("opcode", [PING, PONG, CLOSE], ids=["ping", "pong", "close"])
async def test_5_a_fragmented_control_frame_is_a_protocol_error(echo: Echo, opcode: int) -> None:
    server, _ = echo
    payload = b"\x03\xe8" if opcode == CLOSE else b"x"
    assert close_code(await session(server, frame(opcode, payload, fin=False), frame(CONT, b"y"))) == 1002


# -- 6 UTF-8 -------------------------------------------------------------------------------------

KOSME = "κόσμε".encode()  # Autobahn's 6.2 sample: 2-byte sequences
MIXED = "a€𝄞κ\u00e9\U0010ffff".encode()  # 1-, 2-, 3- and 4-byte sequences

INVALID_UTF8 = {
    "lone-continuation": b"\x80",
    "bad-start-ff": b"\xff",
    "overlong-slash": b"\xc0\xaf",
    "overlong-3": b"\xe0\x80\xaf",
    "overlong-4": b"\xf0\x80\x80\xaf",
    "surrogate": b"\xed\xa0\x80",
    "beyond-10ffff": b"\xf4\x90\x80\x80",
    "five-byte": b"\xf8\x88\x80\x80\x80",
    "kosme-then-surrogate": KOSME + b"\xed\xa0\x80edited",  # Autobahn 6.3.1
    "broken-middle": b"ab\xce\xce\xbacd",
}


async def test_6_valid_utf8_is_echoed(echo: Echo) -> None:
    server, _ = echo
    assert await echoed(server, frame(TEXT, KOSME), frame(TEXT, MIXED), n=2) == [T(KOSME), T(MIXED)]


@pytest.mark.parametrize("cut", range(1, len(MIXED)))
async def test_6_valid_utf8_split_at_every_byte_across_fragments(echo: Echo, cut: int) -> None:
    server, _ = echo
    assert await echoed(server, frame(TEXT, MIXED[:cut], fin=False), frame(CONT, MIXED[cut:])) == [T(MIXED)]


@pytest.mark.parametrize("payload", list(INVALID_UTF8.values()), ids=list(INVALID_UTF8))
async def test_6_invalid_utf8_in_a_text_message_is_1007(echo: Echo, payload: bytes) -> None:
    server, seen = echo
    assert close_code(await session(server, frame(TEXT, payload))) == 1007
    assert isinstance(seen[0], WebSocketDisconnect) and seen[0].code == 1007


@pytest.mark.parametrize("payload", list(INVALID_UTF8.values()), ids=list(INVALID_UTF8))
async def test_6_invalid_utf8_in_the_first_fragment_fails_before_the_message_ends(echo: Echo, payload: bytes) -> None:
    # Autobahn 6.4: the server must fail fast, without waiting for the rest.
    server, _ = echo
    assert close_code(await session(server, frame(TEXT, payload + b"!", fin=False))) == 1007


async def test_6_invalid_utf8_in_a_later_fragment_fails_at_once(echo: Echo) -> None:
    server, _ = echo
    frames = await session(server, frame(TEXT, KOSME, fin=False), frame(CONT, b"\xf4\x90\x80\x80", fin=False))
    assert close_code(frames) == 1007


@pytest.mark.parametrize(
    "frames_",
    [
        [frame(TEXT, "€".encode()[:2])],
        [frame(TEXT, KOSME + b"\xce", fin=False), frame(CONT, b"")],
        [frame(TEXT, b"ok", fin=False), frame(CONT, b"\xf0\x9d\x84")],
    ],
    ids=["single-frame", "empty-last-fragment", "last-fragment"],
)
async def test_6_utf8_truncated_at_the_end_of_the_message_is_1007(echo: Echo, frames_: list[bytes]) -> None:
    server, _ = echo
    assert close_code(await session(server, *frames_)) == 1007


async def test_6_binary_messages_are_not_checked(echo: Echo) -> None:
    server, _ = echo
    assert await echoed(server, frame(BINARY, b"\xff\xc0\xaf")) == [B(b"\xff\xc0\xaf")]


# -- 7 close handling ----------------------------------------------------------------------------


async def test_7_close_with_code_and_reason_is_echoed_and_seen_by_the_handler(echo: Echo) -> None:
    server, seen = echo
    assert await session(server, close(1000, b"bye")) == [C(1000, b"bye")]
    assert isinstance(seen[0], WebSocketDisconnect) and (seen[0].code, seen[0].reason) == (1000, "bye")


async def test_7_close_with_the_longest_reason_is_echoed(echo: Echo) -> None:
    server, _ = echo
    reason = "é".encode() * 61 + b"!"  # 123 bytes: 125 with the code
    assert await session(server, close(1001, reason)) == [C(1001, reason)]


async def test_7_empty_close_is_echoed_empty(echo: Echo) -> None:
    server, seen = echo
    assert await session(server, close()) == [C()]
    assert isinstance(seen[0], WebSocketDisconnect) and seen[0].code == 1005


async def test_7_close_with_a_one_byte_payload_is_a_protocol_error(echo: Echo) -> None:
    server, _ = echo
    assert close_code(await session(server, frame(CLOSE, b"\x03"))) == 1002


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535])
async def test_7_invalid_close_codes_are_a_protocol_error(echo: Echo, code: int) -> None:
    server, _ = echo
    assert close_code(await session(server, close(code, b"x"))) == 1002


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999])
async def test_7_valid_close_codes_are_echoed(echo: Echo, code: int) -> None:
    server, seen = echo
    assert await session(server, close(code)) == [C(code)]
    assert isinstance(seen[0], WebSocketDisconnect) and seen[0].code == code


async def test_7_invalid_utf8_in_the_close_reason_is_1007(echo: Echo) -> None:
    server, _ = echo
    assert close_code(await session(server, close(1000, b"bad \xff reason"))) == 1007


async def test_7_data_after_the_close_is_ignored(echo: Echo) -> None:
    server, _ = echo
    frames = await session(server, close(1000), frame(TEXT, b"after"), frame(BINARY, b"!"), warm_up=True)
    assert frames == [C(1000)]


async def test_7_the_server_closes_first_when_the_handler_returns() -> None:
    async def app(head: RequestHead, channel: Channel) -> None:
        ws = channel.websocket
        assert ws is not None
        await ws.accept()
        await ws.send("goodbye")
        await ws.close(4001, "done")

    async with serve(app) as server:
        client = await SockWS.connect(server.port)
        assert await client.recv(2) == [T("goodbye"), C(4001, b"done")]
        await client.send(close(4001, b"done"))  # our echo; then the server closes TCP
        assert await client.until_eof() == []
        await client.aclose()
        await gone(server)


# -- 9/10 limits and performance -----------------------------------------------------------------


async def test_9_a_message_at_the_limit_is_echoed_and_one_byte_more_is_1009(echo: Echo) -> None:
    server, _ = echo
    assert await echoed(server, frame(BINARY, b"x" * MAX)) == [B(b"x" * MAX)]
    assert close_code(await session(server, frame(BINARY, b"x" * (MAX + 1)))) == 1009


async def test_9_a_fragmented_message_over_the_limit_is_1009_before_it_ends(echo: Echo) -> None:
    server, _ = echo
    piece = b"x" * (MAX // 4 + 1)
    fragments = [frame(TEXT if i == 0 else CONT, piece, fin=False) for i in range(4)]  # never finished
    assert close_code(await session(server, *fragments)) == 1009


async def test_9_a_huge_declared_length_is_1009_without_reading_it(echo: Echo) -> None:
    server, _ = echo
    head = bytes([0x82, 0x80 | 127]) + struct.pack("!Q", 1 << 62) + os.urandom(4)  # no payload follows
    assert close_code(await session(server, head)) == 1009


async def test_10_many_small_messages_in_one_write_are_all_echoed_in_order(echo: Echo) -> None:
    server, _ = echo
    n = 2000
    messages = [frame(TEXT if i % 2 else BINARY, b"message %d" % i) for i in range(n)]
    frames = await echoed(server, *messages, n=n)
    assert frames == [Frame(TEXT if i % 2 else BINARY, b"message %d" % i) for i in range(n)]


async def test_10_a_client_that_pings_but_never_reads_cannot_grow_the_servers_buffer() -> None:
    # Policy 4: reading pauses while writing is paused, so pongs pile up in the kernel's
    # buffers and the client's, not in ours.
    high = 16 * 1024
    async with echo_server(write_high_water=high) as (server, _):
        assert server.state is not None
        client = await SockWS.connect(server.port, rcvbuf=64 * 1024)
        ping = frame(PING, b"p" * 125)
        sent = 0

        async def flood() -> None:
            nonlocal sent
            chunk = ping * 256
            while True:  # until the client's own send buffer is full and drain blocks
                client.writer.write(chunk)
                sent += 256
                await client.writer.drain()

        [ws] = server.state.connections
        # Small kernel buffers on both ends (no autotuning), so the server's own buffer is
        # reached after ~100 KiB of pongs, and the client's after as many pings, not after
        # the megabytes Linux would allow.
        server_sock = ws.transport.get_extra_info("socket")  # type: ignore[attr-defined]
        server_sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * 1024)
        server_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
        client.writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * 1024)
        flooding = asyncio.ensure_future(flood())
        try:
            # At most one read's worth of pongs beyond the high-water mark, at any time.
            bound = high + 300 * 1024
            async with asyncio.timeout(10):
                while not ws.flow.read_paused:  # type: ignore[attr-defined]
                    assert ws.transport.get_write_buffer_size() < bound  # type: ignore[attr-defined]
                    await asyncio.sleep(0)
            assert ws.transport.get_write_buffer_size() < bound  # type: ignore[attr-defined]
        finally:
            flooding.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flooding
        client.writer.write(close(1000))  # no drain: our own buffer is full of pings
        frames = await client.until_eof(timeout=20)
        await client.aclose()
    pongs = [f for f in frames if f.opcode == PONG]
    assert frames[-1] == C(1000) and len(pongs) == len(frames) - 1
    assert all(f.payload == b"p" * 125 for f in pongs) and 0 < len(pongs) <= sent


async def test_10_the_handshake_and_a_frame_in_one_write(echo: Echo) -> None:
    server, _ = echo
    client = await SockWS.connect(server.port, handshake(key=random_key()) + frame(TEXT, b"eager"))
    assert await client.recv() == [T("eager")]
    await client.send(close(1000))
    assert await client.until_eof() == [C(1000)]
    await client.aclose()


# -- the websockets client library ---------------------------------------------------------------


def ws_connect(port: int, path: str = "/ws", **kw: Any) -> Any:
    from websockets.asyncio.client import connect

    kw.setdefault("proxy", None)
    kw.setdefault("open_timeout", 5)
    kw.setdefault("close_timeout", 5)
    return connect(f"ws://127.0.0.1:{port}{path}", **kw)


async def test_client_echo_of_text_and_binary() -> None:
    async with echo_server() as (server, seen), ws_connect(server.port, compression=None) as client:
        await client.send("héllo")
        assert await client.recv() == "héllo"
        await client.send(b"\x00\x01\xff")
        assert await client.recv() == b"\x00\x01\xff"
        await client.close()
        assert client.close_code == 1000
    assert isinstance(seen[0], WebSocketDisconnect) and seen[0].code == 1000


async def test_client_ping_gets_a_pong() -> None:
    async with echo_server() as (server, _), ws_connect(server.port) as client:
        pong = await client.ping(b"are you there")
        async with asyncio.timeout(5):
            latency = await pong
        assert latency >= 0


async def test_client_sees_the_close_code_of_the_handler() -> None:
    async def app(head: RequestHead, channel: Channel) -> None:
        ws = channel.websocket
        assert ws is not None
        await ws.accept()
        message = await ws.receive()
        if message == "fail":
            raise RuntimeError("handler failure for the client test")
        await ws.close(4002, "as asked")

    from websockets.exceptions import ConnectionClosed

    async with serve(app) as server:
        async with ws_connect(server.port) as client:
            await client.send("close please")
            with pytest.raises(ConnectionClosed):
                await client.recv()
            assert (client.close_code, client.close_reason) == (4002, "as asked")
        logging.getLogger("hump_listener.error").disabled = True  # the 1011 case logs a traceback
        try:
            async with ws_connect(server.port) as client:
                await client.send("fail")
                with pytest.raises(ConnectionClosed):
                    await client.recv()
                assert client.close_code == 1011
        finally:
            logging.getLogger("hump_listener.error").disabled = False


async def test_client_one_mebibyte_message_round_trips() -> None:
    big = os.urandom(1 << 20)
    from websockets.exceptions import ConnectionClosed

    async with (
        echo_server(ws_max_message_size=1 << 20) as (server, _),
        ws_connect(server.port, compression=None) as client,
    ):
        await client.send(big)
        assert await client.recv() == big
        await client.send(big + b"!")  # one byte over: 1009
        with pytest.raises(ConnectionClosed):
            await client.recv()
        assert client.close_code == 1009


@pytest.mark.parametrize("enabled", [True, False], ids=["deflate-on", "deflate-off"])
async def test_client_compression_is_negotiated_only_when_enabled(enabled: bool) -> None:
    message = "compressible " * 2000
    async with (
        echo_server(ws_per_message_deflate=enabled, ws_max_message_size=1 << 20) as (server, _),
        ws_connect(server.port, compression="deflate") as client,
    ):
        names = [extension.name for extension in client.protocol.extensions]
        assert names == (["permessage-deflate"] if enabled else [])
        for _ in range(3):
            await client.send(message)
            assert await client.recv() == message


async def test_client_subprotocol_is_negotiated() -> None:
    async with (
        serve(echo_app(subprotocol="chat.v2")) as server,
        ws_connect(server.port, subprotocols=["chat.v1", "chat.v2"]) as client,
    ):
        assert client.subprotocol == "chat.v2"
        await client.send("hi")
        assert await client.recv() == "hi"


async def test_client_many_concurrent_connections() -> None:
    async with echo_server() as (server, _):

        async def one(i: int) -> str:
            async with ws_connect(server.port, compression=None) as client:
                await client.send(f"client {i}")
                return str(await client.recv())

        results = await asyncio.gather(*(one(i) for i in range(20)))
        assert results == [f"client {i}" for i in range(20)]
        await gone(server)
