"""HTTP/1.1 over an asyncio transport: one ``H11Protocol`` per connection.

The connection's jobs are the asyncio callbacks, the timers, pipelining and closing; the
head is read by ``head.read_head`` (pure), a body by a reader of ``body`` (bytes in, body
and leftover out), each request and its response are a ``cycle.RequestCycle``, and
responses are serialised by ``writer`` (pure). Policy choices, in the order a connection
meets them (RFC 9110 / RFC 9112):

1. Heads and framing: see ``head`` (pre-scan, what we check beyond h11, keep-alive as the
   client asks). Every error the protocol answers itself carries ``Connection: close`` and
   closes the connection (lingering, rule 7).
2. Responses: see ``writer`` (framing by §6.3, no response splitting) and ``cycle`` (one
   response per request, 100-continue, the body deadline).
3. Keep-alive only when the request was read to its end, the client allows it, the app did
   not send ``Connection: close``, the client has not half-closed (or already sent its next
   request) and the server is not shutting down. After each request a fresh h11 connection
   parses the next head, so h11 is never left in a state we did not drive.
4. Pipelining: a request is parsed only once its predecessor's response is complete; bytes
   that arrive meanwhile are held and reading is paused (read-ahead: one socket read).
5. Timeouts are ``loop.call_later`` handles: first byte (quiet close), head (408),
   keep-alive (quiet close), body (408, in the cycle), handler (503, or close once
   started), linger (close), send (abort: output the client took nothing of for
   ``send_timeout``, whether a waiting ``write()``, a ``sendfile``, a ``respond()``
   buffered in the transport, or the rest of a response we are closing after).
6. No exception escapes an ``asyncio.Protocol`` callback: each one logs and aborts. App
   errors get a 500 if no response started, a close otherwise (``hump_listener.error``).
7. Lingering close (nginx's ``lingering_close``): when we close a connection whose client
   may still be sending (an error answered mid-request, a body left unread), we half-close
   and discard its bytes until it closes or ``linger_timeout`` passes. Closing with unread
   bytes in the kernel's buffer sends a reset, and the reset can destroy the response we
   just wrote (the 413 a client uploading too much should see). So every close that may
   leave request bytes unread lingers: an error answer, a body left unread, pipelined
   requests behind a close-type response, an idle connection closed (shutdown,
   keep-alive timeout) while a request is arriving, and the 503 beyond
   ``max_connections`` (for at most as many connections again; then a plain close).
8. A client that leaves is released whatever state the connection is in (RFC 9112 §9.6
   lets either side close at any time). A FIN after a complete request is a half-close
   and the request is still answered, unless its response is already streaming (and no
   pipelined request waits): then it means the client left, as nginx and uvicorn read it,
   and ``lost()`` fires at once (an SSE stream's ``wait_closed`` returns). asyncio never
   notices an EOF or a reset on a transport whose reading is paused, so once a second the
   server asks every paused connection to poll its socket (``check_peer``); if the client
   has finished sending, reading is resumed for good (what is left is bounded by the
   kernel's buffer) and the EOF or reset is handled as on any other connection. The
   close paths stop a ``sendfile`` in flight before the socket closes (asyncio's would
   wait forever).
9. Chunked bodies that can never complete (a bare LF in a chunk-size line): see ``body``.
10. Beyond ``max_connections`` a connection gets a 503 and is closed; the refusals are
    logged once per burst with their count (``state`` rule 2).
"""

from __future__ import annotations

import asyncio
import logging
import select
from typing import TYPE_CHECKING, Any

from hump_listener.protocol.body import BodyError, ChunkedReader, ContentLengthReader, reader_for
from hump_listener.protocol.cycle import RequestCycle
from hump_listener.protocol.flow_control import PEER_DONE, FlowControl, half_close, poll_socket
from hump_listener.protocol.head import Incomplete, ParsedHead, Rejection, read_head

if TYPE_CHECKING:
    from hump_listener.protocol.state import Connection, ServerState

__all__ = ["H11Protocol"]

logger = logging.getLogger("hump_listener.error")


def _peer(address: object) -> tuple[str, int] | None:
    if isinstance(address, tuple) and len(address) >= 2:
        return (str(address[0]), int(address[1]))
    return None


class H11Protocol(asyncio.Protocol):
    """One HTTP/1.1 connection (connection lifetime)."""

    def __init__(self, state: ServerState) -> None:
        # Shared server state (server lifetime)
        self.state = state
        self.config = state.config
        self.loop = state.loop
        self.app = state.app

        # Per-connection state
        self.transport: Any = None  # an asyncio transport (uvloop's are not asyncio.Transport subclasses)
        self.flow: FlowControl
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int] | None = None
        self.scheme = "http"
        #: A plain socket under the transport: a ``sendfile`` may be zero-copy.
        self._sendfile = False
        #: The socket's file descriptor, for ``check_peer``'s poll (-1: no socket).
        self._fd = -1
        #: Received bytes not yet parsed: a partial head, or pipelined requests.
        self._buf = bytearray()
        #: The first-byte timer, then the head timer while a head is incomplete.
        self._head_timer: asyncio.TimerHandle | None = None
        #: A head's first byte arrived and ``_head_timer`` is the head timer.
        self._head_started = False
        #: The keep-alive timer, armed once and re-armed only when it fires early (a
        #: ``call_later`` + ``cancel`` per request would cost ~2 µs); ``_idle_since`` is
        #: when the connection last became idle, ``None`` while a request is under way.
        self._idle_timer: asyncio.TimerHandle | None = None
        self._idle_since: float | None = None
        #: The linger timer: closes a half-closed connection the client keeps open.
        self._linger_timer: asyncio.TimerHandle | None = None
        #: The client half-closed (no more requests will come).
        self._eof = False
        #: We closed the transport, or lost it.
        self._closed = False
        #: Closed on our side, still reading (and discarding) what the client sends.
        self._lingering = False
        #: The send timer (policy 5) and its mark: ``(time of the last progress known,
        #: transport write-buffer size then)``.
        self._send_timer: asyncio.TimerHandle | None = None
        self._send_mark = (0.0, 0)

        # Per-request state: the cycle, and the reader of its body while it arrives.
        self.cycle: RequestCycle | None = None
        self._reader: ContentLengthReader | ChunkedReader | None = None

    # -- asyncio.Protocol callbacks: each one catches everything (policy 6) ----------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        try:
            self.flow = FlowControl(transport, self.loop)  # type: ignore[arg-type]
            config, state = self.config, self.state
            self.client = _peer(transport.get_extra_info("peername"))
            self.server = _peer(transport.get_extra_info("sockname"))
            sock = transport.get_extra_info("socket")
            if sock is not None:
                self._fd = sock.fileno()
            if transport.get_extra_info("sslcontext") is not None:
                self.scheme = "https"
            else:
                self._sendfile = sock is not None
            transport.set_write_buffer_limits(high=config.write_high_water)  # type: ignore[attr-defined]
            if state.shutting_down or len(state.connections) >= config.max_connections:
                if not state.shutting_down:
                    state.note_refusal()  # policy 10: one line per burst
                transport.write(state.simple_response(503))  # type: ignore[attr-defined]
                # The client may be sending its request already: linger (policy 7), for
                # at most ``max_connections`` such connections at a time.
                linger = len(state.rejected) < config.max_connections
                if linger:
                    state.rejected.add(self)
                self._close(linger=linger)
                return
            state.connections.add(self)
            self._head_timer = self.loop.call_later(config.first_byte_timeout, self._on_idle_timeout)
        except Exception:
            self._crash("connection_made")

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            self._closed = True
            self.state.connection_closed(self)
            self._cancel_timers()
            if self._send_timer is not None:
                self._send_timer.cancel()
                self._send_timer = None
            if self.cycle is not None:
                self.cycle.lost()
            self.flow.resume_writing()  # wake any writer waiting to drain
        except Exception:
            logger.exception("error in connection_lost")

    def eof_received(self) -> bool:
        if self._lingering:
            return False  # the client has finished sending: close now
        try:
            self._eof = True
            if self.cycle is None and self._buf and not self._closed:
                self._process_head(self._buf)  # complete pipelined requests are still answered
            cycle = self.cycle
            if cycle is not None and not cycle.complete:
                if cycle.body_done and (not cycle.started or self._buf):
                    return True  # half-close after a complete request: still answer it
                cycle.lost()  # mid-body, or mid-stream: the client left (policy 8)
        except Exception:
            self._crash("eof_received")
        return False

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # the rest of a request we answered without reading: discard it
        try:
            cycle = self.cycle
            if cycle is None:
                self._receive_head(data)
            elif self._reader is not None:
                self._read_body(cycle, self._reader, data)
            else:
                # A pipelined request: it waits, and so does the socket (policy 4).
                self._buf += data
                self.flow.pause_reading()
        except Exception:
            self._crash("data_received")

    def pause_writing(self) -> None:
        self.flow.pause_writing()
        if self._send_timer is None:
            self.watch_send()

    def resume_writing(self) -> None:
        self.flow.progressed = self.loop.time()  # the client took enough to drain the buffer
        self.flow.resume_writing()

    # -- request heads ----------------------------------------------------------------------

    def _receive_head(self, data: bytes) -> None:
        self._idle_since = None  # busy: a pending keep-alive check finds nothing to do
        if self._head_timer is not None and not self._head_started:
            self._head_timer.cancel()  # the first-byte timer: the client is active
            self._head_timer = None
        buf = self._buf
        if buf:
            buf += data
            self._process_head(buf)
        else:
            self._process_head(data)

    def _process_head(self, data: bytes | bytearray) -> None:
        result = read_head(data, self.config, self._eof, self.client, self.server, self.scheme)
        if type(result) is ParsedHead:
            if self._head_started:
                self._head_started = False
                if self._head_timer is not None:
                    self._head_timer.cancel()
                    self._head_timer = None
            end = result.end
            self._buf = bytearray(data[end:]) if len(data) > end else bytearray()
            self._start_request(result)
        elif type(result) is Incomplete:
            self._buf = result.data if isinstance(result.data, bytearray) else bytearray(result.data)
            if not self._head_started:
                self._head_started = True
                self._head_timer = self.loop.call_later(self.config.head_timeout, self._on_head_timeout)
        else:
            assert type(result) is Rejection
            status, reason = result
            if status is not None:
                self._reject(status, reason)
            else:
                if reason:
                    logger.info("%s - %s: closing", self.who(), reason)
                self._close(linger=True)  # the rest of a ClientHello may still be on its way

    def _start_request(self, parsed: ParsedHead) -> None:
        """Make the request's cycle and body reader, hand them the bytes already here, run
        the app."""
        cycle = self.cycle = RequestCycle(self, parsed, self.transport, self.flow, self.state, self._sendfile)
        reader = self._reader = reader_for(parsed)
        if reader is None:
            cycle.feed_end()
        elif self._buf:
            rest, self._buf = self._buf, bytearray()
            if not self._read_body(cycle, reader, rest):
                return
        if self._buf:
            self.flow.pause_reading()  # pipelined bytes already here: read no further
        cycle.launch(self.app)

    # -- request bodies ---------------------------------------------------------------------

    def _read_body(
        self, cycle: RequestCycle, reader: ContentLengthReader | ChunkedReader, data: bytes | bytearray
    ) -> bool:
        """Move ``data`` through the body's reader into the cycle; bytes past the body
        wait for the next request (policy 4). False if the body was malformed (answered)."""
        try:
            body, rest = reader.read(data)
        except BodyError as exc:
            logger.info("%s - invalid request body: %s", self.who(), exc.reason)
            cycle.abort(exc.status)
            return False
        if body:
            cycle.feed(body)
        if reader.done:
            self._reader = None
            if rest:
                self._buf += rest
                self.flow.pause_reading()
            cycle.feed_end()
        elif cycle.buffered > self.config.body_high_water:
            self.flow.pause_reading()
        return True

    # -- what the cycle asks of its connection (cycle.CycleLink) ------------------------------

    @property
    def closed(self) -> bool:
        """We closed the transport, or lost it."""
        return self._closed

    @property
    def half_closed(self) -> bool:
        """The client half-closed: no more bytes will come."""
        return self._eof

    def keep_alive_possible(self) -> bool:
        """The connection can carry another request: the client has not half-closed, or its
        next request is already buffered."""
        return not self._eof or bool(self._buf)

    def who(self) -> str:
        """The client, for log lines."""
        return f"{self.client[0]}:{self.client[1]}" if self.client else "client"

    def cycle_done(self, cycle: RequestCycle, keep_alive: bool) -> None:
        """``cycle``'s response is complete (or was aborted): close, or serve the next request."""
        if self.cycle is not cycle:
            return
        self.cycle = None
        self._reader = None
        if self._closed:
            return
        if not keep_alive or not cycle.body_done or self.state.shutting_down:
            self._close(linger=not cycle.body_done or self._may_have_unread())
            return
        self.flow.resume_reading()
        if self._buf:
            # Parse the next pipelined request from the loop, not from inside the app's call.
            self.loop.call_soon(self._resume_pipeline)
        elif self._eof:
            self._close()
        else:
            self._idle_since = self.loop.time()
            if self._idle_timer is None:
                self._idle_timer = self.loop.call_later(self.config.keep_alive_timeout, self._on_keep_alive_check)

    def detach(self, cycle: RequestCycle, successor: Connection) -> tuple[bytes, bool]:
        """The request was upgraded (a 101 is going out): stop serving HTTP on this
        connection and hand it to ``successor``, which takes over the transport and the
        place in the server's connections. Returns the bytes read past the request head and
        whether the client has half-closed."""
        assert self.cycle is cycle
        self.cycle = None
        self._closed = True  # nothing of ours runs on this transport any more
        self._cancel_timers()
        if self._send_timer is not None:  # the successor watches its own output
            self._send_timer.cancel()
            self._send_timer = None
        leftover, self._buf = bytes(self._buf), bytearray()
        state = self.state
        state.connections.add(successor)
        state.connection_closed(self)
        return leftover, self._eof

    def _resume_pipeline(self) -> None:
        try:
            if self.cycle is None and self._buf and not self._closed:
                self._process_head(self._buf)
        except Exception:
            self._crash("pipelined request")

    # -- server-driven endings (state.Connection) -----------------------------------------------

    def shutdown(self) -> None:
        """Graceful shutdown: close now if idle, else after the current response, which
        learns of the shutdown at once if it waits in ``wait_closed()``."""
        if self.cycle is None:
            self._close(linger=self._may_have_unread())
        else:
            self.cycle.shutdown()

    def cancel_request(self) -> None:
        """Shutdown deadline passed: 503 if no response started, else close."""
        if self.cycle is not None:
            self.cycle.abort(503)

    def abort(self) -> None:
        if self.cycle is not None:
            self.cycle.lost()  # first: stops a sendfile before its socket goes (policy 8)
        self._closed = True
        self._cancel_timers()
        self.transport.abort()

    def check_peer(self) -> None:
        """Our reading is paused: if the client has since finished sending (FIN or reset),
        read again for good so that the transport sees it (policy 8). The server calls
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

    # -- closing (policy 7) -------------------------------------------------------------------

    def _may_have_unread(self) -> bool:
        """The client may have sent bytes we have not read (policy 7): bytes not parsed
        yet, a paused socket, or bytes waiting in the kernel's buffer."""
        if self._buf or self.flow.read_paused:
            return True
        return self._fd >= 0 and poll_socket(self._fd, select.POLLIN) != 0

    def _reject(self, status: int, reason: str) -> None:
        """Answer a request we could not parse, and close (policy 1)."""
        logger.info("%s - %d %s", self.who(), status, reason)
        if not self._closed:
            self.transport.write(self.state.simple_response(status))
        self._close(linger=True)

    def _close(self, linger: bool = False) -> None:
        """Close the connection. ``linger``: the client may still be sending (a request
        we did not read to its end), so half-close and discard its bytes for a while
        first (policy 7)."""
        if self.cycle is not None:
            self.cycle.lost()  # first: stops a sendfile before its socket goes (policy 8)
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

    # -- timers (policy 5) --------------------------------------------------------------------

    def _cancel_timers(self) -> None:
        """Stop the connection-level timers (first-byte/head, keep-alive, linger)."""
        for timer in (self._head_timer, self._idle_timer, self._linger_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._idle_timer = self._linger_timer = None

    def _on_idle_timeout(self) -> None:
        self._head_timer = None
        self._close()

    def _on_keep_alive_check(self) -> None:
        """Close if idle for ``keep_alive_timeout``; if the connection has been busy since
        the timer was armed, wait out the rest of the new idle period."""
        self._idle_timer = None
        since = self._idle_since
        if self._closed or since is None:
            return  # closed, or serving a request: the request's end arms it again
        remaining = since + self.config.keep_alive_timeout - self.loop.time()
        if remaining > 0:
            self._idle_timer = self.loop.call_later(remaining, self._on_keep_alive_check)
        else:
            self._close(linger=self._may_have_unread())  # a request may be arriving

    def _on_head_timeout(self) -> None:
        self._head_timer = None
        self._head_started = False
        if self._buf:
            self._reject(408, "request head timeout")
        else:
            self._close()

    def _on_linger_timeout(self) -> None:
        self._linger_timer = None
        self.transport.close()

    def watch_send(self) -> None:
        """Output is waiting on the client (a paused transport, a ``sendfile``, a close with
        data still buffered): check for progress every ``send_timeout`` (policy 5)."""
        timeout = self.config.send_timeout
        if self._send_timer is None and timeout is not None:
            self._arm_send(self.loop.time(), timeout)

    def _arm_send(self, since: float, delay: float) -> None:
        self._send_mark = (since, self.transport.get_write_buffer_size())
        self._send_timer = self.loop.call_later(delay, self._on_send_check)

    def _on_send_check(self) -> None:
        self._send_timer = None
        try:
            timeout = self.config.send_timeout
            size = self.transport.get_write_buffer_size()
            cycle = self.cycle
            waiting = size or self.flow.write_paused or (cycle is not None and cycle.sending)
            if timeout is None or not waiting:
                return  # nothing is waiting on the client any more
            now = self.loop.time()
            since, was = self._send_mark
            # Progress: the last drain or sendfile piece, or a buffer that shrank meanwhile
            # (when, we cannot tell: count it as now).
            since = now if size < was else max(since, self.flow.progressed)
            if since + timeout > now:
                self._arm_send(since, since + timeout - now)  # reading, if slowly: look again
                return
            logger.info("%s - send timeout (%g s without progress): closing", self.who(), timeout)
            self.abort()
        except Exception:
            self._crash("the send timeout")
