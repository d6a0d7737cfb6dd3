"""protocol/ws_assembler.py on its own, with bytes: the ``Assembler`` is given two
recording callbacks, frames parsed by websockets' own ``ServerProtocol`` from bytes (as the
connection gives them), and, on the fast path, the bytes themselves. Whole connections are
tests/test_protocol_websocket.py's; the fast path compared byte for byte with websockets
alone is tests/test_websocket_fast_path.py's."""

from __future__ import annotations

import tracemalloc

import pytest
from ws_helpers import BINARY, CONT, PING, TEXT, binary, frame, text

from hump_listener.protocol.ws_assembler import Assembler
from hump_listener.protocol.ws_frames import bind_lib


class Recorded:
    """An assembler whose callbacks record, fed from bytes through websockets' parser."""

    def __init__(self, max_size: int | None = 1 << 20, max_fragments: int = 4096) -> None:
        lib = bind_lib()
        self.ws = lib.ServerProtocol(state=lib.OPEN, max_size=max_size)
        self.delivered: list[str | bytes] = []
        self.failed: list[tuple[int, str]] = []
        self.assembler = Assembler(
            self.delivered.append, lambda code, reason: self.failed.append((code, reason)), max_size, max_fragments
        )

    def feed(self, data: bytes) -> None:
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if event.opcode in (bind_lib().TEXT, bind_lib().BINARY, bind_lib().CONT):
                self.assembler.put(event)


def test_whole_messages_are_delivered_as_str_or_bytes() -> None:
    rec = Recorded()
    rec.feed(text("héllo") + binary(b"\x00\x01"))
    assert rec.delivered == ["héllo", b"\x00\x01"] and rec.failed == []


def test_fragments_are_joined_and_control_frames_between_them_do_not_matter() -> None:
    rec = Recorded()
    rec.feed(frame(BINARY, b"ab", fin=False) + frame(PING, b"p") + frame(CONT, b"cd", fin=False))
    assert rec.delivered == [] and rec.assembler.mid_message and rec.assembler.held == 4
    rec.feed(frame(CONT, b"e"))
    assert rec.delivered == [b"abcde"] and not rec.assembler.mid_message and rec.assembler.held == 0


def test_utf8_is_checked_as_fragments_arrive() -> None:
    rec = Recorded()
    rec.feed(frame(TEXT, "é".encode()[:1], fin=False))
    assert rec.delivered == [] and rec.failed == []  # half a character: wait for the rest
    rec.feed(frame(CONT, "é".encode()[1:]))
    assert rec.delivered == ["é"]
    rec.feed(frame(TEXT, b"ok", fin=False) + frame(CONT, b"\xc3\x28", fin=False))  # never finished
    assert rec.failed == [(1007, "invalid UTF-8 in a text message")]
    assert not rec.assembler.mid_message  # dropped at once


def test_invalid_utf8_in_a_whole_frame_is_1007() -> None:
    rec = Recorded()
    rec.feed(frame(TEXT, b"\xff"))
    assert rec.failed and rec.failed[0][0] == 1007 and rec.delivered == []


def test_a_message_of_too_many_fragments_is_1009() -> None:
    rec = Recorded(max_fragments=10)
    rec.feed(frame(TEXT, b"a", fin=False) + b"".join(frame(CONT, b"b", fin=False) for _ in range(9)))
    assert rec.failed == []  # 10 frames: the limit
    rec.feed(frame(CONT, b"c", fin=False))
    assert rec.failed == [(1009, "too many fragments")] and rec.assembler.held == 0


def test_an_unfinished_message_holds_about_its_payload_whatever_the_fragments() -> None:
    """Issue 18.1 at a small scale: 50,000 one-byte fragments used to be 50,000 ``bytes``
    objects in a list (~40 bytes each); joined as they arrive they are one buffer."""
    lib = bind_lib()
    from websockets.frames import Frame

    assembler = Assembler(lambda message: None, lambda code, reason: None, None, 1 << 30)
    n = 50_000
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        assembler.put(Frame(lib.TEXT, b"x", fin=False))
        for _ in range(n - 1):
            assembler.put(Frame(lib.CONT, b"x", fin=False))
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert assembler.held == n
    assert held <= 2 * n + 4096


def test_the_fast_path_takes_whole_frames_within_its_budget() -> None:
    rec = Recorded()
    last = text("é" * 100)
    data = text("hello") + binary(b"\x00\x01") + last
    assert rec.assembler.receive_fast(data, 2) == (last, 2)
    assert rec.delivered == ["hello", b"\x00\x01"]
    assert rec.assembler.receive_fast(last, 2) == (b"", 1)
    assert rec.delivered[-1] == "é" * 100


def test_an_unfinished_fast_frame_waits_in_partial() -> None:
    rec = Recorded()
    whole = text("x" * 300)
    assert rec.assembler.receive_fast(whole[:7], 10) == (b"", 0)
    assert rec.assembler.partial == whole[:7] and rec.delivered == []
    assert rec.assembler.receive_fast(whole[7:], 10) == (b"", 1)
    assert rec.delivered == ["x" * 300] and rec.assembler.partial == b""


@pytest.mark.parametrize(
    "data",
    [
        frame(TEXT, b"ab", fin=False),  # a fragment
        frame(PING, b"p"),  # a ping
        frame(TEXT, b"a", rsv=4),  # a reserved bit
        frame(TEXT, b"a", masked=False),  # unmasked
        frame(TEXT, b"\xff"),  # invalid UTF-8
        frame(BINARY, b"a" * 70000),  # a 64-bit length
    ],
)
def test_anything_else_is_handed_to_websockets_untouched(data: bytes) -> None:
    rec = Recorded()
    assert rec.assembler.receive_fast(text("ok") + data, 10) == (data, 1)
    assert rec.delivered == ["ok"]


def test_a_frame_over_the_limit_is_handed_over_as_soon_as_its_length_is_read() -> None:
    rec = Recorded(max_size=10)
    big = binary(b"a" * 200)
    assert rec.assembler.receive_fast(big[:4], 10) == (big[:4], 0)


def test_take_partial_hands_the_kept_bytes_over_once() -> None:
    rec = Recorded()
    start = text("x" * 300)[:5]
    rec.assembler.receive_fast(start, 10)
    assert rec.assembler.take_partial(b"more") == start + b"more"
    assert rec.assembler.take_partial() == b""
