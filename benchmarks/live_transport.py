"""How live messages come from Redis: pub/sub (what ``Broadcast`` uses) beside reading
the channel's Redis Stream (``XREAD BLOCK``), measured the same way, so that the choice
issue 20 left open ("whether live fan-out reads the stream or stays on pub/sub is your
call, measured") rests on figures.

    python benchmarks/live_transport.py [--rounds 3] [--messages 10000] [--samples 1000]
                                        [--channels 1,100] [--size 64]

How it measures (both transports the same way):

- It starts its own ``redis-server`` (127.0.0.1, a free port, a temp dir, no persistence)
  pinned to CPU 1, and pins itself to CPU 0.
- One publishing connection and one reading connection, as one ``Broadcast`` holds per
  process: **pubsub** ``SUBSCRIBE``s every channel and messages are ``PUBLISH``ed;
  **stream** loops ``XREAD BLOCK 0 COUNT 512 STREAMS`` over every channel's stream (one
  command names them all) and messages are ``XADD``ed with ``MAXLEN ~ 1000``, as the
  history keeps them. With ``--channels 100`` the reader listens on 100 channels while
  the messages go to one of them after the other.
- **msgs/s**: ``--messages`` published back to back (each awaited) until the reader holds
  the last; **CPU us/msg** of this process (publisher and reader) and of redis-server,
  over that run; **p50/p99**: one message at a time, from just before it is published to
  the reader holding it, over ``--samples``.
- Rounds alternate the order of the two; the table shows medians over rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "benchmarks")]

from common import cpu_seconds, pin_self, text_table  # noqa: E402
from redis_helpers import RedisServer, redis_server_path  # noqa: E402

BENCH_CPU, REDIS_CPU = 0, 1

#: (publish one payload, wait for the next message the reader holds)
Pair = tuple[Callable[[str, bytes], Awaitable[object]], Callable[[], Awaitable[bytes]]]


@dataclass
class Row:
    transport: str
    channels: int
    rates: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    redis_cpu: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)


class Reader:
    """The reading side: a task that puts each payload it reads into a queue."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def next(self) -> bytes:
        return await self.queue.get()


async def pubsub_pair(url: str, channels: list[str]) -> tuple[Pair, Callable[[], Awaitable[None]]]:
    import redis.asyncio as aioredis

    pub = aioredis.Redis.from_url(url)
    sub = aioredis.Redis.from_url(url)
    pubsub = sub.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(*channels)
    reader = Reader()

    async def read() -> None:
        while True:
            message = await pubsub.get_message(timeout=None)
            if message is not None and message["type"] == "message":
                reader.queue.put_nowait(message["data"])

    reader.task = asyncio.create_task(read())

    async def publish(channel: str, payload: bytes) -> object:
        return await pub.publish(channel, payload)

    async def close() -> None:
        assert reader.task is not None
        reader.task.cancel()
        await asyncio.gather(reader.task, return_exceptions=True)
        await pubsub.aclose()
        await sub.aclose()
        await pub.aclose()

    return (publish, reader.next), close


async def stream_pair(url: str, channels: list[str]) -> tuple[Pair, Callable[[], Awaitable[None]]]:
    import redis.asyncio as aioredis

    pub = aioredis.Redis.from_url(url)
    sub = aioredis.Redis.from_url(url)
    # Each stream starts empty and is read from its start; the reader then asks for what
    # follows the last id it holds, so nothing published between two XREADs is skipped.
    last: dict[str, str] = {}
    for channel in channels:
        await pub.delete(channel)
        last[channel] = "0-0"
    reader = Reader()

    async def read() -> None:
        while True:
            replies = await sub.xread(last, block=0, count=512)
            for key, entries in replies:
                name = key.decode() if isinstance(key, bytes) else key
                for entry_id, fields in entries:
                    last[name] = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                    reader.queue.put_nowait(fields[b"d"])

    reader.task = asyncio.create_task(read())

    async def publish(channel: str, payload: bytes) -> object:
        return await pub.xadd(channel, {"d": payload}, maxlen=1000, approximate=True)

    async def close() -> None:
        assert reader.task is not None
        reader.task.cancel()
        await asyncio.gather(reader.task, return_exceptions=True)
        await sub.aclose()
        await pub.aclose()

    return (publish, reader.next), close


TRANSPORTS = {"pubsub": pubsub_pair, "stream": stream_pair}


async def measure(
    transport: str, url: str, redis_pid: int, channels: int, messages: int, samples: int, size: int
) -> tuple[float, float, float, float, float]:
    names = [f"bench:live:{transport}:{i}" for i in range(channels)]
    (publish, receive), close = await TRANSPORTS[transport](url, names)
    payload = b"x" * size
    try:
        # one message through first: the reader is in place
        await publish(names[0], payload)
        await asyncio.wait_for(receive(), 10)
        latencies = []
        for i in range(samples):
            started = time.perf_counter()
            await publish(names[i % channels], payload)
            await receive()
            latencies.append((time.perf_counter() - started) * 1e6)
        cpu_before, redis_before = time.process_time(), cpu_seconds(redis_pid)
        started = time.perf_counter()

        async def drain() -> None:
            for _ in range(messages):
                await receive()

        drained = asyncio.create_task(drain())
        for i in range(messages):
            await publish(names[i % channels], payload)
        await asyncio.wait_for(drained, 60)
        wall = time.perf_counter() - started
        cpu = (time.process_time() - cpu_before) * 1e6 / messages
        redis_cpu = (cpu_seconds(redis_pid) - redis_before) * 1e6 / messages
    finally:
        await close()
    latencies.sort()
    return messages / wall, cpu, redis_cpu, latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]


def table(rows: list[Row]) -> str:
    header = ("transport", "channels read", "msgs/s", "CPU us/msg (here)", "redis CPU us/msg", "p50 us", "p99 us")
    lines = [header]
    for row in rows:
        med = statistics.median
        lines.append(
            (
                row.transport, str(row.channels), f"{med(row.rates):.0f}", f"{med(row.cpu):.1f}",
                f"{med(row.redis_cpu):.1f}", f"{med(row.p50):.0f}", f"{med(row.p99):.0f}",
            )
        )
    return "\n".join(text_table(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--messages", type=int, default=10000, help="messages per throughput run")
    parser.add_argument("--samples", type=int, default=1000, help="latency samples per round")
    parser.add_argument("--channels", default="1,100", help="channels the reader listens on, per row")
    parser.add_argument("--size", type=int, default=64, help="payload bytes")
    args = parser.parse_args()
    executable = redis_server_path()
    if executable is None:
        sys.exit("redis-server is not installed (apt-get install redis-server)")
    pinned = pin_self(BENCH_CPU)
    counts = [int(c) for c in args.channels.split(",") if c.strip()]
    rows = {(t, c): Row(t, c) for c in counts for t in TRANSPORTS}
    with tempfile.TemporaryDirectory(prefix="hump-bench-redis-") as tmp:
        server = RedisServer(executable, Path(tmp), REDIS_CPU if pinned else None)
        server.start()
        try:
            assert server.proc is not None
            for round_no in range(args.rounds):
                order = list(TRANSPORTS) if round_no % 2 == 0 else list(reversed(TRANSPORTS))
                for count in counts:
                    for transport in order:
                        rate, cpu, redis_cpu, p50, p99 = asyncio.run(
                            measure(transport, server.url, server.proc.pid, count, args.messages, args.samples,
                                    args.size)
                        )
                        row = rows[(transport, count)]
                        row.rates.append(rate)
                        row.cpu.append(cpu)
                        row.redis_cpu.append(redis_cpu)
                        row.p50.append(p50)
                        row.p99.append(p99)
                        print(f"round {round_no + 1} {transport:6} x{count:<4} {rate:8.0f} msgs/s "
                              f"{cpu:6.1f} us CPU/msg, redis {redis_cpu:5.1f} us/msg, p50 {p50:.0f} us", flush=True)
        finally:
            server.kill()
    print()
    print(f"# {args.rounds} round(s), {args.messages} messages of {args.size} B; medians")
    print(table(list(rows.values())))


if __name__ == "__main__":
    main()
