"""Fan-out deliveries per server CPU-second in a room of WebSocket members (issue 20 item
9): hump_listener's ``app.broadcast`` beside Starlette with encode/broadcaster on uvicorn
and python-socketio (its AsyncRedisManager for Redis) on uvicorn, on the memory backend
and on Redis, in one run.

    python benchmarks/fanout.py [--members 500] [--messages 200] [--size 64] [--rounds 3]

Each server is one process pinned to CPU 0 with the same contract
(benchmarks/apps/hump_fanout.py, benchmarks/peers/starlette_fanout.py and
socketio_fanout.py): ``--members``
WebSocket clients join ``/room``; ``GET /publish?n=N`` publishes N messages in the server,
each awaited, and every member receives every message. The harness (the members, a
``websockets`` client) and redis-server share CPU 1. Figure: members x messages divided by
the server process's CPU seconds (utime+stime from /proc) from just before the publish
request to the moment every member holds every message. Rounds interleave the servers;
the table shows medians [min-max] and the ratio to the best peer on the same backend.
hump_listener runs with its default history (1000 messages per channel, a Redis Stream).
broadcaster 0.3's Redis backend can leave its listener waiting for ever (its
``_pubsub_listener`` clears its ready event after a subscription it missed); the peer app
works around it on each request, and a row whose members never all receive a message is
shown as FAILED rather than measured.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import common

sys.path.insert(0, str(common.REPO / "tests"))
from redis_helpers import RedisServer, redis_server_path

PY = sys.executable
WAIT = 60.0
#: Publishes of one message, 0.5 s apart, until every member has one; beyond, the row fails.
SETTLE_TRIES = 20


@dataclass
class Server:
    name: str
    backend: str
    figures: list[float] = field(default_factory=list)
    failure: str | None = None

    def command(self, port: int, redis_url: str) -> tuple[list[str], dict[str, str]]:
        url = redis_url if self.backend == "redis" else "memory://"
        if self.name == "hump_listener":
            env = common.hump_env(port, HUMP_PARSER="h11")
            if self.backend == "redis":
                env["HUMP_BROADCAST_URL"] = url
            return [*common.tiny_listener(), "--app-dir", str(common.BENCH_DIR / "apps"), "hump_fanout:app"], env
        module = "socketio_fanout:app" if self.name == "python-socketio" else "starlette_fanout:app"
        argv = [PY, "-m", "uvicorn", "--app-dir", str(common.BENCH_DIR / "peers"), module,
                "--host", common.HOST, "--port", str(port), "--http", "h11", "--ws", "websockets",
                "--loop", "asyncio", "--no-access-log", "--log-level", "warning"]
        return argv, {"FANOUT_BROADCAST_URL": url, "PYTHONPATH": common.pythonpath()}


def get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://{common.HOST}:{port}{path}", timeout=WAIT) as r:
        return str(r.read().decode())


async def wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(2000):
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            _, writer = await asyncio.open_connection(common.HOST, port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.01)
    raise RuntimeError("the server never listened")


async def one_round(server: Server, members: int, messages: int, size: int, redis_url: str) -> float:
    from websockets.asyncio.client import connect

    port = common.free_port()
    argv, extra = server.command(port, redis_url)
    env = {**os.environ, **extra}
    proc = subprocess.Popen(argv, env=env, preexec_fn=common.pinned(common.SERVER_CPU),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await wait_listening(port, proc)
        counts = [0] * members
        target = 0
        reached = asyncio.Event()
        remaining = [members]

        def received(i: int) -> None:
            counts[i] += 1
            if counts[i] == target:
                remaining[0] -= 1
                if remaining[0] == 0:
                    reached.set()

        async def member(i: int) -> None:
            if server.name == "python-socketio":
                import socketio

                client = socketio.AsyncClient(reconnection=False)
                clients.append(client)
                client.on("msg", lambda data: received(i))
                await client.connect(f"http://{common.HOST}:{port}", transports=["websocket"])
                joined[i].set()
                await client.wait()
                return
            async with connect(f"ws://{common.HOST}:{port}/room", max_queue=None, proxy=None) as ws:
                joined[i].set()
                async for message in ws:
                    if message != "ready":
                        received(i)

        joined = [asyncio.Event() for _ in range(members)]
        clients: list[Any] = []  # python-socketio's clients, disconnected at the end
        tasks = [asyncio.create_task(member(i)) for i in range(members)]
        for event in joined:
            await asyncio.wait_for(event.wait(), WAIT)
        # Settle: publish one message at a time until every member has one (a peer's
        # subscription may not be in place the moment its socket opened).
        target = 1
        for _ in range(SETTLE_TRIES):
            await asyncio.to_thread(get, port, "/publish?n=1")
            try:
                await asyncio.wait_for(reached.wait(), 0.5)
                break
            except TimeoutError:
                continue
        else:
            raise RuntimeError("the members never all received a message")
        await asyncio.sleep(0.5)  # the settle messages drain before the window opens
        base = list(counts)
        remaining[0] = members
        reached.clear()
        target = base[0] + messages
        if any(c != base[0] for c in base):  # members must start level for one target
            raise RuntimeError(f"members not level after settling: {sorted(set(base))}")
        cpu = common.cpu_seconds(proc.pid)
        await asyncio.to_thread(get, port, f"/publish?n={messages}&size={size}")
        await asyncio.wait_for(reached.wait(), WAIT)
        cpu = common.cpu_seconds(proc.pid) - cpu
        await asyncio.gather(*(client.disconnect() for client in clients), return_exceptions=True)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return members * messages / cpu
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=500)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    common.pin_self(common.CLIENT_CPU)
    servers = [Server(name, backend) for backend in ("memory", "redis")
               for name in ("hump_listener", "starlette+broadcaster", "python-socketio")]
    for s in servers:
        module, package = {
            "starlette+broadcaster": ("broadcaster", "'broadcaster[redis]' starlette"),
            "python-socketio": ("socketio", "'python-socketio[asyncio_client]'"),
        }.get(s.name, (None, ""))
        if module and importlib_missing(module):
            s.failure = f"skipped: pip install {package}"
    executable = redis_server_path()
    with tempfile.TemporaryDirectory(prefix="hump-fanout-redis-") as tmp:
        redis = None
        if executable is not None:
            redis = RedisServer(executable, Path(tmp), common.CLIENT_CPU)
            redis.start()
        else:
            for s in servers:
                if s.backend == "redis":
                    s.failure = "skipped: redis-server is not installed"
        try:
            for rnd in range(args.rounds):
                for s in servers if rnd % 2 == 0 else servers[::-1]:
                    if s.failure:
                        continue
                    try:
                        figure = asyncio.run(one_round(s, args.members, args.messages, args.size,
                                                       redis.url if redis else ""))
                    except Exception as exc:
                        s.failure = f"FAILED: {type(exc).__name__}: {exc}"
                        continue
                    s.figures.append(figure)
                    print(f"round {rnd + 1}: {s.backend:<6} {s.name:<22} {figure:12.0f} deliveries per server CPU-s",
                          flush=True)
        finally:
            if redis is not None:
                redis.kill()
    print(f"\n{args.members} members, {args.messages} messages of {args.size} B per round; "
          f"medians [min-max] over {args.rounds} round(s)")
    for backend in ("memory", "redis"):
        rows = [s for s in servers if s.backend == backend]
        peers = [statistics.median(s.figures) for s in rows if s.figures and s.name != "hump_listener"]
        for s in rows:
            if not s.figures:
                print(f"{backend:<6} {s.name:<22} {s.failure or 'no sample'}")
                continue
            med = statistics.median(s.figures)
            ratio = f"{med / max(peers):.2f}x the best peer" if peers and s.name == "hump_listener" else ""
            print(f"{backend:<6} {s.name:<22} {med:12.0f} [{min(s.figures):.0f}-{max(s.figures):.0f}] "
                  f"deliveries per server CPU-s  {ratio}")


def importlib_missing(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is None


if __name__ == "__main__":
    t0 = time.monotonic()
    main()
    print(f"({time.monotonic() - t0:.0f} s)")
