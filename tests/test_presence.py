"""presence.py: who is in a channel, in memory and across processes over a real
redis-server (tests/redis_helpers.py), with heartbeats that expire: a process killed
with SIGKILL leaves no ghost."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import pytest
from redis_helpers import RedisServer

from hump_listener.broadcast import Broadcast
from hump_listener.presence import MAX_META_SIZE, Member, Presence

#: Bound on waits for something observable.
DEADLINE = 30.0
FAST: dict[str, Any] = {"backoff_initial": 0.01, "backoff_max": 0.1, "timeout": 1.0}



def names(members: list[Member]) -> list[str]:
    return sorted(m.key for m in members)


async def test_join_lists_until_left_and_fires_events() -> None:
    fired: list[tuple[str, dict[str, Any]]] = []
    async with Broadcast(events=lambda name, data: fired.append((name, data))) as b:
        presence = b.presence
        async with presence.join("room", "ann", {"color": "red"}) as ann:
            async with presence.join("room", "ann"), presence.join("other", "bob"):
                assert names(await presence.list("room")) == ["ann", "ann"]  # one entry per join
            members = await presence.list("room")
            assert members == [Member("ann", {"color": "red"}, ann.id)]
        assert await presence.list("room") == []
    assert [(name, data["channel"], data["key"]) for name, data in fired] == [
        ("presence_join", "room", "ann"), ("presence_join", "room", "ann"), ("presence_join", "other", "bob"),
        ("presence_leave", "other", "bob"), ("presence_leave", "room", "ann"), ("presence_leave", "room", "ann"),
    ]
    assert fired[0][1]["meta"] == {"color": "red"}


async def test_metadata_is_small_and_the_heartbeat_shorter_than_the_ttl() -> None:
    async with Broadcast() as b:
        with pytest.raises(ValueError, match="at most"):
            async with b.presence.join("room", "big", {"x": "y" * MAX_META_SIZE}):
                pass
    with pytest.raises(ValueError, match="shorter"):
        Presence(b, heartbeat=5, ttl=5)


async def test_two_processes_see_each_other_over_redis(redis_server: RedisServer) -> None:
    async with Broadcast(redis_server.url, **FAST) as one, Broadcast(redis_server.url, **FAST) as two:
        async with one.presence.join("room", "ann", {"n": 1}), two.presence.join("room", "bob"):
            assert names(await one.presence.list("room")) == ["ann", "bob"]
            assert names(await two.presence.list("room")) == ["ann", "bob"]
            assert [m.meta for m in await two.presence.list("room") if m.key == "ann"] == [{"n": 1}]
        assert await one.presence.list("room") == []


GHOST = """
import asyncio, sys
from hump_listener.broadcast import Broadcast
from hump_listener.presence import Presence

async def main():
    async with Broadcast(sys.argv[1]) as b:
        b._presence = Presence(b, heartbeat=0.1, ttl=0.5)
        async with b.presence.join("room", "ghost"):
            await b.presence.renew()
            print("joined", flush=True)
            await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_a_killed_process_leaves_no_ghost(redis_server: RedisServer) -> None:
    fired: list[tuple[str, dict[str, Any]]] = []
    proc = subprocess.Popen([sys.executable, "-c", GHOST, redis_server.url], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert await asyncio.to_thread(proc.stdout.readline) == "joined\n"
        b = Broadcast(redis_server.url, events=lambda n, data: fired.append((n, data)), **FAST)
        async with b, b.presence.join("room", "alive"):
            assert names(await b.presence.list("room")) == ["alive", "ghost"]
            proc.kill()
            await asyncio.to_thread(proc.wait)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + DEADLINE
            while names(await b.presence.list("room")) != ["alive"]:
                assert loop.time() < deadline, "the ghost stayed"
                await asyncio.sleep(0.1)
        # the instance that found it gone fired its leave, once
        assert [(n, d["key"]) for n, d in fired if d["key"] == "ghost"] == [("presence_leave", "ghost")]
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


async def test_a_heartbeat_brings_entries_back_after_redis_lost_its_data(redis_server: RedisServer) -> None:
    async with Broadcast(redis_server.url, **FAST) as b, b.presence.join("room", "ann"):
        redis_server.restart()
        for _ in range(100):  # the command connection reconnects on first use
            try:
                assert await b.presence.list("room") == []
                break
            except ConnectionError:
                await asyncio.sleep(0.01)
        await b.presence.renew()
        assert names(await b.presence.list("room")) == ["ann"]
