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


def test_the_chat_reaches_every_member_and_only_its_room() -> None:
    with TestClient(app) as client:
        with client.websocket_connect("/ws/chat/a") as ann, client.websocket_connect("/ws/chat/b") as bob:
            ann.send_text("in a")
            bob.send_text("in b")
            assert ann.receive_text() == "in a" and bob.receive_text() == "in b"
