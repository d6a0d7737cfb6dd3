"""The demo's chat across processes: two ``tiny-listener http_web:app`` instances on
different ports, both with ``HUMP_BROADCAST_URL`` naming one real redis-server
(tests/redis_helpers.py), relay chat messages to each other's clients; a Redis killed and
restarted mid-chat is survived. Clients are the ``websockets`` library's. Skipped, with
the reason, where redis-server is not installed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import redis.asyncio
from redis_helpers import RedisServer, running_redis
from servers import RunningServer, run_server
from websockets.exceptions import ConnectionClosed
from ws_helpers import WS_WAIT, recv, ws_connect

import http_web

ROOM = "relay"
CHANNEL = http_web.CHAT_CHANNEL + ROOM
#: Bound on a wait for a log line of an instance (reconnection backs off up to 5 s).
LOG_WAIT = 30.0
#: Bound on polls of Redis' own state (each poll is one round trip).
MAX_POLLS = 2000


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(tmp_path) as server:
        yield server


@pytest.fixture
def instances(redis_server: RedisServer) -> Iterator[tuple[RunningServer, RunningServer]]:
    """Two demo instances, each its own process and port, sharing the test's Redis."""
    env = {"HUMP_BROADCAST_URL": redis_server.url}
    with ExitStack() as stack:
        a = stack.enter_context(run_server("http_web:app", env=env))
        b = stack.enter_context(run_server("http_web:app", env=env))
        assert a.port != b.port
        yield a, b


async def numsub(url: str, channel: str) -> int:
    client = redis.asyncio.Redis.from_url(url)
    try:
        reply = await client.pubsub_numsub(channel)
        return int(reply[0][1])
    finally:
        await client.aclose()


async def wait_numsub(url: str, channel: str, want: int) -> None:
    """Until Redis counts ``want`` subscriptions to ``channel`` (one per instance)."""
    for _ in range(MAX_POLLS):
        if await numsub(url, channel) == want:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{channel!r} never had {want} subscribers in Redis")


async def wait_line(server: RunningServer, pattern: str) -> str:
    return await asyncio.to_thread(server.wait_for_line, pattern, LOG_WAIT)


async def test_two_instances_relay_chat_messages_to_each_other_s_clients(
    instances: tuple[RunningServer, RunningServer], redis_server: RedisServer
) -> None:
    a, b = instances
    async with ws_connect(a.url, f"/ws/chat/{ROOM}") as on_a, ws_connect(b.url, f"/ws/chat/{ROOM}") as on_b, \
            ws_connect(a.url, f"/ws/chat/{ROOM}") as also_on_a:
        # The 101 comes once the instance's subscription is confirmed by Redis: one
        # subscriber connection per instance, shared by its clients.
        assert await numsub(redis_server.url, CHANNEL) == 2
        await on_a.send("from a")
        assert [await recv(on_a), await recv(on_b), await recv(also_on_a)] == ["from a"] * 3
        await on_b.send("from b")
        assert [await recv(on_a), await recv(on_b), await recv(also_on_a)] == ["from b"] * 3
        async with ws_connect(b.url, "/ws/chat/other-room") as other:
            await other.send("other room")
            assert await recv(other) == "other room"  # nothing of "relay" came first
    # Every client left: both instances unsubscribed.
    await wait_numsub(redis_server.url, CHANNEL, 0)
    for server in (a, b):
        assert "Traceback" not in server.output(), server.output()


async def test_a_redis_killed_and_restarted_mid_chat_is_survived(
    instances: tuple[RunningServer, RunningServer], redis_server: RedisServer
) -> None:
    a, b = instances
    async with ws_connect(a.url, f"/ws/chat/{ROOM}") as on_a, ws_connect(b.url, f"/ws/chat/{ROOM}") as on_b, \
            ws_connect(a.url, f"/ws/chat/{ROOM}") as talker:
        await on_a.send("before")
        assert [await recv(on_a), await recv(on_b), await recv(talker)] == ["before"] * 3

        redis_server.kill()  # SIGKILL: every Redis connection drops at once
        for server in (a, b):
            await wait_line(server, r"WARNING .*broadcast: lost the connection to Redis")

        # A message sent while Redis is down cannot be published: its sender is told
        # (close 1013, try again later) instead of the message vanishing.
        await talker.send("during the outage")
        with pytest.raises(ConnectionClosed):
            await recv(talker)
        assert talker.close_code == 1013, talker.close_reason

        # The other chats stay open through the outage (a ping round trip on each).
        for ws in (on_a, on_b):
            await asyncio.wait_for(await ws.ping(), WS_WAIT)

        redis_server.start()  # same port
        for server in (a, b):
            await wait_line(server, r"INFO .*broadcast: reconnected to Redis .*1 channel\(s\) subscribed again")
        await wait_numsub(redis_server.url, CHANNEL, 2)  # both resubscriptions processed

        await on_b.send("after the restart")
        # The first message each receives after the outage is this one: the one sent
        # during it was never published.
        assert await recv(on_a) == "after the restart"
        assert await recv(on_b) == "after the restart"
        await on_a.send("and back")
        assert [await recv(on_a), await recv(on_b)] == ["and back"] * 2
    for server in (a, b):
        assert "Traceback" not in server.output(), server.output()
