"""WebSocket (RFC 6455) over an asyncio transport: one ``WebSocketProtocol`` per connection.

The frames are the ``websockets`` package's sans-I/O ``ServerProtocol`` (a dependency,
imported on the first upgrade):
it validates the handshake, negotiates permessage-deflate, parses and serialises frames
(masking in C), answers pings and the closing handshake, and enforces the message size.
This module is the I/O around it and implements ``seam.WebSocketChannel``; the handshake
(``ws_handshake.Handshake``) and the frames (``ws_frames.Frames``) are its two mixins.
Policy choices:

1. The handshake is validated in full before the app's handler runs (``ws_handshake``,
   where this rule is spelled out); an invalid one is the ``rejection`` the app answers
   over HTTP.
2. ``accept()`` writes the 101 and takes the transport over (``set_protocol``); bytes the
   HTTP protocol had read past the head are fed to this one, then the client's half-close
   if the HTTP protocol saw one. The connection stays counted in the server's connections
   (``max_connections`` covers both kinds).
3. Messages are reassembled from fragments, text is validated as UTF-8 as it arrives
   (1007), too-big messages close with 1009 and protocol errors with 1002, control frames
   are answered at once (``ws_frames``).
4. Backpressure, both ways. Reading pauses while ``ws_max_queue`` messages wait for the
   handler, and while the transport's write buffer is above its high-water mark (so a
   client that sends pings but never reads cannot make us buffer pongs without bound).
   Once a close frame is sent or received the queue no longer pauses reading (the rest of
   the closing handshake must be read), and messages arriving after our close are dropped.
   ``send`` waits while the write buffer is above the high-water mark; after
   ``send_timeout`` seconds without progress the connection is dropped.
5. Liveness: after ``ws_ping_interval`` seconds without an inbound byte a ping goes out;
   any inbound byte counts as alive (a busy sender is never timed out); nothing within
   ``ws_ping_timeout`` after the ping closes with 1011. While reading is paused because
   the handler has not taken its messages, the silence is ours and counts as alive.
6. Closing: after a close frame is sent (ours or the echo of the client's), the client gets
   ``ws_close_timeout`` seconds to close the TCP connection, then it is aborted. A server
   shutdown sends 1001 (going away) to every open connection, and to one accepted while
   the shutdown is under way as soon as it is accepted.
7. The handler's task is the connection's: when it returns the connection is closed with
   1000 if still open, when it fails with 1011 (``finish``; the framework logs the error).
8. The fast path for the common frame, performance only, never behaviour (``ws_frames``).
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import os
from collections import deque
from typing import TYPE_CHECKING, Any

from hump_listener.protocol.flow_control import PEER_DONE, poll_socket
from hump_listener.protocol.ws_frames import Frames
from hump_listener.protocol.ws_handshake import (
    EXTRA_HINT,
    QUIET,
    Handshake,
    Lib,
    is_websocket_upgrade,
    load_websockets,
    open_state,
)
from hump_listener.seam import HeaderList, RequestHead, WebSocketDisconnect

if TYPE_CHECKING:
    from hump_listener.protocol.cycle import RequestCycle
    from hump_listener.protocol.http11 import H11Protocol

__all__ = ["EXTRA_HINT", "WebSocketProtocol", "is_websocket_upgrade", "load_websockets"]

logger = logging.getLogger("hump_listener.error")

# RFC 6455 §7.4.1 close codes used here
_NORMAL = 1000
_GOING_AWAY = 1001
_INTERNAL_ERROR = 1011
_ABNORMAL = 1006

#: A keep-alive timer that fires less than this before its deadline counts as on time.
#: asyncio itself runs timers up to the clock's resolution early (``_clock_resolution``,
#: ~15 ms on Windows); re-arming for the sliver left would wake the loop for nothing, and
#: spin forever on a clock that does not move between the check and the re-arm.
_TIMER_SLACK = 0.001


class WebSocketProtocol(Handshake, Frames, asyncio.Protocol):
    """One WebSocket connection: the handshake while the request is HTTP, then the
    transport's protocol after the 101 (connection lifetime)."""

    #: Rule 8's fast path; tests turn it off on an instance to compare with websockets alone.
    fast_path = True

    def __init__(self, conn: H11Protocol, cycle: RequestCycle, head: RequestHead) -> None:
        # Borrowed from the HTTP connection (dropped at accept)
        self._http: H11Protocol | None = conn
        self._cycle: RequestCycle | None = cycle
        # Shared server state (server lifetime)
        self.state = conn.state
        self.config = config = conn.config
        self.loop = conn.loop
        # Per-connection state
        self.transport = conn.transport
        self.flow = conn.flow
        self.client = conn.client
        self._head = head
        self._ws: Any = None  # the websockets ServerProtocol, made by the handshake
        self._checked = False
        self._rejection: tuple[int, HeaderList, bytes] | None = None
        self._response: Any = None  # the 101 websockets prepared
        self._offered: list[str] = []
        self._accepted = False
        self._lost = False  # the transport is gone
        #: Why ``receive``/``send`` now raise: the close received, or the one we sent.
        self._closed_by: WebSocketDisconnect | None = None
        # Incoming messages (rule 3, 4)
        self._messages: deque[str | bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._max_queue = config.ws_max_queue
        self._fragments: list[bytes] = []
        self._fragment_text = False
        self._decoder: codecs.IncrementalDecoder | None = None
        # Rule 8: True while websockets would take the next frame without a change of state
        # (set after each step through websockets); the unfinished fast frame read so far.
        self._fast_in = False
        self._fast_out = False
        self._partial = b""
        self._max_size: int | None = None
        # Timers (rule 5, 6)
        self._last_seen = 0.0
        self._ping_timer: asyncio.TimerHandle | None = None
        self._ping_sent_at: float | None = None
        self._close_timer: asyncio.TimerHandle | None = None


    @property
    def accepted(self) -> bool:
        return self._accepted

    @property
    def closed(self) -> bool:
        return self._closed_by is not None or self._lost

    async def accept(self, subprotocol: str | None = None, headers: HeaderList | None = None) -> None:
        self._handshake()
        if self._accepted:
            raise RuntimeError("the WebSocket is already accepted")
        if self._rejection is not None:
            raise RuntimeError(f"the WebSocket handshake is invalid ({self._rejection[0]}): answer the rejection")
        cycle, http = self._cycle, self._http
        assert cycle is not None and http is not None
        if cycle.started or cycle.disconnected or http.closed:
            raise WebSocketDisconnect(_ABNORMAL, "the connection is no longer open")
        response = self._response
        if subprotocol is not None:
            if subprotocol not in self._offered:
                raise ValueError(f"subprotocol {subprotocol!r} was not offered by the client: {self._offered}")
            response.headers["Sec-WebSocket-Protocol"] = subprotocol
        for name, value in headers or ():
            text_name, text_value = name.decode("latin-1"), value.decode("latin-1")
            if any(c in text_name + text_value for c in "\r\n"):
                raise ValueError("CR or LF in a response header")
            response.headers[text_name] = text_value
        if self.config.server_header is not None:
            response.headers["Server"] = self.config.server_header
        # The handshake's protocol object read no bytes (we parsed the request), so frames
        # go to a fresh one in state OPEN, with the extensions the handshake negotiated:
        # the sans-I/O way to take over after a handshake of one's own.
        handshake = self._ws
        ws = self._ws = Lib.ServerProtocol(
            state=open_state(), max_size=self.config.ws_max_message_size, logger=QUIET
        )
        ws.extensions = handshake.extensions
        ws.subprotocol = subprotocol
        # Rule 8: the fast path only ever runs without an extension (permessage-deflate
        # rewrites every frame) and with one size limit (websockets' fragment limit unset).
        self._max_size = ws.max_message_size
        simple = self.fast_path and not ws.extensions and ws.max_fragment_size is None
        self._fast_out = simple
        self._fast_in = simple and self._at_frame_boundary()
        # Rule 2: the HTTP connection lets go, and this protocol takes the transport.
        self.transport.write(response.serialize())
        half_closed = http.half_closed
        leftover = http.detach(cycle, self)
        self._http = self._cycle = None
        self._accepted = True
        self.transport.set_protocol(self)
        self._flush()
        self._last_seen = self.loop.time()
        self._arm_ping(self.config.ws_ping_interval)
        self._update_reading()  # not while writing is paused (rule 4)
        if leftover:
            self.data_received(leftover)
        if half_closed:
            # The client half-closed while the request was HTTP, and the HTTP protocol
            # kept the transport open to answer it: the EOF is ours now, and so is the close.
            self.eof_received()
            self.transport.close()
        elif self.state.shutting_down:
            self.shutdown()  # accepted after the drain sent 1001 to the others (rule 6)

    # -- messages (seam.WebSocketChannel) ---------------------------------------------------

    async def receive(self) -> str | bytes:
        if not self._accepted:
            raise RuntimeError("receive() before accept()")
        messages = self._messages
        while True:
            if messages:
                message = messages.popleft()
                if self.flow.read_paused:
                    self._update_reading()
                return message
            closed = self._closed_by
            if closed is not None:
                raise WebSocketDisconnect(closed.code, closed.reason)
            waiter = self._waiter = self.loop.create_future()
            try:
                await waiter
            finally:
                self._waiter = None

    async def send(self, message: str | bytes) -> None:
        if not self._accepted:
            raise RuntimeError("send() before accept()")
        flow = self.flow
        if flow.write_paused and self._closed_by is None:
            await self._drain()
        closed = self._closed_by
        if closed is not None:
            raise WebSocketDisconnect(closed.code, closed.reason)
        if self._fast_out and self._send_fast(message):
            return
        ws = self._ws
        if isinstance(message, str):
            ws.send_text(message.encode("utf-8"))
        elif isinstance(message, (bytes, bytearray, memoryview)):
            ws.send_binary(message)
        else:
            raise TypeError(f"a WebSocket message is str or bytes, not {type(message).__name__}")
        self._flush()

    async def close(self, code: int = _NORMAL, reason: str = "") -> None:
        if not self._accepted:
            raise RuntimeError("close() before accept(): refuse the handshake with an HTTP response instead")
        self._start_close(code, reason)

    async def _drain(self) -> None:
        """Wait while the write buffer is above its high-water mark; ``send_timeout``
        seconds without it draining drop the connection (rule 4). The deadline is a
        ``loop.call_later`` handle like every other timer here: no task per wait (as
        ``asyncio.wait_for`` would make), and the loop's clock drives it."""
        timeout = self.config.send_timeout
        timer = self.loop.call_later(timeout, self._on_send_timeout, timeout) if timeout is not None else None
        try:
            await self.flow.drain()
        finally:
            if timer is not None:
                timer.cancel()

    def _on_send_timeout(self, timeout: float) -> None:
        if self._lost:
            return
        logger.info("%s - WebSocket client not reading for %.0f s: closing", self._who(), timeout)
        self._mark_closed(_ABNORMAL, "send timeout")
        self._abort()
        self.flow.resume_writing()  # wake the waiting senders now: they raise the 1006

    # -- the server's side ------------------------------------------------------------------

    def finish(self, failed: bool) -> None:
        """The handler returned (``failed``: it raised): close if still open (rule 7)."""
        if self._accepted and self._closed_by is None and not self._lost:
            if failed:
                self._start_close(_INTERNAL_ERROR, "")
            else:
                self._start_close(_NORMAL, "")

    def shutdown(self) -> None:
        """Graceful shutdown: close 1001 (going away), rule 6."""
        if self._accepted and self._closed_by is None and not self._lost:
            self._start_close(_GOING_AWAY, "server shutting down")

    def cancel_request(self) -> None:
        """The shutdown deadline passed: drop the connection."""
        if not self._lost:
            self._mark_closed(_GOING_AWAY, "server shutting down")
            self._abort()

    def abort(self) -> None:
        self._abort()

    def check_peer(self) -> None:
        """Reading is paused (a full queue, a client not reading): if the client has
        left (FIN or reset), read again for good so that the transport sees it and the
        connection is released (the server asks once a second)."""
        try:
            if self._lost or not self._accepted:
                return
            sock = self.transport.get_extra_info("socket")
            if sock is not None and poll_socket(sock.fileno(), PEER_DONE):
                self.flow.release_reading()
        except Exception:
            logger.exception("internal error in WebSocket check_peer")

    def _start_close(self, code: int, reason: str) -> None:
        ws = self._ws
        self._fast_in = False  # rule 8: websockets is CLOSING from here on
        if ws.state is Lib.OPEN:
            ws.send_close(code, reason)
            self._flush()
        self._mark_closed(code, reason)
        self._arm_close_timer()

    def _mark_closed(self, code: int, reason: str) -> None:
        if self._closed_by is None:
            self._closed_by = WebSocketDisconnect(code, reason)
            if not self._lost:
                self._update_reading()  # the rest of the closing handshake must be read
        self._wake()

    # -- asyncio.Protocol callbacks (after the 101): none lets an exception escape ------------

    def data_received(self, data: bytes) -> None:
        try:
            self._last_seen = self.loop.time()
            if self._partial:  # a fast frame's beginning, kept by _receive_fast
                data = self._partial + data
                self._partial = b""
            if self._fast_in and self._closed_by is None:
                data = self._receive_fast(data)
                if not data:
                    return  # all taken: websockets saw nothing and has nothing to send
            ws = self._ws
            ws.receive_data(data)
            events = ws.events_received()
            if events:
                self._handle(events)
            self._flush()
            if self._fast_out:  # rule 8: back to the fast path once websockets is between frames
                self._fast_in = self._at_frame_boundary()
        except Exception:
            logger.exception("internal error in WebSocket data_received; closing the connection")
            self._abort()

    def eof_received(self) -> bool:
        try:
            if self._partial:  # websockets must see the unfinished frame before the EOF
                self._ws.receive_data(self._partial)
                self._partial = b""
            self._ws.receive_eof()
            self._flush()
        except Exception:
            logger.exception("internal error in WebSocket eof_received")
        return False  # let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            self._lost = True
            for timer in (self._ping_timer, self._close_timer):
                if timer is not None:
                    timer.cancel()
            self._ping_timer = self._close_timer = None
            ws = self._ws
            close = ws.close_rcvd if ws is not None else None
            if close is not None:
                self._mark_closed(close.code, close.reason)
            else:
                self._mark_closed(_ABNORMAL, "")
            self.flow.resume_writing()  # wake a sender waiting to drain
            self.state.connection_closed(self)
        except Exception:
            logger.exception("error in WebSocket connection_lost")

    def pause_writing(self) -> None:
        self.flow.pause_writing()
        self.flow.pause_reading()  # rule 4: no more input (pings) while we cannot write

    def resume_writing(self) -> None:
        self.flow.resume_writing()
        if not self._lost:
            self._update_reading()

    def _update_reading(self) -> None:
        """Rule 4: read while writing is not paused and the queue has room. Once closing,
        the queue no longer counts: what is left to read is the closing handshake (and the
        client's FIN), and messages arriving after our close frame are dropped."""
        flow = self.flow
        if flow.write_paused or (self._closed_by is None and len(self._messages) >= self._max_queue):
            flow.pause_reading()
        else:
            flow.resume_reading()

    def _deliver(self, message: str | bytes) -> None:
        if self._closed_by is not None:
            return  # sent after our close frame crossed it: nobody will read it
        messages = self._messages
        messages.append(message)
        if len(messages) >= self._max_queue:
            self.flow.pause_reading()  # rule 4
        # _wake() inlined: this runs once per message, and a call costs more than the test.
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- timers -----------------------------------------------------------------------------

    def _arm_ping(self, delay: float | None) -> None:
        if delay is not None and delay > 0:
            self._ping_timer = self.loop.call_later(delay, self._on_ping_timer)

    def _on_ping_timer(self) -> None:
        self._ping_timer = None
        if self._lost or self._closed_by is not None:
            return
        config, now = self.config, self.loop.time()
        flow = self.flow
        if flow.read_paused and not flow.write_paused:
            # We stopped reading (the handler has not taken its messages): the silence is
            # ours, and the pong may be waiting unread. Neither ping nor time out until we
            # read again (a push-only handler's client would otherwise be cut off).
            self._last_seen = now
            self._ping_sent_at = None
        sent_at = self._ping_sent_at
        if sent_at is not None:
            if self._last_seen > sent_at:
                self._ping_sent_at = None  # alive: some byte arrived since the ping
            else:
                logger.info("%s - WebSocket keep-alive ping timed out: closing 1011", self._who())
                self._start_close(_INTERNAL_ERROR, "keepalive ping timeout")
                return
        interval = config.ws_ping_interval
        assert interval is not None
        left = interval - (now - self._last_seen)
        if left > _TIMER_SLACK:
            self._arm_ping(left)
            return
        self._ws.send_ping(os.urandom(4))
        self._flush()
        self._ping_sent_at = now
        self._arm_ping(config.ws_ping_timeout)

    def _arm_close_timer(self) -> None:
        if self._close_timer is None and not self._lost:
            self._close_timer = self.loop.call_later(self.config.ws_close_timeout, self._abort)

    def _abort(self) -> None:
        if not self._lost:
            self.transport.abort()

    def _who(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else "client"

