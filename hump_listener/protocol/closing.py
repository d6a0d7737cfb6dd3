"""Closing an HTTP/1.1 connection: the ``Closing`` half of ``H11Protocol``.

Rules (the connection's policy 7):

1. Lingering close (nginx's ``lingering_close``): when we close a connection whose client
   may still be sending (an error answered mid-request, a body left unread), we half-close
   and discard its bytes until it closes or ``linger_timeout`` passes. Closing with unread
   bytes in the kernel's buffer sends a reset, and the reset can destroy the response we
   just wrote (the 413 a client uploading too much should see). So every close that may
   leave request bytes unread lingers: an error answer, a body left unread, pipelined
   requests behind a close-type response, an idle connection closed (shutdown,
   keep-alive timeout) while a request is arriving, and the 503 beyond
   ``max_connections`` (for at most as many connections again; then a plain close).
2. A client that leaves is released whatever state the connection is in (RFC 9112 §9.6
   lets either side close at any time): asyncio never notices an EOF or a reset on a
   transport whose reading is paused, so once a second the server asks every paused
   connection to poll its socket (``check_peer``); if the client has finished sending,
   reading is resumed for good (what is left is bounded by the kernel's buffer) and the
   EOF or reset is handled as on any other connection. The close paths stop a
   ``sendfile`` in flight before the socket closes (asyncio's would wait forever).
"""

from __future__ import annotations

import asyncio
import logging
import select
from typing import TYPE_CHECKING, Any

from hump_listener.protocol.flow_control import PEER_DONE, FlowControl, half_close, poll_socket

if TYPE_CHECKING:
    from hump_listener.config import ServerConfig
    from hump_listener.protocol.cycle import RequestCycle
    from hump_listener.protocol.server import ServerState

__all__ = ["Closing"]

logger = logging.getLogger("hump_listener.error")


class Closing:
    """Lingering close, aborts and the paused-peer check (a mixin of ``H11Protocol``,
    whose connection state it uses)."""

    transport: Any
    flow: FlowControl
    config: ServerConfig
    state: ServerState
    loop: asyncio.AbstractEventLoop
    cycle: RequestCycle | None
    _buf: bytearray
    _fd: int
    _eof: bool
    _closed: bool
    _lingering: bool
    _linger_timer: asyncio.TimerHandle | None

    if TYPE_CHECKING:  # provided by H11Protocol

        def who(self) -> str: ...
        def watch_send(self) -> None: ...
        def _cancel_timers(self) -> None: ...

    def abort(self) -> None:
        if self.cycle is not None:
            self.cycle.lost()  # first: stops a sendfile before its socket goes (rule 2)
        self._closed = True
        self._cancel_timers()
        self.transport.abort()

    def check_peer(self) -> None:
        """Our reading is paused: if the client has since finished sending (FIN or reset),
        read again for good so that the transport sees it (rule 2). The server calls
        this once a second for every connection whose reading is paused."""
        try:
            if self._closed or self._eof or self._fd < 0 or self.transport.get_protocol() is not self:
                return  # closed, finished, no socket, or handed to another protocol (an upgrade)
            cycle = self.cycle
            if cycle is not None and cycle.sending:
                return  # asyncio reads nothing during a sendfile; it ends on its own
            if poll_socket(self._fd, PEER_DONE):
                self.flow.release_reading()
        except Exception:
            self._crash("check_peer")

    def _may_have_unread(self) -> bool:
        """The client may have sent bytes we have not read (rule 1): bytes not parsed
        yet, a paused socket, or bytes waiting in the kernel's buffer."""
        if self._buf or self.flow.read_paused:
            return True
        return self._fd >= 0 and poll_socket(self._fd, select.POLLIN) != 0

    def _on_linger_timeout(self) -> None:
        self._linger_timer = None
        self.transport.close()

    def _reject(self, status: int, reason: str) -> None:
        """Answer a request we could not parse, and close (``http11`` policy 1)."""
        logger.info("%s - %d %s", self.who(), status, reason)
        if not self._closed:
            self.transport.write(self.state.simple_response(status))
        self._close(linger=True)

    def _close(self, linger: bool = False) -> None:
        """Close the connection. ``linger``: the client may still be sending (a request
        we did not read to its end), so half-close and discard its bytes for a while
        first (rule 1)."""
        if self.cycle is not None:
            self.cycle.lost()  # first: stops a sendfile before its socket goes (rule 2)
        if not self._closed:
            self._closed = True
            self._cancel_timers()
            transport = self.transport
            if linger and not self._eof:
                if half_close(transport):  # our FIN follows the response; read on, discarding
                    self._lingering = True
                    self._linger_timer = self.loop.call_later(self.config.linger_timeout, self._on_linger_timeout)
            else:
                transport.close()
            self.flow.resume_reading()
            self.flow.resume_writing()
            if transport.get_write_buffer_size():
                self.watch_send()  # the close waits for the client to take the rest

    def _crash(self, where: str) -> None:
        logger.exception("internal error in %s; closing the connection", where)
        try:
            self._closed = True
            self._cancel_timers()
            if self.cycle is not None:
                self.cycle.lost()
            if self.transport is not None:
                self.transport.abort()
        except Exception:
            logger.exception("error while aborting the connection")
