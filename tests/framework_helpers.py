"""Drive the framework through the seam with an in-memory Channel: no sockets, no h11."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import IO, Any

from hump_listener.seam import ClientDisconnect, HeaderList, RequestHead, SeamTarget, seam_entry


@dataclass
class MemoryChannel:
    """A ``seam.Channel`` that records what the app sends."""

    body_chunks: list[bytes] = field(default_factory=list)
    status: int | None = None
    headers: HeaderList = field(default_factory=list)
    sent: bytearray = field(default_factory=bytearray)
    ended: bool = False
    disconnected: bool = False
    started: bool = False
    reads: int = 0
    websocket: None = None  # never an upgrade request
    #: Set by ``close()``: what ``wait_closed`` waits for.
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    async def receive(self) -> bytes:
        self.reads += 1
        if self.disconnected:
            raise ClientDisconnect()
        return self.body_chunks.pop(0) if self.body_chunks else b""

    def respond(self, status: int, headers: HeaderList, body: bytes) -> None:
        assert not self.started, "a second response was sent"
        self.started, self.ended = True, True
        self.status, self.headers = status, list(headers)
        self.sent += body

    async def start(self, status: int, headers: HeaderList) -> None:
        assert not self.started, "a second response was sent"
        self.started = True
        self.status, self.headers = status, list(headers)

    async def write(self, data: bytes) -> None:
        assert self.started and not self.ended
        if self.disconnected:
            raise ClientDisconnect()
        self.sent += data

    async def end(self) -> None:
        self.ended = True

    async def sendfile(self, file: IO[bytes], offset: int, count: int) -> None:
        file.seek(offset)
        await self.write(file.read(count))

    async def wait_closed(self) -> None:
        await self.closed.wait()

    def close(self, client_left: bool = True) -> None:
        """The client leaves (``client_left``), or the server ends the response (a shutdown)."""
        self.disconnected = self.disconnected or client_left
        self.closed.set()

    def header(self, name: str) -> str | None:
        key = name.lower().encode()
        for k, v in self.headers:
            if k == key:
                return v.decode("latin-1")
        return None

    @property
    def text(self) -> str:
        return self.sent.decode()


async def call(
    app: SeamTarget,
    method: str,
    target: str | bytes,
    headers: list[tuple[str, str]] | None = None,
    body: bytes | list[bytes] = b"",
) -> MemoryChannel:
    raw_target = target if isinstance(target, bytes) else target.encode()
    chunks = body if isinstance(body, list) else ([body] if body else [])
    hdrs: list[tuple[bytes, bytes]] = [(b"host", b"testserver")]
    for k, v in headers or []:
        hdrs.append((k.lower().encode("latin-1"), v.encode("latin-1")))
    if chunks and not any(k == b"content-length" for k, _ in hdrs):
        hdrs.append((b"content-length", str(sum(map(len, chunks))).encode()))
    head = RequestHead(method, raw_target, "1.1", hdrs, ("127.0.0.1", 50000), ("127.0.0.1", 8000))
    channel = MemoryChannel(body_chunks=list(chunks))
    await seam_entry(app)(head, channel)
    return channel


def make_head(**kw: Any) -> RequestHead:
    base: dict[str, Any] = dict(
        method="GET", target=b"/", http_version="1.1", headers=[(b"host", b"x")], client=None, server=None
    )
    base.update(kw)
    return RequestHead(**base)
