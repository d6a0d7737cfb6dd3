"""Test helpers for WebSocket (RFC 6455) tests: a hand-made frame builder and parser (so
the frames on the wire are exactly what a test says, including the invalid ones the
``websockets`` client library would refuse to send), handshake requests, a seam echo app,
and two clients: one over the in-memory transport (``MemWS``, with the manual clock) and
one over a real socket (``SockWS``); and the ``websockets`` client library against real
servers (``ws_connect``, ``recv``), for the demo's tests.

Nothing here sleeps: reads wait on data with ``asyncio.timeout`` bounds, in-memory waits
use ``settle()``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from protocol_helpers import Conn, settle
from websockets.asyncio.client import ClientConnection, connect

from hump_listener.seam import Channel, HeaderList, RequestHead, WebSocketDisconnect

# Opcodes (RFC 6455 §5.2)
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

#: The key and accept value of RFC 6455 §1.3's worked example.
KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

# ---------------------------------------------------------------------------------------
# Frames


def frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes | None = None,
    masked: bool = True,
    length_bits: int | None = None,
) -> bytes:
    """One client frame, byte for byte. ``rsv`` is the three RSV bits as 0-7 (4 = RSV1);
    ``length_bits`` forces a 7/16/64-bit length encoding (else the minimal one);
    client frames are masked (``mask`` or a random key) unless ``masked=False``."""
    n = len(payload)
    if length_bits is None:
        length_bits = 7 if n < 126 else 16 if n < 65536 else 64
    head = bytes([(0x80 if fin else 0) | (rsv & 7) << 4 | (opcode & 0x0F)])
    bit = 0x80 if masked else 0
    if length_bits == 7:
        assert n < 126
        head += bytes([bit | n])
    elif length_bits == 16:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not masked:
        return head + payload
    key = mask if mask is not None else os.urandom(4)
    return head + key + apply_mask(payload, key)


def apply_mask(data: bytes, key: bytes) -> bytes:
    if not data:
        return b""
    repeated = (key * (len(data) // 4 + 1))[: len(data)]
    return (int.from_bytes(data, "big") ^ int.from_bytes(repeated, "big")).to_bytes(len(data), "big")


def close_payload(code: int | None = None, reason: bytes = b"") -> bytes:
    return b"" if code is None else struct.pack("!H", code) + reason


def text(payload: str | bytes, **kw: Any) -> bytes:
    return frame(TEXT, payload.encode() if isinstance(payload, str) else payload, **kw)


def binary(payload: bytes, **kw: Any) -> bytes:
    return frame(BINARY, payload, **kw)


def close(code: int | None = None, reason: bytes = b"") -> bytes:
    return frame(CLOSE, close_payload(code, reason))


@dataclass(frozen=True)
class Frame:
    """A frame the server sent (unmasked, as RFC 6455 §5.1 requires)."""

    opcode: int
    payload: bytes
    fin: bool = True
    rsv: int = 0

    @property
    def code(self) -> int | None:
        """The close code of a close frame (None for an empty one)."""
        assert self.opcode == CLOSE
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else None

    @property
    def reason(self) -> bytes:
        assert self.opcode == CLOSE
        return self.payload[2:]


def T(payload: str | bytes) -> Frame:
    return Frame(TEXT, payload.encode() if isinstance(payload, str) else payload)


def B(payload: bytes) -> Frame:
    return Frame(BINARY, payload)


def C(code: int | None = None, reason: bytes = b"") -> Frame:
    return Frame(CLOSE, close_payload(code, reason))


def parse_frames(data: bytes) -> tuple[list[Frame], bytes]:
    """The complete server frames in ``data``, and the bytes after them."""
    frames: list[Frame] = []
    i = 0
    while len(data) - i >= 2:
        b0, b1 = data[i], data[i + 1]
        assert not b1 & 0x80, "a server frame must not be masked"
        n, j = b1 & 0x7F, i + 2
        if n == 126:
            if len(data) - j < 2:
                break
            (n,) = struct.unpack("!H", data[j : j + 2])
            j += 2
        elif n == 127:
            if len(data) - j < 8:
                break
            (n,) = struct.unpack("!Q", data[j : j + 8])
            j += 8
        if len(data) - j < n:
            break
        frames.append(Frame(b0 & 0x0F, bytes(data[j : j + n]), bool(b0 & 0x80), (b0 >> 4) & 7))
        i = j + n
    return frames, bytes(data[i:])


# ---------------------------------------------------------------------------------------
# The handshake


def handshake(
    target: bytes = b"/ws",
    *,
    key: bytes | None = KEY,
    version: bytes | None = b"13",
    upgrade: bytes | None = b"websocket",
    connection: bytes | None = b"Upgrade",
    method: bytes = b"GET",
    http: bytes = b"1.1",
    extra: bytes = b"",
) -> bytes:
    """An opening handshake request; ``None`` leaves a header out."""
    lines = [method + b" " + target + b" HTTP/" + http, b"Host: x"]
    if upgrade is not None:
        lines.append(b"Upgrade: " + upgrade)
    if connection is not None:
        lines.append(b"Connection: " + connection)
    if key is not None:
        lines.append(b"Sec-WebSocket-Key: " + key)
    if version is not None:
        lines.append(b"Sec-WebSocket-Version: " + version)
    return b"\r\n".join(lines) + b"\r\n" + extra + b"\r\n"


def random_key() -> bytes:
    return base64.b64encode(os.urandom(16))


def split_head(data: bytes) -> tuple[bytes, bytes]:
    """The response head (without its blank line) and the bytes after it."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert sep, f"no complete response head in {data[:200]!r}"
    return head, rest


def head_fields(head: bytes) -> dict[bytes, list[bytes]]:
    """Header fields of a response head, names lower-cased."""
    fields: dict[bytes, list[bytes]] = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        fields.setdefault(name.strip().lower(), []).append(value.strip())
    return fields


# ---------------------------------------------------------------------------------------
# Seam apps


def echo_app(
    *,
    subprotocol: str | None = None,
    headers: HeaderList | None = None,
    seen: list[BaseException] | None = None,
    ready: asyncio.Event | None = None,
) -> Callable[[RequestHead, Channel], Awaitable[None]]:
    """Answer the rejection, else accept and echo every message until the connection
    closes; ``seen`` collects the WebSocketDisconnect that ended the loop."""

    async def app(head: RequestHead, channel: Channel) -> None:
        ws = channel.websocket
        if ws is None:
            channel.respond(200, [(b"content-length", b"5")], b"plain")
            return
        rejection = ws.rejection
        if rejection is not None:
            channel.respond(*rejection)
            return
        await ws.accept(subprotocol, headers)
        if ready is not None:
            ready.set()
        try:
            while True:
                await ws.send(await ws.receive())
        except WebSocketDisconnect as exc:
            if seen is not None:
                seen.append(exc)

    return app


# ---------------------------------------------------------------------------------------
# A client over the in-memory transport (with the manual clock when clock=True)


class MemWS:
    """A WebSocket client on ``protocol_helpers.Conn``: the transport can half-close, as a
    TCP socket can, so the server's FIN after a close is visible (``eof_written``)."""

    def __init__(self, app: Callable[[RequestHead, Channel], Awaitable[None]], **config: Any) -> None:
        self.conn = Conn(app, half_close=True, **config)
        self.transport = self.conn.transport
        self.clock = self.conn.clock
        self._seen = 0  # bytes of output already parsed into frames
        self.head = b""

    @property
    def proto(self) -> Any:
        """The transport's protocol now: H11Protocol, then WebSocketProtocol."""
        return self.transport.protocol

    async def open(self, request: bytes | None = None) -> bytes:
        """Send the handshake, wait for the response head; return it."""
        self.transport.feed(request if request is not None else handshake())
        await settle(lambda: b"\r\n\r\n" in self.transport.out)
        self.head, _ = split_head(bytes(self.transport.out))
        self._seen = len(self.head) + 4
        return self.head

    def send(self, data: bytes) -> None:
        self.transport.feed(data)

    def frames(self) -> list[Frame]:
        """Every frame the server sent since the last call (after the 101's head)."""
        out = self.transport.out
        if not self._seen and out.startswith(b"HTTP/1.1 101 "):
            self.head, _ = split_head(bytes(out))
            self._seen = len(self.head) + 4
        frames, rest = parse_frames(bytes(self.transport.out[self._seen :]))
        self._seen = len(self.transport.out) - len(rest)
        return frames

    async def wait_frames(self, n: int = 1) -> list[Frame]:
        out: list[Frame] = []

        def enough() -> bool:
            out.extend(self.frames())
            return len(out) >= n

        await settle(enough)
        return out

    async def settle(self, until: Callable[[], bool]) -> None:
        await settle(until)


# ---------------------------------------------------------------------------------------
# A client over a real socket


class SockWS:
    """A raw WebSocket client on a TCP connection to 127.0.0.1."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> None:
        self.reader = reader
        self.writer = writer
        self.head = head
        self._buf = b""
        #: Every byte received after the 101's head (to check the server's encodings).
        self.raw = bytearray()

    @classmethod
    async def connect(
        cls, port: int, request: bytes | None = None, timeout: float = 5.0, rcvbuf: int | None = None
    ) -> SockWS:
        """Connect and open; ``rcvbuf`` fixes the socket's receive buffer (no autotuning),
        so a test that stops reading knows how much the kernel will hold for it."""
        async with asyncio.timeout(timeout):
            if rcvbuf is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            else:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
                sock.setblocking(False)
                try:
                    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
                except BaseException:
                    sock.close()
                    raise
                reader, writer = await asyncio.open_connection(sock=sock)
            writer.write(request if request is not None else handshake(key=random_key()))
            head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 "), head
        return cls(reader, writer, head[:-4])

    async def send(self, *data: bytes) -> None:
        self.writer.write(b"".join(data))
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()

    async def recv(self, n: int = 1, timeout: float = 5.0) -> list[Frame]:
        """The next ``n`` frames."""
        out: list[Frame] = []
        async with asyncio.timeout(timeout):
            while True:
                frames, self._buf = parse_frames(self._buf)
                out.extend(frames)
                if len(out) >= n:
                    assert len(out) == n, f"more frames than expected: {out}"
                    return out
                chunk = await self.reader.read(65536)
                assert chunk, f"EOF after {out}"
                self._buf += chunk
                self.raw += chunk

    async def until_eof(self, timeout: float = 5.0) -> list[Frame]:
        """Every frame until the server closes its side (FIN); fails if it never does."""
        async with asyncio.timeout(timeout):
            while chunk := await self.reader.read(65536):
                self._buf += chunk
                self.raw += chunk
        frames, rest = parse_frames(self._buf)
        assert rest == b"", f"a partial frame before EOF: {rest[:50]!r}"
        self._buf = b""
        return frames

    async def aclose(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


# -- the websockets client library against real servers (demo tests) ------------------


#: Bound on every wait for a WebSocket message or close (a failing test must end).
WS_WAIT = 10.0


def ws_connect(base_url: str, path: str, **kw: Any) -> connect:
    """The ``websockets`` client on ``ws://`` + the server's address (``http://host:port``
    or ``ws://host:port``)."""
    url = base_url.replace("http://", "ws://", 1) + path
    return connect(url, proxy=None, open_timeout=WS_WAIT, **kw)


async def recv(ws: ClientConnection) -> str | bytes:
    """The next message, or ``ConnectionClosed``; ``TimeoutError`` after ``WS_WAIT``."""
    return await asyncio.wait_for(ws.recv(), WS_WAIT)


async def said(ws: ClientConnection) -> tuple[str, str]:
    """The demo chat's next message as (from, text): frames are JSON, and presence frames
    (no "text") are skipped; ``ConnectionClosed`` / ``TimeoutError`` as ``recv``."""
    frame = await chat_frame(ws, lambda f: "text" in f)
    return frame["from"], frame["text"]


async def chat_frame(ws: ClientConnection, wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The demo chat's next JSON frame that ``wanted`` accepts (the others are skipped)."""
    while True:
        frame = json.loads(await recv(ws))
        assert isinstance(frame, dict) and isinstance(frame.get("id"), str), frame
        if wanted(frame):
            return frame
