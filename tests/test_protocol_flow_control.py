"""FlowControl: idempotent pause/resume of reading, drain while writing is paused; half_close."""

from __future__ import annotations

import asyncio

from protocol_helpers import FakeTransport, settle

from hump_listener.protocol.flow_control import FlowControl, half_close


async def test_reading_pause_and_resume_are_idempotent() -> None:
    transport = FakeTransport(asyncio.get_running_loop())
    flow = FlowControl(transport, asyncio.get_running_loop())
    flow.pause_reading()
    flow.pause_reading()
    assert not transport.reading and flow.read_paused
    flow.resume_reading()
    assert transport.reading and not flow.read_paused
    transport.reading = False  # a resume we did not pause for must not touch the transport
    flow.resume_reading()
    assert not transport.reading


async def test_drain_returns_at_once_when_not_paused() -> None:
    loop = asyncio.get_running_loop()
    flow = FlowControl(FakeTransport(loop), loop)
    await flow.drain()
    assert flow._drain_waiter is None  # no future created on the fast path


async def test_drain_waits_for_resume_writing() -> None:
    loop = asyncio.get_running_loop()
    flow = FlowControl(FakeTransport(loop), loop)
    flow.pause_writing()
    waiter = asyncio.ensure_future(flow.drain())
    await asyncio.sleep(0)
    assert not waiter.done()
    flow.resume_writing()
    await settle(waiter.done)
    assert waiter.result() is None


async def test_cancelled_drain_does_not_poison_the_next_one() -> None:
    loop = asyncio.get_running_loop()
    flow = FlowControl(FakeTransport(loop), loop)
    flow.pause_writing()
    first = asyncio.ensure_future(flow.drain())
    await asyncio.sleep(0)
    first.cancel()
    await settle(first.done)
    second = asyncio.ensure_future(flow.drain())
    await asyncio.sleep(0)
    assert not second.done()
    flow.resume_writing()
    await settle(second.done)
    assert second.result() is None


async def test_released_reading_never_pauses_again() -> None:
    loop = asyncio.get_running_loop()
    transport = FakeTransport(loop)
    flow = FlowControl(transport, loop)
    flow.pause_reading()
    flow.release_reading()  # the client has finished sending: read what is left
    assert transport.reading and not flow.read_paused and flow.released
    flow.pause_reading()
    assert transport.reading and not flow.read_paused


class Ending(asyncio.Transport):
    """A transport that records how it was ended; ``eof`` says what ``write_eof`` does."""

    def __init__(self, eof: str) -> None:
        super().__init__()
        self.eof = eof
        self.ended: list[str] = []

    def can_write_eof(self) -> bool:
        return self.eof != "unsupported"

    def write_eof(self) -> None:
        if self.eof == "gone":
            raise OSError(107, "Transport endpoint is not connected")
        self.ended.append("fin")

    def close(self) -> None:
        self.ended.append("close")

    def abort(self) -> None:
        self.ended.append("abort")


def test_half_close_sends_a_fin_where_it_can() -> None:
    transport = Ending("ok")
    assert half_close(transport) is True
    assert transport.ended == ["fin"]


def test_half_close_closes_a_transport_that_cannot() -> None:
    transport = Ending("unsupported")
    assert half_close(transport) is False
    assert transport.ended == ["close"]


def test_half_close_aborts_when_the_client_is_already_gone() -> None:
    transport = Ending("gone")
    assert half_close(transport) is False
    assert transport.ended == ["abort"]
