"""What the two seeded fuzzes (tests/test_fuzz.py over HTTP, tests/test_websocket_fuzz.py
over WebSocket frames) do the same way: open a connection, play a case's bytes with its
ending, and read what the server sends until it closes."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Sequence


class NotClosed(Exception):
    """The server neither answered and closed nor closed within the time given."""

    def __init__(self, got: bytes) -> None:
        super().__init__(f"read {got[:200]!r}")
        self.got = got


@contextlib.asynccontextmanager
async def connection(port: int) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """A client connection to 127.0.0.1:``port``, closed however the case ends."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


async def play(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, pieces: Sequence[bytes], ending: str, within: float
) -> bytes | None:
    """Send ``pieces``, then end as ``ending`` says ("close" and "reset" leave; any other
    ending reads, "half-close" after a FIN); return what the server sent until it closed.
    None when there is nothing to check: the client closed or reset, or the server closed
    while the bytes were going out (allowed). ``NotClosed`` after ``within`` s."""
    try:
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
        if ending == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return None
        if ending == "close":
            return None
        if ending == "half-close":
            writer.write_eof()
    except (ConnectionError, OSError):
        return None
    got = bytearray()
    try:
        async with asyncio.timeout(within):
            while chunk := await reader.read(65536):
                got += chunk
    except TimeoutError:
        raise NotClosed(bytes(got)) from None
    except ConnectionError:
        pass  # a close, if not a graceful one
    return bytes(got)
