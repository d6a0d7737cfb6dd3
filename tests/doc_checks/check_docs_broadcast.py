"""Checks for docs/broadcast.md's first program (``docs_broadcast``): the page's app names
Redis; here it runs on the memory backend (the Redis backend has tests/test_broadcast.py)."""

from __future__ import annotations

import asyncio

from docs_broadcast import app

from hump_listener.testing import AsyncTestClient


def test_publish_reaches_the_event_stream() -> None:
    assert app.config.broadcast_url == "redis://127.0.0.1:6379/0"
    app.configure(broadcast_url="memory://")

    async def main() -> str:
        async with AsyncTestClient(app) as client:
            listening = asyncio.ensure_future(client.get("/rooms/7/events"))
            for _ in range(10_000):  # bounded: until the stream has subscribed
                if app.broadcast.subscriber_count("room:7"):
                    break
                await asyncio.sleep(0)
            assert (await client.post("/rooms/7", content="hi")).text == "sent"
        return (await listening).text  # the app's shutdown ended the subscription

    assert asyncio.run(main()) == "data: hi\n\n"
