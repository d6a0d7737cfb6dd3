"""WebSocket (RFC 6455) over an asyncio transport: one ``WebSocketProtocol`` per connection.

The frames are the ``websockets`` package's sans-I/O ``ServerProtocol`` (a dependency,
imported on the first upgrade): it parses and serialises frames (masking in C), answers pings and the
closing handshake, and enforces the message size. This module is the I/O around it and
implements ``seam.WebSocketChannel`` after the 101: the handshake was the offer's
(``ws_upgrade.WebSocketOffer``, which built this connection and handed it the transport,
never the HTTP connection or the request), message assembly is the ``Assembler``'s
(``ws_assembler``), frame facts are ``ws_frames``'. Policy choices:

1. The handshake is validated in full before the app's handler runs (``ws_upgrade``).
2. ``start()`` takes the transport over (``set_protocol``); bytes the HTTP protocol had
   read past the head are fed to this one, then the client's half-close if the HTTP
   protocol saw one. The connection took the HTTP one's place in the server's connections
   (``max_connections`` covers both kinds).
3. Messages are reassembled from fragments (joined as they arrive, at most
   ``ws_max_fragments`` frames), text is validated as UTF-8 as it arrives (1007),
   too-big messages close with 1009 and protocol errors with 1002, control frames are
   answered at once (``ws_assembler``).
4. Backpressure, both ways. Reading pauses while ``ws_max_queue`` messages wait for the
   handler, and while the transport's write buffer is above its high-water mark (so a
   client that sends pings but never reads cannot make us buffer pongs without bound).
   Once a close frame is sent or received the queue no longer pauses reading (the rest of
   the closing handshake must be read), and messages arriving after our close are dropped.
   ``send`` waits while the write buffer is above the high-water mark; output that makes
   no progress for ``send_timeout`` seconds drops the connection (1006), whether a
   ``send`` waits on it or not.
5. Liveness: after ``ws_ping_interval`` seconds without an inbound byte a ping goes out;
   any inbound byte counts as alive (a busy sender is never timed out); nothing within
   ``ws_ping_timeout`` after the ping closes with 1011. While our reading is paused (the
   handler has not taken its messages, or the client is not taking ours) the silence is
   ours and counts as alive: a client that answers pings but never reads is the send
   timeout's (rule 4), not the ping's.
6. Closing: after a close frame is sent (ours or the echo of the client's), the client gets
   ``ws_close_timeout`` seconds to close the TCP connection, then it is aborted. A server
   shutdown sends 1001 (going away) to every open connection, and to one accepted while
   the shutdown is under way as soon as it is accepted; a closing handshake during the
   shutdown is cut by ``ServerState.close_by`` at the latest, so that it fits in the drain.
7. The handler's task is the connection's: when it returns the connection is closed with
   1000 if still open, when it fails with 1011 (``finish``; the framework logs the error).
8. The fast path for the common frame, performance only, never behaviour (``ws_assembler``
   rule 4; ``ws_frames.frame_head`` for writes).
9. Work per loop turn is bounded: one callback handles at most ``FRAME_BUDGET`` frames
   (and no more messages than the queue has room for); the rest of the read waits, with
   reading paused, for a later turn (``loop.call_soon``), so one client streaming tiny
   frames cannot stall every other connection. What websockets queues to send while
   handling a batch goes out in one write, with one pong for all the pings of the batch
   (RFC 6455 §5.5.3), and nothing is written once the transport is closing (a client that
   reset the connection costs no log line per frame).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from typing import TYPE_CHECKING, Any

from hump_listener.protocol.flow_control import PEER_DONE, half_close, poll_socket
from hump_listener.protocol.ws_assembler import Assembler
from hump_listener.protocol.ws_frames import (
    PONGS_PER_BATCH,
    FrameSplitter,
    Lib,
    at_frame_boundary,
    batch,
    frame_head,
)
from hump_listener.seam import WebSocketDisconnect

if TYPE_CHECKING:
    from hump_listener.protocol.flow_control import FlowControl
    from hump_listener.protocol.state import ServerState

__all__ = ["FRAME_BUDGET", "WebSocketProtocol"]

logger = logging.getLogger("hump_listener.error")

# RFC 6455 §7.4.1 close codes used here
_NORMAL = 1000
_GOING_AWAY = 1001
_ABNORMAL = 1006
_INTERNAL_ERROR = 1011

#: Frames one callback handles before the rest of the read waits for a later loop turn
#: (rule 9). A 256 KiB read can hold 43,000 tiny frames, ~1.4 s of work in one callback
#: when each was answered; a frame costs 2-30 µs here, so 64 keep a turn near a
#: millisecond. Tokio's cooperative budget: 128 operations per task poll; BEAM: 4,000
#: reductions per time slice.
FRAME_BUDGET = 64

#: A keep-alive timer that fires less than this before its deadline counts as on time.
#: asyncio itself runs timers up to the clock's resolution early (``_clock_resolution``,
#: ~15 ms on Windows); re-arming for the sliver left would wake the loop for nothing, and
#: spin forever on a clock that does not move between the check and the re-arm.
_TIMER_SLACK = 0.001


class WebSocketProtocol(asyncio.Protocol):
    """One WebSocket connection after the 101 (connection lifetime): the transport's protocol."""

    def __init__(
        self,
        transport: asyncio.Transport,
        flow: FlowControl,
        state: ServerState,
        client: tuple[str, int] | None,
        ws: Any,
        fast_path: bool,
    ) -> None:
        # Shared server state (server lifetime)
        self.state = state
        self.config = config = state.config
        self.loop = state.loop
        # Per-connection state
        self.transport = transport
        self.flow = flow
        self.client = client
        #: websockets' ``ServerProtocol`` in state OPEN: frames in and out.
        self.frames = ws
        self._lost = False  # the transport is gone
        #: Why ``receive``/``send`` now raise: the close received, or the one we sent.
        self._closed_by: WebSocketDisconnect | None = None
        # Incoming messages (rules 3, 4)
        self._assembler = Assembler(self._deliver, self._fail, ws.max_message_size, config.ws_max_fragments)
        self._messages: deque[str | bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._max_queue = config.ws_max_queue
        # Rule 9: the rest of a read past the budget, and whether a turn is booked for it.
        self._backlog = b""
        self._backlog_booked = False
        self._splitter = FrameSplitter()
        # Rule 8: the fast path only ever runs without an extension (permessage-deflate
        # rewrites every frame) and with one size limit (websockets' fragment limit unset);
        # _fast_in is True while websockets would take the next frame without a change of
        # state (set after each step through websockets).
        self._fast_out = fast_path and not ws.extensions and ws.max_fragment_size is None
        self._fast_in = self._fast_out and at_frame_boundary(ws)
        # Timers (rules 4, 5, 6)
        self._last_seen = 0.0
        self._ping_timer: asyncio.TimerHandle | None = None
        self._ping_sent_at: float | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._send_timer: asyncio.TimerHandle | None = None

    def start(self, leftover: bytes, half_closed: bool) -> None:
        """Take the transport over (rule 2): the 101 is written."""
        self.transport.set_protocol(self)
        self._last_seen = self.loop.time()
        self._arm_ping(self.config.ws_ping_interval)
        if self.flow.write_paused:
            self.pause_writing()  # rule 4: the HTTP phase left the buffer above its mark
        self._update_reading()
        if leftover:
            self.data_received(leftover)
        if half_closed:
            # The client half-closed while the request was HTTP, and the HTTP protocol
            # kept the transport open to answer it: the EOF is ours now, and so is the close.
            self.eof_received()
            self.transport.close()
        elif self.state.shutting_down:
            self.shutdown()  # accepted after the drain sent 1001 to the others (rule 6)

    @property
    def closed(self) -> bool:
        return self._closed_by is not None or self._lost

    # -- messages (seam.WebSocketChannel) -------------------------------------------------------

    async def receive(self) -> str | bytes:
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
        if self.flow.write_paused and self._closed_by is None:
            await self.flow.drain()  # the send timeout watches it (rule 4)
        closed = self._closed_by
        if closed is not None:
            raise WebSocketDisconnect(closed.code, closed.reason)
        if self._fast_out and self._send_fast(message):
            return
        ws = self.frames
        if isinstance(message, str):
            ws.send_text(message.encode("utf-8"))
        elif isinstance(message, (bytes, bytearray, memoryview)):
            ws.send_binary(message)
        else:
            raise TypeError(f"a WebSocket message is str or bytes, not {type(message).__name__}")
        self._flush()

    async def close(self, code: int = _NORMAL, reason: str = "") -> None:
        self._start_close(code, reason)

    # -- the server's side (state.Connection) ---------------------------------------------------

    def finish(self, failed: bool) -> None:
        """The handler returned (``failed``: it raised): close if still open (rule 7)."""
        if self._closed_by is None and not self._lost:
            self._start_close(_INTERNAL_ERROR if failed else _NORMAL, "")

    def shutdown(self) -> None:
        """Graceful shutdown: close 1001 (going away), rule 6."""
        if self._closed_by is None and not self._lost:
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
            if self._lost:
                return
            sock = self.transport.get_extra_info("socket")
            if sock is not None and poll_socket(sock.fileno(), PEER_DONE):
                self.flow.release_reading()
        except Exception:
            logger.exception("internal error in WebSocket check_peer")

    # -- asyncio.Protocol callbacks: none lets an exception escape -------------------------------

    def data_received(self, data: bytes) -> None:
        try:
            self._last_seen = self.loop.time()
            if self._backlog:  # reading could not be paused (released): keep the order
                self._backlog += data
                return
            self._receive(data)
        except Exception:
            logger.exception("internal error in WebSocket data_received; closing the connection")
            self._abort()

    def eof_received(self) -> bool:
        try:
            backlog, self._backlog = self._backlog, b""
            if backlog:  # nothing more will come: all of it now, then the EOF
                self._receive(backlog, final=True)
            # websockets must see an unfinished fast frame before the EOF
            data = self._assembler.take_partial()
            if data:
                self.frames.receive_data(data)
            self.frames.receive_eof()
            self._flush()
        except Exception:
            logger.exception("internal error in WebSocket eof_received")
        return False  # let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            self._lost = True
            self._backlog = b""
            for timer in (self._ping_timer, self._close_timer, self._send_timer):
                if timer is not None:
                    timer.cancel()
            self._ping_timer = self._close_timer = self._send_timer = None
            close = self.frames.close_rcvd
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
        timeout = self.config.send_timeout
        if self._send_timer is None and timeout is not None:
            self._send_timer = self.loop.call_later(timeout, self._on_send_timeout, timeout)

    def resume_writing(self) -> None:
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None
        self.flow.resume_writing()
        if not self._lost:
            self._update_reading()

    # -- receiving (rules 3, 4, 8, 9) ---------------------------------------------------------

    def _receive(self, data: bytes, final: bool = False, later: bool = False) -> None:
        """Handle ``data`` within this turn's budget (rule 9; all of it when ``final``):
        whole fast frames to the assembler, the rest to websockets in slices of whole
        frames; what the budget leaves waits in the backlog. ``later``: this is a backlog,
        left by an earlier turn."""
        budget = 1 << 62 if final else FRAME_BUDGET
        assembler, splitter, ws = self._assembler, self._splitter, self.frames
        fed = False  # websockets was given bytes (so it may have something to send)
        while True:
            if self._closed_by is None and not final:
                room = self._max_queue - len(self._messages)
                if room < budget:
                    budget = room
            if budget <= 0:
                break
            if self._fast_in and self._closed_by is None:
                data, taken = assembler.receive_fast(data, budget)
                if not data:
                    if not fed:
                        return  # all taken by the fast path: websockets has nothing to send
                    break
                budget -= taken
                if budget <= 0:
                    break
            else:
                data = assembler.take_partial(data)
            # What the fast path left goes to websockets as it would without the fast path:
            # all the budget allows (handing it one frame at a time would let a failure
            # found between frames change what it answers, e.g. a ping after bad UTF-8).
            end, count = splitter.split(data, budget)
            budget -= count
            ws.receive_data(data[:end] if end < len(data) else data)
            fed = True
            data = data[end:]
            events = ws.events_received()
            if events:
                self._handle(events)
            if self._fast_out:  # rule 8: back to the fast path once websockets is between frames
                self._fast_in = splitter.at_boundary and at_frame_boundary(ws) and not assembler.mid_message
            if not data:
                break
        # A read too big for one turn is a flood: one pong per batch (rule 9).
        self._flush(1 if data or later else PONGS_PER_BATCH)
        if data:
            self._backlog = data
            self._update_reading()

    def _handle(self, events: list[Any]) -> None:
        lib = Lib
        TEXT, BINARY, CONT, PONG, CLOSE = lib.TEXT, lib.BINARY, lib.CONT, lib.PONG, lib.CLOSE
        put = self._assembler.put
        for frame in events:
            opcode = frame.opcode
            if opcode is TEXT or opcode is BINARY or opcode is CONT:
                if not put(frame):
                    return
            elif opcode is PONG:
                self._ping_sent_at = None
            elif opcode is CLOSE:
                close = self.frames.close_rcvd
                code = close.code if close is not None else 1005
                self._mark_closed(code, close.reason if close is not None else "")
                self._arm_close_timer()
            # PING: websockets has queued the PONG; _flush sends it (one per batch).

    def _deliver(self, message: str | bytes) -> None:
        """The assembler's callback: one whole message for the handler."""
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

    def _fail(self, code: int, reason: str) -> None:
        """The assembler's callback: a message broke a rule (1007, 1009)."""
        self._fast_in = False
        self.frames.fail(code, reason)
        self._mark_closed(code, reason)
        self._arm_close_timer()

    def _update_reading(self) -> None:
        """Rules 4 and 9: read while writing is not paused, the queue has room and no
        backlog waits (a backlog is handled on a later loop turn first). Once closing, the
        queue no longer counts: what is left to read is the closing handshake (and the
        client's FIN), and messages arriving after our close frame are dropped."""
        flow = self.flow
        if flow.write_paused or (self._closed_by is None and len(self._messages) >= self._max_queue):
            flow.pause_reading()
        elif self._backlog:
            flow.pause_reading()
            if not self._backlog_booked:
                self._backlog_booked = True
                self.loop.call_soon(self._on_backlog)
        else:
            flow.resume_reading()

    def _on_backlog(self) -> None:
        self._backlog_booked = False
        try:
            if self._lost or not self._backlog:
                return
            data, self._backlog = self._backlog, b""
            self._receive(data, later=True)
            if not self._backlog and not self._lost:
                self._update_reading()
        except Exception:
            logger.exception("internal error in WebSocket data_received; closing the connection")
            self._abort()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- sending (rules 6, 8, 9) --------------------------------------------------------------

    def _flush(self, max_pongs: int = PONGS_PER_BATCH) -> None:
        """Write what websockets has to send, in one write (rule 9), with at most
        ``max_pongs`` pongs; an empty bytestring in it means half-close."""
        ws = self.frames
        writes = ws.data_to_send()
        if not writes:
            return
        transport = self.transport
        if self._lost or transport.is_closing():
            return
        data, eof = batch(writes, max_pongs)
        if data:
            transport.write(data)
        if eof:  # websockets' SEND_EOF
            half_close(transport)
            self._arm_close_timer()
        if ws.parser_exc is not None and self._closed_by is None:
            # websockets failed the connection (1002 protocol error, 1009 too big, ...).
            sent = ws.close_sent
            self._mark_closed(sent.code if sent is not None else _ABNORMAL, sent.reason if sent is not None else "")

    def _send_fast(self, message: str | bytes) -> bool:
        """Rule 8: write ``message`` as one unmasked FIN frame, the bytes websockets'
        ``send_text``/``send_binary`` would queue, and return True; or return False (nothing
        done) unless websockets is OPEN with nothing queued before it and the transport open.

        Saves, per message, websockets' ``Frame`` object, its ``check()``, a ``BytesIO``
        and ``struct.pack`` for the header, and the ``data_to_send`` list round trip."""
        if type(message) is str:
            data = message.encode("utf-8")
            op = 0x81
        elif type(message) is bytes:  # not bytearray/memoryview: websockets' path for those
            data = message
            op = 0x82
        else:
            return False
        ws, transport = self.frames, self.transport
        if ws.writes or ws.state is not Lib.OPEN or self._lost or transport.is_closing():
            return False  # keep websockets' order / let it raise / drop as _flush does
        transport.write(frame_head(op, len(data)) + data)
        return True

    def _start_close(self, code: int, reason: str) -> None:
        ws = self.frames
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

    # -- timers (rules 4, 5, 6) ---------------------------------------------------------------

    def _arm_ping(self, delay: float | None) -> None:
        if delay is not None and delay > 0:
            self._ping_timer = self.loop.call_later(delay, self._on_ping_timer)

    def _on_ping_timer(self) -> None:
        self._ping_timer = None
        if self._lost or self._closed_by is not None:
            return
        config, now = self.config, self.loop.time()
        if self.flow.read_paused:
            # We stopped reading (the handler has not taken its messages, or the client
            # ours): the silence is ours, and the pong may be waiting unread. Neither ping
            # nor time out until we read again (rule 5).
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
        self.frames.send_ping(os.urandom(4))
        self._flush()
        self._ping_sent_at = now
        self._arm_ping(config.ws_ping_timeout)

    def _arm_close_timer(self) -> None:
        """Rule 6: the client's time to close the TCP connection after a close frame,
        cut to what is left of the drain during a shutdown."""
        if self._close_timer is None and not self._lost:
            delay = self.config.ws_close_timeout
            close_by = self.state.close_by
            if close_by is not None:
                delay = min(delay, max(close_by - self.loop.time(), 0.0))
            self._close_timer = self.loop.call_later(delay, self._abort)

    def _on_send_timeout(self, timeout: float) -> None:
        """Rule 4: the client took nothing of our output for ``send_timeout``."""
        self._send_timer = None
        if self._lost or not self.flow.write_paused:
            return
        logger.info("%s - WebSocket client not reading for %.0f s: closing", self._who(), timeout)
        self._mark_closed(_ABNORMAL, "send timeout")
        self._abort()
        self.flow.resume_writing()  # wake the waiting senders now: they raise the 1006

    def _abort(self) -> None:
        if not self._lost:
            self.transport.abort()

    def _who(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else "client"
