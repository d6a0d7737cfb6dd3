"""WebSocket frames (RFC 6455 §5) as bytes: the ``websockets`` package bound once, and the
few frame facts the connection needs without it. Pure: no I/O, no connection.

- ``Lib``: the names of websockets used per frame, bound on the first upgrade
  (``bind_lib``); websockets is imported lazily, so a server that never upgrades never
  loads it.
- ``frame_head``: the header of an unmasked FIN frame, for the fast path's writes.
- ``FrameSplitter``: where the frames of a byte stream end (headers only), so that the
  connection hands websockets at most a budget of frames per loop turn.
- ``at_frame_boundary``: whether websockets' parser is between frames, so that a whole
  frame may take the fast path without a change of its state.
- ``batch``: the frames websockets queued, as one write; a batch with more pongs than
  allowed (``PONGS_PER_BATCH``, or one for a read too big for one turn) keeps only the
  last (RFC 6455 §5.5.3 lets an endpoint answer only the most recent ping).
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = [
    "EXTRA_HINT",
    "PONGS_PER_BATCH",
    "QUIET",
    "FrameSplitter",
    "Lib",
    "at_frame_boundary",
    "batch",
    "bind_lib",
    "frame_head",
    "load_websockets",
]

logger = logging.getLogger("hump_listener.error")

EXTRA_HINT = "WebSockets need the websockets package: pip install websockets"


def load_websockets() -> Any:
    """The ``websockets`` package, or a RuntimeError naming the extra that installs it."""
    try:
        import websockets.frames
        import websockets.server
    except ImportError as exc:  # pragma: no cover - exercised in a venv without it
        raise RuntimeError(EXTRA_HINT) from exc
    return websockets


class Lib:
    """The names of websockets used per frame, bound once by ``bind_lib`` on the first
    handshake: the package is imported lazily, so this module cannot import it at import
    time, and a ``from websockets... import`` statement in a hot function costs about a
    microsecond per call even once the module is loaded (it goes through importlib's
    ``_handle_fromlist``); a class attribute costs tens of nanoseconds."""

    bound = False
    OPEN: Any = None
    TEXT: Any = None
    BINARY: Any = None
    CONT: Any = None
    PONG: Any = None
    CLOSE: Any = None
    ServerProtocol: Any = None
    #: websockets' own unmasking: the C speedup, or its pure-Python fallback if that
    #: was not built, so both paths always unmask with the same function.
    apply_mask: Any = None
    #: Recognising that websockets' parser is at a frame boundary (``at_frame_boundary``)
    #: means recognising its generators; None if this version's look different, which
    #: turns the fast read path off (everything then goes through websockets).
    parse_code: Any = None
    at_eof_code: Any = None


def bind_lib() -> type[Lib]:
    if not Lib.bound:
        load_websockets()
        from websockets import frames, protocol, server, streams

        lib = Lib
        lib.OPEN, lib.ServerProtocol = protocol.OPEN, server.ServerProtocol
        lib.TEXT, lib.BINARY, lib.CONT = frames.TEXT, frames.BINARY, frames.CONT
        lib.PONG, lib.CLOSE = frames.PONG, frames.CLOSE
        lib.apply_mask = frames.apply_mask  # type: ignore[attr-defined]
        parse = getattr(protocol.Protocol, "parse", None)
        at_eof = getattr(streams.StreamReader, "at_eof", None)
        lib.parse_code = getattr(parse, "__code__", None)
        lib.at_eof_code = getattr(at_eof, "__code__", None)
        lib.bound = True
    return Lib


class _QuietLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """websockets logs every open and close at INFO on its own loggers; ours say what
    matters, so only its warnings and errors pass, on ``hump_listener.error``."""

    def isEnabledFor(self, level: int) -> bool:
        return level >= logging.WARNING and self.logger.isEnabledFor(level)


#: The logger every websockets protocol object here is given.
QUIET = _QuietLogger(logger, {})


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


class FrameSplitter:
    """Where frames end in a stream of client bytes, from their headers alone (RFC 6455
    §5.2: 2 bytes, then 0, 2 or 8 of extended length, then 4 of mask if the mask bit is
    set). It keeps its place across calls: the rest of a frame's payload still to come,
    or the first bytes of a header cut by a read.

    It judges nothing: a header websockets will refuse (a reserved bit, an unmasked
    frame, a length over the limit) is counted like any other, and websockets, which is
    fed the same bytes in the same order, answers it. A miscount could only change how
    much work one loop turn does, never what is parsed."""

    __slots__ = ("_head", "_left")

    def __init__(self) -> None:
        self._head = b""  # the first bytes of a header cut short by the end of a read
        self._left = 0  # payload bytes of the current frame still to come

    @property
    def at_boundary(self) -> bool:
        """Everything split so far ends at a frame's end."""
        return not self._left and not self._head

    def split(self, data: bytes, frames: int) -> tuple[int, int]:
        """``(n, done)``: the first ``n`` bytes of ``data`` complete ``done`` frames, at
        most ``frames``; ``n < len(data)`` only when ``frames`` frames end before the end of
        ``data`` (the rest starts the next frame)."""
        size, pos, done = len(data), 0, 0
        left = self._left
        if left:
            if left >= size:
                self._left = left - size
                return size, int(left == size)
            pos, done, self._left = left, 1, 0
        head = self._head
        while done < frames and pos < size:
            buf, at = (head + data[pos : pos + 14], 0) if head else (data, pos)
            avail = len(buf) - at
            if avail < 2:
                self._head = buf[at:] if head else data[pos:]
                return size, done
            second = buf[at + 1]
            length = second & 0x7F
            extra = 2 if length == 126 else 8 if length == 127 else 0
            header = 2 + extra + (4 if second & 0x80 else 0)
            if avail < header:
                self._head = buf[at:] if head else data[pos:]
                return size, done
            if extra:
                length = int.from_bytes(buf[at + 2 : at + 2 + extra], "big")
            pos += header - len(head)
            head = b""
            end = pos + length
            if end > size:
                self._head, self._left = b"", end - size
                return size, done
            pos = end
            done += 1
        self._head = head
        return pos, done


def at_frame_boundary(ws: Any) -> bool:
    """Whether websockets (a ``ServerProtocol``) would take a whole data frame without a
    change of state: OPEN, no parser error, not mid-message, and its parser suspended
    between frames, i.e. in ``Protocol.parse()``'s wait for the next byte (the generator
    check is what tells "between frames" from "a header's first bytes read"; it costs one
    or two microseconds, and runs only after websockets parsed)."""
    if ws.state is not Lib.OPEN or ws.parser_exc is not None or ws.current_size is not None:
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


#: The first byte of a pong (FIN, opcode 0xA): control frames are never compressed or
#: fragmented, so every pong websockets writes starts with it.
_PONG = 0x8A
#: Pings of one read answered one by one when the read is handled in one turn; more are a
#: flood, and only the last of each batch is answered. A keep-alive sends one ping at a
#: time and browsers send none; Autobahn's case 2.10 sends 10 in one write and expects 10
#: pongs.
PONGS_PER_BATCH = 16


def batch(writes: list[bytes], max_pongs: int = PONGS_PER_BATCH) -> tuple[bytes, bool]:
    """What websockets queued (``data_to_send()``: one item per frame, and an empty item,
    its last, to half-close) as one write: ``(bytes, half-close after them)``. Of more than
    ``max_pongs`` pongs only the last is kept (RFC 6455 §5.5.3), so a flood of pings is
    answered once per batch, not once per ping."""
    eof = not writes[-1]
    if eof:
        writes = writes[:-1]
    if len(writes) == 1:
        return writes[0], eof
    pongs = [i for i, data in enumerate(writes) if data[0] == _PONG]
    if len(pongs) > max_pongs:
        drop = set(pongs[:-1])
        writes = [data for i, data in enumerate(writes) if i not in drop]
    return b"".join(writes), eof
