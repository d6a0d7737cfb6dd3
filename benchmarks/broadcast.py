"""Publish-to-receive latency and messages per second through hump_listener's Broadcast
(memory and Redis), beside the same path through encode/broadcaster (memory and redis
backends) and plain redis-py pub/sub, in one run.

    python benchmarks/broadcast.py [--quick] [--rounds 3] [--samples 2000]
                                   [--messages 10000] [--size 64] [--max-seconds 100]

How it measures (every implementation the same way):

- It starts its own ``redis-server`` (127.0.0.1, a free port, a temp dir, no
  persistence) pinned with taskset to CPU 1, and pins itself to CPU 0: the publisher
  and the subscriber share CPU 0 (one event loop), Redis has CPU 1.
- Publisher and subscriber are separate objects, as in two processes: for Redis, two
  hump Broadcasts, two broadcaster Broadcasts, two redis-py clients; for memory there is
  one Broadcast (that is the memory backend's reach). The subscriber is a task of its own
  that takes each message as it comes, as a WebSocket relay would.
- **latency**: one message at a time (``--size`` bytes of text), from just before
  ``publish`` is called to the subscriber task holding it; p50 and p99 over ``--samples``.
- **msgs/s**: ``--messages`` published back to back (each ``publish`` awaited), divided
  by the time until the subscriber has the last one. hump subscriptions get
  ``max_queue=--messages`` here so that nothing is dropped (broadcaster's queues are
  unbounded); a "lost" column says if anything went missing anyway.
- Rounds are interleaved (every implementation once per round, the order reversed on
  every other round) and the table shows medians over rounds with [min-max]. The run
  stops early, with what it has, after ``--max-seconds``.

**CPU us/msg** is this process's CPU time (publisher and subscriber, not Redis) per message
in the msgs/s run: on a shared machine it moves much less than wall-clock figures.
**history cost** (printed under the table) is that figure for hump_listener with its
history on and off, measured apart: 7 interleaved pairs of longer runs (100,000 messages
on memory, 5,000 on Redis: a msgs/s run on memory is ~15 ms of CPU, too short to compare
figures 20 % apart) with at most 100 messages in flight (memory's publish never yields;
without a window its subscriber queue would hold the whole run).
The ratios compare against hump_listener on the same backend; > 1.00x means hump_listener
is faster (lower latency, more messages per second, less CPU per message).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "benchmarks")]

from common import pin_self, spread, text_table  # noqa: E402
from redis_helpers import RedisServer, redis_server_path  # noqa: E402

from hump_listener.broadcast import Broadcast  # noqa: E402

BENCH_CPU, REDIS_CPU = 0, 1
CHANNEL = "bench"
END = "end"  # the last message of a throughput run

#: (publish, receive): receive returns the next message as str.
Endpoints = tuple[Callable[[str], Awaitable[Any]], Callable[[], Awaitable[str]]]
Setup = Callable[[str, int], AbstractAsyncContextManager[Endpoints]]


# -- the implementations ------------------------------------------------------------------


@asynccontextmanager
async def hump_memory(url: str, max_queue: int) -> AsyncIterator[Endpoints]:
    async with Broadcast() as b, b.subscribe(CHANNEL, max_queue=max_queue) as sub:

        async def receive() -> str:
            return str(await sub.get())

        yield (lambda m: b.publish(CHANNEL, m)), receive


@asynccontextmanager
async def hump_memory_no_history(url: str, max_queue: int) -> AsyncIterator[Endpoints]:
    async with Broadcast(history_size=0) as b, b.subscribe(CHANNEL, max_queue=max_queue) as sub:

        async def receive() -> str:
            return str(await sub.get())

        yield (lambda m: b.publish(CHANNEL, m)), receive


@asynccontextmanager
async def hump_redis_no_history(url: str, max_queue: int) -> AsyncIterator[Endpoints]:
    async with Broadcast(url, history_size=0) as pub, Broadcast(url, history_size=0) as side, \
            side.subscribe(CHANNEL, max_queue=max_queue) as sub:

        async def receive() -> str:
            return str(await sub.get())

        yield (lambda m: pub.publish(CHANNEL, m)), receive


@asynccontextmanager
async def hump_redis(url: str, max_queue: int) -> AsyncIterator[Endpoints]:
    async with Broadcast(url) as pub, Broadcast(url) as side, side.subscribe(CHANNEL, max_queue=max_queue) as sub:

        async def receive() -> str:
            return str(await sub.get())

        yield (lambda m: pub.publish(CHANNEL, m)), receive


@asynccontextmanager
async def broadcaster_backend(url: str, max_queue: int) -> AsyncIterator[Endpoints]:
    from broadcaster import Broadcast as Peer

    pub = Peer(url)
    side = pub if url.startswith("memory") else Peer(url)
    await pub.connect()
    if side is not pub:
        await side.connect()
    try:
        async with side.subscribe(channel=CHANNEL) as subscriber:
            # broadcaster 0.3.1's Redis listener task wakes on its _ready event before
            # redis-py has recorded the channel, finds `pubsub.subscribed` still False and
            # waits on _ready again, forever: nothing is ever received. Setting the event
            # once the subscription is recorded works around it (its memory backend has none).
            ready = getattr(side._backend, "_ready", None)
            if ready is not None:
                ready.set()

            async def receive() -> str:
                return str((await subscriber.get()).message)

            yield (lambda m: pub.publish(channel=CHANNEL, message=m)), receive
    finally:
        await pub.disconnect()
        if side is not pub:
            await side.disconnect()


@asynccontextmanager
async def broadcaster_memory(url: str, max_queue: int) -> AsyncIterator[Endpoints]:
    async with broadcaster_backend("memory://", max_queue) as endpoints:
        yield endpoints


@asynccontextmanager
async def redis_py(url: str, max_queue: int) -> AsyncIterator[Endpoints]:
    import redis.asyncio

    pub = redis.asyncio.Redis.from_url(url)
    side = redis.asyncio.Redis.from_url(url)
    pubsub = side.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(CHANNEL)
    try:

        async def receive() -> str:
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
                if message is not None:
                    return str(message["data"].decode())

        yield (lambda m: pub.publish(CHANNEL, m)), receive
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await side.aclose()
        await pub.aclose()


@dataclass
class Impl:
    backend: str
    name: str
    setup: Setup
    module: str | None = None  # a package that must be importable


#: "hump_listener" keeps a history (the default: 1000 messages per channel, a Redis Stream
#: on Redis); "hump, no history" is history_size=0 (plain pub/sub, at most once).
NO_HISTORY = "hump, no history"
IMPLS = [
    Impl("memory", "hump_listener", hump_memory),
    Impl("memory", NO_HISTORY, hump_memory_no_history),
    Impl("memory", "broadcaster", broadcaster_memory, "broadcaster"),
    Impl("redis", "hump_listener", hump_redis, "redis"),
    Impl("redis", NO_HISTORY, hump_redis_no_history, "redis"),
    Impl("redis", "broadcaster", broadcaster_backend, "broadcaster"),
    Impl("redis", "redis-py pubsub", redis_py, "redis"),
]


# -- measuring ----------------------------------------------------------------------------


@dataclass
class Sample:
    p50_us: float
    p99_us: float
    rate: float
    cpu_us: float  # this process's CPU time per message in the throughput run
    lost: int


@dataclass
class Row:
    impl: Impl
    samples: list[Sample] = field(default_factory=list)
    failure: str | None = None


async def settle(publish: Callable[[str], Awaitable[Any]], receive: Callable[[], Awaitable[str]]) -> None:
    """Until a message gets through (broadcaster and redis-py do not wait for Redis to
    confirm a SUBSCRIBE), then drain the extra ones."""
    for i in range(200):
        await publish(f"warm{i}")
        try:
            await asyncio.wait_for(receive(), 0.05)
            break
        except asyncio.TimeoutError:
            continue
    else:
        raise RuntimeError("no message got through")
    await publish("sync")
    while await asyncio.wait_for(receive(), 5) != "sync":
        pass


async def measure(impl: Impl, url: str, samples: int, messages: int, size: int) -> Sample:
    payload = "x" * size
    loop = asyncio.get_running_loop()
    async with impl.setup(url, messages + 1) as (publish, receive):
        await settle(publish, receive)
        # latency: a consumer task resolves one future per message
        arrived: asyncio.Future[int] | None = None

        async def consume_one_by_one() -> None:
            nonlocal arrived
            while True:
                await receive()
                if arrived is not None and not arrived.done():
                    arrived.set_result(time.perf_counter_ns())

        consumer = asyncio.ensure_future(consume_one_by_one())
        latencies: list[int] = []
        try:
            for _ in range(samples):
                arrived = loop.create_future()
                start = time.perf_counter_ns()
                await publish(payload)
                latencies.append(await asyncio.wait_for(arrived, 10) - start)
        finally:
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)
        await settle(publish, receive)
        rate, cpu_us, lost = await throughput(publish, receive, messages, payload)
    latencies.sort()
    return Sample(
        p50_us=latencies[len(latencies) // 2] / 1000,
        p99_us=latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] / 1000,
        rate=rate,
        cpu_us=cpu_us,
        lost=lost,
    )


async def throughput(
    publish: Callable[[str], Awaitable[Any]],
    receive: Callable[[], Awaitable[str]],
    messages: int,
    payload: str,
    window: int | None = None,
) -> tuple[float, float, int]:
    """Back-to-back publishes until the consumer has END: (msgs/s, CPU us/msg, lost).
    ``window``: after that many publishes, wait until the consumer has them all (the
    memory backend's publish never yields: without it its subscriber queue holds every
    message of the run at once)."""
    loop = asyncio.get_running_loop()
    received = 0
    done: asyncio.Future[int] = loop.create_future()
    caught_up: asyncio.Future[None] | None = None
    target = 0

    async def consume_all() -> None:
        nonlocal received
        while True:
            message = await receive()
            if message == END:
                done.set_result(time.perf_counter_ns())
                return
            received += 1
            if caught_up is not None and received >= target and not caught_up.done():
                caught_up.set_result(None)

    consumer = asyncio.ensure_future(consume_all())
    try:
        cpu = time.process_time()
        start = time.perf_counter_ns()
        for sent in range(1, messages + 1):
            await publish(payload)
            if window is not None and sent % window == 0 and received < sent:
                target, caught_up = sent, loop.create_future()
                await caught_up
        await publish(END)
        end = await asyncio.wait_for(done, 60)
        cpu = time.process_time() - cpu
    finally:
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
    return messages / ((end - start) / 1e9), cpu / messages * 1e6, messages - received


#: Messages a resuming subscriber missed, in the resume measurement (issue 20 item 9).
RESUMED = 1000


async def resume_times(url: str | None, missed: int, runs: int) -> list[float]:
    """Milliseconds from ``subscribe(since=...)`` to holding the last of ``missed``
    messages published while the subscriber was away (from the history)."""
    times = []
    async with Broadcast(url) as pub, Broadcast(url) if url else pub as side:
        for run in range(runs):
            channel = f"resume-{run}"
            since = await pub.position(channel)
            for i in range(missed):
                await pub.publish(channel, f"message {i}")
            start = time.perf_counter()
            async with side.subscribe(channel, since=since) as sub:
                for _ in range(missed):
                    await sub.get()
            times.append((time.perf_counter() - start) * 1000)
    return times


#: Messages per history-cost run: 0.15-0.5 s of CPU, so that a run is long
#: enough for process_time() to be steady on a shared machine (the table's throughput run
#: is ~15 ms of CPU on memory: too short to compare two figures 20 % apart).
HISTORY_COST_MESSAGES = {"memory": 100_000, "redis": 5_000}
#: Pairs of runs (history on, off; the order alternating) behind the history cost.
HISTORY_COST_PAIRS = 7
#: Messages in flight at most in a history-cost run: the publisher waits for the
#: subscriber every this many (as a relay's send would), on both backends and both ways.
HISTORY_COST_WINDOW = 100


async def history_cost(url: str | None, size: int) -> list[str]:
    """Publish CPU with the history beside without it (goal: at most 1.25x): the
    table's throughput run (publisher and subscriber in this process, each publish
    awaited) with at most ``HISTORY_COST_WINDOW`` messages in flight, the same workload
    with the history on and off, ``HISTORY_COST_MESSAGES`` at a time, ``HISTORY_COST_PAIRS``
    pairs interleaved; medians, [min-max], and the median of the pairs' ratios."""
    lines = []
    setups = {
        "memory": (hump_memory, hump_memory_no_history),
        "redis": (hump_redis, hump_redis_no_history),
    }
    for backend, (with_history, without) in setups.items():
        if backend == "redis" and url is None:
            continue
        messages = HISTORY_COST_MESSAGES[backend]
        cpu: dict[bool, list[float]] = {True: [], False: []}
        for pair in range(HISTORY_COST_PAIRS):
            for history in (True, False) if pair % 2 == 0 else (False, True):
                setup = with_history if history else without
                async with setup(url or "memory://", messages + 1) as (publish, receive):
                    await settle(publish, receive)
                    _, cpu_us, lost = await throughput(publish, receive, messages, "x" * size, HISTORY_COST_WINDOW)
                assert lost == 0, f"{lost} messages lost"
                cpu[history].append(cpu_us)
        ratios = [h / n for h, n in zip(cpu[True], cpu[False], strict=True)]
        lines.append(
            f"history cost ({backend}): {statistics.median(cpu[True]):.2f} CPU us/msg with history "
            f"{spread(cpu[True], '.2f')}, {statistics.median(cpu[False]):.2f} without {spread(cpu[False], '.2f')}: "
            f"{statistics.median(ratios):.2f}x (median of {len(ratios)} pairs of {messages} messages; "
            f"goal <= 1.25x)"
        )
    return lines


def available(impl: Impl) -> str | None:
    if impl.module is None:
        return None
    try:
        __import__(impl.module)
    except ImportError:
        return f"skipped: pip install {impl.module} (or -e '.[bench]')"
    return None


async def run(args: argparse.Namespace, url: str | None) -> list[Row]:
    rows = [Row(impl) for impl in IMPLS]
    for row in rows:
        row.failure = available(row.impl)
        if row.impl.backend == "redis" and url is None and row.failure is None:
            row.failure = "skipped: redis-server is not installed"
    deadline = time.monotonic() + args.max_seconds
    for rnd in range(args.rounds):
        order = rows if rnd % 2 == 0 else rows[::-1]
        for row in order:
            if row.failure is not None:
                continue
            if time.monotonic() > deadline:
                print(f"-- --max-seconds reached in round {rnd + 1}: the table has what was measured", flush=True)
                return rows
            try:
                sample = await measure(row.impl, url or "memory://", args.samples, args.messages, args.size)
            except Exception as exc:  # a row that fails says why; the rest still runs
                row.failure = f"FAILED: {type(exc).__name__}: {exc}"
                continue
            row.samples.append(sample)
            print(
                f"round {rnd + 1}: {row.impl.backend:<6} {row.impl.name:<16} p50 {sample.p50_us:8.1f} us  "
                f"p99 {sample.p99_us:8.1f} us  {sample.rate:10.0f} msgs/s  {sample.cpu_us:6.1f} CPU us/msg  "
                f"lost {sample.lost}",
                flush=True,
            )
    return rows


# -- the table ----------------------------------------------------------------------------


def table(rows: list[Row], args: argparse.Namespace) -> str:
    reference = {r.impl.backend: r for r in rows if r.impl.name == "hump_listener" and r.samples}
    header = (
        "backend", "implementation", "p50 us", "p99 us", "msgs/s", "CPU us/msg", "lost",
        "hump speedup p50", "msgs/s", "CPU",
    )
    lines: list[tuple[str, ...]] = [header]
    for row in rows:
        if not row.samples:
            lines.append((row.impl.backend, row.impl.name, row.failure or "no sample", *[""] * (len(header) - 3)))
            continue
        p50 = [s.p50_us for s in row.samples]
        p99 = [s.p99_us for s in row.samples]
        rate = [s.rate for s in row.samples]
        cpu = [s.cpu_us for s in row.samples]
        ref = reference.get(row.impl.backend)
        if ref is None or ref is row:
            ratios = ("1.00x" if ref is row else "",) * 3
        else:
            ratios = (
                f"{statistics.median(p50) / statistics.median([s.p50_us for s in ref.samples]):.2f}x",
                f"{statistics.median([s.rate for s in ref.samples]) / statistics.median(rate):.2f}x",
                f"{statistics.median(cpu) / statistics.median([s.cpu_us for s in ref.samples]):.2f}x",
            )
        lines.append((
            row.impl.backend, row.impl.name, spread(p50, ".1f"), spread(p99, ".1f"), spread(rate, ".0f"),
            spread(cpu, ".1f"), str(max(s.lost for s in row.samples)), *ratios,
        ))
    out = text_table(lines)
    note = (
        f"samples per row: {', '.join(f'{r.impl.backend}/{r.impl.name} {len(r.samples)}' for r in rows)} "
        f"(of {args.rounds} round(s)); {args.samples} latency samples and {args.messages} messages of "
        f"{args.size} B each; medians [min-max] over rounds; hump speedup > 1.00x: hump_listener is faster"
    )
    return "\n".join([*out, note])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=2000, help="latency samples per round")
    parser.add_argument("--messages", type=int, default=10000, help="messages per throughput run")
    parser.add_argument("--size", type=int, default=64, help="message size in bytes (text)")
    parser.add_argument("--max-seconds", type=float, default=100.0, help="stop starting measurements after this")
    parser.add_argument("--quick", action="store_true", help="1 round, 300 samples, 3000 messages (overrides)")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.samples, args.messages = 1, 300, 3000
    pinned = pin_self(BENCH_CPU)
    print(f"python {sys.version.split()[0]}; pinned: {'bench CPU 0, redis-server CPU 1' if pinned else 'no'}")
    executable = redis_server_path()
    with tempfile.TemporaryDirectory(prefix="hump-bench-redis-") as tmp:
        server = None
        if executable is not None:
            server = RedisServer(executable, Path(tmp), REDIS_CPU if pinned else None)
            server.start()
        try:
            server_url = server.url if server else None
            rows = asyncio.run(run(args, server_url))
            costs = asyncio.run(history_cost(server_url, args.size))
            resumes = {}
            for backend, url in (("memory", None), ("redis", server_url)):
                if backend != "redis" or url is not None:
                    resumes[backend] = asyncio.run(resume_times(url, RESUMED, max(3, args.rounds * 3)))
        finally:
            if server is not None:
                server.kill()
    print()
    print(table(rows, args))
    print()
    print("\n".join(costs))
    for backend, times in resumes.items():
        print(
            f"resume {RESUMED} missed messages ({backend}): subscribe(since=...) to the last one held, "
            f"median {statistics.median(times):.2f} ms [{min(times):.2f}-{max(times):.2f}] over {len(times)} runs"
        )


if __name__ == "__main__":
    main()
