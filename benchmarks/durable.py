"""Durable events per second, worker CPU per event and trigger-to-start latency:
hump_listener's durable events (Redis Streams) beside arq and SAQ, on one redis-server, in
one run.

    python benchmarks/durable.py [--quick] [--rounds 3] [--events 5000] [--samples 300]
                                 [--latency-seconds 10] [--concurrency 10] [--max-seconds 240]

arq and SAQ are the peers (``pip install arq saq`` into the venv: they are not
dependencies); a peer that is not installed is skipped with the command that installs it.

How it measures (every system the same way):

- It starts its own ``redis-server`` (127.0.0.1, a free port, a temp dir, no
  persistence). The **worker** is a process of its own (this script with ``--worker``),
  pinned to CPU 0; the producer (this process) and redis-server share CPU 1. Each worker
  runs ``--concurrency`` jobs at once (arq's ``max_jobs``, SAQ's ``concurrency``, the
  durable events' ``concurrency``: 10 is each one's default); everything else is each
  system's default (arq polls every 0.5 s, keeps results for an hour, retries 5 times).
- **events/s and CPU**: ``--events`` no-op jobs are triggered back to back (each trigger
  awaited: stored in Redis) while the worker is stopped (SIGSTOP), so the producer's
  speed is not what is measured; then the worker is continued (SIGCONT), counts the jobs
  and, at the last, pushes one reply to a Redis list the producer waits on. events/s is
  ``--events`` over the time from SIGCONT to that reply; **CPU us/event** is the worker
  process's CPU time (``/proc``, user + system) over the same span, per event, and
  **events per CPU-second** its inverse: the figure that says how many worker cores a
  load needs.
- **trigger-to-start latency**: one job at a time; the producer takes the time
  (``time.time_ns``, the same clock in both processes) just before the trigger, the job
  takes it again as it starts and pushes the difference to a Redis list; p50 and p99
  over ``--samples``, or what ``--latency-seconds`` allowed (arq polls its queue every
  0.5 s: it gets ~20 samples in 10 s). A warm-up of 50 such jobs, all at once, runs first.
- Rounds are interleaved (each system once per round, the order reversed every other
  round), each with a fresh worker process and a flushed Redis; the table shows medians
  over rounds with [min-max], and ratios against hump_listener (> 1.00x: hump_listener
  is better: more events per CPU-second, lower latency).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "benchmarks")]

from common import cpu_seconds, pin_self, pinned, pythonpath, spread, text_table  # noqa: E402
from redis_helpers import RedisServer, redis_server_path  # noqa: E402
from tiny_listener import Data  # noqa: E402

WORKER_CPU, REDIS_CPU = 0, 1
DONE = "bench:done"  # the worker pushes here when it has run a batch of no-op jobs
LATENCY = "bench:latency"  # ... and here each latency job's trigger-to-start time (ns)
READY = "bench:ready"  # ... and here once it is taking jobs
#: Bound on any wait for the worker (a stuck row fails with a reason, the run goes on).
WAIT = 30
#: Latency jobs run (all at once, unmeasured) before measuring.
WARM_UP = 50
#: Latency samples taken even past ``--latency-seconds``.
MIN_SAMPLES = 20


# -- the worker process (python benchmarks/durable.py --worker SYSTEM ...) -----------------


class Counter:
    """What every system's jobs do: count no-op jobs and report each full batch; time
    latency jobs' starts. One Redis client, opened by the worker."""

    def __init__(self, url: str, batch: int) -> None:
        import redis.asyncio

        self.redis = redis.asyncio.Redis.from_url(url)
        self.batch = batch
        self.count = 0

    async def noop(self) -> None:
        self.count += 1
        if self.count % self.batch == 0:
            await self.redis.rpush(DONE, self.count)

    async def latency(self, t: int) -> None:
        await self.redis.rpush(LATENCY, time.time_ns() - t)


#: The worker process's Counter (arq and SAQ name a job by its function's qualified
#: name, so their functions are module-level and find it here).
COUNTER: list[Counter] = []


async def arq_noop(ctx: dict[str, Any]) -> None:
    await COUNTER[0].noop()


async def arq_latency(ctx: dict[str, Any], t: int) -> None:
    await COUNTER[0].latency(t)


async def saq_noop(ctx: dict[str, Any]) -> None:
    await COUNTER[0].noop()


async def saq_latency(ctx: dict[str, Any], *, t: int) -> None:
    await COUNTER[0].latency(t)


async def hump_worker(url: str, counter: Counter, concurrency: int) -> None:
    from hump_listener import App

    app = App(access_log=False)
    app.durable.configure(url=url, concurrency=concurrency)

    @app.on_event("noop", durable=True)
    async def noop() -> None:
        await counter.noop()

    @app.on_event("latency", durable=True)
    async def latency(t: Data) -> None:
        await counter.latency(t)

    await app.run_startup()
    await counter.redis.rpush(READY, 1)
    try:
        await asyncio.Event().wait()  # until the benchmark kills this process
    finally:
        await app.run_shutdown()


async def arq_worker(url: str, counter: Counter, concurrency: int) -> None:
    from arq.connections import RedisSettings
    from arq.worker import Worker

    worker = Worker(
        [arq_noop, arq_latency], redis_settings=RedisSettings.from_dsn(url), max_jobs=concurrency, handle_signals=False
    )
    await counter.redis.rpush(READY, 1)
    await worker.async_run()


async def saq_worker(url: str, counter: Counter, concurrency: int) -> None:
    from saq import Queue, Worker

    queue = Queue.from_url(url, name="bench")
    worker = Worker(queue, [saq_noop, saq_latency], concurrency=concurrency)  # type: ignore[list-item]
    await queue.connect()
    await counter.redis.rpush(READY, 1)
    await worker.start()


WORKERS = {"hump_listener": hump_worker, "arq": arq_worker, "saq": saq_worker}


def worker_main(args: argparse.Namespace) -> None:
    async def run() -> None:
        COUNTER.append(Counter(args.url, args.events))
        await WORKERS[args.worker](args.url, COUNTER[0], args.concurrency)

    asyncio.run(run())


# -- the producers (this process) ---------------------------------------------------------

class Producer:
    """Triggers jobs of one system: ``noop()``, ``latency(t)`` (t: ``time.time_ns()``)."""

    async def open(self, url: str) -> None: ...
    async def noop(self) -> None: ...
    async def latency(self, t: int) -> None: ...
    async def close(self) -> None: ...


class HumpProducer(Producer):
    async def open(self, url: str) -> None:
        from hump_listener import App

        self.app = App(access_log=False)
        self.app.durable.configure(url=url, concurrency=0)  # a web tier: stores, runs nothing

        @self.app.on_event("noop", durable=True)
        async def noop() -> None: ...

        @self.app.on_event("latency", durable=True)
        async def latency() -> None: ...

        await self.app.run_startup()

    async def noop(self) -> None:
        await self.app.trigger_event("noop")

    async def latency(self, t: int) -> None:
        await self.app.trigger_event("latency", data={"t": t})

    async def close(self) -> None:
        await self.app.run_shutdown()


class ArqProducer(Producer):
    async def open(self, url: str) -> None:
        from arq import create_pool
        from arq.connections import RedisSettings

        self.pool = await create_pool(RedisSettings.from_dsn(url))

    async def noop(self) -> None:
        await self.pool.enqueue_job("arq_noop")

    async def latency(self, t: int) -> None:
        await self.pool.enqueue_job("arq_latency", t)

    async def close(self) -> None:
        await self.pool.aclose()


class SaqProducer(Producer):
    async def open(self, url: str) -> None:
        from saq import Queue

        self.queue = Queue.from_url(url, name="bench")
        await self.queue.connect()

    async def noop(self) -> None:
        await self.queue.enqueue("saq_noop")

    async def latency(self, t: int) -> None:
        await self.queue.enqueue("saq_latency", t=t)

    async def close(self) -> None:
        await self.queue.disconnect()


@dataclass
class System:
    name: str
    producer: type[Producer]
    module: str  # what must be importable
    install: str


SYSTEMS = [
    System("hump_listener", HumpProducer, "redis", "pip install 'hump_listener[redis]'"),
    System("arq", ArqProducer, "arq", "pip install arq"),
    System("saq", SaqProducer, "saq", "pip install saq"),
]


@dataclass
class Sample:
    rate: float  # events per second, first trigger to last completion
    cpu_us: float  # worker CPU per event
    p50_us: float
    p99_us: float


@dataclass
class Row:
    system: System
    samples: list[Sample] = field(default_factory=list)
    failure: str | None = None


async def measure(system: System, url: str, args: argparse.Namespace) -> Sample:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(url)
    await client.flushall()
    cmd = [sys.executable, __file__, "--worker", system.name, "--url", url, "--events", str(args.events),
           "--concurrency", str(args.concurrency)]
    env = {**os.environ, "PYTHONPATH": pythonpath(), "HUMP_LOOP": "asyncio"}
    worker = subprocess.Popen(cmd, env=env, preexec_fn=pinned(WORKER_CPU), stdin=subprocess.DEVNULL)
    producer = system.producer()
    opened = False
    try:
        if await client.blpop([READY], WAIT) is None:
            raise RuntimeError("the worker did not start")
        await producer.open(url)
        opened = True
        # warm-up: latency jobs, all at once (connections, caches, the first reads settled)
        for _ in range(WARM_UP):
            await producer.latency(time.time_ns())
        for _ in range(WARM_UP):
            if await client.blpop([LATENCY], WAIT) is None:
                raise RuntimeError("the warm-up jobs did not all run")
        # events/s and CPU: the worker is stopped (SIGSTOP) while the events are stored,
        # so the producer's speed is not measured; then it runs them all
        worker.send_signal(signal.SIGSTOP)
        for _ in range(args.events):
            await producer.noop()
        cpu = cpu_seconds(worker.pid)
        start = time.perf_counter()
        worker.send_signal(signal.SIGCONT)
        if await client.blpop([DONE], WAIT) is None:
            raise RuntimeError("the events did not all run")
        elapsed = time.perf_counter() - start
        cpu = cpu_seconds(worker.pid) - cpu
        # trigger-to-start latency, one at a time
        latencies = []
        stop_at = time.monotonic() + args.latency_seconds
        for _ in range(args.samples):
            if len(latencies) >= MIN_SAMPLES and time.monotonic() > stop_at:
                break
            await producer.latency(time.time_ns())
            reply = await client.blpop([LATENCY], WAIT)
            if reply is None:
                raise RuntimeError("a latency job did not run")
            latencies.append(int(reply[1]))
    finally:
        worker.kill()
        worker.wait()
        if opened:
            await producer.close()
        await client.aclose()
    latencies.sort()
    return Sample(
        rate=args.events / elapsed, cpu_us=cpu / args.events * 1e6,
        p50_us=latencies[len(latencies) // 2] / 1000,
        p99_us=latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] / 1000,
    )


def available(system: System) -> str | None:
    try:
        __import__(system.module)
    except ImportError:
        return f"skipped: {system.install}"
    return None


async def run(args: argparse.Namespace, url: str) -> list[Row]:
    rows = [Row(system, failure=available(system)) for system in SYSTEMS]
    deadline = time.monotonic() + args.max_seconds
    for rnd in range(args.rounds):
        for row in rows if rnd % 2 == 0 else rows[::-1]:
            if row.failure is not None:
                continue
            if time.monotonic() > deadline:
                print(f"-- --max-seconds reached in round {rnd + 1}: the table has what was measured", flush=True)
                return rows
            try:
                sample = await measure(row.system, url, args)
            except Exception as exc:  # a row that fails says why; the rest still runs
                row.failure = f"FAILED: {type(exc).__name__}: {exc}"
                continue
            row.samples.append(sample)
            print(
                f"round {rnd + 1}: {row.system.name:<14} {sample.rate:8.0f} events/s  {sample.cpu_us:7.1f} CPU us/event"
                f"  {1e6 / sample.cpu_us:8.0f} events/CPU-s  p50 {sample.p50_us:9.1f} us  p99 {sample.p99_us:9.1f} us",
                flush=True,
            )
    return rows


# -- the table ----------------------------------------------------------------------------


def table(rows: list[Row], args: argparse.Namespace) -> str:
    ref = next((r for r in rows if r.system.name == "hump_listener" and r.samples), None)
    header = ("system", "events/s", "CPU us/event", "events/CPU-s", "p50 us", "p99 us",
              "hump: events/CPU-s", "p50")
    lines: list[tuple[str, ...]] = [header]

    def med(row: Row, attr: str) -> float:
        return statistics.median(getattr(s, attr) for s in row.samples)

    for row in rows:
        if not row.samples:
            lines.append((row.system.name, row.failure or "no sample", *[""] * (len(header) - 2)))
            continue
        per_cpu = [1e6 / s.cpu_us for s in row.samples]
        ratios = ("", "")
        if ref is not None:
            ratios = (
                f"{med(row, 'cpu_us') / med(ref, 'cpu_us'):.2f}x", f"{med(row, 'p50_us') / med(ref, 'p50_us'):.2f}x"
            )
        lines.append((
            row.system.name, spread([s.rate for s in row.samples], ".0f"),
            spread([s.cpu_us for s in row.samples], ".1f"),
            spread(per_cpu, ".0f"), spread([s.p50_us for s in row.samples], ".0f"),
            spread([s.p99_us for s in row.samples], ".0f"), *ratios,
        ))
    out = text_table(lines)
    note = (
        f"samples per row: {', '.join(f'{r.system.name} {len(r.samples)}' for r in rows)} (of {args.rounds} "
        f"round(s)); {args.events} no-op events and up to {args.samples} latency samples per round, concurrency "
        f"{args.concurrency}; medians [min-max]; hump: > 1.00x means hump_listener does better"
    )
    return "\n".join([*out, note])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--events", type=int, default=5000, help="no-op events per throughput run")
    parser.add_argument("--samples", type=int, default=300, help="latency samples per round (at most)")
    parser.add_argument("--latency-seconds", type=float, default=10.0,
                        help="stop taking latency samples after this (at least 20 are taken)")
    parser.add_argument("--concurrency", type=int, default=10, help="jobs a worker runs at once")
    parser.add_argument("--max-seconds", type=float, default=240.0, help="stop starting measurements after this")
    parser.add_argument("--quick", action="store_true", help="1 round, 2000 events, 100 samples, 5 s (overrides)")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args)
        return
    if args.quick:
        args.rounds, args.events, args.samples, args.latency_seconds = 1, 2000, 100, 5.0
    executable = redis_server_path()
    if executable is None:
        sys.exit("redis-server is not installed (Debian: apt-get install redis-server)")
    can_pin = pin_self(REDIS_CPU)
    print(f"python {sys.version.split()[0]}; pinned: "
          f"{'worker CPU 0, producer and redis-server CPU 1' if can_pin else 'no'}")
    with tempfile.TemporaryDirectory(prefix="hump-bench-durable-") as tmp:
        server = RedisServer(executable, Path(tmp), REDIS_CPU if can_pin else None)
        server.start()
        try:
            rows = asyncio.run(run(args, server.url))
        finally:
            server.kill()
    print()
    print(table(rows, args))


if __name__ == "__main__":
    main()
