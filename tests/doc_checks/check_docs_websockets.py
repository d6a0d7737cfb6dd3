"""Checks for docs/websockets.md's program: what the page's own test does not reach."""

from __future__ import annotations

import pytest
from docs_websockets import app

from hump_listener import WebSocketDisconnect
from hump_listener.testing import TestClient


def test_websocket_errors_and_states() -> None:
    # A binary message where the handler reads text: close 1003.
    token = {"Authorization": "Bearer secret"}
    with TestClient(app) as client, client.websocket_connect("/ws/private/bo", headers=token) as ws:
        assert ws.subprotocol is None  # none offered, none chosen
        ws.receive_json()
        ws.send_bytes(b"\x00")
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive()
        assert closed.value.code == 1003


def test_each_chat_room_hears_its_own_messages() -> None:
    with TestClient(app) as client, client.websocket_connect("/ws/chat/a") as ann:
        with client.websocket_connect("/ws/chat/b") as bob:
            bob.send_text("in b")
            assert bob.receive_text() == "in b"
        ann.send_text("in a")
        assert ann.receive_text() == "in a"  # not bob's message: rooms are channels
