"""WebSocket frames in and out (RFC 6455 §5): the ``Frames`` half of ``WebSocketProtocol``.

websockets' sans-I/O ``ServerProtocol`` parses and serialises the frames; ``Frames._handle``
turns its events into messages for the handler, ``Frames._flush`` writes what it has to
send (an empty write is its half-close). Two of the protocol's rules live here:

3. Messages are reassembled from fragments. Text is validated as UTF-8 as it arrives, so an
   invalid sequence closes with 1007 at once, even mid-message (``_check_utf8``); a message
   over ``ws_max_message_size`` closes with 1009 and any other protocol error with 1002
   (websockets decides those). Control frames are answered when they arrive, also between
   the fragments of a message.
8. The fast path (performance only, never behaviour): the common frame, a whole,
   unfragmented, unextended, masked text or binary frame of at most 65535 bytes, is read by
   ``_receive_fast`` and written by ``_send_fast`` without websockets' generator parser and
   ``Frame`` objects, and only while websockets itself is at a frame boundary, OPEN, not
   mid-message and without an extension, so that such a frame would not change its state
   (``_at_frame_boundary``). The first frame that is anything else and everything after it
   goes to websockets, which answers it as it would have; tests/test_websocket_fast_path.py
   checks both paths write the same bytes for the same input.
"""

from __future__ import annotations

import asyncio
import codecs
from typing import TYPE_CHECKING, Any

from hump_listener.protocol.flow_control import half_close
from hump_listener.protocol.ws_handshake import Lib

if TYPE_CHECKING:
    from hump_listener.seam import WebSocketDisconnect

__all__ = ["Frames", "frame_head"]

_UTF8 = codecs.getincrementaldecoder("utf-8")
# RFC 6455 §7.4.1 close codes used here
_INVALID_DATA = 1007
_ABNORMAL = 1006

#: The header of an unmasked FIN frame, by opcode byte (0x81 text, 0x82 binary) and payload
#: length, for lengths below 126 (one byte of length): one tuple index instead of a
#: ``struct.pack`` per message. The bytes are RFC 6455 §5.2's and what websockets'
#: ``Frame.serialize`` writes (tests/test_websocket_fast_path.py compares them).
_SHORT_HEADS = {op: tuple(bytes((op, n)) for n in range(126)) for op in (0x81, 0x82)}


def frame_head(op: int, length: int) -> bytes:
    """The header of an unmasked FIN frame with opcode byte ``op`` (RFC 6455 §5.2)."""
    if length < 126:
        return _SHORT_HEADS[op][length]
    if length < 65536:
        return bytes((op, 126)) + length.to_bytes(2, "big")
    return bytes((op, 127)) + length.to_bytes(8, "big")


class Frames:
    """Frames to messages and messages to frames (a mixin of ``WebSocketProtocol``, whose
    per-connection state it uses: the websockets protocol object, the transport, the
    message reassembly and the fast path's flags)."""

    _ws: Any
    transport: asyncio.Transport
    _lost: bool
    _closed_by: WebSocketDisconnect | None
    _fragments: list[bytes]
    _fragment_text: bool
    _decoder: codecs.IncrementalDecoder | None
    _fast_in: bool
    _partial: bytes
    _max_size: int | None
    _ping_sent_at: float | None

    if TYPE_CHECKING:  # provided by WebSocketProtocol

        def _deliver(self, message: str | bytes) -> None: ...
        def _mark_closed(self, code: int, reason: str) -> None: ...
        def _arm_close_timer(self) -> None: ...

    def _flush(self) -> None:
        """Write what websockets has to send; an empty bytestring means half-close."""
        ws = self._ws
        writes = ws.data_to_send()
        if not writes:
            return
        transport = self.transport
        if self._lost or transport.is_closing():
            return
        for data in writes:
            if data:
                transport.write(data)
            else:  # websockets' SEND_EOF
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
        ws, transport = self._ws, self.transport
        if ws.writes or ws.state is not Lib.OPEN or self._lost or transport.is_closing():
            return False  # keep websockets' order / let it raise / drop as _flush does
        transport.write(frame_head(op, len(data)) + data)
        return True

    def _handle(self, events: list[Any]) -> None:
        lib = Lib
        TEXT, BINARY, CONT, PONG, CLOSE = lib.TEXT, lib.BINARY, lib.CONT, lib.PONG, lib.CLOSE
        for frame in events:
            opcode = frame.opcode
            if opcode is TEXT or opcode is BINARY:
                if frame.fin:
                    if opcode is TEXT:
                        try:
                            self._deliver(frame.data.decode("utf-8"))
                        except UnicodeDecodeError as exc:
                            self._fail_utf8(exc)
                            return
                    else:
                        self._deliver(bytes(frame.data))
                else:
                    self._fragments = [frame.data]
                    self._fragment_text = opcode is TEXT
                    if self._fragment_text:
                        self._decoder = _UTF8()
                        if not self._check_utf8(frame.data, False):
                            return
            elif opcode is CONT:
                self._fragments.append(frame.data)
                if self._fragment_text and not self._check_utf8(frame.data, frame.fin):
                    return
                if frame.fin:
                    data = b"".join(self._fragments)
                    self._fragments = []
                    self._decoder = None
                    self._deliver(data.decode("utf-8") if self._fragment_text else data)
            elif opcode is PONG:
                self._ping_sent_at = None
            elif opcode is CLOSE:
                close = self._ws.close_rcvd
                code = close.code if close is not None else 1005
                self._mark_closed(code, close.reason if close is not None else "")
                self._arm_close_timer()
            # PING: websockets has queued the PONG; _flush sends it.

    def _receive_fast(self, data: bytes) -> bytes:
        """Rule 8: deliver the frames at the start of ``data`` that websockets would parse
        into a whole message without a change of its state; return the rest, from the first
        frame it must see, for websockets (b"" when all was taken; an unfinished last frame
        that qualifies so far is kept in ``_partial``, at most 65543 bytes, which websockets
        would buffer all the same, waiting as it would).

        A frame qualifies when its first byte is 0x81 or 0x82 (FIN, no reserved bit, text or
        binary: not a fragment, not a control frame), it is masked, its length has 7 or 16
        bits and is within the size limit, and, for text, it is valid UTF-8: anything else is
        websockets' to answer (1002, 1009, 1007, a pong, the fragments' reassembly), exactly
        as if it had parsed the frames before it too, since those changed none of its state.

        Saves, per frame, websockets' generator parser (three ``read_exact`` generators, a
        ``bytearray`` buffer copied in and sliced out), the ``Frame`` object and its checks,
        and ``_handle``'s opcode dispatch."""
        deliver, unmask, limit = self._deliver, Lib.apply_mask, self._max_size
        end, size = 0, len(data)
        # Each check is made as soon as websockets' parser would make it (the first two
        # bytes, then the 16-bit length), so a frame it would reject is handed over with
        # the same bytes it would have reacted to, never held back waiting for more.
        while True:
            start = end
            if size - start < 2:
                break
            op, second = data[start], data[start + 1]
            if (op != 0x81 and op != 0x82) or second < 0x80:  # not FIN text/binary, or unmasked
                return data[start:]
            length = second & 0x7F
            if length < 126:
                body = start + 6  # 2 bytes of header, 4 of mask
            elif length == 126:
                if size - start < 4:
                    break
                length = (data[start + 2] << 8) | data[start + 3]
                body = start + 8
            else:  # 64-bit length: rare, and over 65535 bytes: websockets' to take
                return data[start:]
            if limit is not None and length > limit:
                return data[start:]  # websockets closes 1009 as soon as it has the length
            end = body + length
            if end > size:
                end = start
                break
            payload = unmask(data[body:end], data[body - 4 : body])
            if op == 0x81:
                try:
                    deliver(payload.decode("utf-8"))
                except UnicodeDecodeError:  # websockets' path closes 1007
                    return data[start:]
            else:
                deliver(payload)
        if end < size:
            # The rest starts a frame that qualifies so far: wait for the rest of it.
            self._partial = data[end:] if end else data
        return b""

    def _at_frame_boundary(self) -> bool:
        """Whether websockets would take a qualifying frame (rule 8) without a change of
        state: OPEN, no close sent or received, no parser error, not mid-message, and its
        parser suspended between frames, i.e. in ``Protocol.parse()``'s wait for the next
        byte (the generator check is what tells "between frames" from "a header's first
        bytes read"; it costs one or two microseconds, and runs only after websockets parsed)."""
        ws = self._ws
        if ws.state is not Lib.OPEN or ws.parser_exc is not None or ws.current_size is not None:
            return False
        if self._closed_by is not None or self._lost or self._fragments:
            return False
        # ServerProtocol.parse delegates to Protocol.parse, which waits in
        # StreamReader.at_eof between frames: the innermost two generators tell.
        outer, inner = None, ws.parser
        while True:
            nested = getattr(inner, "gi_yieldfrom", None)
            if nested is None:
                break
            outer, inner = inner, nested
        return (
            Lib.parse_code is not None
            and getattr(inner, "gi_code", None) is Lib.at_eof_code
            and getattr(outer, "gi_code", None) is Lib.parse_code
        )

    def _check_utf8(self, data: bytes, final: bool) -> bool:
        assert self._decoder is not None
        try:
            self._decoder.decode(data, final)
        except UnicodeDecodeError as exc:
            self._fail_utf8(exc)
            return False
        return True

    def _fail_utf8(self, exc: UnicodeDecodeError) -> None:
        self._fast_in = False
        self._fragments = []
        self._decoder = None
        self._ws.fail(_INVALID_DATA, "invalid UTF-8 in a text message")
        self._mark_closed(_INVALID_DATA, "invalid UTF-8")
        self._arm_close_timer()
