"""protocol/ws_frames.py on its own: the ``Frames`` mixin's reading on a bare object that
records what it would deliver and close. Whole connections, ``frame_head``, and the fast
path compared byte for byte with websockets alone, are tests/test_protocol_websocket.py's
and tests/test_websocket_fast_path.py's."""

from __future__ import annotations

from typing import Any

import pytest
from ws_helpers import BINARY, CONT, TEXT, binary, frame, text

from hump_listener.protocol.ws_frames import Frames
from hump_listener.protocol.ws_handshake import bind_lib, open_state


class Bare(Frames):
    """The state ``WebSocketProtocol`` gives the mixin; delivering and closing recorded."""

    def __init__(self, max_size: int | None = 1 << 20) -> None:
        lib = bind_lib()
        self._ws = lib.ServerProtocol(state=open_state(), max_size=max_size)
        self.transport: Any = None
        self._lost = False
        self._closed_by = None
        self._fragments = []
        self._fragment_text = False
        self._decoder = None
        self._fast_in = True
        self._partial = b""
        self._max_size = max_size
        self._ping_sent_at = None
        self.delivered: list[str | bytes] = []
        self.closed: list[int] = []

    def _deliver(self, message: str | bytes) -> None:
        self.delivered.append(message)

    def _mark_closed(self, code: int, reason: str) -> None:
        self.closed.append(code)

    def _arm_close_timer(self) -> None:
        pass

    def through_websockets(self, data: bytes) -> None:
        self._ws.receive_data(data)
        self._handle(self._ws.events_received())


def test_whole_frames_are_taken_by_the_fast_path() -> None:
    bare = Bare()
    rest = bare._receive_fast(text("hello") + binary(b"\x00\x01") + text("é" * 100))
    assert rest == b""
    assert bare.delivered == ["hello", b"\x00\x01", "é" * 100]


def test_an_unfinished_frame_waits_in_partial() -> None:
    bare = Bare()
    whole = text("x" * 300)
    assert bare._receive_fast(whole[:7]) == b""
    assert bare._partial == whole[:7] and bare.delivered == []


@pytest.mark.parametrize(
    "data",
    [
        frame(TEXT, b"ab", fin=False),  # a fragment
        frame(0x9, b"p"),  # a ping
        frame(TEXT, b"a", rsv=4),  # a reserved bit
        frame(TEXT, b"a", masked=False),  # unmasked
        frame(TEXT, b"\xff"),  # invalid UTF-8
        frame(BINARY, b"a" * 70000),  # a 64-bit length
    ],
)
def test_anything_else_is_handed_to_websockets_untouched(data: bytes) -> None:
    bare = Bare()
    assert bare._receive_fast(text("ok") + data) == data
    assert bare.delivered == ["ok"]


def test_a_frame_over_the_limit_is_handed_over_as_soon_as_its_length_is_read() -> None:
    bare = Bare(max_size=10)
    big = binary(b"a" * 200)
    assert bare._receive_fast(big[:4]) == big[:4]


def test_fragments_are_reassembled_and_utf8_checked_as_they_arrive() -> None:
    bare = Bare()
    bare.through_websockets(frame(TEXT, "é".encode()[:1], fin=False))
    assert bare.delivered == [] and bare.closed == []
    bare.through_websockets(frame(CONT, "é".encode()[1:]))
    assert bare.delivered == ["é"]
    bare.through_websockets(frame(TEXT, b"ok", fin=False) + frame(CONT, b"\xc3\x28", fin=False))
    assert bare.closed == [1007]
    assert bare._fragments == []


def test_the_frame_boundary_is_recognised_in_websockets_parser() -> None:
    bare = Bare()
    assert bare._at_frame_boundary()
    bare._ws.receive_data(text("abc")[:3])  # a header begun
    assert not bare._at_frame_boundary()
