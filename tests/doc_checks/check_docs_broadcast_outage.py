"""Checks for docs/broadcast.md's outage example: BroadcastUnavailable becomes a 503."""

from __future__ import annotations

from docs_broadcast_outage import app

from hump_listener.broadcast import BroadcastUnavailable
from hump_listener.testing import TestClient


def test_publish_while_unavailable_is_a_503() -> None:
    with TestClient(app) as client:
        assert client.post("/rooms/1", content="hi").text == "sent"

        async def down(channel: str, message: str | bytes) -> int:
            raise BroadcastUnavailable("Redis is down")

        app.broadcast.publish = down  # type: ignore[method-assign]
        r = client.post("/rooms/1", content="hi")
        assert (r.status_code, r.text) == (503, "chat is unavailable, try again")
