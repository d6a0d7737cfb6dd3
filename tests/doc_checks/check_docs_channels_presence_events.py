"""Checks for docs/channels.md's presence events program (``docs_channels_presence_events``):
a join fires the handler, which publishes the frame once (``local``)."""

from __future__ import annotations

import asyncio

from docs_channels_presence_events import app, online

from hump_listener.testing import AsyncTestClient


def test_a_join_is_seen_and_announced_once() -> None:
    async def main() -> list[object]:
        async with AsyncTestClient(app), app.broadcast.subscribe("room:lobby") as sub:
            async with app.broadcast.presence.join("room:lobby", "ann"):
                frame = await asyncio.wait_for(sub.get_json(), 10)
                assert online == {"room:lobby": {"ann"}}
            return [frame, sub.qsize()]

    frame, queued = asyncio.run(main())
    assert frame == {"type": "join", "from": "ann"}
    assert queued == 0
