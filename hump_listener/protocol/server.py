"""Server configuration, shared server state, and the listening server.

Three lifetimes live here, outermost first:

- ``ServerConfig``: immutable settings, one per server. Every limit and timeout is a named
  constant below with the precedents it was chosen from.
- ``ServerState``: mutable state shared by all connections of one server (server lifetime):
  the live connections, the request tasks, the cached ``Date``/``Server`` header lines and
  the shutting-down flag.
- ``Server``: binds, accepts and drains. Connection and request state live in ``h11_impl``.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import socket
import ssl as ssl_module
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus

from hump_listener.protocol.flow_control import DEFAULT_BODY_HIGH_WATER, DEFAULT_WRITE_HIGH_WATER
from hump_listener.protocol.h11_impl import H11Protocol
from hump_listener.seam import SeamApp

__all__ = ["Server", "ServerConfig", "ServerState"]

logger = logging.getLogger("hump_listener.error")

# ---------------------------------------------------------------------------------------
# Limits and timeouts (seconds / bytes). Precedents: uvicorn 0.3x, hypercorn 0.17, nginx 1.2x,
# Apache 2.4, ASP.NET Kestrel.

#: Listen backlog. uvicorn: 2048; hypercorn: 100; nginx: 511.
DEFAULT_BACKLOG = 2048
#: Open connections beyond which new ones get a 503 and are closed. uvicorn:
#: ``limit_concurrency`` None (unlimited); hypercorn: none; nginx: ``worker_connections`` 512.
#: Idle connections are cheap here (no per-connection task), so the limit is generous.
DEFAULT_MAX_CONNECTIONS = 4096
#: Longest request line (method, target, version) served; longer → 414. Apache
#: ``LimitRequestLine``: 8190; nginx: one ``large_client_header_buffers`` buffer, 8 KiB.
DEFAULT_MAX_REQUEST_LINE = 8190
#: Largest request head (request line + header fields); larger → 431. h11/uvicorn: 16 KiB;
#: nginx: 4 x 8 KiB; Node.js: 16 KiB. 32 KiB fits an 8 KiB request line plus an 8 KiB cookie.
DEFAULT_MAX_HEAD_SIZE = 32 * 1024
#: A new connection that sends nothing for this long is closed quietly. uvicorn: none;
#: nginx: ``client_header_timeout`` 60 s also covers it; hypercorn: ``read_timeout`` none.
DEFAULT_FIRST_BYTE_TIMEOUT = 10.0
#: Time to receive a whole request head, counted from its first byte; then 408 and close.
#: nginx ``client_header_timeout``: 60 s; Kestrel ``RequestHeadersTimeout``: 30 s; uvicorn: none.
DEFAULT_HEAD_TIMEOUT = 10.0
#: Idle time between requests on a kept-alive connection; then a quiet close.
#: uvicorn ``timeout_keep_alive``: 5 s; hypercorn ``keep_alive_timeout``: 5 s; nginx: 75 s.
DEFAULT_KEEP_ALIVE_TIMEOUT = 5.0
#: Body deadline: the app may spend this long waiting on ``receive()`` plus one second per
#: ``body_min_rate`` bytes received; past it → 408 and close. Only time the app spends
#: actually waiting counts (never time when we paused reading). nginx
#: ``client_body_timeout``: 60 s between reads; Kestrel: a 5 s grace period; uvicorn: none.
DEFAULT_BODY_TIMEOUT = 10.0
#: Minimum request-body data rate (bytes/s) once the grace above is used up.
#: Kestrel ``MinRequestBodyDataRate``: 240 B/s. 0 disables the rate check (stall check only).
DEFAULT_BODY_MIN_RATE = 240.0
#: Lingering close: after answering a request we did not read to its end, discard what
#: the client still sends for at most this long before closing. nginx ``lingering_time``:
#: 30 s (``lingering_timeout`` 5 s between reads); uvicorn/hypercorn: none (a reset).
DEFAULT_LINGER_TIMEOUT = 5.0
#: Per-request handler deadline; then 503 (or close if the response started). None = none.
#: uvicorn/hypercorn: none; gunicorn sync workers: 30 s.
DEFAULT_HANDLER_TIMEOUT: float | None = None
#: Default drain time for ``Server.shutdown()``. uvicorn ``timeout_graceful_shutdown``: None
#: (wait forever); hypercorn ``graceful_timeout``: 3 s; gunicorn ``graceful_timeout``: 30 s.
#: 10 s leaves room for shutdown callbacks inside the 30 s an orchestrator (Kubernetes'
#: terminationGracePeriodSeconds, systemd's TimeoutStopSec is 90 s) waits before SIGKILL.
DEFAULT_SHUTDOWN_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Settings for one ``Server``; see the ``DEFAULT_*`` constants for each precedent."""

    host: str = "127.0.0.1"
    port: int = 8000
    ssl: ssl_module.SSLContext | None = None
    backlog: int = DEFAULT_BACKLOG
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_request_line: int = DEFAULT_MAX_REQUEST_LINE
    max_head_size: int = DEFAULT_MAX_HEAD_SIZE
    body_high_water: int = DEFAULT_BODY_HIGH_WATER
    write_high_water: int = DEFAULT_WRITE_HIGH_WATER
    first_byte_timeout: float = DEFAULT_FIRST_BYTE_TIMEOUT
    head_timeout: float = DEFAULT_HEAD_TIMEOUT
    keep_alive_timeout: float = DEFAULT_KEEP_ALIVE_TIMEOUT
    body_timeout: float | None = DEFAULT_BODY_TIMEOUT
    body_min_rate: float = DEFAULT_BODY_MIN_RATE
    handler_timeout: float | None = DEFAULT_HANDLER_TIMEOUT
    linger_timeout: float = DEFAULT_LINGER_TIMEOUT
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT
    server_header: str | None = "hump_listener"


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


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
        self.connections: set[H11Protocol] = set()
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

    # Responses the server writes on its own (errors, limits): never on the hot path.

    def simple_response(self, status: int) -> bytes:
        """A complete ``Connection: close`` response whose body is the reason phrase."""
        phrase = _phrase(status).encode("ascii")
        return b"".join(
            [
                b"HTTP/1.1 %d %s\r\n" % (status, phrase),
                self.server_headers,
                b"content-type: text/plain; charset=utf-8\r\n",
                b"content-length: %d\r\n" % len(phrase),
                b"connection: close\r\n\r\n",
                phrase,
            ]
        )

    # Bookkeeping

    def connection_closed(self, protocol: H11Protocol) -> None:
        self.connections.discard(protocol)
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
        """Drain and stop. Safe to call more than once."""
        server, state = self._server, self.state
        if server is None or state is None or state.shutting_down:
            return
        loop = state.loop
        timeout = self.config.shutdown_timeout if timeout is None else timeout
        deadline = loop.time() + timeout

        # 1. Stop accepting; anything still in the backlog gets a 503 (see connection_made).
        state.shutting_down = True
        server.close()
        logger.info("Stopped accepting connections; %d request(s) in flight", len(state.tasks))
        # 2. Idle connections close now; busy ones close after their current response.
        for protocol in list(state.connections):
            protocol.shutdown()
        # 3. In-flight requests get until the deadline.
        if state.tasks:
            _, pending = await asyncio.wait(set(state.tasks), timeout=max(timeout, 0.0))
            if pending:
                logger.warning("shutdown: cancelling %d request(s) still running", len(pending))
                for protocol in list(state.connections):
                    protocol.cancel_request()
                for task in pending:
                    task.cancel()
                await asyncio.wait(pending, timeout=1.0)
        # 4. Let closing connections flush, then drop whatever is left.
        for protocol in list(state.connections):
            protocol.shutdown()
        if not await state.wait_connections_closed(deadline - loop.time()):
            for protocol in list(state.connections):
                protocol.abort()
        state.stop_clock()
        await server.wait_closed()
