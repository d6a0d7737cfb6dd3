"""Request bodies on an HTTP/1.1 connection: the ``BodyReading`` half of ``H11Protocol``.

A Content-Length body is framed by counting its bytes; a chunked body is decoded by the
h11 connection that parsed its head (``head.ParsedHead.decoder``, one per request). The
bytes go to the request's ``RequestCycle``; reading pauses above ``body_high_water``
unconsumed bytes (``flow_control`` rule 1) and bytes past the body wait for the next
request (``http11`` policy 4: pipelining).

Rule (the connection's policy 8): h11 waits for the CRLF that ends a chunk-size line, so
a line ended by a bare LF (or holding a stray CR) would keep the client waiting until the
body timeout; it is answered 400 at once. Trailer fields, like header fields, may end
with a bare LF (RFC 9112 §2.2).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import h11  # the same API as the compiled build; typed against the pure one

    from hump_listener.config import ServerConfig
    from hump_listener.protocol.cycle import RequestCycle
    from hump_listener.protocol.flow_control import FlowControl
else:
    from hump_listener.protocol.parser import h11

__all__ = ["BodyReading", "stray_line_end"]

logger = logging.getLogger("hump_listener.error")


def stray_line_end(decoder: h11.Connection) -> bool:
    """h11 is waiting for the CRLF that ends a chunk-size line while the bytes it holds
    already have a bare LF or a CR not followed by LF: that line can never be valid
    (the rule above). h11's reader state is read defensively (``getattr``): if an h11 build
    lacks it, the body timeout still ends the wait."""
    pending = decoder.trailing_data[0]
    if not pending:
        return False
    reader = getattr(decoder, "_reader", None)
    if (
        getattr(reader, "_reading_trailer", True)
        or getattr(reader, "_bytes_in_chunk", 1)
        or getattr(reader, "_bytes_to_discard", b"")
    ):
        return False  # not reading a chunk-size line
    # Any CRLF would already have ended the line, so every LF here is a bare one.
    cr = pending.find(b"\r")
    return b"\n" in pending or (cr != -1 and cr != len(pending) - 1)


class BodyReading:
    """Moving request-body bytes into the request's cycle (a mixin of ``H11Protocol``,
    whose connection state it uses: the buffer of unparsed bytes, the flow control, the
    per-request h11 decoder)."""

    _buf: bytearray
    _decoder: h11.Connection | None
    flow: FlowControl
    config: ServerConfig

    if TYPE_CHECKING:  # provided by H11Protocol

        def who(self) -> str: ...

    def _feed_length(self, cycle: RequestCycle, data: bytes | bytearray) -> None:
        """Hand up to ``cycle.length_left`` bytes of a Content-Length body to the cycle;
        bytes beyond it belong to the next request and wait in ``_buf`` (policy 4)."""
        left = cycle.length_left
        if len(data) > left:
            self._buf += data[left:]
            data = data[:left]
            self.flow.pause_reading()
        if data:
            cycle.length_left = left - len(data)
            cycle.feed(bytes(data))
        if cycle.length_left == 0:
            cycle.feed_end()
        elif cycle.buffered > self.config.body_high_water:
            self.flow.pause_reading()

    def _feed_chunked(self, cycle: RequestCycle, data: bytes) -> bool:
        assert self._decoder is not None
        self._decoder.receive_data(data)
        return self._read_chunked(cycle)

    def _read_chunked(self, cycle: RequestCycle) -> bool:
        """Move h11's body events into the cycle; False if the body was malformed."""
        decoder = self._decoder
        assert decoder is not None
        while True:
            try:
                event = decoder.next_event()
            except h11.RemoteProtocolError as exc:
                logger.info("%s - invalid request body: %s", self.who(), exc)
                cycle.abort(exc.error_status_hint)
                return False
            if event is h11.NEED_DATA or event is h11.PAUSED:
                if event is h11.NEED_DATA and stray_line_end(decoder):
                    logger.info("%s - invalid request body: chunk-size line not ended by CRLF", self.who())
                    cycle.abort(400)
                    return False
                break
            if type(event) is h11.Data:
                cycle.feed(bytes(event.data))
            elif type(event) is h11.EndOfMessage:
                cycle.feed_end()
                break
            else:  # ConnectionClosed: never fed to h11, so unreachable
                break
        if cycle.buffered > self.config.body_high_water:
            self.flow.pause_reading()
        return True
