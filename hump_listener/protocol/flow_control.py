"""Backpressure for one connection (connection lifetime).

Two directions, two rules:

Rule 1 (reading): the protocol pauses the transport when unconsumed request data piles up
(body above a high-water mark, or a pipelined request read ahead of its turn) and resumes
it when the app catches up. ``pause_reading`` / ``resume_reading`` are idempotent, so
callers never need to know who paused last. A paused transport never notices that its
client left, so once the client is known to have finished sending (a FIN or a reset seen
while paused) ``release_reading`` resumes it for good: what is left to read is bounded by
the kernel's receive buffer, and reading it is how the EOF, or the reset, is delivered.

Rule 2 (writing): the transport tells us when its buffer passes its own high-water mark
(``pause_writing``) and when it has drained (``resume_writing``). Writers ``await drain()``
while paused, so a large response never buffers more than about one high-water mark. The
waiter is one future, created only when somebody actually waits. ``progressed`` is when
the client last took something: the protocol sets it on each ``resume_writing`` from the
transport and each finished ``sendfile`` piece, so the send timeout can tell a slow
reader from one that reads nothing.
"""

from __future__ import annotations

import asyncio
import select

from hump_listener.config import DEFAULT_BODY_HIGH_WATER, DEFAULT_WRITE_HIGH_WATER

__all__ = [
    "DEFAULT_BODY_HIGH_WATER",
    "DEFAULT_WRITE_HIGH_WATER",
    "PEER_DONE",
    "FlowControl",
    "half_close",
    "poll_socket",
]



class FlowControl:
    """Pause/resume reading and writing on one transport."""

    __slots__ = ("_drain_waiter", "_loop", "_transport", "progressed", "read_paused", "released", "write_paused")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self.read_paused = False
        self.write_paused = False
        #: The client has finished sending: reading is never paused again (rule 1).
        self.released = False
        #: Loop time of the client's last write progress, for the send timeout (rule 2).
        self.progressed = 0.0
        self._drain_waiter: asyncio.Future[None] | None = None

    # Reading (we decide)

    def pause_reading(self) -> None:
        if not self.read_paused and not self.released:
            self.read_paused = True
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused:
            self.read_paused = False
            self._transport.resume_reading()

    def release_reading(self) -> None:
        """The client has finished sending: read what is left, and never pause again."""
        self.released = True
        self.resume_reading()

    # Writing (the transport decides)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        """Called by the transport once drained, and by the protocol on connection loss
        (so that no writer waits forever on a dead transport)."""
        self.write_paused = False
        waiter = self._drain_waiter
        if waiter is not None:
            self._drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def drain(self) -> None:
        """Wait until the transport accepts writes again (returns at once if it does)."""
        if not self.write_paused:
            return
        waiter = self._drain_waiter
        if waiter is None or waiter.done():  # done: a previous waiter was cancelled
            waiter = self._drain_waiter = self._loop.create_future()
        await waiter


# A paused transport never notices its client leaving (rule 1): the server polls.

#: poll() events saying the client has finished sending: its FIN (Linux's POLLRDHUP), a
#: reset or an error.
PEER_DONE = select.POLLHUP | select.POLLERR | getattr(select, "POLLRDHUP", 0)


def poll_socket(fd: int, events: int) -> int:
    """The ``events`` pending on socket ``fd`` now (one zero-timeout poll; 0 if none)."""
    poller = select.poll()
    poller.register(fd, events)
    ready = poller.poll(0)
    return ready[0][1] if ready else 0


def half_close(transport: asyncio.BaseTransport) -> bool:
    """Send our FIN after what was written, keeping the connection open for reading, and
    return True; where the transport cannot half-close, close it and return False; if the
    client has already gone (``write_eof`` raises an ``OSError`` such as ENOTCONN), abort
    and return False. Both protocols' closing handshakes end here."""
    try:
        can = bool(transport.can_write_eof())  # type: ignore[attr-defined]
    except (AttributeError, NotImplementedError):
        can = False
    if not can:
        transport.close()
        return False
    try:
        transport.write_eof()  # type: ignore[attr-defined]
    except OSError:
        transport.abort()  # type: ignore[attr-defined]
        return False
    return True
