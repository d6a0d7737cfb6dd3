"""The WebSocket fast path (protocol/websocket.py, rule 8) agrees with websockets alone.

Every scenario is a list of client byte chunks fed, after a real upgrade, to a connection
whose handler echoes each message (or, for the backpressure scenario, does not read). It
runs twice, with ``fast_path`` on and off (off: every byte goes through websockets'
``ServerProtocol``, as before the fast path existed), and under several chunkings of the
same bytes (whole, byte by byte, seeded random splits). Both runs must write the same
bytes after the 101, hand the handler the same messages and the same close, and leave the
transport in the same state (closing, aborted, half-closed, reading paused).

Separate tests check that the fast path is really taken for the frames it is meant for,
that it gives way to websockets and comes back, and that the header it writes is the one
websockets' ``Frame.serialize`` writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import struct
from dataclasses import dataclass, field
from typing import Any

import pytest

pytest.importorskip("websockets")

from protocol_helpers import Conn, serve, settle
from websockets.frames import BINARY, TEXT, Frame

from hump_listener.protocol.websocket import WebSocketProtocol
from hump_listener.protocol.ws_frames import frame_head
from hump_listener.protocol.ws_upgrade import WebSocketOffer
from hump_listener.seam import Channel, RequestHead, WebSocketDisconnect

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
HANDSHAKE = (
    "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
).encode()
MASK = b"\x0f\xa5\x3c\x71"


def frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    masked: bool = True,
    length: str = "auto",
    mask: bytes = MASK,
) -> bytes:
    """A client frame, by hand (RFC 6455 §5.2). ``length``: "auto" (the shortest form),
    "16" or "64" to force a longer length field."""
    n = len(payload)
    first = (0x80 if fin else 0) | rsv << 4 | opcode
    bit = 0x80 if masked else 0
    if length == "64" or (length == "auto" and n > 65535):
        head = struct.pack("!BBQ", first, bit | 127, n)
    elif length == "16" or (length == "auto" and n > 125):
        head = struct.pack("!BBH", first, bit | 126, n)
    else:
        head = struct.pack("!BB", first, bit | n)
    if not masked:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def text(s: str, **kw: Any) -> bytes:
    return frame(0x1, s.encode("utf-8"), **kw)


def binary(b: bytes, **kw: Any) -> bytes:
    return frame(0x2, b, **kw)


def close(code: int | None = 1000, reason: str = "") -> bytes:
    return frame(0x8, b"" if code is None else struct.pack("!H", code) + reason.encode())


@dataclass
class Outcome:
    out: bytes  # everything written after the 101
    seen: list[Any] = field(default_factory=list)  # messages, then ("closed", code, reason)
    closing: bool = False
    aborted: bool = False
    eof_written: bool = False
    reading: bool = True
    websockets_reads: int = 0  # calls of websockets' receive_data


class Handler:
    """A seam app: accept, then echo every message (or, with ``read=False``, only wait)."""

    def __init__(self, fast: bool, read: bool = True, close_after: int | None = None) -> None:
        self.fast, self.read, self.close_after = fast, read, close_after
        self.seen: list[Any] = []
        self.ws: WebSocketOffer | None = None
        self.done = False
        self.release = asyncio.Event()

    async def __call__(self, head: RequestHead, channel: Channel) -> None:
        ws = channel.websocket
        assert isinstance(ws, WebSocketOffer)
        ws.fast_path = self.fast
        self.ws = ws
        await ws.accept()
        try:
            if not self.read:
                await self.release.wait()
            while True:
                message = await ws.receive()
                self.seen.append(message)
                await ws.send(message)
                if self.close_after is not None and len(self.seen) >= self.close_after:
                    await ws.close(4000, "enough")
        except WebSocketDisconnect as exc:
            self.seen.append(("closed", exc.code, exc.reason))
        finally:
            self.done = True


async def run(
    chunks: list[bytes],
    fast: bool,
    *,
    eof: bool = False,
    read: bool = True,
    close_after: int | None = None,
    **config: Any,
) -> Outcome:
    handler = Handler(fast, read, close_after)
    conn = Conn(handler, clock=True, ws_ping_interval=None, **config)
    conn.send(HANDSHAKE)
    await settle(lambda: handler.ws is not None and handler.ws.accepted)
    assert handler.ws is not None
    ws = handler.ws.connection
    assert isinstance(ws, WebSocketProtocol) and conn.transport.protocol is ws
    assert conn.out.startswith(b"HTTP/1.1 101 ")
    start = conn.out.index(b"\r\n\r\n") + 4
    reads = 0
    original = ws.frames.receive_data

    def counting(data: bytes) -> None:
        nonlocal reads
        reads += 1
        original(data)

    ws.frames.receive_data = counting
    transport = conn.transport
    for chunk in chunks:
        if transport.closing:
            break
        if not transport.reading:  # as a socket transport, deliver nothing while paused
            await conn.settle(lambda: transport.reading or transport.closing)
        transport.feed(chunk)
        await conn.settle(turns=TURNS)
    if eof and not transport.closing:
        transport.feed_eof()
        await conn.settle()
    outcome = Outcome(
        out=conn.out[start:],
        closing=transport.closing,
        aborted=transport.aborted,
        eof_written=transport.eof_written,
        reading=transport.reading,
        websockets_reads=reads,
    )
    handler.release.set()
    await conn.settle()
    if not transport.closing:
        transport.abort()
    await settle(lambda: handler.done)
    outcome.seen = list(handler.seen)
    return outcome


#: Loop turns after each chunk: enough for the handler to take and echo what it got.
TURNS = 20
#: Longer inputs are fed byte by byte only this far, then in misaligned 4093-byte chunks.
BYTEWISE = 4096


def chunkings(data: bytes) -> dict[str, list[bytes]]:
    """The same bytes whole, byte by byte, and in three seeded random splits."""
    head, rest = data[:BYTEWISE], data[BYTEWISE:]
    bytewise = [head[i : i + 1] for i in range(len(head))] + [rest[i : i + 4093] for i in range(0, len(rest), 4093)]
    out = {"whole": [data], "bytes": bytewise}
    top = max(40, len(data) // 100)
    for seed in (1, 2, 3):
        rng, cuts, i = random.Random(seed), [], 0
        while i < len(data):
            step = rng.randint(1, top)
            cuts.append(data[i : i + step])
            i += step
        out[f"random{seed}"] = cuts
    return out


async def assert_same(chunks: list[bytes], **kw: Any) -> tuple[Outcome, Outcome]:
    fast = await run(chunks, True, **kw)
    slow = await run(chunks, False, **kw)
    assert fast.out == slow.out
    assert fast.seen == slow.seen
    assert (fast.closing, fast.aborted, fast.eof_written, fast.reading) == (
        slow.closing,
        slow.aborted,
        slow.eof_written,
        slow.reading,
    )
    return fast, slow


# -- the scenarios ------------------------------------------------------------------------

SCENARIOS: dict[str, tuple[bytes, dict[str, Any]]] = {
    "text and binary, every length form": (
        b"".join(
            [
                text(""),
                text("a"),
                text("x" * 125),
                text("y" * 126),
                binary(b""),
                binary(os.urandom(200)),
                binary(b"z" * 65535),
                text("non-minimal 16-bit length", length="16"),
                binary(b"64-bit length field", length="64"),
                binary(b"q" * 65536),
                text("é ü € 𝄞 — multi-byte text"),
                close(1000, "bye"),
            ]
        ),
        {},
    ),
    "fragments with control frames between them": (
        b"".join(
            [
                text("before"),
                text("frag", fin=False),
                frame(0x9, b"ping in the middle"),
                frame(0x0, b"ment", fin=False),
                frame(0xA, b"unsolicited pong"),
                frame(0x0, b"ed", fin=True),
                binary(b"\x00bin", fin=False),
                frame(0x0, b"ary\xff", fin=True),
                text("after"),
                frame(0x9, b""),
                text("after the ping"),
                close(1001),
            ]
        ),
        {},
    ),
    "a data frame where a continuation is expected": (
        text("start", fin=False) + text("not a continuation") + text("never read"),
        {},
    ),
    "a continuation with nothing to continue": (text("ok") + frame(0x0, b"stray") + text("never read"), {}),
    "max size: 7-bit length over the limit": (text("x" * 100) + text("x" * 101) + text("never read"), {}),
    "max size: 16-bit length over the limit": (
        text("x" * 100) + binary(b"y" * 300) + text("never read"),
        {"ws_max_message_size": 200},
    ),
    "max size: exactly the limit, then a fragmented message over it": (
        binary(b"a" * 100) + binary(b"b" * 60, fin=False) + frame(0x0, b"c" * 60) + text("never read"),
        {},
    ),
    "invalid UTF-8 alone": (text("ok") + frame(0x1, b"bad \xff text") + text("never read"), {}),
    "invalid UTF-8, then a ping in the same read": (
        text("ok") + frame(0x1, b"\xed\xa0\x80 surrogate") + frame(0x9, b"p") + text("never read"),
        {},
    ),
    "invalid UTF-8 across fragments": (
        text("ok") + frame(0x1, b"split \xe2\x82", fin=False) + frame(0x0, b"\x28 bad", fin=True) + text("x"),
        {},
    ),
    "valid UTF-8 split across fragments": (
        frame(0x1, b"euro \xe2\x82", fin=False) + frame(0x0, b"\xac!", fin=True) + text("next"),
        {},
    ),
    "an unmasked frame": (text("ok") + text("unmasked", masked=False) + text("never read"), {}),
    "reserved bits": (text("ok") + text("rsv1", rsv=4) + text("never read"), {}),
    "reserved opcodes": (text("ok") + frame(0x3, b"data opcode 3") + text("never read"), {}),
    "a reserved control opcode": (text("ok") + frame(0xB, b"") + text("never read"), {}),
    "a fragmented control frame": (text("ok") + frame(0x9, b"p", fin=False) + text("never read"), {}),
    "a control frame over 125 bytes": (text("ok") + frame(0x9, b"p" * 126, length="16"), {}),
    "close without a code, then data": (text("ok") + close(None) + text("after close"), {}),
    "close with an invalid code": (text("ok") + close(1005) + text("after close"), {}),
    "close with a reason of invalid UTF-8": (text("ok") + frame(0x8, b"\x03\xe8\xff"), {}),
    "a one-byte close payload": (text("ok") + frame(0x8, b"\x03"), {}),
    "a mask other than the usual": (text("masked differently", mask=b"\x00\x00\x00\x00") + text("ok"), {}),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
@pytest.mark.parametrize("split", ["whole", "bytes", "random1", "random2", "random3"])
async def test_fast_path_writes_and_delivers_what_websockets_does(name: str, split: str) -> None:
    data, config = SCENARIOS[name]
    await assert_same(chunkings(data)[split], **config)


@pytest.mark.parametrize("split", ["whole", "bytes", "random1"])
async def test_eof_in_the_middle_of_a_frame(split: str) -> None:
    data = text("ok") + text("cut short")[:7]
    fast, _ = await assert_same(chunkings(data)[split], eof=True)
    assert fast.seen == ["ok", ("closed", 1006, "")]


@pytest.mark.parametrize("split", ["whole", "bytes"])
async def test_eof_between_frames(split: str) -> None:
    await assert_same(chunkings(text("ok") + binary(b"fine"))[split], eof=True)


@pytest.mark.parametrize("split", ["whole", "bytes", "random2"])
async def test_server_close_then_more_frames(split: str) -> None:
    data = text("one") + text("two") + text("after our close") + frame(0x9, b"p") + close(1000)
    fast, _ = await assert_same(chunkings(data)[split], close_after=1)
    assert fast.seen[0] == "one"


async def test_backpressure_pauses_reading_alike() -> None:
    """A handler that does not read: the queue fills, reading pauses, in both paths."""
    data = b"".join(text(f"m{i}") for i in range(6))
    fast, _ = await assert_same([data], read=False, ws_max_queue=3)
    assert fast.reading is False
    assert fast.seen[:6] == [f"m{i}" for i in range(6)]


# -- the fast path is the one taken -------------------------------------------------------


async def test_qualifying_frames_never_reach_websockets() -> None:
    data = b"".join([text("a"), binary(b"b" * 300), text("é" * 40), text("x" * (65535 // 2))])
    for split in ("whole", "bytes", "random1"):
        fast = await run(chunkings(data)[split], True)
        assert fast.websockets_reads == 0, split
        assert fast.seen[:4] == ["a", b"b" * 300, "é" * 40, "x" * (65535 // 2)]
    slow = await run([data], False)
    assert slow.websockets_reads == 1


async def test_fast_path_gives_way_and_comes_back() -> None:
    """A ping goes to websockets (which pongs); the next plain frames are fast again."""
    chunks = [text("a"), frame(0x9, b"hi"), text("b"), text("c")]
    fast = await run(chunks, True)
    assert fast.websockets_reads == 1
    assert fast.seen[:3] == ["a", "b", "c"]
    # a fragmented message: websockets until it is whole, then fast again
    chunks = [text("x", fin=False), frame(0x0, b"y"), text("z"), text("w")]
    fast = await run(chunks, True)
    assert fast.websockets_reads == 2
    assert fast.seen[:3] == ["xy", "z", "w"]


async def test_a_frame_split_inside_its_header_stays_on_the_fast_path() -> None:
    data = binary(b"h" * 1000)  # a 16-bit length: 8 bytes of header with the mask
    chunks = [data[:1], data[1:3], data[3:7], data[7:500], data[500:]]
    fast = await run(chunks, True)
    assert fast.websockets_reads == 0
    assert fast.seen[0] == b"h" * 1000


async def test_a_rejected_header_is_answered_without_waiting_for_more_bytes() -> None:
    """Two bytes of an unmasked header, or four of an oversize 16-bit one: websockets
    closes at once, and the fast path must not hold those bytes back."""
    for head, code, config in (
        (b"\x81\x05", 1002, {}),
        (b"\x82\xfe\x01\x00", 1009, {"ws_max_message_size": 100}),
    ):
        fast, _ = await assert_same([text("ok"), head], **config)
        assert fast.out.startswith(b"\x81\x02ok\x88")  # the echo, then a close frame at once
        assert fast.out[6:8] == struct.pack("!H", code)
        assert fast.seen[-1][:2] == ("closed", code)


# -- what the fast path writes ------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 1000, 65535, 65536, 70000])
@pytest.mark.parametrize("opcode", [TEXT, BINARY])
def test_frame_head_is_websockets_header(length: int, opcode: Any) -> None:
    data = b"d" * length
    expected = Frame(opcode, data).serialize(mask=False)
    assert frame_head(0x80 | opcode, length) + data == expected


async def test_fast_send_is_not_used_for_bytearray_or_memoryview() -> None:
    """Those go through websockets (its length is len() of the object, as before)."""
    writes: list[bytes] = []

    async def app(head: RequestHead, channel: Channel) -> None:
        ws = channel.websocket
        assert ws is not None
        await ws.accept()
        await ws.send(bytearray(b"ba"))
        await ws.send(memoryview(b"mv"))
        await ws.send(b"by")
        await ws.send("st")

    conn = Conn(app, clock=True, ws_ping_interval=None)
    conn.transport.on_write = writes.append
    conn.send(HANDSHAKE)
    await settle(lambda: len(writes) >= 5)
    assert writes[1:5] == [b"\x82\x02ba", b"\x82\x02mv", b"\x82\x02by", b"\x81\x02st"]
    conn.transport.abort()
    await conn.settle(lambda: conn.transport.lost)



# -- over real sockets ------------------------------------------------------------------------


async def echo_app(head: RequestHead, channel: Channel) -> None:
    ws = channel.websocket
    assert ws is not None
    await ws.accept()
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await ws.send(await ws.receive())


async def read_frames(reader: asyncio.StreamReader, count: int) -> list[tuple[int, bytes]]:
    frames = []
    for _ in range(count):
        first, second = await reader.readexactly(2)
        length = second & 0x7F
        if length == 126:
            length = struct.unpack("!H", await reader.readexactly(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", await reader.readexactly(8))[0]
        frames.append((first, await reader.readexactly(length)))
    return frames


async def open_ws(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(HANDSHAKE)
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101 ")
    return reader, writer


async def test_socket_connections_echo_their_own_frames() -> None:
    """Several connections on one loop, frames arriving together, and a message over
    asyncio's 256 KiB read size (several reads, websockets' path): each gets its own bytes
    back, in order."""
    big = os.urandom(256 * 1024 + 12345)
    async with asyncio.timeout(20), serve(echo_app, ws_ping_interval=None) as server:
        conns = [await open_ws(server.port) for _ in range(3)]
        for i, (_, writer) in enumerate(conns):  # all written before any is read
            writer.write(text(f"hello {i}") + binary(bytes([i]) * 300) + text("é" * i))
        for i, (reader, _) in enumerate(conns):
            assert await read_frames(reader, 3) == [
                (0x81, f"hello {i}".encode()),
                (0x82, bytes([i]) * 300),
                (0x81, ("é" * i).encode()),
            ]
        reader, writer = conns[0]
        writer.write(binary(big) + text("after"))
        assert await read_frames(reader, 2) == [(0x82, big), (0x81, b"after")]
        for reader, writer in conns:
            writer.write(close(1000))
            assert await read_frames(reader, 1) == [(0x88, struct.pack("!H", 1000))]
            writer.close()


async def test_a_frame_read_in_two_parts_survives_other_connections_reads() -> None:
    """The first part of a frame is kept (``_partial``) while other connections' reads
    come and go; the frame is whole once its rest arrives."""
    payload = bytes(range(256)) * 4
    data = binary(payload)
    async with asyncio.timeout(10), serve(echo_app, ws_ping_interval=None) as server:
        (reader_a, writer_a), (reader_b, writer_b) = [await open_ws(server.port) for _ in range(2)]
        writer_a.write(data[:500])
        await writer_a.drain()
        for i in range(3):
            writer_b.write(binary(bytes([i]) * 700))
            assert await read_frames(reader_b, 1) == [(0x82, bytes([i]) * 700)]
        writer_a.write(data[500:])
        assert await read_frames(reader_a, 1) == [(0x82, payload)]
        writer_a.close()
        writer_b.close()
