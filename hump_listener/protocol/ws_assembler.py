"""WebSocket messages from frames: ``Assembler`` (connection lifetime), in the shape of
websockets' ``asyncio.messages.Assembler``: frames in, whole messages out through a
callback, owned by the connection (``websocket.WebSocketProtocol``) and testable alone with
bytes and websockets' ``Frame`` objects.

It is given two callbacks: ``deliver(message)`` for each whole message (``str`` for text,
``bytes`` for binary) and ``fail(code, reason)`` when a message breaks a rule, after which it
takes nothing more of the message. Rules (the connection's rule 3 and 8):

1. Fragments are joined as they arrive into one buffer, and what the buffer holds is what
   is counted: an unfinished message holds at most its payload (plus the buffer's growth
   slack, an eighth), whatever its fragment sizes; the message, once whole, is one copy of
   it. (Keeping each fragment as its own object cost ~56 times the payload for 1-byte
   fragments.) websockets enforces ``ws_max_message_size`` across the fragments (1009).
2. A message of more than ``ws_max_fragments`` frames closes with 1009 ("too many
   fragments", websockets' own asyncio layer's rule and limit): each fragment costs
   websockets' parser a few microseconds whatever its size, so the count bounds the CPU a
   message can cost.
3. Text is validated as UTF-8 as it arrives, so an invalid sequence closes with 1007 at
   once, even mid-message.
4. The fast path (performance only, never behaviour): the common frame, a whole,
   unfragmented, unextended, masked text or binary frame of at most 65535 bytes, is read
   by ``receive_fast`` without websockets' generator parser and ``Frame`` objects, and only
   while websockets itself is at a frame boundary (the connection knows:
   ``ws_frames.at_frame_boundary``), so that such a frame would not change its state. The
   first frame that is anything else, and everything after it, is websockets' to parse and
   answer as it would have; tests/test_websocket_fast_path.py checks that both paths write
   the same bytes for the same input.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from typing import Any

from hump_listener.protocol.ws_frames import Lib

__all__ = ["Assembler"]

_UTF8 = codecs.getincrementaldecoder("utf-8")
# RFC 6455 §7.4.1 close codes used here
_INVALID_DATA = 1007
_MESSAGE_TOO_BIG = 1009


class Assembler:
    """Whole messages from data frames (connection lifetime)."""

    __slots__ = (
        "_buffer", "_count", "_decoder", "_deliver", "_fail", "_max_fragments", "_max_size", "_text", "partial"
    )

    def __init__(
        self,
        deliver: Callable[[str | bytes], None],
        fail: Callable[[int, str], None],
        max_size: int | None,
        max_fragments: int,
    ) -> None:
        self._deliver = deliver
        self._fail = fail
        self._max_size = max_size
        self._max_fragments = max_fragments
        # The unfinished message (rule 1): its bytes so far, how many frames, text or not.
        self._buffer: bytearray | None = None
        self._count = 0
        self._text = False
        self._decoder: codecs.IncrementalDecoder | None = None
        #: The beginning of a frame that qualifies for the fast path so far, kept until the
        #: rest of it arrives (at most 65543 bytes, which websockets would buffer too).
        self.partial = b""

    @property
    def mid_message(self) -> bool:
        """A fragmented message has begun and not ended."""
        return self._buffer is not None

    @property
    def held(self) -> int:
        """Bytes of the unfinished message held (rule 1)."""
        return len(self._buffer) if self._buffer is not None else 0

    def put(self, frame: Any) -> bool:
        """A data frame websockets parsed (TEXT, BINARY or CONT, in an order it checked);
        False once the message broke rule 2 or 3 (``fail`` was called)."""
        opcode, data = frame.opcode, frame.data
        if opcode is Lib.CONT:
            buffer = self._buffer
            assert buffer is not None  # websockets refuses a continuation out of a message
            self._count += 1
            if self._count > self._max_fragments:
                return self._failed(_MESSAGE_TOO_BIG, "too many fragments")
            buffer += data
            if self._text and not self._check_utf8(data, frame.fin):
                return False
            if frame.fin:
                self._buffer = self._decoder = None
                message = bytes(buffer)
                del buffer[:]  # the copy is the message now: free the buffer first
                self._deliver(message.decode("utf-8") if self._text else message)
            return True
        if frame.fin:  # a whole message in one frame
            if opcode is Lib.TEXT:
                try:
                    self._deliver(data.decode("utf-8"))
                except UnicodeDecodeError:
                    return self._failed(_INVALID_DATA, "invalid UTF-8 in a text message")
            else:
                self._deliver(bytes(data))
            return True
        self._buffer = bytearray(data)
        self._count = 1
        self._text = opcode is Lib.TEXT
        if self._text:
            self._decoder = _UTF8()
            return self._check_utf8(data, False)
        return True

    def receive_fast(self, data: bytes, budget: int) -> tuple[bytes, int]:
        """Rule 4: deliver the frames at the start of ``data`` (after ``partial``) that
        websockets would parse into whole messages without a change of its state, at most
        ``budget`` of them; return ``(rest, frames taken)``, ``rest`` starting at the first
        frame that is websockets' to parse, or past the budget (b"" when all was taken; an
        unfinished last frame that qualifies so far waits in ``partial``).

        A frame qualifies when its first byte is 0x81 or 0x82 (FIN, no reserved bit, text
        or binary: not a fragment, not a control frame), it is masked, its length has 7 or
        16 bits and is within the size limit, and, for text, it is valid UTF-8: anything
        else is websockets' to answer (1002, 1009, 1007, a pong, the fragments'
        reassembly), exactly as if it had parsed the frames before it too, since those
        changed none of its state.

        Saves, per frame, websockets' generator parser (three ``read_exact`` generators, a
        ``bytearray`` buffer copied in and sliced out), the ``Frame`` object and its checks,
        and the opcode dispatch."""
        if self.partial:
            data = self.partial + data
            self.partial = b""
        deliver, unmask, limit = self._deliver, Lib.apply_mask, self._max_size
        end, size, taken = 0, len(data), 0
        # Each check is made as soon as websockets' parser would make it (the first two
        # bytes, then the 16-bit length), so a frame it would reject is handed over with
        # the same bytes it would have reacted to, never held back waiting for more.
        while True:
            start = end
            if size - start < 2:
                break
            if taken >= budget:
                return data[start:], taken
            op, second = data[start], data[start + 1]
            if (op != 0x81 and op != 0x82) or second < 0x80:  # not FIN text/binary, or unmasked
                return data[start:], taken
            length = second & 0x7F
            if length < 126:
                body = start + 6  # 2 bytes of header, 4 of mask
            elif length == 126:
                if size - start < 4:
                    break
                length = (data[start + 2] << 8) | data[start + 3]
                body = start + 8
            else:  # 64-bit length: rare, and over 65535 bytes: websockets' to take
                return data[start:], taken
            if limit is not None and length > limit:
                return data[start:], taken  # websockets closes 1009 as soon as it has the length
            end = body + length
            if end > size:
                end = start
                break
            payload = unmask(data[body:end], data[body - 4 : body])
            if op == 0x81:
                try:
                    deliver(payload.decode("utf-8"))
                except UnicodeDecodeError:  # websockets' path closes 1007
                    return data[start:], taken
            else:
                deliver(payload)
            taken += 1
        if end < size:
            # The rest starts a frame that qualifies so far: wait for the rest of it.
            self.partial = data[end:] if end else data
        return b"", taken

    def take_partial(self, data: bytes = b"") -> bytes:
        """``partial`` + ``data``, and ``partial`` emptied: when the bytes go to websockets."""
        if self.partial:
            data = self.partial + data
            self.partial = b""
        return data

    def clear(self) -> None:
        """Drop the unfinished message (the connection failed)."""
        self._buffer = self._decoder = None
        self._count = 0

    def _check_utf8(self, data: bytes, final: bool) -> bool:
        assert self._decoder is not None
        try:
            self._decoder.decode(data, final)
        except UnicodeDecodeError:
            return self._failed(_INVALID_DATA, "invalid UTF-8 in a text message")
        return True

    def _failed(self, code: int, reason: str) -> bool:
        self.clear()
        self._fail(code, reason)
        return False
