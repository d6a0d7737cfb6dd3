"""The listening server: ``Server`` binds, accepts and drains (server lifetime).

Settings are ``ServerConfig`` (``config.py``), state shared by the connections is
``state.ServerState``, a connection is ``http11.H11Protocol`` (and, after an upgrade,
``websocket.WebSocketProtocol``), a request is ``cycle.RequestCycle``.

The drain (``shutdown``), in order:

1. Stop accepting (connections still in the backlog get a 503) and say so, with how long
   the drain may take and that a second signal skips it.
2. Idle connections close now; busy ones after their current response. Endless
   responses learn of the shutdown at once (``Channel.wait_closed`` returns) and
   WebSockets get close 1001; the closing handshakes begun here must end within half
   the drain (``ServerState.close_by``), so that one client that keeps its socket
   cannot take the time the shutdown callbacks run in.
3. In-flight requests get until the deadline, which a second call moves earlier.
4. What is still running is cancelled (503 where no response started), closing
   connections get the rest of the deadline to flush, the rest are dropped.
"""

from __future__ import annotations

import asyncio
import logging
import socket

from hump_listener.config import ServerConfig
from hump_listener.protocol.http11 import H11Protocol
from hump_listener.protocol.state import ServerState
from hump_listener.seam import SeamApp

__all__ = ["Server", "ServerConfig", "ServerState"]

logger = logging.getLogger("hump_listener.error")

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
        drain = max(self._deadline - loop.time(), 0.0)
        state.close_by = loop.time() + drain / 2
        logger.info(
            "Stopped accepting connections; %d request(s) in flight: waiting up to %g s for them"
            " (a second signal skips the wait)", len(state.tasks), drain,
        )
        # 2. Idle connections close now; busy ones close after their current response.
        for protocol in list(state.connections):
            protocol.shutdown()
        # 3. In-flight requests get until the deadline (which a second call may move).
        while state.tasks and loop.time() < self._deadline:
            every = loop.create_task(asyncio.wait(set(state.tasks)))
            await asyncio.wait(
                (every, self._new_cut(loop)), timeout=self._deadline - loop.time(), return_when=asyncio.FIRST_COMPLETED
            )
            every.cancel()
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
        if not await state.wait_connections_closed(self._deadline - loop.time(), self._new_cut(loop)):
            for protocol in list(state.connections):
                protocol.abort()
        self._cut = None
        for protocol in list(state.rejected):  # 503s still lingering: not worth waiting for
            protocol.abort()
        state.stop_clock()
        await server.wait_closed()

    def _new_cut(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
        """A future a later ``shutdown()`` call completes when it moves the deadline."""
        cut: asyncio.Future[None] = loop.create_future()
        self._cut = cut
        return cut
