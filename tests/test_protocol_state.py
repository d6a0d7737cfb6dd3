"""protocol/state.py on its own: ``ServerState`` with the manual clock: the cached ``Date``
line, and refusals at ``max_connections`` logged once per burst with their count (issue
18.4: one WARNING per refused connection let a flood of connections flood the log)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from protocol_helpers import ClockLoop

from hump_listener.config import ServerConfig
from hump_listener.protocol.state import REFUSALS_QUIET, REFUSALS_REPORT_EVERY, ServerState


async def app(head: object, channel: object) -> None:  # never called here
    raise AssertionError


def make_state(**config: object) -> tuple[ServerState, ClockLoop]:
    clock = ClockLoop(asyncio.get_running_loop())
    return ServerState(app, ServerConfig(**config), clock, clock=lambda: 1_700_000_000.0), clock  # type: ignore[arg-type]


def refusal_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "connection limit" in r.getMessage()]


async def test_the_date_and_server_lines_are_cached() -> None:
    state, _ = make_state(server_header="x")
    assert state.server_headers == b"date: Tue, 14 Nov 2023 22:13:20 GMT\r\nserver: x\r\n"
    assert state.server_header_lines == 2
    bare, _ = make_state(server_header=None)
    assert bare.server_headers.count(b"\r\n") == bare.server_header_lines == 1


async def test_a_burst_of_refusals_is_one_line_with_its_count(caplog: pytest.LogCaptureFixture) -> None:
    state, clock = make_state(max_connections=8)
    with caplog.at_level(logging.WARNING, logger="hump_listener.error"):
        for _ in range(104):
            state.note_refusal()
            clock.advance(0.001)
        assert refusal_lines(caplog) == []  # said once, when the burst ends
        clock.advance(2 * REFUSALS_QUIET)  # checked every REFUSALS_QUIET: quiet for one whole period
        lines = refusal_lines(caplog)
        assert len(lines) == 1 and "(8) reached: 104 connection(s) refused" in lines[0]
        state.note_refusal()  # a later burst gets its own line
        clock.advance(2 * REFUSALS_QUIET)
    assert len(refusal_lines(caplog)) == 2 and "1 connection(s)" in refusal_lines(caplog)[1]


async def test_a_burst_that_goes_on_is_reported_every_so_often(caplog: pytest.LogCaptureFixture) -> None:
    state, clock = make_state()
    with caplog.at_level(logging.WARNING, logger="hump_listener.error"):
        for _ in range(int(REFUSALS_REPORT_EVERY / 0.5) + 4):  # two a second, never quiet
            state.note_refusal()
            clock.advance(0.5)
        assert len(refusal_lines(caplog)) == 1


async def test_stopping_reports_the_refusals_counted_so_far(caplog: pytest.LogCaptureFixture) -> None:
    state, _ = make_state()
    with caplog.at_level(logging.WARNING, logger="hump_listener.error"):
        state.note_refusal()
        state.stop_clock()
    assert len(refusal_lines(caplog)) == 1


async def test_waiting_for_connections_ends_when_the_last_one_closes() -> None:
    state, _ = make_state()
    assert await state.wait_connections_closed(0.0) is True
    conn: object = object()
    state.connections.add(conn)  # type: ignore[arg-type]
    waiting = asyncio.ensure_future(state.wait_connections_closed(30.0))
    await asyncio.sleep(0)
    state.connection_closed(conn)  # type: ignore[arg-type]
    assert await waiting is True
