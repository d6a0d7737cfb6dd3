"""Event loops: the suite runs on the loop ``HUMP_TEST_LOOP`` names (see conftest.py), and
the protocol behaves the same on asyncio and on uvloop over real sockets."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import TEST_LOOP
from protocol_helpers import hello, request

from hump_listener import App, HTTPContext
from hump_listener.config import ServerConfig, loop_factory, loop_name
from hump_listener.protocol import Server, http11
from hump_listener.protocol.memory import MemoryTransport
from hump_listener.protocol.server import ServerState
from hump_listener.seam import Channel, RequestHead
from hump_listener.testing import TestClient

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def loop_factories() -> list[object]:
    params: list[object] = [pytest.param(asyncio.SelectorEventLoop, id="asyncio")]
    try:
        import uvloop
    except ImportError:
        params.append(pytest.param(None, id="uvloop", marks=pytest.mark.skip(reason="uvloop is not installed")))
    else:
        params.append(pytest.param(uvloop.new_event_loop, id="uvloop"))
    return params


async def test_the_suite_runs_on_the_loop_it_was_asked_for() -> None:
    # HUMP_TEST_LOOP=uvloop must really put the tests (and the servers they start, through
    # HUMP_LOOP) on uvloop, or the uvloop run of scripts/test proves nothing.
    assert loop_name(asyncio.get_running_loop()) == TEST_LOOP
    assert ServerConfig.from_env().loop == TEST_LOOP


def test_the_test_client_thread_runs_on_the_same_loop() -> None:
    app = App(access_log=False)

    @app.get("/loop")
    async def which(ctx: HTTPContext) -> str:
        return loop_name(asyncio.get_running_loop())

    with TestClient(app) as client:
        assert client.get("/loop").text == TEST_LOOP


def broken_flow_control(*args: object) -> None:
    raise RuntimeError("connection_made fails")


@pytest.mark.parametrize("factory", loop_factories())
def test_a_failure_in_connection_made_closes_the_connection(
    factory: LoopFactory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Real sockets: the client sees the connection end (EOF or reset) at once, instead
    of a half-open connection nobody serves."""
    monkeypatch.setattr(http11, "FlowControl", broken_flow_control)

    async def scenario() -> bytes:
        server = Server(hello, ServerConfig(host="127.0.0.1", port=0))
        await server.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            try:
                writer.write(request())
                try:
                    # Bounded: a half-open connection would hang here until the timeout.
                    return await asyncio.wait_for(reader.read(), timeout=10)
                except ConnectionResetError:
                    return b""
            finally:
                writer.close()
        finally:
            await server.shutdown(1)

    loop = factory()
    try:
        answer = loop.run_until_complete(scenario())
    finally:
        loop.close()
    assert answer == b""
    crashes = [r for r in caplog.records if "internal error in connection_made" in r.getMessage()]
    assert crashes and crashes[0].levelno == logging.ERROR and crashes[0].exc_info is not None


async def test_a_failure_in_connection_made_aborts_the_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http11, "FlowControl", broken_flow_control)
    loop = asyncio.get_running_loop()
    state = ServerState(hello, ServerConfig(), loop)
    transport = MemoryTransport(loop)
    transport.connect(http11.H11Protocol(state))
    assert transport.aborted
    assert not state.connections


@pytest.mark.parametrize("name", ["asyncio", "uvloop"])
def test_sendfile_works_on_every_loop(name: str, tmp_path: Path) -> None:
    """uvloop's loops have no ``loop.sendfile``: the server copies instead."""
    if name == "uvloop":
        pytest.importorskip("uvloop")
    content = bytes(range(256)) * 1024
    path = tmp_path / "blob.bin"
    path.write_bytes(content)

    async def app(head: RequestHead, channel: Channel) -> None:
        with path.open("rb") as file:
            await channel.start(200, [(b"content-length", b"%d" % len(content))])
            await channel.sendfile(file, 0, len(content))
            await channel.end()

    async def scenario() -> bytes:
        server = Server(app, ServerConfig(host="127.0.0.1", port=0))
        await server.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(request(headers=b"Host: x\r\nConnection: close\r\n"))
            data = await asyncio.wait_for(reader.read(), timeout=10)
            writer.close()
            return data
        finally:
            await server.shutdown(1)

    loop = loop_factory(name)()
    try:
        data = loop.run_until_complete(scenario())
    finally:
        loop.close()
    assert data.startswith(b"HTTP/1.1 200")
    assert data.endswith(content)
