"""protocol/ws_frames.py on its own, with bytes: websockets bound once, frame headers, the
frame splitter that bounds a turn's work, the frame-boundary check and the write batch.
Whole connections are tests/test_protocol_websocket.py's; the fast path compared byte for
byte with websockets alone is tests/test_websocket_fast_path.py's."""

from __future__ import annotations

import logging
import random

import pytest
from ws_helpers import BINARY, PING, TEXT, binary, frame, text

from hump_listener.protocol.ws_frames import (
    PONGS_PER_BATCH,
    QUIET,
    FrameSplitter,
    at_frame_boundary,
    batch,
    bind_lib,
    frame_head,
)


def test_websockets_is_bound_once_with_its_names() -> None:
    from websockets.frames import TEXT as WS_TEXT
    from websockets.protocol import OPEN

    lib = bind_lib()
    assert lib.bound and bind_lib() is lib
    assert lib.OPEN is OPEN and lib.TEXT is WS_TEXT


def test_websockets_own_info_lines_are_quiet(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="hump_listener.error"):
        assert not QUIET.isEnabledFor(logging.INFO)
        assert QUIET.isEnabledFor(logging.WARNING)


@pytest.mark.parametrize("length", [0, 1, 125, 126, 65535, 65536])
def test_frame_head_is_what_websockets_serialises(length: int) -> None:
    from websockets.frames import Frame, Opcode

    payload = b"x" * length
    expected = Frame(Opcode.BINARY, payload).serialize(mask=False)
    assert frame_head(0x82, length) + payload == expected


def test_the_splitter_counts_whole_frames_and_stops_at_the_budget() -> None:
    frames = [text("a"), binary(b"b" * 300), frame(PING, b"p"), binary(b"c" * 70000)]
    data = b"".join(frames)
    splitter = FrameSplitter()
    end, done = splitter.split(data, 2)
    assert (end, done) == (len(frames[0]) + len(frames[1]), 2)
    assert splitter.at_boundary
    assert splitter.split(data[end:], 10) == (len(data) - end, 2)
    assert splitter.at_boundary


def test_the_splitter_keeps_its_place_across_reads_cut_anywhere() -> None:
    rng = random.Random(7)
    sizes = (0, 5, 125, 126, 300, 70000)
    frames = [frame(rng.choice((TEXT, BINARY, PING)), b"z" * rng.choice(sizes)) for _ in range(60)]
    data = b"".join(frames)
    splitter, pos, total = FrameSplitter(), 0, 0
    while pos < len(data):
        step = rng.randint(1, 3000)
        chunk = data[pos : pos + step]
        end, done = splitter.split(chunk, 1 << 30)
        assert end == len(chunk)  # an unlimited budget takes every byte
        total += done
        pos += step
    assert total == len(frames) and splitter.at_boundary


def test_the_splitter_is_mid_frame_inside_a_header_or_a_payload() -> None:
    data = binary(b"h" * 1000)
    splitter = FrameSplitter()
    assert splitter.split(data[:3], 5) == (3, 0) and not splitter.at_boundary  # header cut
    assert splitter.split(data[3:20], 5) == (17, 0) and not splitter.at_boundary  # payload
    assert splitter.split(data[20:], 5) == (len(data) - 20, 1) and splitter.at_boundary


def test_the_frame_boundary_is_recognised_in_websockets_parser() -> None:
    lib = bind_lib()
    ws = lib.ServerProtocol(state=lib.OPEN, max_size=1 << 20)
    assert at_frame_boundary(ws)
    ws.receive_data(text("abc")[:3])  # a header begun
    assert not at_frame_boundary(ws)
    ws.receive_data(text("abc")[3:])
    assert at_frame_boundary(ws)


def test_a_batch_is_one_write_and_the_half_close_is_reported() -> None:
    assert batch([b"\x81\x01a"]) == (b"\x81\x01a", False)
    assert batch([b"\x81\x01a", b"\x88\x00", b""]) == (b"\x81\x01a\x88\x00", True)


def test_a_flood_of_pongs_in_a_batch_keeps_only_the_last() -> None:
    few = [b"\x8a\x01" + bytes([i]) for i in range(PONGS_PER_BATCH)]
    assert batch(few) == (b"".join(few), False)  # answered one by one (Autobahn 2.10)
    many = [b"\x8a\x01" + bytes([i]) for i in range(PONGS_PER_BATCH + 5)]
    data, eof = batch([b"\x81\x01a", *many, b"\x81\x01b"])
    assert data == b"\x81\x01a" + many[-1] + b"\x81\x01b" and not eof
