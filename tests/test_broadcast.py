"""Broadcast (hump_listener.broadcast): the memory backend, and the Redis backend against
a real redis-server started per test (tests/redis_helpers.py): across two Broadcast
instances, across two server processes, and through a crash and a hang of Redis."""

from __future__ import annotations

import asyncio
import http.client
import logging
import os
import re
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from process_helpers import launch, tiny_listener
from redis_helpers import RedisServer, free_port, running_redis

from hump_listener.broadcast import (
    DEFAULT_MAX_QUEUE,
    Broadcast,
    BroadcastUnavailable,
    MessageTooBig,
    Position,
    Publication,
    Reset,
    Subscription,
    SubscriptionClosed,
)

#: Bound on waits for something observable (a log line, a message, Redis' state).
DEADLINE = 30.0
#: Small reconnection delays and health checks keep the outage tests short.
FAST: dict[str, Any] = {"backoff_initial": 0.01, "backoff_max": 0.1, "timeout": 1.0}


class LogWatch(logging.Handler):
    """Collects ``hump_listener.error`` records and lets a test wait for one."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.changed.set()

    def matching(self, pattern: str, level: int | None = None) -> list[logging.LogRecord]:
        rx = re.compile(pattern)
        return [r for r in self.records if rx.search(r.getMessage()) and (level is None or r.levelno == level)]

    async def wait_for(self, pattern: str, count: int = 1) -> list[logging.LogRecord]:
        """Wait (each wait for a new record bounded) until ``count`` records match."""
        while len(found := self.matching(pattern)) < count:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), DEADLINE)
        return found


@pytest.fixture
def logs() -> Iterator[LogWatch]:
    logger = logging.getLogger("hump_listener.error")
    watch = LogWatch()
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(watch)
    try:
        yield watch
    finally:
        logger.removeHandler(watch)
        logger.setLevel(level)



@pytest.fixture(params=["memory", "redis"])
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Broadcast, Broadcast]]:
    """(publisher, subscriber side): one memory Broadcast twice, or two Broadcasts on
    one Redis, as two processes would have."""
    if request.param == "memory":
        async with Broadcast() as b:
            yield b, b
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        async with Broadcast(server.url) as pub, Broadcast(server.url) as sub:
            yield pub, sub


def is_redis(b: Broadcast) -> bool:
    return b.url.startswith("redis")


async def numsub(url: str, channel: str) -> int:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(url)
    try:
        ((_, count),) = await client.pubsub_numsub(channel)
        return int(count)
    finally:
        await client.aclose()


async def wait_numsub(url: str, channel: str, want: int) -> None:
    """Poll Redis (each poll is a round trip) until ``channel`` has ``want`` subscribers."""
    for _ in range(2000):
        if await numsub(url, channel) == want:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{channel!r} never had {want} subscribers")


async def get(sub: Subscription) -> object:
    return await asyncio.wait_for(sub.get(), DEADLINE)


# -- the same semantics on both backends --------------------------------------------------


async def test_every_subscriber_of_a_channel_gets_each_message_in_order(pair: tuple[Broadcast, Broadcast]) -> None:
    pub, side = pair
    async with side.subscribe("news") as s1, side.subscribe("news") as s2, side.subscribe("news") as s3:
        assert side.subscriber_count("news") == 3
        counts = [await pub.publish("news", f"m{i}") for i in range(3)]
        # memory counts local subscriptions; Redis counts subscribed connections (one Broadcast)
        assert counts == ([1, 1, 1] if is_redis(pub) else [3, 3, 3])
        for sub in (s1, s2, s3):
            assert [await get(sub) for _ in range(3)] == ["m0", "m1", "m2"]


async def test_channels_are_isolated(pair: tuple[Broadcast, Broadcast]) -> None:
    pub, side = pair
    async with side.subscribe("a") as a, side.subscribe("b") as b:
        await pub.publish("b", "for b")
        await pub.publish("a", "for a")
        await pub.publish("a", "end")
        assert await get(a) == "for a"
        assert await get(a) == "end"  # "for b" never reached a
        assert await get(b) == "for b"
        await pub.publish("nobody", "lost")  # a channel nobody listens to
        await pub.publish("b", "end")
        assert await get(b) == "end"


async def test_messages_keep_their_type(pair: tuple[Broadcast, Broadcast]) -> None:
    pub, side = pair
    sent: list[str | bytes] = ["text", b"bytes", "", b"", "h\xe9llo \u2603", b"\x00\xff", "\x00x", "\x01y", b"\x01z"]
    async with side.subscribe("t") as sub:
        for message in sent:
            await pub.publish("t", message)
        got = [await get(sub) for _ in sent]
        assert got == sent
        assert [type(m) for m in got] == [type(m) for m in sent]
        await pub.publish_json("t", {"a": [1, 2], "s": "\u2603"})
        await pub.publish("t", b'{"raw": true}')
        assert await asyncio.wait_for(sub.get_json(), DEADLINE) == {"a": [1, 2], "s": "\u2603"}
        assert await asyncio.wait_for(sub.get_json(), DEADLINE) == {"raw": True}


async def test_iteration_and_iter_json_end_when_the_broadcast_stops(pair: tuple[Broadcast, Broadcast]) -> None:
    pub, side = pair
    got: list[object] = []
    async with side.subscribe("j") as sub:

        async def consume() -> None:
            async for obj in sub.iter_json():
                got.append(obj)
                if len(got) == 2:
                    await side.stop()

        task = asyncio.ensure_future(consume())
        await pub.publish_json("j", 1)
        await pub.publish_json("j", [2])
        await asyncio.wait_for(task, DEADLINE)  # ends: the stop ended the iteration
    assert got == [1, [2]]
    assert sub.closed


async def test_leaving_unsubscribes(pair: tuple[Broadcast, Broadcast]) -> None:
    pub, side = pair
    async with side.subscribe("c") as first:
        async with side.subscribe("c") as second:
            if is_redis(side):
                assert await numsub(side.url, "c") == 1  # one Redis subscription for both
            await pub.publish("c", "both")
            assert await get(second) == "both"
        assert second.closed and side.subscriber_count("c") == 1
        await pub.publish("c", "first only")
        assert [await get(first), await get(first)] == ["both", "first only"]
        async with side.subscribe("c") as probe:
            await pub.publish("c", "queued")
            assert await get(probe) == "queued"  # the same fan-out queued it in first
        assert first.qsize() == 1
    assert side.subscriber_count("c") == 0
    assert await first.get() == "queued"  # what was queued is still read after leaving
    with pytest.raises(SubscriptionClosed):
        await first.get()
    if is_redis(side):
        await wait_numsub(side.url, "c", 0)
    assert await pub.publish("c", "nobody") == 0


async def test_a_subscriber_that_falls_behind_loses_its_oldest_messages(
    pair: tuple[Broadcast, Broadcast], logs: LogWatch
) -> None:
    pub, side = pair
    async with side.subscribe("q", max_queue=3) as slow, side.subscribe("q") as fast:
        for i in range(5):
            await pub.publish("q", str(i))
        # fast is filled by the same fan-out as slow: once fast has "4", slow has seen all
        assert [await get(fast) for _ in range(5)] == ["0", "1", "2", "3", "4"]
        assert slow.dropped == 2
        assert [await get(slow) for _ in range(3)] == ["2", "3", "4"]
        warnings = logs.matching(r"fell behind", logging.WARNING)
        assert len(warnings) == 1  # once per burst, not once per dropped message
        assert "'q'" in warnings[0].getMessage()
        for i in range(5, 12):  # slow emptied its queue: this is a new burst
            await pub.publish("q", str(i))
        assert [await get(fast) for _ in range(7)] == [str(i) for i in range(5, 12)]
        assert slow.dropped == 6
        assert [await get(slow) for _ in range(3)] == ["9", "10", "11"]
        assert len(logs.matching(r"fell behind", logging.WARNING)) == 2
        assert fast.dropped == 0 and fast.max_queue == DEFAULT_MAX_QUEUE


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_no_task_is_left_after_stop(backend: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("redis_server").url if backend == "redis" else None
    before = asyncio.all_tasks()
    pub, side = Broadcast(url), Broadcast(url)
    side = pub if url is None else side
    async with side.subscribe("x") as sub:
        await pub.publish("x", "hi")
        assert await get(sub) == "hi"
        assert asyncio.all_tasks() != before or url is None  # Redis: a reader task while started
    await pub.stop()
    await side.stop()
    assert asyncio.all_tasks() == before
    assert not side.started and not side.connected


# -- positions, history and resume (both backends) ---------------------------------------


@pytest.fixture(params=["memory", "redis"])
def make(request: pytest.FixtureRequest) -> Any:
    """Broadcast(**options) on the test's backend (a fresh redis-server for Redis)."""
    url = request.getfixturevalue("redis_server").url if request.param == "redis" else None

    def build(**options: Any) -> Broadcast:
        return Broadcast(url, **options)

    return build


async def item(sub: Subscription) -> Publication | Reset:
    return await asyncio.wait_for(sub.get_item(), DEADLINE)


async def test_each_message_gets_the_next_offset_of_its_channel(pair: tuple[Broadcast, Broadcast]) -> None:
    pub, side = pair
    async with side.subscribe("p") as sub:
        start = sub.position
        assert start is not None and start == await pub.position("p")
        for text in ("a", "b", "c"):
            await pub.publish("p", text)
        items = [await item(sub) for _ in range(3)]
        assert [(i.data, i.position) for i in items if isinstance(i, Publication)] == [
            (text, Position(start.epoch, start.offset + n)) for n, text in enumerate("abc", 1)
        ]
        assert sub.position == Position(start.epoch, start.offset + 3)
        assert not any(i.replayed for i in items if isinstance(i, Publication))
        assert Position.parse(str(sub.position)) == sub.position


async def test_since_delivers_exactly_what_followed_then_live_messages(pair: tuple[Broadcast, Broadcast]) -> None:
    pub, side = pair
    async with side.subscribe("r") as first:
        for i in range(5):
            await pub.publish("r", str(i))
        assert [await get(first) for _ in range(2)] == ["0", "1"]
        mark = first.position
    async with side.subscribe("r", since=str(mark)) as again:  # the text form, as a client sends it
        await pub.publish("r", "live")
        got = [await item(again) for _ in range(4)]
        assert [(p.data, p.replayed) for p in got if isinstance(p, Publication)] == [
            ("2", True), ("3", True), ("4", True), ("live", False),
        ]
        assert again.qsize() == 0


async def test_resuming_while_messages_are_published_has_no_gap_and_no_duplicate(
    pair: tuple[Broadcast, Broadcast],
) -> None:
    pub, side = pair
    total = 300
    async with side.subscribe("busy") as watcher:
        published = asyncio.Event()

        async def publisher() -> None:
            for i in range(total):
                await pub.publish("busy", str(i))
                if i == 50:
                    published.set()
                await asyncio.sleep(0)  # let the resuming subscriber in between publishes

        task = asyncio.create_task(publisher())
        assert [await get(watcher) for _ in range(11)] == [str(i) for i in range(11)]
        mark = watcher.position  # after "10"
        await published.wait()
        async with side.subscribe("busy", since=mark) as resumed:
            seen = []
            while not seen or seen[-1] != str(total - 1):
                got = await item(resumed)
                assert isinstance(got, Publication)
                seen.append(got.data)
        await task
    assert seen == [str(i) for i in range(11, total)]


async def test_a_position_too_old_or_of_another_epoch_gives_one_reset_then_the_history(make: Any) -> None:
    async with make(history_size=3) as b, b.subscribe("o") as live:
        sent = [str(i) for i in range(6)]
        for text in sent:
            await b.publish("o", text)
        first = await item(live)
        assert isinstance(first, Publication) and first.data == "0" and first.position is not None
        epoch = first.position.epoch
        for since in (first.position, Position("0000beef", 2), "not a position", Position(epoch, 99)):
            async with b.subscribe("o", since=since) as sub:
                reset = await item(sub)
                assert isinstance(reset, Reset) and reset.channel == "o"
                # what the history lost is what the reset skips: what it keeps follows
                assert reset.position.epoch == epoch and len(sent) - 3 <= reset.position.offset < len(sent)
                rest = [await item(sub) for _ in range(len(sent) - reset.position.offset)]
                assert [p.data for p in rest if isinstance(p, Publication)] == sent[reset.position.offset :]
                sent.append(f"next{len(sent)}")
                await b.publish("o", sent[-1])
                assert await get(sub) == sent[-1]
                assert sub.qsize() == 0


async def test_get_skips_the_reset_and_counts_it(make: Any) -> None:
    async with make(history_size=2) as b:
        for i in range(4):
            await b.publish("g", str(i))
        async with b.subscribe("g", since="x-1") as sub:
            assert [await get(sub), await get(sub)] == ["2", "3"]
            assert sub.resets == 1


async def test_a_message_over_the_limit_is_refused_before_it_leaves(make: Any) -> None:
    async with make(max_message_size=8) as b, b.subscribe("big") as sub:
        with pytest.raises(MessageTooBig, match="max_message_size"):
            await b.publish("big", b"123456789")
        with pytest.raises(MessageTooBig):
            await b.publish("big", "\u00e9" * 5)  # 10 bytes of UTF-8
        await b.publish("big", "12345678")
        assert await get(sub) == "12345678"
        assert sub.position is not None and sub.position.offset == 1  # the refused took no offset


async def test_without_history_there_are_no_positions(make: Any) -> None:
    async with make(history_size=0) as b, b.subscribe("n") as sub:
        await b.publish("n", "x")
        got = await item(sub)
        assert isinstance(got, Publication) and got.position is None and got.id == ""
        assert await b.position("n") is None
        with pytest.raises(ValueError, match="history"):
            b.subscribe("n", since="abc-1")


async def test_a_redis_channel_expires_when_idle_and_its_expiry_is_set_once_per_step(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rule 1 of broadcast_redis: a publisher sets a channel's expiries (the TTLs plus
    its refresh step) at its first publish, then once per step, and always for a new epoch."""
    import redis.asyncio

    from hump_listener import broadcast_redis

    now = [1000.0]
    monkeypatch.setattr(broadcast_redis, "monotonic", lambda: now[0])
    client = redis.asyncio.Redis.from_url(redis_server.url)
    keys = ("hump:h:x", "hump:m:x")
    try:
        async with Broadcast(redis_server.url, history_ttl=20) as b:
            await b.publish("x", "1")
            stream_ms, meta_ms = [await client.pttl(key) for key in keys]
            assert 20_000 < stream_ms <= 21_000 and 86_399_000 < meta_ms <= 86_401_000
            for key in keys:
                await client.persist(key)
            await b.publish("x", "2")  # within the step: not set again
            assert [await client.pttl(key) for key in keys] == [-1, -1]
            now[0] += 1.0  # the step (history_ttl / 10, at most 1 s) has passed
            await b.publish("x", "3")
            assert all(ms > 20_000 for ms in [await client.pttl(key) for key in keys])
            await client.delete(*keys)  # the history is lost: a new epoch always sets them
            await b.publish("x", "4")
            assert all(ms > 20_000 for ms in [await client.pttl(key) for key in keys])
    finally:
        await client.aclose()


# -- outages (Redis) --------------------------------------------------------------------


async def test_a_redis_restarted_without_its_data_gives_a_reset_not_a_silent_gap(
    redis_server: RedisServer, logs: LogWatch
) -> None:
    pub, side = Broadcast(redis_server.url, **FAST), Broadcast(redis_server.url, **FAST)
    async with pub, side, side.subscribe("e") as sub:
        await pub.publish("e", "old")
        old = await item(sub)
        assert isinstance(old, Publication) and old.position is not None
        redis_server.restart()
        await logs.wait_for(r"reconnected to Redis", count=2)
        while True:  # the publisher's first try after the restart may find it reconnecting
            try:
                await pub.publish("e", "new")
                break
            except BroadcastUnavailable:
                await asyncio.sleep(0.01)
        reset = await item(sub)
        assert isinstance(reset, Reset) and reset.position.epoch != old.position.epoch
        assert reset.position.offset == 0  # the new epoch is complete in the history
        new = await item(sub)
        assert isinstance(new, Publication) and new.data == "new"
        assert new.position == Position(reset.position.epoch, 1)


async def publish_through_an_outage(
    server: RedisServer, pubs: list[Broadcast], channel: str, after: int
) -> tuple[list[str], int]:
    """Publish numbered messages, in turn from each of ``pubs``, while ``server`` is
    killed and restarted: returns the accepted ones (in order) and how many were refused."""
    accepted: list[str] = []
    refused = 0
    n = 0

    async def send() -> None:
        nonlocal n, refused
        try:
            await pubs[n % len(pubs)].publish(channel, str(n))
            accepted.append(str(n))
        except BroadcastUnavailable:
            refused += 1
        n += 1
        await asyncio.sleep(0.001)  # pacing: ~1,000 publishes a second at most

    for _ in range(20):
        await send()
    server.kill()
    while not refused:
        await send()
    server.start()
    since_back = len(accepted)
    while len(accepted) < since_back + after:
        await send()
    return accepted, refused


async def test_an_accepted_message_survives_a_redis_crash(tmp_path: Path, logs: LogWatch) -> None:
    """Issue 20.7 with a Redis that keeps its data (AOF): two instances publish in turn
    (at most ~1,000 a second) through a SIGKILL and restart of Redis; on both, 0 accepted
    messages missing and 0 duplicates (each catches up from the history)."""
    with running_redis(tmp_path, persistent=True) as server:
        one, two = Broadcast(server.url, **FAST), Broadcast(server.url, **FAST)
        async with one, two, one.subscribe("k") as sub_one, two.subscribe("k") as sub_two:
            accepted, refused = await publish_through_an_outage(server, [one, two], "k", after=200)
            assert refused > 0
            for sub in (sub_one, sub_two):
                received = []
                while len(received) < len(accepted):
                    got = await item(sub)
                    assert isinstance(got, Publication), got  # no reset: the history survived
                    received.append(got.data)
                assert received == accepted  # 0 missing, 0 duplicates, in order
                assert sub.qsize() == 0 and sub.dropped == 0


async def test_no_publish_is_accepted_before_this_process_is_subscribed_again(
    redis_server: RedisServer, logs: LogWatch
) -> None:
    """Issue 18.5: without history to catch up from, what this process accepted after
    Redis came back reached its own subscriber, every one."""
    async with Broadcast(redis_server.url, history_size=0, **FAST) as b, b.subscribe("s") as sub:
        accepted, refused = await publish_through_an_outage(redis_server, [b], "s", after=100)
        assert refused > 0
        after = accepted[20:]  # the ones published from the kill on
        received = [await get(sub) for _ in range(20)]
        assert received == accepted[:20]
        while len(received) < len(accepted):
            received.append(await get(sub))  # type: ignore[arg-type]
        assert received[20:] == after


async def test_connect_disconnect_cycles_leave_connections_and_files_at_baseline(redis_server: RedisServer) -> None:
    import redis.asyncio

    admin = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        clients = len(await admin.client_list())
        files = None
        for i in range(101):
            if i == 1:  # after a first cycle: what is made once per process (the loop's own) is made
                files = len(os.listdir("/proc/self/fd"))
            b = Broadcast(redis_server.url)
            async with b, b.subscribe("cycle") as sub, b.presence.join("cycle", "me"):
                await b.publish("cycle", str(i))
                assert await get(sub) == str(i)
        assert len(os.listdir("/proc/self/fd")) == files
        for _ in range(2000):  # Redis notices the closed sockets as it reads them
            if len(await admin.client_list()) == clients:
                break
            await asyncio.sleep(0)
        assert len(await admin.client_list()) == clients
    finally:
        await admin.aclose()


async def test_connected_says_when_publishing_is_possible(redis_server: RedisServer, logs: LogWatch) -> None:
    b = Broadcast(redis_server.url, **FAST)
    assert not b.connected
    async with b:
        assert b.connected
        redis_server.kill()
        with pytest.raises(BroadcastUnavailable):
            await b.publish("c", "x")
        await logs.wait_for(r"lost the connection")
        assert not b.connected
        redis_server.start()
        await logs.wait_for(r"reconnected to Redis")
        assert b.connected
    assert not b.connected


# -- lifecycle and API edges (memory) -------------------------------------------------------


async def test_start_and_stop_are_idempotent_and_publish_starts_lazily() -> None:
    b = Broadcast()
    assert not b.started
    assert await b.publish("x", "nobody listens") == 0  # started lazily
    assert b.started and b.connected
    await b.start()
    await b.stop()
    await b.stop()
    assert not b.started
    async with b.subscribe("x") as sub:  # a stopped Broadcast starts again
        assert b.started
        await b.publish("x", "again")
        assert await get(sub) == "again"
    await b.stop()


async def test_stop_ends_open_subscriptions_after_their_queued_messages() -> None:
    b = Broadcast()
    async with b.subscribe("x") as sub:
        await b.publish("x", "one")
        await b.publish("x", "two")
        await b.stop()
        assert [m async for m in sub] == ["one", "two"]
        with pytest.raises(SubscriptionClosed):
            await sub.get()
    assert b.subscriber_count("x") == 0


async def test_a_waiting_reader_is_woken_by_stop() -> None:
    b = Broadcast()
    async with b.subscribe("x") as sub:
        reader = asyncio.ensure_future(sub.get())
        await asyncio.sleep(0)
        assert not reader.done()
        await b.stop()
        with pytest.raises(SubscriptionClosed):
            await asyncio.wait_for(reader, DEADLINE)


async def test_misuse_is_a_clear_error() -> None:
    b = Broadcast()
    with pytest.raises(TypeError, match="publish_json"):
        await b.publish("x", {"not": "text"})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="channel"):
        await b.publish(b"x", "m")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_queue"):
        b.subscribe("x", max_queue=0)
    with pytest.raises(ValueError, match="max_queue"):
        Broadcast(max_queue=0)
    sub = b.subscribe("x")
    with pytest.raises(RuntimeError, match="async with"):
        await sub.get()
    async with sub:
        reader = asyncio.ensure_future(sub.get())
        await asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="already reading"):
            await sub.get()
        await b.publish("x", "m")
        assert await asyncio.wait_for(reader, DEADLINE) == "m"
    with pytest.raises(RuntimeError, match="entered once"):
        async with sub:
            pass
    await b.stop()


def test_urls_choose_the_backend() -> None:
    assert Broadcast().url == "memory://"
    assert Broadcast("memory://").url == "memory://"
    with pytest.raises(ValueError, match=r"memory://.*redis://host:port/db.*rediss://"):
        Broadcast("kafka://localhost:9092")
    with pytest.raises(ValueError, match="unsupported"):
        Broadcast("localhost:6379")
    b = Broadcast("redis://user:s3cret@127.0.0.1:6379/2")
    assert "s3cret" not in repr(b) and "***" in repr(b)


def test_a_missing_redis_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "redis" or m.startswith("redis.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "redis", None)  # import redis raises ImportError
    with pytest.raises(ImportError, match=r"pip install redis$"):
        Broadcast("redis://127.0.0.1:6379/0")
    Broadcast()  # the memory backend needs nothing


# -- Redis ----------------------------------------------------------------------------------


async def test_start_fails_clearly_when_redis_is_unreachable() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    b = Broadcast(url, **FAST)
    with pytest.raises(BroadcastUnavailable, match="unreachable"):
        await b.start()
    assert not b.started
    with pytest.raises(BroadcastUnavailable):
        await b.publish("x", "m")
    with pytest.raises(BroadcastUnavailable):
        async with b.subscribe("x"):
            pass
    assert b.subscriber_count("x") == 0
    assert isinstance(BroadcastUnavailable(), ConnectionError)


async def test_a_foreign_publisher_s_messages_arrive_as_bytes(redis_server: RedisServer) -> None:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        async with Broadcast(redis_server.url) as b, b.subscribe("x") as sub:
            assert await client.publish("x", "plain") == 1  # what redis-cli PUBLISH sends
            assert await get(sub) == b"plain"
    finally:
        await client.aclose()


async def test_a_killed_and_restarted_redis_is_survived(redis_server: RedisServer, logs: LogWatch) -> None:
    before = asyncio.all_tasks()
    pub = Broadcast(redis_server.url, **FAST)
    side = Broadcast(redis_server.url, **FAST)
    async with pub, side, side.subscribe("chat") as sub:
        await pub.publish("chat", "before")
        assert await get(sub) == "before"

        redis_server.kill()
        with pytest.raises(BroadcastUnavailable, match="chat"):
            await pub.publish("chat", "during")
        # Publishers queued behind a failing one fail too, none waits for long.
        results = await asyncio.gather(*(pub.publish("chat", f"d{i}") for i in range(10)), return_exceptions=True)
        assert all(isinstance(r, BroadcastUnavailable) for r in results)
        await logs.wait_for(r"lost the connection to Redis")
        assert not side.connected and side.started
        async with side.subscribe("late") as late:  # subscribing during the outage works
            redis_server.start()  # same port
            await logs.wait_for(r"reconnected to Redis")
            await wait_numsub(redis_server.url, "chat", 1)  # subscribed again
            await wait_numsub(redis_server.url, "late", 1)
            assert side.connected
            await pub.publish("chat", "after")  # the publisher reconnects by itself
            await pub.publish("late", "welcome")
            assert await get(sub) == "after"  # the subscription stayed open
            assert await get(late) == "welcome"
        assert not sub.closed and sub.dropped == 0
    # per Broadcast (each has its subscriber connection), one warning for the outage and
    # one info line when back, however many attempts the reconnection took
    assert len(logs.matching(r"lost the connection", logging.WARNING)) == 2
    assert len(logs.matching(r"reconnected to Redis", logging.INFO)) == 2
    assert not logs.matching(r"", logging.ERROR)
    assert asyncio.all_tasks() == before


async def test_a_hung_redis_never_hangs_a_publisher(redis_server: RedisServer, logs: LogWatch) -> None:
    pub = Broadcast(redis_server.url, **FAST)
    side = Broadcast(redis_server.url, health_check_interval=0.2, **FAST)
    async with pub, side, side.subscribe("h") as sub:
        await pub.publish("h", "before")
        assert await get(sub) == "before"
        redis_server.pause()  # the connections stay open, nothing answers
        try:
            with pytest.raises(BroadcastUnavailable, match=r"[Tt]imeout"):
                await pub.publish("h", "during")
            # the subscriber's health check finds the silent connection
            await logs.wait_for(r"lost the connection to Redis")
        finally:
            redis_server.resume()
        await logs.wait_for(r"reconnected to Redis")
        await wait_numsub(redis_server.url, "h", 1)
        await pub.publish("h", "after")
        while (message := await get(sub)) != "after":
            # a PUBLISH Redis read before it stopped may still be delivered once it resumes
            assert message == "during"
        assert not sub.closed


async def test_a_failure_in_the_reader_is_logged_and_the_reader_carries_on(
    redis_server: RedisServer, logs: LogWatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hump_listener import broadcast_redis as module

    decode = module._decode_publication

    def faulty(channel: str, payload: bytes) -> object:
        if payload.endswith(b"boom"):
            raise RuntimeError("a bug while decoding")
        return decode(channel, payload)

    monkeypatch.setattr(module, "_decode_publication", faulty)
    async with Broadcast(redis_server.url, **FAST) as b, b.subscribe("r") as sub:
        await b.publish("r", "boom")
        (record,) = await logs.wait_for(r"the Redis reader failed")
        assert record.levelno == logging.ERROR and record.exc_info is not None
        assert "a bug while decoding" in str(record.exc_info[1])
        await logs.wait_for(r"reconnected to Redis")
        await wait_numsub(redis_server.url, "r", 1)
        await b.publish("r", "fine")
        # the message the reader choked on is not lost: the catch-up reads it from the history
        assert await get(sub) == "boom"
        assert await get(sub) == "fine"


def stream_lines(port: int, path: str) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE)
    conn.request("GET", path)
    response = conn.getresponse()
    assert response.status == 200
    return conn, response


def post(port: int, path: str, body: bytes) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=DEADLINE)
    try:
        conn.request("POST", path, body=body)
        response = conn.getresponse()
        assert response.status == 200
        return response.read().decode()
    finally:
        conn.close()


def test_two_server_processes_exchange_messages_through_redis(redis_server: RedisServer) -> None:
    env = {"HUMP_BROADCAST_URL": redis_server.url, "HUMP_ACCESS_LOG": "0"}
    app = tiny_listener("apps.broadcast_app:app")
    with launch(app, env=env) as one, launch(app, env=env) as two:
        ports = one.serving_port(), two.serving_port()
        assert ports[0] != ports[1]
        for sub_port, pub_port in (ports, ports[::-1]):
            conn, stream = stream_lines(sub_port, "/subscribe/chat?n=2")
            try:
                assert stream.readline() == b"subscribed\n"
                assert post(pub_port, "/text/chat", "h\xe9llo".encode()) == "1"  # one subscribed process
                assert post(pub_port, "/bytes/chat", b"\x00\xff") == "1"
                assert stream.readline().decode() == "str:h\xe9llo\n"
                assert stream.readline() == b"bytes:00ff\n"
                assert stream.readline() == b""  # n=2: the response ends
            finally:
                conn.close()
