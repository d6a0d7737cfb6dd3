"""Checks for docs/channels.md's SSE program (``docs_channels_sse``): ids are positions
and ``Last-Event-ID`` resumes after the message it names."""

from __future__ import annotations

import asyncio

from docs_channels_sse import app

from hump_listener.testing import AsyncTestClient


async def until_streaming(channel: str) -> None:
    """Bounded: until the stream has subscribed and caught up from the history (what it
    queued is sent even though the app's shutdown ends the subscription)."""
    for _ in range(10_000):
        subs = app.broadcast._subscribers.get(channel, ())
        if subs and not any(sub.catching_up for sub in subs):
            return
        await asyncio.sleep(0)
    raise AssertionError("the stream never subscribed")


def test_last_event_id_resumes_after_it() -> None:
    async def main() -> str:
        async with AsyncTestClient(app) as client:
            start = await app.broadcast.position("room:7")
            for text in ("one", "two", "three"):
                await app.broadcast.publish("room:7", text)
            assert start is not None
            last_seen = f"{start.epoch}-{start.offset + 1}"  # the client saw "one"
            listening = asyncio.ensure_future(
                client.get("/rooms/7/events", headers={"Last-Event-ID": last_seen})
            )
            await until_streaming("room:7")
        return (await listening).text  # the app's shutdown ended the subscription

    text = asyncio.run(main())
    events = [block for block in text.split("\n\n") if block]
    assert [e.split("\n")[1] for e in events] == ["data: two", "data: three"]
    assert events[0].startswith("id: ") and events[0].split("\n")[0].endswith("-2")


def test_an_unknown_last_event_id_starts_with_a_reset() -> None:
    async def main() -> str:
        async with AsyncTestClient(app) as client:
            await app.broadcast.publish("room:8", "kept")
            listening = asyncio.ensure_future(client.get("/rooms/8/events", headers={"Last-Event-ID": "x"}))
            await until_streaming("room:8")
        return (await listening).text

    events = [block for block in asyncio.run(main()).split("\n\n") if block]
    assert "event: reset" in events[0] and "data: kept" in events[1]
