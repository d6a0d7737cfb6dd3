"""State shared by every connection of one server (server lifetime): ``ServerState``.

Three lifetimes meet on the protocol side, outermost first: ``ServerConfig``
(``config.py``, immutable settings), this module's ``ServerState`` (the live connections,
the request tasks, the cached ``Date``/``Server`` lines, the shutting-down flag) and the
connections themselves (``http11.H11Protocol``, ``websocket.WebSocketProtocol``), each
with its requests (``cycle.RequestCycle``). ``server.Server`` binds, accepts and drains.

Rules:

1. The ``Date`` header is formatted once per second by a timer (``start_clock``), never
   per request; the same tick asks every connection whose reading is paused whether its
   client has left (``Connection.check_peer``: a paused transport never notices).
2. Connections refused at ``max_connections`` are counted and logged once per burst, with
   the count (syslog's "last message repeated N times"): a burst ends after
   ``REFUSALS_QUIET`` seconds without a refusal, and one that goes on is reported every
   ``REFUSALS_REPORT_EVERY`` seconds. One line per refusal let a flood of connections
   flood the log too.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from hump_listener.protocol.writer import simple_response
from hump_listener.seam import SeamApp

if TYPE_CHECKING:
    from hump_listener.config import ServerConfig
    from hump_listener.protocol.flow_control import FlowControl

__all__ = ["REFUSALS_QUIET", "REFUSALS_REPORT_EVERY", "Connection", "ServerState"]

logger = logging.getLogger("hump_listener.error")

#: Rule 2: a burst of refusals ends after this long without one.
REFUSALS_QUIET = 1.0
#: Rule 2: a burst that goes on is reported this often (with the count so far).
REFUSALS_REPORT_EVERY = 60.0


class Connection(Protocol):
    """What the server asks of every live connection, HTTP/1.1 or WebSocket."""

    flow: FlowControl

    def check_peer(self) -> None:
        """Reading is paused: notice a client that has left (the server asks once a second)."""

    def shutdown(self) -> None:
        """Graceful shutdown: close when idle, end what only the shutdown can end (an
        endless response learns it through ``wait_closed``; a WebSocket gets close 1001)."""

    def cancel_request(self) -> None:
        """The drain deadline passed: end what is still running."""

    def abort(self) -> None:
        """Drop the connection now."""


class ServerState:
    """State shared by every connection of one server (server lifetime)."""

    def __init__(
        self,
        app: SeamApp,
        config: ServerConfig,
        loop: asyncio.AbstractEventLoop,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.config = config
        self.loop = loop
        self.clock = clock
        #: Live connections of both kinds (``max_connections`` counts them all).
        self.connections: set[Connection] = set()
        #: Connections refused beyond ``max_connections`` that linger after their 503
        #: (not counted in ``connections``; at most ``max_connections`` of them).
        self.rejected: set[Connection] = set()
        #: Every request task; each removes itself as its coroutine's last step.
        self.tasks: set[asyncio.Task[None]] = set()
        self.shutting_down = False
        #: Loop time by which closing handshakes begun by the shutdown must end (set by
        #: ``Server``'s drain), so that they fit inside it; None while serving.
        self.close_by: float | None = None
        #: The loop can ``sendfile`` (asyncio's can; uvloop's raise NotImplementedError,
        #: learnt on the first try and remembered here, for every connection).
        self.loop_sendfile = True
        self._server_line = (
            b"server: " + config.server_header.encode("latin-1") + b"\r\n"
            if config.server_header is not None
            else b""
        )
        #: Number of lines in ``server_headers`` (responses check their line count).
        self.server_header_lines = 2 if config.server_header is not None else 1
        self.server_headers = b""
        self._date_timer: asyncio.TimerHandle | None = None
        self._closed_waiter: asyncio.Future[None] | None = None
        # Rule 2: refusals in the current burst, when it began, the timer that ends it.
        self._refused = 0
        self._refused_since = 0.0
        self._refusals_timer: asyncio.TimerHandle | None = None
        self.refresh_date()

    # -- the Date header (rule 1) -------------------------------------------------------------

    def refresh_date(self) -> None:
        date = email.utils.formatdate(self.clock(), usegmt=True).encode("ascii")
        self.server_headers = b"date: " + date + b"\r\n" + self._server_line

    def start_clock(self) -> None:
        """Refresh the cached ``Date`` once per second, on the second."""
        self.refresh_date()
        self._date_timer = self.loop.call_later(1.0 - self.clock() % 1.0, self._tick)

    def stop_clock(self) -> None:
        if self._date_timer is not None:
            self._date_timer.cancel()
            self._date_timer = None
        if self._refusals_timer is not None:
            self._refusals_timer.cancel()
            self._report_refusals()

    def _tick(self) -> None:
        self.refresh_date()
        self._date_timer = self.loop.call_later(1.0 - self.clock() % 1.0, self._tick)
        self.check_paused()

    def check_paused(self) -> None:
        """A transport whose reading is paused never notices its client leaving: ask each
        such connection to look (once a second, from the clock; never per request)."""
        for protocol in [p for p in self.connections if p.flow.read_paused]:
            protocol.check_peer()

    # -- responses the server writes on its own (errors, limits): never on the hot path --------

    def simple_response(self, status: int, extra: list[tuple[bytes, bytes]] | None = None) -> bytes:
        """A complete ``Connection: close`` response whose body is the reason phrase."""
        return simple_response(status, self.server_headers, extra or ())

    # -- refusals at max_connections (rule 2) --------------------------------------------------

    def note_refusal(self) -> None:
        """A connection was refused at ``max_connections``: count it; the burst's line is
        written when the burst ends (rule 2)."""
        self._refused += 1
        if self._refusals_timer is None:
            self._refused_since = self.loop.time()
            self._refusals_timer = self.loop.call_later(REFUSALS_QUIET, self._end_of_burst, self._refused)

    def _end_of_burst(self, seen: int) -> None:
        going_on = self._refused != seen
        if going_on and self.loop.time() - self._refused_since < REFUSALS_REPORT_EVERY:
            self._refusals_timer = self.loop.call_later(REFUSALS_QUIET, self._end_of_burst, self._refused)
            return
        self._report_refusals()

    def _report_refusals(self) -> None:
        self._refusals_timer = None
        count, self._refused = self._refused, 0
        if count:
            logger.warning(
                "connection limit (%d) reached: %d connection(s) refused with 503 in %.1f s",
                self.config.max_connections, count, self.loop.time() - self._refused_since,
            )

    # -- bookkeeping ----------------------------------------------------------------------------

    def connection_closed(self, protocol: Connection) -> None:
        self.connections.discard(protocol)
        self.rejected.discard(protocol)
        waiter = self._closed_waiter
        if not self.connections and waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait_connections_closed(self, timeout: float, cut: asyncio.Future[None] | None = None) -> bool:
        """Wait until no connection is left, or ``timeout`` passes, or ``cut`` is done (a
        second signal); return whether none is left."""
        if not self.connections:
            return True
        waiter = self._closed_waiter = self.loop.create_future()
        try:
            waits: tuple[asyncio.Future[None], ...] = (waiter,) if cut is None else (waiter, cut)
            await asyncio.wait(waits, timeout=max(timeout, 0.0), return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._closed_waiter = None
        return not self.connections
