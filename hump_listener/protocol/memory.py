"""The one in-memory transport: a server connection with no socket (connection lifetime).

Used by the in-process test client (``hump_listener.testing``), the protocol tests and
``benchmarks/inproc.py``: each drives a real protocol (``H11Protocol``, and after a 101
the WebSocket protocol) exactly as a socket transport would, without a port.

Rules:

1. What the server writes goes to ``on_write(data)`` when given, else it accumulates in
   ``out``; ``writes`` counts the calls. Writes after ``close()`` are dropped and counted in
   ``writes_after_close`` (a socket transport drops them too).
2. ``close()`` and ``abort()`` report ``connection_lost`` to the protocol on the next loop
   turn, like asyncio's socket transports; ``on_close`` hears of it at once. Like theirs,
   ``close()`` first waits for the write buffer to drain: while ``buffered`` is not 0 the
   loss is reported only once ``drained()`` is called (``abort()`` never waits).
3. Reading is visible: ``reading`` and the ``readable`` event follow ``pause_reading`` /
   ``resume_reading``, so a feeder can honour the server's flow control.
4. Write pressure can be simulated: with ``pause_on_write`` every write pauses the
   protocol's writing, as if the buffer passed its high-water mark; ``buffered`` is what
   ``get_write_buffer_size()`` reports (bytes a client has not taken yet); ``drained()``
   empties it and resumes the protocol's writing, as a client that caught up would.
5. Half-closing is opt-in: with ``half_close=True`` the transport can write EOF (as a TCP
   socket can: ``write_eof()`` sets ``eof_written``), so the protocol's lingering close
   runs; without it the protocol closes outright, as over TLS.
6. ``set_protocol`` hands the connection to another protocol, as an upgrade to WebSocket
   does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["MemoryTransport"]

Address = tuple[str, int]


class MemoryTransport(asyncio.Transport):
    """The server's end of an in-memory connection."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        peer: Address = ("127.0.0.1", 50000),
        sockname: Address = ("127.0.0.1", 8000),
        on_write: Callable[[bytes], None] | None = None,
        on_close: Callable[[], None] | None = None,
        extra: dict[str, Any] | None = None,
        half_close: bool = False,
    ) -> None:
        super().__init__()
        self.loop = loop
        self.protocol: asyncio.BaseProtocol | None = None
        self.on_write = on_write
        self.on_close = on_close
        self.out = bytearray()
        self.writes = 0
        self.writes_after_close = 0
        self.closing = False
        self.aborted = False
        self.eof_written = False
        self.lost = False
        self.reading = True
        self.readable = asyncio.Event()  # set while the server reads (and once it closed)
        self.readable.set()
        self.pause_on_write = False
        self.buffered = 0
        self._lose_when_drained = False
        self.half_close = half_close
        self._extra: dict[str, Any] = {"peername": peer, "sockname": sockname, **(extra or {})}

    # -- the client's side --------------------------------------------------------------

    def connect(self, protocol: asyncio.Protocol) -> None:
        """Attach ``protocol`` and tell it the connection is made."""
        self.protocol = protocol
        protocol.connection_made(self)

    def feed(self, data: bytes) -> None:
        """Bytes from the client."""
        assert isinstance(self.protocol, asyncio.Protocol)
        self.protocol.data_received(data)

    def feed_eof(self) -> bool | None:
        """The client half-closes. As a socket transport does, the transport closes
        unless the protocol's ``eof_received`` returns true; returns what it said."""
        assert isinstance(self.protocol, asyncio.Protocol)
        keep_open = self.protocol.eof_received()
        if not keep_open:
            self.close()
        return keep_open

    # -- asyncio.Transport ------------------------------------------------------------------

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._extra.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.closing:
            self.writes_after_close += 1
            return
        self.writes += 1
        if self.on_write is not None:
            self.on_write(bytes(data))
        else:
            self.out += data
        if self.pause_on_write:  # rule 4
            assert isinstance(self.protocol, asyncio.Protocol)
            self.protocol.pause_writing()

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        self.write(b"".join(list_of_data))

    def can_write_eof(self) -> bool:
        return self.half_close

    def write_eof(self) -> None:
        if self.closing:
            raise OSError(107, "Transport endpoint is not connected")
        self.eof_written = True

    def close(self) -> None:
        if self.closing:
            return
        self.closing = True
        self.readable.set()
        if self.on_close is not None:
            self.on_close()
        if self.buffered:
            self._lose_when_drained = True  # rule 2: the buffer is flushed first
        else:
            self.loop.call_soon(self._lose)

    def abort(self) -> None:
        self.aborted = True
        self.buffered = 0
        if self._lose_when_drained:
            self._lose_when_drained = False
            self.loop.call_soon(self._lose)
        self.close()

    def drained(self) -> None:
        """The client has taken everything buffered (rule 4)."""
        self.buffered = 0
        if self._lose_when_drained:
            self._lose_when_drained = False
            self.loop.call_soon(self._lose)
        elif self.protocol is not None and not self.lost:
            assert isinstance(self.protocol, asyncio.Protocol)
            self.protocol.resume_writing()

    def _lose(self) -> None:
        self.lost = True
        if self.protocol is not None:
            self.protocol.connection_lost(None)

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        if not self.closing:
            self.reading = False
            self.readable.clear()

    def resume_reading(self) -> None:
        self.reading = True
        self.readable.set()

    def is_reading(self) -> bool:
        return self.reading

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self.protocol is not None
        return self.protocol
