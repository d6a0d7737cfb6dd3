"""protocol/memory.py: ``MemoryTransport``'s rules, one test each, against a recording
protocol (no HTTP): writes and ``out``, close and abort, visible reading, simulated
write pressure, opt-in half-close, and handing over to another protocol.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from hump_listener.protocol.memory import MemoryTransport


class Recording(asyncio.Protocol):
    """Records every callback it gets."""

    def __init__(self, keep_open_on_eof: bool = False) -> None:
        self.calls: list[str] = []
        self.data: list[bytes] = []
        self.transport: asyncio.BaseTransport | None = None
        self.keep_open_on_eof = keep_open_on_eof

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.calls.append("made")
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.calls.append("data")
        self.data.append(data)

    def eof_received(self) -> bool:
        self.calls.append("eof")
        return self.keep_open_on_eof

    def connection_lost(self, exc: Exception | None) -> None:
        self.calls.append("lost")

    def pause_writing(self) -> None:
        self.calls.append("pause_writing")


async def settle(until: Callable[[], bool], turns: int = 50) -> None:
    for _ in range(turns):
        if until():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


async def connected(**kwargs: Any) -> tuple[MemoryTransport, Recording]:
    transport = MemoryTransport(asyncio.get_running_loop(), **kwargs)
    protocol = Recording()
    transport.connect(protocol)
    return transport, protocol


async def test_connect_and_feed_drive_the_protocol_as_a_socket_would() -> None:
    transport, protocol = await connected()
    assert protocol.transport is transport
    transport.feed(b"abc")
    transport.feed(b"def")
    assert protocol.calls == ["made", "data", "data"]
    assert protocol.data == [b"abc", b"def"]
    assert transport.get_protocol() is protocol


async def test_extra_info_has_peer_and_sockname_and_what_was_given() -> None:
    transport, _ = await connected(peer=("10.0.0.2", 1234), sockname=("0.0.0.0", 80), extra={"sslcontext": "ctx"})
    assert transport.get_extra_info("peername") == ("10.0.0.2", 1234)
    assert transport.get_extra_info("sockname") == ("0.0.0.0", 80)
    assert transport.get_extra_info("sslcontext") == "ctx"
    assert transport.get_extra_info("socket", "none") == "none"


async def test_rule_1_writes_accumulate_or_go_to_on_write_and_are_counted() -> None:
    transport, _ = await connected()
    transport.write(b"ab")
    transport.writelines([b"c", bytearray(b"d"), memoryview(b"e")])
    assert (bytes(transport.out), transport.writes) == (b"abcde", 2)
    seen: list[bytes] = []
    transport, _ = await connected(on_write=seen.append)
    transport.write(bytearray(b"xy"))
    assert seen == [b"xy"] and all(type(chunk) is bytes for chunk in seen)
    assert transport.out == b""


async def test_rule_1_writes_after_close_are_dropped_and_counted() -> None:
    transport, _ = await connected()
    transport.write(b"a")
    transport.close()
    transport.write(b"b")
    transport.write(b"c")
    assert bytes(transport.out) == b"a"
    assert (transport.writes, transport.writes_after_close) == (1, 2)


async def test_rule_2_close_tells_on_close_at_once_and_the_protocol_next_turn() -> None:
    closed: list[bool] = []
    transport, protocol = await connected(on_close=lambda: closed.append(True))
    transport.close()
    assert closed == [True]
    assert transport.is_closing()
    assert "lost" not in protocol.calls and not transport.lost  # not yet: next loop turn
    await settle(lambda: transport.lost)
    assert protocol.calls[-1] == "lost"
    transport.close()  # a second close is a no-op: no second connection_lost
    for _ in range(3):
        await asyncio.sleep(0)
    assert protocol.calls.count("lost") == 1
    assert closed == [True]


async def test_rule_2_abort_is_a_close_that_says_so() -> None:
    transport, protocol = await connected()
    transport.abort()
    assert transport.aborted and transport.closing
    await settle(lambda: "lost" in protocol.calls)


async def test_feed_eof_closes_unless_the_protocol_keeps_it_open() -> None:
    transport, protocol = await connected()
    assert transport.feed_eof() is False
    assert protocol.calls[-1] == "eof"
    assert transport.closing
    transport = MemoryTransport(asyncio.get_running_loop())
    keeper = Recording(keep_open_on_eof=True)
    transport.connect(keeper)
    assert transport.feed_eof() is True
    assert not transport.closing


async def test_rule_3_reading_is_visible_and_closing_leaves_it_readable() -> None:
    transport, _ = await connected()
    assert transport.is_reading() and transport.readable.is_set()
    transport.pause_reading()
    assert not transport.is_reading() and not transport.readable.is_set()
    transport.resume_reading()
    assert transport.is_reading() and transport.readable.is_set()
    transport.pause_reading()
    transport.close()
    assert transport.readable.is_set()  # a feeder waiting on it wakes up to see the close
    transport.pause_reading()  # ignored once closing
    assert transport.readable.is_set()


async def test_rule_4_pause_on_write_pauses_the_protocols_writing_on_every_write() -> None:
    transport, protocol = await connected()
    transport.write(b"a")
    assert "pause_writing" not in protocol.calls
    transport.pause_on_write = True
    transport.write(b"b")
    transport.write(b"c")
    assert protocol.calls.count("pause_writing") == 2
    assert transport.get_write_buffer_size() == 0


async def test_rule_5_half_close_is_opt_in() -> None:
    transport, _ = await connected()
    assert transport.can_write_eof() is False
    transport, _ = await connected(half_close=True)
    assert transport.can_write_eof() is True
    transport.write_eof()
    assert transport.eof_written and not transport.closing
    transport.close()
    with pytest.raises(OSError):
        transport.write_eof()


async def test_rule_6_set_protocol_hands_the_connection_over() -> None:
    transport, first = await connected()
    second = Recording()
    transport.set_protocol(second)
    transport.feed(b"after the upgrade")
    assert transport.get_protocol() is second
    assert second.data == [b"after the upgrade"]
    assert first.data == []
    transport.close()
    await settle(lambda: "lost" in second.calls)
    assert "lost" not in first.calls
