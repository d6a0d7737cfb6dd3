"""Durable events survive SIGKILL (issue 21 item 2), with real worker processes.

1,000 events over 3 worker processes (``tests/apps/durable_worker_app.py``) on a real
redis-server; a worker is SIGKILLed 10 times, at random points of the run (after a random
number of completions), and started again. Right after each kill the test asks Redis
which events the dead worker held (its consumer's pending entries: taken, not
acknowledged). Then: every event completed at least once, nothing was dead-lettered,
and every event that completed more than once was held by a killed worker (a duplicate
is a run cut short, or finished but not yet acknowledged, at a kill), at most once more
than the kills that held it.

Slow (half a minute): it runs in one of scripts/test's three passes (asyncio loop, pure
h11 parser: the default), and is skipped in the h11_mypyc and uvloop passes (it uses no
parser, and its workers' loop is not what it tests).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import uuid
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
from process_helpers import Launched, cli, launch
from redis_helpers import running_redis

from hump_listener import App
from hump_listener.durable_redis import GROUP
from hump_listener.testing import AsyncTestClient

pytestmark = [
    pytest.mark.skipif(os.name != "posix", reason="SIGKILL and worker processes are POSIX"),
    pytest.mark.skipif(
        os.environ.get("HUMP_PARSER") == "h11_mypyc" or os.environ.get("HUMP_TEST_LOOP") == "uvloop",
        reason="slow: runs in the first pass of scripts/test only (h11, asyncio)",
    ),
]

EVENTS = 1000
WORKERS = 3
KILLS = 10
#: Seconds before a dead worker's events are taken over (the default is 30 s).
VISIBILITY = 2.0
#: Bound on the whole run: the events take ~10 s of work over 30 slots, plus the kills'
#: takeovers; a stuck run fails instead of hanging.
RUN_TIMEOUT = 120.0


def start_worker(stack: ExitStack, url: str, prefix: str) -> Launched:
    env = {"HUMP_BROADCAST_URL": url, "DURABLE_PREFIX": prefix, "DURABLE_VISIBILITY": str(VISIBILITY)}
    worker = stack.enter_context(launch(cli("apps.durable_worker_app:app", "--port", "0"), env=env))
    worker.serving_port()  # started: in the group, taking events
    return worker


async def held_by(client: Any, stream: str, pid: int) -> list[int]:
    """The events a (just killed) worker process held: its consumer's pending entries."""
    mine = f"{socket.gethostname()}:{pid}:".encode()
    held: list[int] = []
    for consumer in await client.xinfo_consumers(stream, GROUP):
        if not consumer["name"].startswith(mine) or not consumer["pending"]:
            continue
        rows = await client.xpending_range(stream, GROUP, "-", "+", 10_000, consumername=consumer["name"])
        for row in rows:
            [(_, fields)] = await client.xrange(stream, row["message_id"], row["message_id"])
            held.append(int(fields[b"m"].split(b'"name":"work ', 1)[1].split(b'"', 1)[0]))
    return held


@pytest.mark.timeout(RUN_TIMEOUT + 60)  # the suite's 60 s per test is too short here
async def test_every_event_completes_and_duplicates_are_only_events_held_at_a_kill(tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    prefix = f"kill:{uuid.uuid4().hex[:8]}"
    stream, done_key = f"{prefix}:stream", f"{prefix}:done"
    with running_redis(tmp_path) as server, ExitStack() as stack:
        client = redis.asyncio.Redis.from_url(server.url)
        workers = [start_worker(stack, server.url, prefix) for _ in range(WORKERS)]
        producer = App(access_log=False)
        producer.durable.configure(url=server.url, prefix=prefix, concurrency=0)

        @producer.on_event("work {n:int}", durable=True)
        async def work() -> None: ...

        loop = asyncio.get_running_loop()
        deadline = loop.time() + RUN_TIMEOUT
        held_at_kills: Counter[int] = Counter()
        async with AsyncTestClient(producer):
            await asyncio.gather(*(
                producer.trigger_event(f"work {n}", data={"ms": rng.randrange(50, 400)}) for n in range(EVENTS)
            ))
            # Kill after random numbers of completions, spread over the run.
            for at in sorted(rng.sample(range(50, EVENTS - 50), KILLS)):
                while await client.llen(done_key) < at:
                    assert loop.time() < deadline, f"stuck at {await client.llen(done_key)} runs (seed {seed})"
                    await asyncio.sleep(0.01)
                victim = rng.randrange(WORKERS)
                pid = workers[victim].proc.pid
                os.kill(pid, signal.SIGKILL)
                workers[victim].proc.wait(timeout=10)
                held = await held_by(client, stream, pid)  # before the visibility timeout hands them on
                held_at_kills.update(held)
                workers[victim] = start_worker(stack, server.url, prefix)
            while len(set(await client.lrange(done_key, 0, -1))) < EVENTS:
                assert loop.time() < deadline, f"not every event completed (seed {seed})"
                await asyncio.sleep(0.05)
            while (stats := await producer.durable.stats())["pending"]:  # duplicates still running
                assert loop.time() < deadline, f"still pending: {stats} (seed {seed})"
                await asyncio.sleep(0.05)
        runs = Counter(int(n) for n in await client.lrange(done_key, 0, -1))
        await client.aclose()
    duplicated = {n: count - 1 for n, count in runs.items() if count > 1}
    print(f"\nkill test (seed {seed}): {EVENTS} events, {KILLS} kills, {sum(held_at_kills.values())} events held "
          f"at a kill, {sum(runs.values())} runs, {len(duplicated)} events ran twice or more "
          f"({sum(duplicated.values())} extra runs)")
    assert set(runs) == set(range(EVENTS))
    assert stats["dead"] == 0
    assert held_at_kills, "no kill caught an event in flight: the test tested nothing"
    assert set(duplicated) <= set(held_at_kills), f"duplicates never held at a kill (seed {seed})"
    assert all(extra <= held_at_kills[n] for n, extra in duplicated.items()), f"seed {seed}"
