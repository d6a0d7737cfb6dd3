"""durable_redis.py: durable events on a real redis-server (tests/redis_helpers.py).

Apps in one process stand for workers of different hosts: they share nothing but Redis.
An event stored by one runs on another; keys and delays hold across them; a worker that
goes silent has its event taken over after the visibility timeout, a live one keeps its
lease; the drain hands back what still runs, at once; retries, dead letters and requeueing
live in Redis; an outage fails triggers clearly and the workers recover. Skipped, with the
reason, where redis-server is not installed. Real worker processes killed with SIGKILL
are test_durable_kill.py's."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
from redis_helpers import RedisServer, free_port, running_redis
from tiny_listener import Param

from hump_listener import App, HTTPContext
from hump_listener.durable import Durable, DurableEvent, DurableUnavailable, WorkerLost, encode
from hump_listener.durable_redis import (
    BLOCK,
    CONSUMER_FORGOTTEN,
    DEAD_LETTERS_KEPT,
    GROUP,
    KEY_PENDING_TTL,
    PROMOTE_EVERY,
    REDIS_TIMEOUT,
    TRIM_EVERY,
    RedisQueue,
)
from hump_listener.testing import AsyncTestClient, TestClient

#: Clock resolution: uvloop's ``loop.time()`` and Redis' ``TIME`` (as the scripts use it)
#: count whole milliseconds.
TICK = 0.002
#: Bound on any wait for a worker to do something (a busy CI machine is slow, not stuck).
WAIT = 20.0


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the module; each test has its own key prefix."""
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def prefix() -> str:
    return f"test:{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[Any]:
    """A plain redis-py client, to look at what the queue left in Redis."""
    c = redis.asyncio.Redis.from_url(redis_server.url)
    yield c
    await c.aclose()


class Worker:
    """An app on the shared Redis whose ``job {n:int}`` event records each run and can be
    told to fail or to hold (until ``release``) by its data."""

    def __init__(self, url: str, prefix: str, shutdown_timeout: float = 10.0, **configure: Any) -> None:
        self.app = App(access_log=False, shutdown_timeout=shutdown_timeout)
        self.app.durable.configure(url=url, prefix=prefix, **configure)
        self.runs: list[tuple[str, int, int]] = []  # (event id, n, attempt)
        self.started: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
        self.release = asyncio.Event()
        self.fixed = False  # "fail" jobs succeed from now on

        @self.app.on_event("job {n:int}", durable=Durable(attempts=3, backoff=0.05))
        async def job(event: DurableEvent, n: Param) -> None:
            mode = event.data.get("mode", "ok")
            await self.started.put((event.id, event.attempt))
            if mode == "hold" and event.attempt == 1:
                await self.release.wait()
            if mode == "fail" and not self.fixed:
                raise RuntimeError(f"job {n} failed")
            self.runs.append((event.id, n, event.attempt))

    async def ran(self, count: int) -> list[tuple[str, int, int]]:
        for _ in range(int(WAIT / 0.01)):
            if len(self.runs) >= count:
                return self.runs
            await asyncio.sleep(0.01)
        raise AssertionError(f"{len(self.runs)} runs, not {count}")


async def settled(app: App) -> dict[str, int]:
    """The queue's counts once nothing is pending (the last acknowledgement is flushed)."""
    for _ in range(int(WAIT / 0.01)):
        stats = await app.durable.stats()
        if stats["pending"] == 0:
            return stats
        await asyncio.sleep(0.01)
    raise AssertionError(f"still pending: {stats}")


@asynccontextmanager
async def started(*workers: Worker) -> AsyncIterator[None]:
    async with AsyncExitStack() as stack:
        for worker in workers:
            await stack.enter_async_context(AsyncTestClient(worker.app))
        yield


# -- any worker, keys, delays --------------------------------------------------------------


async def test_an_event_stored_by_one_app_runs_on_another(redis_server: RedisServer, prefix: str) -> None:
    web = Worker(redis_server.url, prefix, concurrency=0)  # only triggers
    worker = Worker(redis_server.url, prefix)
    async with started(web, worker):
        ids = [await web.app.trigger_event(f"job {n}") for n in range(5)]
        runs = await worker.ran(5)
        assert sorted(runs) == sorted((event_id, n, 1) for n, event_id in enumerate(ids))
        assert web.runs == []
        stats = await settled(web.app)
        assert (stats["queued"], stats["running"], stats["delayed"], stats["dead"], stats["pending"]) == (0, 0, 0, 0, 0)


async def test_a_key_queues_one_event_across_apps_and_is_kept_after_it_ran(
    redis_server: RedisServer, prefix: str, client: Any
) -> None:
    a = Worker(redis_server.url, prefix, concurrency=0, key_retention=120)
    b = Worker(redis_server.url, prefix, key_retention=120)
    async with started(a, b):
        first = await a.app.trigger_event("job 1", key="order-1")
        assert 0 < await client.ttl(f"{prefix}:key:order-1") <= KEY_PENDING_TTL  # held while pending
        again = await b.app.trigger_event("job 2", key="order-1")
        assert first == again
        await b.ran(1)
        assert await b.app.trigger_event("job 3", key="order-1") == first  # finished, still known
        for _ in range(int(WAIT / 0.01)):
            if await client.ttl(f"{prefix}:key:order-1") <= 120:
                break
            await asyncio.sleep(0.01)
        assert 0 < await client.ttl(f"{prefix}:key:order-1") <= 120  # the retention started
        assert [n for _, n, _ in b.runs] == [1]


async def test_a_delayed_event_waits_in_a_sorted_set_by_redis_clock(
    redis_server: RedisServer, prefix: str, client: Any
) -> None:
    worker = Worker(redis_server.url, prefix)
    async with started(worker):
        loop = asyncio.get_running_loop()
        before = loop.time()
        await worker.app.trigger_event("job 1", delay=0.3)
        assert await client.zcard(f"{prefix}:delayed") == 1
        assert (await worker.app.durable.stats())["delayed"] == 1
        await asyncio.wait_for(worker.started.get(), WAIT)
        assert loop.time() - before >= 0.3 - TICK  # Redis' clock and the loop's: ms each
        assert await client.zcard(f"{prefix}:delayed") == 0


async def test_a_request_s_trigger_is_in_redis_before_the_answer_and_runs_fresh_elsewhere(
    redis_server: RedisServer, prefix: str, client: Any
) -> None:
    # The web app takes the Redis URL from its broadcast_url (item 1) and runs no events.
    web = App(access_log=False, broadcast_url=redis_server.url)
    web.durable.configure(prefix=prefix, concurrency=0)
    stored_at_answer: list[int] = []

    @web.on_event("resize {w:int}", durable=True)
    async def resize_stub() -> None: ...

    @web.post("/resize")
    async def post(ctx: HTTPContext) -> dict[str, Any]:
        event_id = await ctx.trigger_event("resize 640", data={"name": "cat.png"})
        stored_at_answer.append(await client.xlen(f"{prefix}:stream"))
        return {"id": event_id}

    worker = App(access_log=False, broadcast_url=redis_server.url)
    worker.durable.configure(prefix=prefix)
    seen: list[tuple[str, int, int, str, bool]] = []
    done = asyncio.Event()

    @worker.on_event("resize {w:int}", durable=True)
    async def resize(event: DurableEvent, w: Param) -> None:
        seen.append((event.id, event.attempt, w, event.data["name"], hasattr(event.ctx, "request")))
        done.set()

    async with AsyncTestClient(web) as http:
        answer = (await http.post("/resize")).json()
        assert stored_at_answer == [1]  # stored before the handler answered
        async with AsyncTestClient(worker):
            await asyncio.wait_for(done.wait(), WAIT)
    assert seen == [(answer["id"], 1, 640, "cat.png", False)]  # Param converted; a fresh context


def test_the_threadsafe_trigger_stores_in_redis(redis_server: RedisServer, prefix: str) -> None:
    app = App(access_log=False, broadcast_url=redis_server.url)
    app.durable.configure(prefix=prefix)
    ran: list[str] = []

    @app.on_event("mail {to}", durable=True)
    async def mail(event: DurableEvent, to: Param) -> None:
        ran.append(f"{event.id} {to}")

    with TestClient(app):
        event_id = app.trigger_event_threadsafe("mail ann", key="welcome-ann").result(timeout=WAIT)
        again = app.trigger_event_threadsafe("mail ann", key="welcome-ann").result(timeout=WAIT)
    assert again == event_id and ran == [f"{event_id} ann"]  # leaving the block waited for it


# -- retries and dead letters ---------------------------------------------------------------


async def test_retries_then_dead_letters_in_redis_and_requeue(
    redis_server: RedisServer, prefix: str, client: Any
) -> None:
    worker = Worker(redis_server.url, prefix)
    errors: list[tuple[int, str]] = []

    @worker.app.on_error(RuntimeError)
    async def hook(event: DurableEvent) -> None:
        errors.append((event.attempt, str(event.error)))

    async with started(worker):
        event_id = await worker.app.trigger_event("job 9", data={"mode": "fail"}, key="k9")
        attempts = [(await asyncio.wait_for(worker.started.get(), WAIT))[1] for _ in range(3)]
        assert attempts == [1, 2, 3]
        stats = await settled(worker.app)
        assert stats["dead"] == 1
        [letter] = await worker.app.durable.dead_letters()
        assert (letter.id, letter.name, letter.data, letter.attempts, letter.key) == (
            event_id, "job 9", {"mode": "fail"}, 3, "k9")
        assert letter.error == "RuntimeError: job 9 failed" and "raise RuntimeError" in letter.traceback
        assert errors == [(3, "job 9 failed")]
        assert 0 < await client.ttl(f"{prefix}:key:k9") <= 3600  # retention started at the dead letter

        worker.fixed = True  # queue it again: the same event, attempts afresh, its key held again
        assert await worker.app.durable.requeue(["not-an-id"]) == 0
        assert await worker.app.durable.requeue() == 1
        assert await worker.ran(1) == [(event_id, 9, 1)]
        assert await worker.app.durable.dead_letters() == []
        assert await client.get(f"{prefix}:key:k9") == event_id.encode()  # held again, by the same id


# -- crashes: taking over, leases, poison ------------------------------------------------------


async def test_a_silent_worker_s_event_is_taken_over_after_the_visibility_timeout(
    redis_server: RedisServer, prefix: str, client: Any
) -> None:
    producer = Worker(redis_server.url, prefix, concurrency=0)
    async with started(producer):
        event_id = await producer.app.trigger_event("job 4")
        # A worker takes it and dies (SIGKILL: it never acknowledges, never leaves).
        dead = RedisQueue(redis_server.url, prefix=prefix, visibility_timeout=0.3, key_retention=60)
        await dead.start(consumer=False)
        [delivery] = await dead.fetch(1)
        assert delivery.message["id"] == event_id and delivery.attempt == 1
        await dead._client.aclose()

        loop = asyncio.get_running_loop()
        taken = loop.time()
        heir = Worker(redis_server.url, prefix, visibility_timeout=0.3)
        async with started(heir):
            assert await heir.ran(1) == [(event_id, 4, 2)]  # the lost run counted as an attempt
            assert loop.time() - taken >= 0.3 - TICK
        assert (await client.xpending(f"{prefix}:stream", GROUP))["pending"] == 0


async def test_a_live_worker_keeps_its_lease_past_the_visibility_timeout(
    redis_server: RedisServer, prefix: str, client: Any
) -> None:
    a = Worker(redis_server.url, prefix, visibility_timeout=0.3)
    b = Worker(redis_server.url, prefix, visibility_timeout=0.3)
    async with started(a, b):
        event_id = await a.app.trigger_event("job 1", data={"mode": "hold"})
        holder = await _first_started(a, b)
        other = b if holder is a else a
        await asyncio.sleep(1.2)  # four visibility timeouts: the lease must be renewed meanwhile
        assert other.started.empty()
        [row] = await client.xpending_range(f"{prefix}:stream", GROUP, "-", "+", 10)
        assert row["times_delivered"] == 1
        holder.release.set()
        assert await holder.ran(1) == [(event_id, 1, 1)]
        assert other.runs == []


async def _first_started(a: Worker, b: Worker) -> Worker:
    for _ in range(int(WAIT / 0.01)):
        for worker in (a, b):
            if not worker.started.empty():
                return worker
        await asyncio.sleep(0.01)
    raise AssertionError("nobody started the event")


async def test_an_event_whose_worker_keeps_dying_is_dead_lettered_as_worker_lost(
    redis_server: RedisServer, prefix: str, client: Any
) -> None:
    worker = Worker(redis_server.url, prefix)
    lost: list[str] = []

    @worker.app.on_error(WorkerLost)
    async def hook(event: DurableEvent) -> None:
        lost.append(event.id)

    async with started(worker):
        # As XAUTOCLAIM would hand it out after its third worker died: attempt 4 of 3.
        message = {"id": "d" * 32, "name": "job 5", "data": {}, "attempt": 4}
        await client.xadd(f"{prefix}:stream", {"m": encode(message)})
        for _ in range(int(WAIT / 0.01)):
            if lost:
                break
            await asyncio.sleep(0.01)
        [letter] = await worker.app.durable.dead_letters()
    assert lost == ["d" * 32] and worker.runs == []
    assert letter.error.startswith("WorkerLost:") and letter.attempts == 4


# -- shutdown hands work back ------------------------------------------------------------------


async def test_the_drain_hands_back_a_running_event_at_once(
    redis_server: RedisServer, prefix: str, client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    leaving = Worker(redis_server.url, prefix, shutdown_timeout=0.2)
    with caplog.at_level(logging.INFO, logger="hump_listener.error"):
        async with started(leaving):
            event_id = await leaving.app.trigger_event("job 2", data={"mode": "hold"})
            await asyncio.wait_for(leaving.started.get(), WAIT)
    assert "shutdown: waiting up to 0.2 s for 1 durable event(s)" in caplog.text
    assert "shutdown: handed back 1 durable event(s) still running" in caplog.text
    assert leaving.runs == []
    # Queued again at once (not after the 30 s visibility timeout), for any worker.
    assert (await client.xpending(f"{prefix}:stream", GROUP))["pending"] == 0
    newcomer = Worker(redis_server.url, prefix)
    async with started(newcomer):
        assert await newcomer.ran(1) == [(event_id, 2, 2)]
    consumers = await client.xinfo_consumers(f"{prefix}:stream", GROUP)
    assert consumers == []  # both left the group on their way out


async def test_closing_hands_back_what_was_read_but_never_run(
    redis_server: RedisServer, prefix: str, client: Any
) -> None:
    producer = Worker(redis_server.url, prefix, concurrency=0)
    async with started(producer):
        for n in range(3):
            await producer.app.trigger_event(f"job {n}")
    queue = RedisQueue(redis_server.url, prefix=prefix, visibility_timeout=30, key_retention=60)
    await queue.start(consumer=True)
    assert len(await queue.fetch(2)) == 2
    assert (await client.xpending(f"{prefix}:stream", GROUP))["pending"] == 2
    await queue.close()
    assert (await client.xpending(f"{prefix}:stream", GROUP))["pending"] == 0
    worker = Worker(redis_server.url, prefix)
    async with started(worker):
        assert sorted(n for _, n, _ in await worker.ran(3)) == [0, 1, 2]


# -- outages --------------------------------------------------------------------------------------


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    with running_redis(tmp_path) as server:
        yield server


async def test_an_outage_fails_triggers_clearly_and_the_worker_recovers(
    own_redis: RedisServer, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    worker = Worker(own_redis.url, prefix)
    async with started(worker):
        await worker.app.trigger_event("job 1")
        await worker.ran(1)
        own_redis.kill()
        with pytest.raises(DurableUnavailable, match=r"durable event 'job 2' was not stored: Redis at 127\.0\.0\.1"):
            await asyncio.wait_for(worker.app.trigger_event("job 2"), REDIS_TIMEOUT * 2)
        own_redis.start()  # empty: no stream, no group, no scripts
        for _ in range(int(WAIT / 0.05)):
            try:
                await worker.app.trigger_event("job 3", key="after")  # the store script, loaded again
                break
            except DurableUnavailable:
                await asyncio.sleep(0.05)
        assert [n for _, n, _ in await worker.ran(2)] == [1, 3]
    assert "durable events: Redis at 127.0.0.1" in caplog.text and "unreachable" in caplog.text
    assert "reachable again" in caplog.text


async def test_redis_unreachable_at_startup_stops_the_app() -> None:
    worker = Worker(f"redis://127.0.0.1:{free_port()}/0", "x")
    with pytest.raises(DurableUnavailable, match=r"cannot reach Redis at 127\.0\.0\.1"):
        async with AsyncTestClient(worker.app):
            pass


async def test_a_deleted_stream_gets_its_group_back(
    redis_server: RedisServer, prefix: str, client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    worker = Worker(redis_server.url, prefix)
    async with started(worker):
        # The worker is (most likely) blocked in XREADGROUP: Redis answers UNBLOCKED then,
        # NOGROUP to a read that comes after. Either way the group is made again.
        await client.delete(f"{prefix}:stream")
        for _ in range(int(WAIT / 0.01)):
            if "made again" in caplog.text:
                break
            await asyncio.sleep(0.01)
        assert "the group of " in caplog.text and "was gone (stream deleted?): made again" in caplog.text
        await worker.app.trigger_event("job 1")
        await worker.ran(1)
    assert "taking events failed" not in caplog.text and "consumer stopped" not in caplog.text
    # Maintenance (leases, delays, trimming) survived the deletion too, and the app's stop
    # let go of every connection (it used to re-raise the dead maintainer's NOGROUP).
    assert "maintenance had stopped" not in caplog.text and "failed" not in caplog.text


async def test_an_entry_that_is_not_an_event_is_dropped_with_a_log_line(
    redis_server: RedisServer, prefix: str, client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    worker = Worker(redis_server.url, prefix)
    async with started(worker):
        await client.xadd(f"{prefix}:stream", {"from": "redis-cli"})
        await worker.app.trigger_event("job 1")
        await worker.ran(1)
        await settled(worker.app)
    assert "is not an event" in caplog.text
    assert (await client.xpending(f"{prefix}:stream", GROUP))["pending"] == 0


# -- housekeeping -----------------------------------------------------------------------------------


async def test_acknowledged_entries_are_trimmed_and_dead_consumers_forgotten(
    redis_server: RedisServer, prefix: str, client: Any
) -> None:
    worker = Worker(redis_server.url, prefix, concurrency=50)
    async with started(worker):
        await asyncio.gather(*(worker.app.trigger_event(f"job {n}") for n in range(300)))
        await worker.ran(300)
        await settled(worker.app)
        stream = f"{prefix}:stream"
        await client.xgroup_createconsumer(stream, GROUP, "gone:1:abc")  # killed with nothing pending
        # A consumer that holds an entry (added and read in one transaction, so the live
        # worker, blocked in XREADGROUP, cannot take it first): it stays, and so does its entry.
        async with client.pipeline(transaction=True) as pipe:
            pipe.xadd(stream, {"m": encode({"id": "b" * 32, "name": "job 1", "data": {}, "attempt": 1})})
            pipe.xreadgroup(GROUP, "busy:1:abc", {stream: ">"}, count=1)
            held, _ = await pipe.execute()
        queue = worker.app.durable._queue
        assert isinstance(queue, RedisQueue)
        trimmed, removed = await queue._script("trim", [queue.stream], [GROUP, -1])
        assert trimmed >= 200 and await client.xlen(stream) <= 101
        assert removed >= 1
        names = {c["name"] for c in await client.xinfo_consumers(stream, GROUP)}
        assert b"gone:1:abc" not in names and b"busy:1:abc" in names
        assert [entry for entry, _ in await client.xrange(stream, held, held)] == [held]  # not trimmed


def test_the_documented_constants() -> None:
    assert (GROUP, BLOCK, PROMOTE_EVERY, TRIM_EVERY) == ("workers", 1000, 0.5, 10.0)
    assert (DEAD_LETTERS_KEPT, KEY_PENDING_TTL, CONSUMER_FORGOTTEN, REDIS_TIMEOUT) == (10_000, 604800, 3600, 5.0)
    assert BLOCK / 1000 < REDIS_TIMEOUT


def test_describe_names_the_queue_without_the_password() -> None:
    queue = RedisQueue("redis://user:s3cret@cache:6390/2", prefix="app", visibility_timeout=30, key_retention=60)
    text = queue.describe()
    assert text.startswith("redis://cache:6390/2, stream app:stream, consumer ") and "s3cret" not in text
    assert (queue.stream, queue.delayed, queue.dead, queue.key_prefix) == (
        "app:stream", "app:delayed", "app:dead", "app:key:")


def test_a_missing_redis_package_names_a_command_that_works(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "redis" or m.startswith("redis.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "redis", None)  # import redis raises ImportError
    with pytest.raises(ImportError, match=r"the redis package: pip install redis$"):
        RedisQueue("redis://127.0.0.1:6379/0", prefix="x", visibility_timeout=30, key_retention=60)


def test_the_module_is_imported_only_for_a_redis_url() -> None:
    check = (
        "import asyncio, sys\n"
        "from hump_listener import App\n"
        "app = App()\n"
        "@app.on_event('x', durable=True)\n"
        "async def x() -> None: ...\n"
        "async def main() -> None:\n"
        "    await app.run_startup()\n"
        "    await app.run_shutdown()\n"
        "asyncio.run(main())\n"
        "print('hump_listener.durable_redis' in sys.modules, 'redis' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
