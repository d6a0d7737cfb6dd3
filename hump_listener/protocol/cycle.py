"""One request and its response: ``RequestCycle``, the server's ``seam.Channel`` (request lifetime).

The cycle is made by its connection from a few collaborators (the transport, its flow
control, the server state) and a narrow link back, ``CycleLink``: the six things it asks of
the connection, typed as a ``typing.Protocol`` so that this module never imports the
connection's. It owns its fields; the connection drives it through ``launch()``,
``feed()``, ``feed_end()``, ``lost()``, ``shutdown()`` and ``abort()`` and reads
``body_done``, ``complete``, ``started`` and ``sending``. For an ``Upgrade: websocket``
request it makes the ``ws_upgrade.WebSocketOffer`` the app finds as ``channel.websocket``,
and is the offer's link (``switch_protocols``).

Rules:

1. Exactly one response per request (seam rule 3): an app that returns or raises without
   having responded gets a 500 from here; one that raises mid-response gets a close.
2. A client that went away is normal: the app's later writes become no-ops or
   ``ClientDisconnect``, and nothing is written to the dead transport.
3. ``Expect: 100-continue`` (HTTP/1.1 only) is answered when the app first waits in
   ``receive()`` for body bytes, never after a final response started.
4. The body deadline counts only time the app spends waiting in ``receive()`` (see
   ``ServerConfig.body_timeout``), never time when we paused reading; and one wait with no
   byte arriving never lasts more than ``body_timeout``, whatever the rate allowed.
5. Keep-alive needs the whole request received, the client willing, the server not
   shutting down and the connection able to carry another request (the connection knows:
   ``keep_alive_possible()``); a response started before the request body was fully
   received therefore closes the connection.
6. A zero-copy ``sendfile`` runs in a task of its own (``sending``), in pieces of
   ``SENDFILE_PIECE``, each one write progress for the connection's send timeout.
   ``lost()`` cancels it: asyncio's sendfile never completes once its socket is closed
   under it, which would keep the app, and its open file, waiting forever.
7. ``wait_closed()`` returns once the client is gone (``lost()``: a reset, a FIN while the
   response streams, a failed write) or the server is shutting down (``shutdown()``, and
   at once for a request that starts during the drain): an endless response then ends
   its body cleanly, and an EventSource reconnects to the next process.
"""

from __future__ import annotations

import asyncio
import logging
from typing import IO, TYPE_CHECKING, Protocol

from hump_listener.protocol.writer import (
    CHUNKED,
    CONTINUE,
    CRLF,
    LAST_CHUNK,
    LENGTH,
    NO_BODY,
    chunk_size_line,
    serialise_head,
)
from hump_listener.protocol.ws_upgrade import WebSocketOffer, is_websocket_upgrade
from hump_listener.seam import ClientDisconnect, HeaderList, SeamApp

if TYPE_CHECKING:
    from hump_listener.protocol.flow_control import FlowControl
    from hump_listener.protocol.head import ParsedHead
    from hump_listener.protocol.state import Connection, ServerState

__all__ = ["SENDFILE_PIECE", "CycleLink", "RequestCycle"]

logger = logging.getLogger("hump_listener.error")

#: Largest piece of a zero-copy ``sendfile`` (rule 6): a client that takes less than this
#: in ``send_timeout`` (4 KiB/s at 60 s) counts as not reading. The kernel itself reports
#: a socket writable only once half its send buffer is free, so progress is this coarse
#: on any path. nginx ``sendfile_max_chunk``: 2 MiB (fairness between connections).
SENDFILE_PIECE = 256 * 1024


class CycleLink(Protocol):
    """What a cycle asks of its connection (``http11.H11Protocol``), and nothing else."""

    @property
    def closed(self) -> bool:
        """The connection is closed (or closing): write nothing more."""

    def keep_alive_possible(self) -> bool:
        """The connection can carry another request after this one (rule 5)."""

    def cycle_done(self, cycle: RequestCycle, keep_alive: bool) -> None:
        """The response is complete (or was aborted): close, or serve the next request."""

    def watch_send(self) -> None:
        """Output is waiting on the client: start the send timeout."""

    def who(self) -> str:
        """The client, for log lines."""

    def detach(self, cycle: RequestCycle, successor: Connection) -> tuple[bytes, bool]:
        """The request was upgraded: stop serving HTTP, hand the transport and the place in
        the server's connections to ``successor``; return the bytes read past the head and
        whether the client has half-closed."""


class RequestCycle:
    """One request and its response; implements ``seam.Channel``."""

    __slots__ = (
        "_buffered",
        "_chunks",
        "_expect_100",
        "_flow",
        "_framing",
        "_gone",
        "_keep_alive",
        "_link",
        "_loop",
        "_received",
        "_remaining",
        "_sendfile",
        "_sending",
        "_state",
        "_transport",
        "_waited",
        "_waiter",
        "_websocket",
        "body_done",
        "complete",
        "disconnected",
        "handler_timer",
        "head",
        "keep_alive",
        "started",
        "task",
    )

    def __init__(
        self, link: CycleLink, parsed: ParsedHead, transport: asyncio.Transport, flow: FlowControl,
        state: ServerState, sendfile: bool,
    ) -> None:
        # Collaborators (connection and server lifetime, borrowed)
        self._link = link
        self._transport = transport
        self._flow = flow
        self._state = state
        self._loop = state.loop
        #: The transport is a plain socket: ``sendfile`` may be zero-copy (rule 6).
        self._sendfile = sendfile
        # The request
        self.head = parsed.head
        #: The client allows another request after this one.
        self.keep_alive = parsed.keep_alive
        self.task: asyncio.Task[None] | None = None
        self.handler_timer: asyncio.TimerHandle | None = None
        #: The WebSocket this request offers to open (``seam.Channel.websocket``).
        self._websocket = (
            WebSocketOffer(self, parsed.head, transport, flow, state)
            if parsed.upgrade is not None and is_websocket_upgrade(parsed.upgrade)
            else None
        )
        # Request body
        self._chunks: list[bytes] = []
        self._buffered = 0  # bytes in _chunks
        self._received = 0  # body bytes received so far
        self._waited = 0.0  # seconds the app spent waiting for body bytes
        self._waiter: asyncio.Future[None] | None = None  # only while the app waits
        self._expect_100 = parsed.expect_100
        self.body_done = False
        self.disconnected = False
        # Response
        self.started = False
        self.complete = False
        self._framing = NO_BODY
        self._remaining = 0  # Content-Length bytes still to write
        self._keep_alive = False
        self._sending: asyncio.Task[int] | None = None  # a zero-copy sendfile in flight (rule 6)
        self._gone: asyncio.Future[None] | None = None  # only while the app waits in wait_closed()

    # -- driven by the connection ---------------------------------------------------------

    def launch(self, app: SeamApp) -> None:
        """Run the app for this request in a task of its own, kept in the server's task set
        (``run`` removes it as its last step: no done-callback round trip per request)."""
        task = self.task = self._loop.create_task(self.run(app))
        self._state.tasks.add(task)
        timeout = self._state.config.handler_timeout
        if timeout is not None:
            self.start_handler_timer(timeout)

    async def run(self, app: SeamApp) -> None:
        """Run the app for this request (rule 1); the task removes itself from the server's
        task set as its last step."""
        failed = True
        try:
            await app(self.head, self)
            failed = False
        except asyncio.CancelledError:
            self.abort(503)
            raise
        except ClientDisconnect:
            websocket = self._websocket
            if websocket is not None and websocket.accepted:
                failed = not websocket.closed  # a WebSocketDisconnect the handler let through
            elif not self.disconnected:
                logger.error("app raised ClientDisconnect on a live connection")
            self.abort(500)
        except Exception:
            if self.disconnected:
                logger.debug("app failed after the client left", exc_info=True)
            else:
                logger.exception("Exception in app for %s %r", self.head.method, self.head.target)
            self.abort(500)
        else:
            if not self.started:
                if not self.disconnected:
                    logger.error("app returned without responding to %s %r", self.head.method, self.head.target)
                self.abort(500)
            elif not self.complete:
                if not self.disconnected:
                    logger.error("app returned without ending the response")
                self.abort(500)
        finally:
            if self.handler_timer is not None:
                self.cancel_handler_timer()
            if self._websocket is not None:
                self._websocket.finish(failed)  # the handler's end is the connection's
            if self.task is not None:
                self._state.tasks.discard(self.task)

    def cancel_task(self) -> None:
        """Cancel the app's task. A task cancelled before its first step never runs
        ``run``'s ``finally``, so the task set is also cleaned by a done-callback here
        (added only on this rare path, never per request)."""
        task = self.task
        if task is not None and not task.done():
            task.add_done_callback(self._state.tasks.discard)
            task.cancel()

    def start_handler_timer(self, timeout: float) -> None:
        self.handler_timer = self._loop.call_later(timeout, self._on_handler_timeout)

    def cancel_handler_timer(self) -> None:
        if self.handler_timer is not None:
            self.handler_timer.cancel()
            self.handler_timer = None

    def feed(self, data: bytes) -> None:
        """Body bytes from the client."""
        self._chunks.append(data)
        n = len(data)
        self._buffered += n
        self._received += n
        self._wake()

    def feed_end(self) -> None:
        """The request body is complete."""
        self.body_done = True
        self._wake()

    @property
    def buffered(self) -> int:
        """Body bytes received and not yet taken by the app."""
        return self._buffered

    def lost(self) -> None:
        """The client is gone, or the connection is closing: no more body, no more output.
        Called before the transport closes, so that a sendfile stops first (rule 6)."""
        self.disconnected = True
        self._wake()
        gone = self._gone
        if gone is not None and not gone.done():
            gone.set_result(None)
        sending = self._sending
        if sending is not None:
            sending.cancel()

    def shutdown(self) -> None:
        """The server is shutting down: ``wait_closed()`` returns (rule 7); the app ends an
        endless response, which then closes the connection (no keep-alive in a drain)."""
        gone = self._gone
        if gone is not None and not gone.done():
            gone.set_result(None)

    def switch_protocols(self, successor: Connection) -> tuple[bytes, bool] | None:
        """The ``WebSocketOffer``'s link: the app accepted the upgrade. None if the request
        can no longer be upgraded (a response started, the client or the connection gone);
        else this request is over as HTTP and the connection hands the transport to
        ``successor``: returns the bytes read past the head and whether the client has
        half-closed."""
        if self.started or self.disconnected or self._link.closed:
            return None
        self.started = self.complete = True
        self.cancel_handler_timer()
        return self._link.detach(self, successor)

    @property
    def sending(self) -> bool:
        """A zero-copy sendfile is in flight (asyncio reads nothing meanwhile)."""
        return self._sending is not None

    def abort(self, status: int) -> None:
        """End the cycle abnormally: ``status`` if no response started, then close.

        A no-op once the response is complete: the connection may be serving the next
        request by then."""
        if self.complete:
            return
        link = self._link
        if not self.started and not self.disconnected and not link.closed:
            self._transport.write(self._state.simple_response(status))
        self.started = self.complete = True
        self.lost()  # the app's further calls become no-ops / ClientDisconnect
        link.cycle_done(self, keep_alive=False)

    def _on_handler_timeout(self) -> None:
        self.handler_timer = None
        if not self.complete:
            logger.warning("handler timeout for %s %r", self.head.method, self.head.target)
            self.abort(503)
            self.cancel_task()

    # -- the request body (seam.Channel) -------------------------------------------------

    @property
    def websocket(self) -> WebSocketOffer | None:
        return self._websocket

    async def receive(self) -> bytes:
        while True:
            chunks = self._chunks
            if chunks:
                data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                chunks.clear()
                self._buffered = 0
                if not self.body_done:
                    self._flow.resume_reading()
                return data
            if self.body_done:
                return b""
            if self.disconnected:
                raise ClientDisconnect()
            if self._expect_100:
                self._expect_100 = False
                if not self.started:
                    self._transport.write(CONTINUE)
            await self._wait_for_body()

    async def _wait_for_body(self) -> None:
        loop = self._loop
        config = self._state.config
        timer = None
        if config.body_timeout is not None:
            allowance = config.body_timeout
            if config.body_min_rate > 0:
                # The rate's allowance, but never more than body_timeout without a byte: a
                # client that sent 1 MB fast must not then stall for an hour.
                allowance = min(allowance + self._received / config.body_min_rate - self._waited, allowance)
            timer = loop.call_later(max(allowance, 0.0), self._on_body_timeout)
        waiter = self._waiter = loop.create_future()
        started = loop.time()
        try:
            await waiter
        finally:
            self._waiter = None
            if config.body_min_rate > 0:
                self._waited += loop.time() - started
            if timer is not None:
                timer.cancel()

    def _on_body_timeout(self) -> None:
        logger.info("%s - request body too slow: 408", self._link.who())
        self.abort(408)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- the response (seam.Channel) -------------------------------------------------------

    def _head(self, status: int, headers: HeaderList, body: bytes | None) -> bytes:
        state = self._state
        head = self.head
        keep_alive = self.body_done and self.keep_alive and not state.shutting_down and self._link.keep_alive_possible()
        out, self._framing, self._remaining, self._keep_alive = serialise_head(
            status, headers, body, head.method, head.http_version, keep_alive,
            state.server_headers, state.server_header_lines,
        )  # positional: this runs once per response
        return out

    def respond(self, status: int, headers: HeaderList, body: bytes) -> None:
        if self.disconnected:  # silent: the client is gone (or the server already answered)
            self.started = self.complete = True
            return
        if self.started:
            raise RuntimeError("response already started")
        out = self._head(status, headers, body)
        if self._framing == LENGTH:
            if self._remaining != len(body):
                raise ValueError(f"Content-Length {self._remaining} does not match a {len(body)}-byte body")
            out += body
        self.started = True
        self._transport.write(out)
        self._finish(self._keep_alive)

    async def start(self, status: int, headers: HeaderList) -> None:
        if self.disconnected:
            self.started = True
            return
        if self.started:
            raise RuntimeError("response already started")
        out = self._head(status, headers, None)
        self.started = True
        self._transport.write(out)

    async def write(self, data: bytes) -> None:
        if self.disconnected:
            raise ClientDisconnect()
        if not self.started or self.complete:
            raise RuntimeError("write() needs a started, unfinished response")
        if not data or self._framing == NO_BODY:
            return
        flow = self._flow
        if flow.write_paused:
            await flow.drain()
            if self.disconnected:
                raise ClientDisconnect()
        transport = self._transport
        framing = self._framing
        if framing == CHUNKED:
            transport.writelines((chunk_size_line(len(data)), data, CRLF))
        else:
            if framing == LENGTH:
                if len(data) > self._remaining:
                    raise RuntimeError("more data than the declared Content-Length")
                self._remaining -= len(data)
            transport.write(data)

    async def end(self) -> None:
        if self.complete:
            return
        if self.disconnected:
            self.started = self.complete = True
            return
        if not self.started:
            raise RuntimeError("end() before start()")
        keep_alive = self._keep_alive
        if self._framing == CHUNKED:
            self._transport.write(LAST_CHUNK)
        elif self._framing == LENGTH and self._remaining:
            logger.error("response ended %d bytes short of its Content-Length", self._remaining)
            keep_alive = False  # the client cannot frame what follows: close
        self._finish(keep_alive)

    async def wait_closed(self) -> None:
        if self.disconnected or self._state.shutting_down:
            return
        if self._gone is None:
            self._gone = self._loop.create_future()
        await asyncio.shield(self._gone)

    async def sendfile(self, file: IO[bytes], offset: int, count: int) -> None:
        if self.disconnected:
            raise ClientDisconnect()
        if not self.started or self.complete:
            raise RuntimeError("sendfile() needs a started, unfinished response")
        if count <= 0 or self._framing == NO_BODY:
            return
        framing = self._framing
        if framing == LENGTH:
            if count > self._remaining:
                raise RuntimeError("more data than the declared Content-Length")
            self._remaining -= count
        transport = self._transport
        if framing == CHUNKED:
            # One chunk around the whole range keeps the file bytes zero-copy.
            transport.write(chunk_size_line(count))
        flow = self._flow
        if flow.write_paused:
            await flow.drain()
        if self.disconnected:
            raise ClientDisconnect()
        if self._sendfile and self._state.loop_sendfile:
            task = self._sending = self._loop.create_task(self._send_pieces(file, offset, count))
            self._link.watch_send()
            try:
                sent = await task
            except NotImplementedError:
                # uvloop's loops have no sendfile (asyncio's BaseEventLoop does): copy,
                # and do not ask this loop again.
                self._state.loop_sendfile = False
                await self._copy_file(file, offset, count)
                sent = count
            except asyncio.CancelledError:
                # Ours (the app's task was cancelled) or the sendfile's alone (lost()).
                # Python 3.10 cannot tell them apart: the cancellation goes on.
                current = asyncio.current_task()
                cancelling = getattr(current, "cancelling", None)
                if cancelling is None or cancelling() or not task.cancelled():
                    raise
                raise ClientDisconnect() from None
            except (OSError, RuntimeError) as exc:
                if self.disconnected or transport.is_closing() or isinstance(exc, ConnectionError):
                    self.lost()
                    raise ClientDisconnect() from exc
                raise
            finally:
                self._sending = None
            if sent != count:
                raise RuntimeError(f"file ended after {sent} of {count} bytes")
        else:
            await self._copy_file(file, offset, count)
        if framing == CHUNKED:
            transport.write(CRLF)

    async def _send_pieces(self, file: IO[bytes], offset: int, count: int) -> int:
        """The zero-copy sendfile, piece by piece (rule 6); returns the bytes sent."""
        loop, transport, flow = self._loop, self._transport, self._flow
        sent = 0
        while sent < count:
            n = await loop.sendfile(transport, file, offset + sent, min(count - sent, SENDFILE_PIECE))
            if not n:
                break  # the file is shorter than the range
            sent += n
            flow.progressed = loop.time()
        return sent

    async def _copy_file(self, file: IO[bytes], offset: int, count: int) -> None:
        """sendfile fallback: read and write in chunks, honouring write backpressure."""
        flow = self._flow
        file.seek(offset)
        left = count
        while left:
            chunk = file.read(min(left, 64 * 1024))
            if not chunk:
                raise RuntimeError(f"file ended after {count - left} of {count} bytes")
            self._transport.write(chunk)
            left -= len(chunk)
            if flow.write_paused:
                await flow.drain()
            if self.disconnected:
                raise ClientDisconnect()

    def _finish(self, keep_alive: bool) -> None:
        self.complete = True
        if self.handler_timer is not None:
            self.cancel_handler_timer()
        self._link.cycle_done(self, keep_alive)
