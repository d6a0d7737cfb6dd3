"""presence.py: who is in a channel, in memory and across processes over a real
redis-server (tests/redis_helpers.py), with heartbeats that expire: a process killed
with SIGKILL leaves no ghost. Join and leave events fire once on every instance (rule 3):
the tests wait on the events themselves (``Events.wait``), bounded, never on a sleep."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import pytest
import redis.asyncio
from redis_helpers import RedisServer

from hump_listener import App, Data
from hump_listener.broadcast import Broadcast
from hump_listener.presence import MAX_META_SIZE, Member, Presence
from hump_listener.testing import AsyncTestClient

#: Bound on waits for something observable.
DEADLINE = 30.0
FAST: dict[str, Any] = {"backoff_initial": 0.01, "backoff_max": 0.1, "timeout": 1.0}


class Events:
    """The presence events one instance fired, as (name, channel, key, local), and a
    bounded wait for one."""

    def __init__(self) -> None:
        self.fired: list[tuple[str, str, str, bool]] = []
        self.changed = asyncio.Event()

    def __call__(self, name: str, data: dict[str, Any]) -> None:
        assert set(data) == {"channel", "key", "meta", "id", "local"}, data
        self.fired.append((name, data["channel"], data["key"], data["local"]))
        self.changed.set()

    def of(self, key: str) -> list[tuple[str, str, str, bool]]:
        return [event for event in self.fired if event[2] == key]

    async def wait(self, name: str, key: str) -> None:
        """Until an event ``name`` of ``key`` has fired here."""

        async def fired() -> None:
            while not any(e[0] == name and e[2] == key for e in self.fired):
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(fired(), DEADLINE)


async def settled(*instances: tuple[Broadcast, Events]) -> None:
    """Every change an instance published before this call has reached the others: each
    publishes a marker (a join and a leave) and waits for the others' markers, which
    Redis delivers after whatever their publishers published before them. The markers'
    own events are taken out of the records."""
    for b, _ in instances:
        async with b.presence.join("markers", f"marker-{id(b)}"):
            pass
    for b, _ in instances:
        for _, events in instances:
            await events.wait("presence_leave", f"marker-{id(b)}")
    for _, events in instances:
        events.fired = [e for e in events.fired if not e[2].startswith("marker-")]


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
    assert [(name, data["channel"], data["key"], data["local"]) for name, data in fired] == [
        ("presence_join", "room", "ann", True), ("presence_join", "room", "ann", True),
        ("presence_join", "other", "bob", True), ("presence_leave", "other", "bob", True),
        ("presence_leave", "room", "ann", True), ("presence_leave", "room", "ann", True),
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


async def test_a_join_and_a_leave_fire_once_on_every_instance(redis_server: RedisServer) -> None:
    a_events, b_events = Events(), Events()
    a = Broadcast(redis_server.url, events=a_events, **FAST)
    b = Broadcast(redis_server.url, events=b_events, **FAST)
    async with a, b:
        await b.presence.listen()  # b joins nothing: listening is what makes it hear
        assert b.subscriber_count("hump:presence") == 1 and b.presence.channel == "hump:presence"
        async with a.presence.join("room", "ann", {"n": 1}):
            await b_events.wait("presence_join", "ann")
        await b_events.wait("presence_leave", "ann")
        async with b.presence.join("room", "bob"):
            await a_events.wait("presence_join", "bob")
        await a_events.wait("presence_leave", "bob")
        await settled((a, a_events), (b, b_events))
    # once per instance; `local` where it happened only
    assert a_events.fired == [
        ("presence_join", "room", "ann", True), ("presence_leave", "room", "ann", True),
        ("presence_join", "room", "bob", False), ("presence_leave", "room", "bob", False),
    ]
    assert b_events.fired == [
        ("presence_join", "room", "ann", False), ("presence_leave", "room", "ann", False),
        ("presence_join", "room", "bob", True), ("presence_leave", "room", "bob", True),
    ]


async def test_an_app_with_a_presence_handler_listens_as_it_starts(redis_server: RedisServer) -> None:
    seen = Events()
    with_handler, without = App(broadcast_url=redis_server.url), App(broadcast_url=redis_server.url)

    @with_handler.on_event("presence_join")
    async def joined(channel: Data, key: Data, meta: Data, id: Data, local: Data) -> None:
        seen("presence_join", {"channel": channel, "key": key, "meta": meta, "id": id, "local": local})

    async with AsyncTestClient(with_handler), AsyncTestClient(without):
        # subscribed at startup, before anything of presence is used here; `without`
        # has no handler: no subscription
        assert with_handler.broadcast.subscriber_count("hump:presence") == 1
        assert without.broadcast.subscriber_count("hump:presence") == 0
        async with without.broadcast.presence.join("room", "ann"):
            await seen.wait("presence_join", "ann")
        assert seen.fired == [("presence_join", "room", "ann", False)]
        assert without.broadcast.subscriber_count("hump:presence") == 0


GHOST = """
import asyncio, sys
from hump_listener.broadcast import Broadcast
from hump_listener.presence import Presence

async def main():
    async with Broadcast(sys.argv[1]) as b:
        b._presence = Presence(b, heartbeat=0.1, ttl=0.5)
        async with b.presence.join("room", "ghost"):
            print("joined", flush=True)
            await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_a_killed_process_s_entries_leave_by_themselves_once(redis_server: RedisServer) -> None:
    """Two live instances, whose heartbeats sweep; nobody calls ``list``: the ghost's
    leave fires on both, once, ``local`` on the one whose sweep removed it."""
    instances = []
    for _ in range(2):
        events = Events()
        b = Broadcast(redis_server.url, events=events, **FAST)
        b._presence = Presence(b, heartbeat=0.1, ttl=0.5)  # the ghost's ttl is its own, 0.5 s too
        instances.append((b, events))
    (b, b_events), (c, c_events) = instances
    proc = subprocess.Popen([sys.executable, "-c", GHOST, redis_server.url], stdout=subprocess.PIPE, text=True)
    try:
        async with b, c:
            await b.presence.listen()
            await c.presence.listen()
            assert proc.stdout is not None
            assert await asyncio.to_thread(proc.stdout.readline) == "joined\n"
            for events in (b_events, c_events):
                await events.wait("presence_join", "ghost")
            proc.kill()
            await asyncio.to_thread(proc.wait)
            for events in (b_events, c_events):
                await events.wait("presence_leave", "ghost")
            await settled((b, b_events), (c, c_events))
            leaves = [e for events in (b_events, c_events) for e in events.of("ghost") if e[0] == "presence_leave"]
            assert sorted(leave[3] for leave in leaves) == [False, True]  # one each, one sweep removed it
            for events in (b_events, c_events):
                assert [e[0] for e in events.of("ghost")] == ["presence_join", "presence_leave"]
            client = redis.asyncio.Redis.from_url(redis_server.url)
            try:  # gone from Redis: nothing left to leave again
                assert await client.hlen("hump:pm:room") == 0
                assert await client.zcard("hump:pi:") == 0
            finally:
                await client.aclose()
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


async def test_list_also_removes_an_expired_entry_once(redis_server: RedisServer) -> None:
    events = Events()
    async with Broadcast(redis_server.url, events=events, **FAST) as b, Broadcast(redis_server.url, **FAST) as other:
        other._presence = Presence(other, heartbeat=0.1, ttl=0.2)
        async with other.presence.join("room", "stale"):
            await other.presence._stop()  # the heartbeat stops, as in a stalled process
            deadline = asyncio.get_running_loop().time() + DEADLINE
            while names(await b.presence.list("room")) == ["stale"]:
                assert asyncio.get_running_loop().time() < deadline, "the stale entry stayed"
                await asyncio.sleep(0.05)  # polling Redis' clock: the entry expires in 0.2 s
        # its leave fired here, where it was found (by list, or by b's own sweep); the
        # late leave of the stalled process found it gone and told nobody
        assert events.of("stale") == [("presence_leave", "room", "stale", True)]


async def test_a_heartbeat_brings_entries_back_after_redis_lost_its_data(redis_server: RedisServer) -> None:
    events = Events()
    async with Broadcast(redis_server.url, events=events, **FAST) as b, b.presence.join("room", "ann"):
        redis_server.restart()
        for _ in range(100):  # the command connection reconnects on first use
            try:
                assert await b.presence.list("room") == []
                break
            except ConnectionError:
                await asyncio.sleep(0.01)
        await b.presence.renew()
        assert names(await b.presence.list("room")) == ["ann"]
        # re-added: a join again (the others had it forgotten too)
        assert events.fired == [("presence_join", "room", "ann", True)] * 2
