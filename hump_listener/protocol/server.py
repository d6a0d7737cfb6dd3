"""Server configuration, shared server state, and the listening server.

Three lifetimes live here, outermost first:

- ``ServerConfig`` (``config.py``): immutable settings, one per server. Every limit and
  timeout is a named constant there with the precedents it was chosen from.
- ``ServerState``: mutable state shared by all connections of one server (server lifetime):
  the live connections, the request tasks, the cached ``Date``/``Server`` header lines and
  the shutting-down flag. Its once-a-second timer also asks every connection whose
  reading is paused whether its client has left (``H11Protocol.check_peer``).
- ``Server``: binds, accepts and drains. Connection state lives in
  ``http11`` (``H11Protocol``), request state in ``cycle`` (``RequestCycle``).
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import socket
import time
from collections.abc import Callable
from typing import Protocol

from hump_listener.config import ServerConfig
from hump_listener.protocol.flow_control import FlowControl
from hump_listener.protocol.http11 import H11Protocol
from hump_listener.protocol.writer import simple_response
from hump_listener.seam import SeamApp

__all__ = ["Server", "ServerConfig", "ServerState"]

logger = logging.getLogger("hump_listener.error")

class Connection(Protocol):
    """What the server asks of every live connection, HTTP/1.1 or WebSocket."""

    flow: FlowControl

    def check_peer(self) -> None:
        """Reading is paused: notice a client that has left (the server asks once a second)."""

    def shutdown(self) -> None:
        """Graceful shutdown: close when idle (HTTP), or send close 1001 (WebSocket)."""

    def cancel_request(self) -> None:
        """The drain deadline passed: end what is still running."""

    def abort(self) -> None:
        """Drop the connection now."""


class ServerState:
    """State shared by every connection of one server (server lifetime).

    The ``Date`` header is formatted once per second by a timer (``start_clock``), never per
    request; ``server_headers`` holds the pre-encoded ``date`` and ``server`` lines that
    every response starts with.
    """

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
        self.rejected: set[H11Protocol] = set()
        #: Every request task; each removes itself as its coroutine's last step.
        self.tasks: set[asyncio.Task[None]] = set()
        self.shutting_down = False
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
        self.refresh_date()

    # Date header

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

    def _tick(self) -> None:
        self.refresh_date()
        self._date_timer = self.loop.call_later(1.0 - self.clock() % 1.0, self._tick)
        self.check_paused()

    def check_paused(self) -> None:
        """A transport whose reading is paused never notices its client leaving: ask each
        such connection to look (once a second, from the clock; never per request)."""
        for protocol in [p for p in self.connections if p.flow.read_paused]:
            protocol.check_peer()

    # Responses the server writes on its own (errors, limits): never on the hot path.

    def simple_response(self, status: int, extra: list[tuple[bytes, bytes]] | None = None) -> bytes:
        """A complete ``Connection: close`` response whose body is the reason phrase."""
        return simple_response(status, self.server_headers, extra or ())

    # Bookkeeping

    def connection_closed(self, protocol: Connection) -> None:
        self.connections.discard(protocol)
        self.rejected.discard(protocol)
        waiter = self._closed_waiter
        if not self.connections and waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait_connections_closed(self, timeout: float) -> bool:
        """Wait until no connection is left; return False on timeout."""
        if not self.connections:
            return True
        waiter = self._closed_waiter = self.loop.create_future()
        try:
            await asyncio.wait((waiter,), timeout=max(timeout, 0.0))
        finally:
            self._closed_waiter = None
        return not self.connections


class Server:
    """Serve a ``SeamApp`` over HTTP/1.1.

    ``await server.start()`` binds ``config.host:config.port`` (port 0 picks a free port;
    see ``port``) or serves an already-bound listening ``sock``. ``await server.shutdown()``
    drains gracefully: stop accepting, close idle connections, let in-flight requests finish
    for up to ``timeout`` seconds, then cancel the rest (503 where no response started).
    """

    def __init__(
        self, app: SeamApp, config: ServerConfig | None = None, loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        self.app = app
        self.config = config if config is not None else ServerConfig()
        self._loop = loop
        self._server: asyncio.Server | None = None
        self.state: ServerState | None = None
        # Shutdown state: done once the drain finished; the deadline a second call may
        # move earlier, and the future that wakes the drain when it does.
        self._done: asyncio.Future[None] | None = None
        self._deadline = 0.0
        self._cut: asyncio.Future[None] | None = None

    async def start(self, sock: socket.socket | None = None) -> None:
        if self._server is not None:
            raise RuntimeError("server already started")
        loop = self._loop if self._loop is not None else asyncio.get_running_loop()
        config = self.config
        state = self.state = ServerState(self.app, config, loop)

        def factory() -> H11Protocol:
            return H11Protocol(state)

        if sock is not None:
            self._server = await loop.create_server(factory, sock=sock, ssl=config.ssl, backlog=config.backlog)
        else:
            self._server = await loop.create_server(
                factory, config.host, config.port, ssl=config.ssl, backlog=config.backlog, reuse_address=True
            )
        state.start_clock()

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        """The listening sockets (empty before ``start`` and after ``shutdown``)."""
        if self._server is None:
            return ()
        return tuple(self._server.sockets)

    @property
    def port(self) -> int:
        """The bound port (useful with ``port=0``)."""
        for sock in self.sockets:
            return int(sock.getsockname()[1])
        raise RuntimeError("server is not listening")

    async def shutdown(self, timeout: float | None = None) -> None:
        """Drain and stop. Safe to call more than once: a call made while a shutdown is
        under way moves its deadline earlier if ``timeout`` says so (a second signal:
        ``shutdown(0)`` cancels what is left now) and returns when that shutdown is done."""
        server, state = self._server, self.state
        if server is None or state is None:
            return
        loop = state.loop
        timeout = self.config.shutdown_timeout if timeout is None else timeout
        if self._done is not None:
            deadline = loop.time() + max(timeout, 0.0)
            if deadline < self._deadline:
                self._deadline = deadline
                if self._cut is not None and not self._cut.done():
                    self._cut.set_result(None)
            await asyncio.shield(self._done)
            return
        self._done = loop.create_future()
        self._deadline = loop.time() + max(timeout, 0.0)
        try:
            await self._drain(server, state)
        finally:
            self._done.set_result(None)

    async def _drain(self, server: asyncio.Server, state: ServerState) -> None:
        loop = state.loop
        # 1. Stop accepting; anything still in the backlog gets a 503 (see connection_made).
        state.shutting_down = True
        server.close()
        logger.info("Stopped accepting connections; %d request(s) in flight", len(state.tasks))
        # 2. Idle connections close now; busy ones close after their current response.
        for protocol in list(state.connections):
            protocol.shutdown()
        # 3. In-flight requests get until the deadline (which a second call may move).
        while state.tasks and loop.time() < self._deadline:
            cut: asyncio.Future[None] = loop.create_future()
            self._cut = cut
            every = loop.create_task(asyncio.wait(set(state.tasks)))
            await asyncio.wait(
                (every, cut), timeout=self._deadline - loop.time(), return_when=asyncio.FIRST_COMPLETED
            )
            every.cancel()
        self._cut = None
        pending = {task for task in state.tasks if not task.done()}
        if pending:
            logger.warning("shutdown: cancelling %d request(s) still running", len(pending))
            for protocol in list(state.connections):
                protocol.cancel_request()
            for task in pending:
                # A task cancelled before its first step never removes itself.
                task.add_done_callback(state.tasks.discard)
                task.cancel()
            await asyncio.wait(pending, timeout=1.0)
        # 4. Let closing connections flush, then drop whatever is left.
        for protocol in list(state.connections):
            protocol.shutdown()
        if not await state.wait_connections_closed(self._deadline - loop.time()):
            for protocol in list(state.connections):
                protocol.abort()
        for protocol in list(state.rejected):  # 503s still lingering: not worth waiting for
            protocol.abort()
        state.stop_clock()
        await server.wait_closed()
