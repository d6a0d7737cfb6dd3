"""Request-body framing: bytes in, body bytes and the next request's bytes out (request lifetime).

One reader object per request body, as h11's ``_readers.py`` has, each owning its own
counters; ``http11.H11Protocol`` picks one from the parsed head (``reader_for``) and feeds it
what the socket delivers, with ``read(data) -> (body, rest)``: ``body`` goes to the request's
cycle, ``rest`` (non-empty only once the body is complete) is the start of the next,
pipelined, request. A reader does no I/O and knows no connection, so each is tested alone
with bytes (tests/test_protocol_body.py).

- ``ContentLengthReader`` counts the bytes of a Content-Length body (RFC 9112 §6.2).
- ``ChunkedReader`` decodes a chunked body (RFC 9112 §7.1) with the h11 connection that
  parsed its head (``head.ParsedHead.decoder``): h11's own chunked reader, driven here.

Rule (the connection's policy 8): h11 waits for the CRLF that ends a chunk-size line, so
a line ended by a bare LF (or holding a stray CR) would keep the client waiting until the
body timeout; ``ChunkedReader`` refuses it at once (``BodyError(400)``). Trailer fields,
like header fields, may end with a bare LF (RFC 9112 §2.2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import h11  # the same API as the compiled build; typed against the pure one

    from hump_listener.protocol.head import ParsedHead
else:
    from hump_listener.protocol.parser import h11

__all__ = ["BodyError", "ChunkedReader", "ContentLengthReader", "reader_for", "stray_line_end"]


class BodyError(Exception):
    """A malformed body: answer ``status`` and close. ``reason`` is for the log."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason


class ContentLengthReader:
    """A Content-Length body: its bytes are counted, and what follows them is the next request's."""

    __slots__ = ("left",)

    def __init__(self, length: int) -> None:
        #: Body bytes still to come.
        self.left = length

    @property
    def done(self) -> bool:
        return self.left == 0

    def read(self, data: bytes | bytearray) -> tuple[bytes, bytes]:
        """``(body bytes, bytes past the body)`` of ``data``."""
        left = self.left
        if len(data) <= left:
            self.left = left - len(data)
            return bytes(data), b""  # no copy of bytes
        self.left = 0
        return bytes(data[:left]), bytes(data[left:])


class ChunkedReader:
    """A chunked body, decoded by the h11 connection that parsed its head; trailers are
    read and dropped (h11 checks their syntax)."""

    __slots__ = ("_decoder", "done")

    def __init__(self, decoder: h11.Connection) -> None:
        self._decoder = decoder
        self.done = False

    def read(self, data: bytes | bytearray) -> tuple[bytes, bytes]:
        """``(body bytes, bytes past the body)`` of ``data``; raises ``BodyError`` for a
        body that is malformed, or can never complete (the rule above)."""
        decoder = self._decoder
        if data:  # h11 takes b"" for the client's EOF: never pass it one
            decoder.receive_data(bytes(data))
        pieces: list[bytes] = []
        rest = b""
        while True:
            try:
                event = decoder.next_event()
            except h11.RemoteProtocolError as exc:
                raise BodyError(exc.error_status_hint, str(exc)) from None
            if event is h11.NEED_DATA:
                if stray_line_end(decoder):
                    raise BodyError(400, "chunk-size line not ended by CRLF")
                break
            if type(event) is h11.Data:
                pieces.append(bytes(event.data))
            elif type(event) is h11.EndOfMessage:
                self.done = True
                rest = decoder.trailing_data[0]
                break
            else:  # PAUSED or ConnectionClosed: neither can come before EndOfMessage
                break
        if len(pieces) == 1:
            return pieces[0], rest
        return b"".join(pieces), rest


def reader_for(parsed: ParsedHead) -> ContentLengthReader | ChunkedReader | None:
    """The reader of ``parsed``'s body, or None when it has none (``length`` 0)."""
    if parsed.length > 0:
        return ContentLengthReader(parsed.length)
    if parsed.decoder is not None:
        return ChunkedReader(parsed.decoder)
    return None


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
