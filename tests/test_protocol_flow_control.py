"""FlowControl: idempotent pause/resume of reading, drain while writing is paused."""

from __future__ import annotations

import asyncio

from protocol_helpers import FakeTransport, settle

from hump_listener.protocol.flow_control import FlowControl


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
