"""What one WebSocket client can cost the server (issue 18, items 1, 2, 3, 9), bytes in,
bytes out over the in-memory transport; each test failed on the code before the fix.

- 18.1: an unfinished message of tiny fragments holds about its payload, not a ``bytes``
  object per fragment, and its fragment count is bounded (1009).
- 18.2: one read of 40,000 pings is handled a budget at a time, yielding to the loop
  between budgets, and answered with a bounded number of pongs (the last ping's).
- 18.3: nothing is written once the transport is closing, and a batch is one write.
- 18.9: a closing handshake begun by the shutdown ends by ``ServerState.close_by``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import tracemalloc

import pytest
from protocol_helpers import serve, settle
from ws_helpers import CLOSE, CONT, PING, PONG, TEXT, MemWS, echo_app, frame

from hump_listener.protocol.websocket import FRAME_BUDGET

pytestmark = pytest.mark.timeout(60)


async def feed_honouring_flow(ws: MemWS, chunks: list[bytes]) -> None:
    """Feed ``chunks`` as a socket transport would: nothing while reading is paused."""
    transport = ws.transport
    for chunk in chunks:
        await ws.settle(lambda: transport.reading or transport.closing)
        assert not transport.closing
        transport.feed(chunk)


# -- 18.1 fragments ---------------------------------------------------------------------------


async def test_an_unfinished_message_of_tiny_fragments_holds_about_its_payload() -> None:
    n = 20_000
    ws = MemWS(echo_app(), ws_max_fragments=10 * n, ws_ping_interval=None)
    await ws.open()
    frames = [frame(TEXT, b"a", fin=False)] + [frame(CONT, b"b", fin=False) for _ in range(n - 1)]
    chunks = [b"".join(frames[i : i + 500]) for i in range(0, n, 500)]  # ~3.5 KB reads
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        await feed_honouring_flow(ws, chunks)
        await ws.settle(lambda: ws.transport.reading)  # every frame handled
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert not ws.transport.closing and ws.frames() == []  # still open, nothing answered
    # n bytes of payload: at most about twice that plus a constant (a read's buffers).
    # One ``bytes`` per fragment held ~40 bytes each: ~800 KB here.
    assert held < 2 * n + 64 * 1024, held


async def test_a_message_of_more_fragments_than_the_limit_closes_1009() -> None:
    ws = MemWS(echo_app(), ws_max_fragments=100, ws_ping_interval=None)
    await ws.open()
    frames = [frame(TEXT, b"a", fin=False)] + [frame(CONT, b"b", fin=False) for _ in range(120)]
    ws.send(b"".join(frames))
    out = await ws.wait_frames(1)
    assert out[0].opcode == CLOSE and out[0].code == 1009 and out[0].reason == b"too many fragments"


async def test_a_message_within_the_fragment_limit_is_delivered() -> None:
    ws = MemWS(echo_app(), ws_max_fragments=100, ws_ping_interval=None)
    await ws.open()
    frames = [frame(TEXT, b"a", fin=False)] + [frame(CONT, b"b", fin=i == 98) for i in range(99)]
    ws.send(b"".join(frames))
    out = await ws.wait_frames(1)
    assert out[0].opcode == TEXT and out[0].payload == b"a" + b"b" * 99


# -- 18.2 bounded work per callback, coalesced pongs ------------------------------------------


async def test_a_read_of_40000_pings_yields_to_the_loop_and_writes_few_pongs() -> None:
    ws = MemWS(echo_app(), ws_ping_interval=None)
    await ws.open()
    n = 40_000
    pings = b"".join(frame(PING, n_.to_bytes(4, "big")) for n_ in range(n))
    transport = ws.transport
    writes = transport.writes
    transport.feed(pings)  # one read, one data_received
    # That callback handled one budget of frames, wrote once, and paused reading until
    # a later loop turn: the rest of the read waits its turn behind other connections.
    assert transport.writes - writes == 1
    assert not transport.reading
    first = ws.frames()
    assert 1 <= len(first) <= FRAME_BUDGET and all(f.opcode == PONG for f in first)
    turns = 0

    def done() -> bool:
        nonlocal turns
        turns += 1
        return transport.reading

    await settle(done, turns=4 * n // FRAME_BUDGET)
    pongs = first + ws.frames()
    assert turns >= n // FRAME_BUDGET  # at most one budget of frames per loop turn
    assert all(f.opcode == PONG for f in pongs)
    assert len(pongs) <= n // 10  # one per batch, not one per ping
    assert pongs[-1].payload == (n - 1).to_bytes(4, "big")  # the most recent ping is answered
    assert transport.writes - writes <= turns + 1  # at most one write per turn


async def test_a_few_pings_still_get_one_pong_each_in_order() -> None:
    ws = MemWS(echo_app(), ws_ping_interval=None)
    await ws.open()
    ws.send(b"".join(frame(PING, bytes([i])) for i in range(10)))
    pongs = await ws.wait_frames(10)
    assert [f.payload for f in pongs] == [bytes([i]) for i in range(10)]


# -- 18.3 no write once closing ---------------------------------------------------------------


async def test_nothing_is_written_after_the_transport_is_closing() -> None:
    """asyncio's socket transport logs "socket.send() raised exception." for each write
    after a send failed (the client reset): the first write that finds the reset closes the
    transport, and no write may follow it."""
    ws = MemWS(echo_app(), ws_ping_interval=None)
    await ws.open()
    transport = ws.transport
    transport.on_write = lambda data: transport.abort()  # every send now finds the reset
    writes = transport.writes
    transport.feed(b"".join(frame(PING, b"p") + frame(TEXT, b"m") for _ in range(5000)))
    await ws.settle(lambda: transport.lost)
    for _ in range(10):  # and the handler's sends after it
        await asyncio.sleep(0)
    assert transport.writes - writes == 1 and transport.writes_after_close == 0


# -- 18.9 the close wait fits in the drain -----------------------------------------------------


async def test_a_shutdown_close_handshake_ends_by_close_by() -> None:
    ws = MemWS(echo_app(), clock=True, ws_close_timeout=10.0, ws_ping_interval=None)
    await ws.open()
    clock, state = ws.clock, ws.conn.state
    assert clock is not None
    state.shutting_down = True
    state.close_by = clock.now + 2.0  # what the drain sets: half of it
    ws.proto.shutdown()
    out = ws.frames()
    assert out and out[0].opcode == CLOSE and out[0].code == 1001
    clock.advance(1.9)
    assert not ws.transport.aborted
    clock.advance(0.2)  # past close_by, long before ws_close_timeout
    assert ws.transport.aborted


async def test_a_client_that_answers_pings_but_never_reads_gets_the_send_timeout() -> None:
    """Issue 18.9's second half, as the README's limits table says: our writes are stuck
    (the client reads nothing), so we stop reading, and that silence is ours: the ping
    timeout (20 + 20 s) does not cut it; ``send_timeout`` (60 s) drops it (1006)."""
    ws = MemWS(echo_app(), clock=True, ws_ping_interval=20.0, ws_ping_timeout=20.0, send_timeout=60.0)
    await ws.open()
    clock = ws.clock
    assert clock is not None
    ws.proto.pause_writing()  # the transport's buffer is above its high-water mark
    clock.advance(59.0)
    assert not ws.transport.aborted and not ws.transport.closing
    assert [f for f in ws.frames() if f.opcode == CLOSE] == []
    clock.advance(2.0)
    assert ws.transport.aborted


async def test_a_client_that_resets_under_a_ping_flood_costs_no_log_flood(caplog: pytest.LogCaptureFixture) -> None:
    """Issue 18.3's reproduction over a real socket, in-process: 200,000 pings (1.2 MB), the
    first pongs read, then a reset. asyncio's transport logs "socket.send() raised
    exception." for every write after a failed send: ~9,000 lines per try before."""
    from ws_helpers import SockWS

    async with serve(echo_app(), ws_ping_interval=None) as server:
        client = await SockWS.connect(server.port)
        ping = frame(PING, b"p")
        with caplog.at_level(logging.WARNING):
            client.writer.write(ping * 200_000)
            async with asyncio.timeout(10):
                assert (await client.reader.read(3))[:1] == b"\x8a"  # the first pong
            sock = client.writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.writer.transport.abort()  # a reset, with most of the pings unread
            state = server.state
            assert state is not None
            async with asyncio.timeout(30):
                while state.connections:
                    await asyncio.sleep(0)
    lines = [r for r in caplog.records if "raised exception" in r.getMessage()]
    assert len(lines) <= 1, f"{len(lines)} lines like {lines[0].getMessage()!r}"
