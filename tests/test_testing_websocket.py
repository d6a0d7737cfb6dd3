"""testing.py's last chapter: the test client's WebSocket sessions themselves (what a
test author relies on), through the real protocols over the in-memory transport."""

from __future__ import annotations

import pytest

from hump_listener import App, HTTPError, WebSocket, WebSocketDisconnect
from hump_listener.testing import (
    AsyncTestClient,
    AsyncWebSocketSession,
    TestClient,
    WebSocketRejected,
    WebSocketSession,
)


@pytest.fixture
def app() -> App:
    app = App(access_log=False)

    @app.websocket("/ws/echo")
    async def echo(ws: WebSocket) -> None:
        await ws.accept(headers={"X-Hello": "1"})
        async for message in ws:
            await ws.send(message)

    @app.websocket("/ws/cookie")
    async def cookie(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text(ws.request.cookies.get("sid", "none"))
        await ws.close(4001, "done")

    @app.websocket("/ws/deny")
    async def deny(ws: WebSocket) -> None:
        raise HTTPError(403, "no entry")

    @app.websocket("/ws/silent")
    async def silent(ws: WebSocket) -> None:
        await ws.accept()
        await ws.receive()

    return app


def test_the_blocking_session_round_trips_every_message_kind(app: App) -> None:
    with TestClient(app) as client, client.websocket_connect("/ws/echo") as ws:
        assert isinstance(ws, WebSocketSession)
        assert ws.headers["x-hello"] == "1" and ws.close_code is None
        ws.send_text("hi")
        assert ws.receive_text() == "hi"
        ws.send_bytes(b"\x00\xff")
        assert ws.receive_bytes() == b"\x00\xff"
        ws.send_json({"a": [1]}, mode="binary")
        assert ws.receive_json() == {"a": [1]}
        ws.send("x")
        with pytest.raises(TypeError):
            ws.receive_bytes()


def test_a_refusal_raises_with_the_http_response(app: App) -> None:
    with TestClient(app) as client, pytest.raises(WebSocketRejected) as refused, client.websocket_connect("/ws/deny"):
        pass
    assert refused.value.response.status_code == 403
    assert "no entry" in refused.value.response.text


def test_the_jar_is_sent_and_the_servers_close_is_kept(app: App) -> None:
    with TestClient(app) as client:
        client.cookies = {"sid": "abc"}
        with client.websocket_connect("/ws/cookie") as ws:
            assert ws.receive_text() == "abc"
            for _ in range(2):  # and again: every later receive raises too
                with pytest.raises(WebSocketDisconnect) as closed:
                    ws.receive()
                assert closed.value.code == 4001
            assert (ws.close_code, ws.close_reason) == (4001, "done")


async def test_the_async_session_times_out_instead_of_hanging(app: App) -> None:
    async with AsyncTestClient(app) as client, client.websocket_connect("/ws/silent", timeout=0.05) as ws:
        assert isinstance(ws, AsyncWebSocketSession)
        with pytest.raises(TimeoutError, match="no WebSocket message"):
            await ws.receive()
