"""asgi.py's WebSocket chapter: WS routes under a real uvicorn (the ``websocket``
scope), with both of its WebSocket implementations: the same handler code as on the
built-in server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import websockets
from test_asgi import Uvicorn

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module", params=["websockets", "wsproto"])
def server(request: pytest.FixtureRequest) -> Iterator[int]:
    pytest.importorskip(request.param)
    running = Uvicorn("apps.ws_app:app", "--ws", request.param)
    try:
        yield running.port
    finally:
        running.stop()


def test_echo_keeps_types(server: int) -> None:
    async def go() -> list[str | bytes]:
        async with websockets.connect(f"ws://127.0.0.1:{server}/ws") as ws:
            await ws.send("text")
            first = await ws.recv()
            await ws.send(b"\x00bin")
            return [first, await ws.recv()]

    assert asyncio.run(go()) == ["text", b"\x00bin"]


def test_subprotocol_request_data_and_close_code(server: int) -> None:
    async def go() -> tuple[str | None, str | bytes, int | None, str | None]:
        async with websockets.connect(f"ws://127.0.0.1:{server}/ws/bye", subprotocols=["v1", "v2"]) as ws:
            data = await ws.recv()
            with pytest.raises(websockets.ConnectionClosed) as info:
                await ws.recv()
            rcvd = info.value.rcvd
            return ws.subprotocol, data, rcvd.code if rcvd else None, rcvd.reason if rcvd else None

    subprotocol, data, code, reason = asyncio.run(go())
    assert subprotocol == "v2" and code == 4001 and reason == "done"
    assert data == '{"scheme":"ws","path":"/ws/bye"}'


def test_a_refusal_is_an_http_response(server: int) -> None:
    async def go() -> int:
        with pytest.raises(websockets.InvalidStatus) as info:
            async with websockets.connect(f"ws://127.0.0.1:{server}/ws/deny"):
                pass
        return info.value.response.status_code

    assert asyncio.run(go()) == 401


def test_an_upgrade_to_a_path_without_a_ws_route_is_refused(server: int) -> None:
    async def go() -> int:
        with pytest.raises(websockets.InvalidStatus) as info:
            async with websockets.connect(f"ws://127.0.0.1:{server}/nowhere"):
                pass
        return info.value.response.status_code

    assert asyncio.run(go()) == 404
