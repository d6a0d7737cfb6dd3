"""Leak soak for hump_listener's demo app (``http_web:app``).

Starts the demo as a subprocess pinned to CPU 0 (this same file with ``--serve``: it
imports the app, runs it like ``tiny-listener`` does, and answers ``stats`` lines on
stdin with ``len(app.ctxs)`` and the event loop's live tasks, read on the server's own
loop). An asyncio client pool pinned to CPU 1 then drives ``--requests`` requests
(mixed ``GET /``, ``GET /user/x``, ``POST /echo`` with bodies of 0..8 KiB, a few
``Connection: close``) plus abrupt disconnects (mid-headers, mid-body, before reading
the response), bounded in count and time. It prints the server RSS at checkpoints and
its drift between 50k and the end, and ``len(app.ctxs)`` / the live task count once idle.
Exit status 1 if contexts or tasks leaked or responses were wrong.

    python benchmarks/soak.py                      # 200k requests
    python benchmarks/soak.py --requests 50000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import CLIENT_CPU, HOST, REPO, SERVER_CPU, free_port, hump_env, pinned, rss_kib

STATS_PREFIX = "SOAK_STATS "
REQUEST_TIMEOUT = 10.0


# --------------------------------------------------------------------------- server side (--serve)


def _collect(app: Any) -> dict[str, Any]:
    """Runs on the server's loop: contexts and live tasks (minus this probe's own)."""
    current = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not current]
    names = sorted({getattr(t.get_coro(), "__qualname__", repr(t.get_coro())) for t in tasks})
    return {"ctxs": len(app.ctxs), "tasks": len(tasks), "task_names": names[:20]}


def _stats_thread(app: Any, loop_box: list[asyncio.AbstractEventLoop]) -> None:
    """Answer each ``stats`` line on stdin with one STATS_PREFIX JSON line on stdout."""

    async def probe() -> dict[str, Any]:
        return _collect(app)

    for line in sys.stdin:
        if line.strip() != "stats":
            continue
        try:
            result = asyncio.run_coroutine_threadsafe(probe(), loop_box[0]).result(timeout=10)
        except Exception as exc:  # report, never kill the server
            result = {"error": repr(exc)}
        print(STATS_PREFIX + json.dumps(result), flush=True)


def serve(app_ref: str) -> None:
    import tiny_listener

    os.chdir(REPO)
    sys.path.insert(0, str(REPO))
    app = tiny_listener.import_from_string(app_ref)
    loop_box: list[asyncio.AbstractEventLoop] = []

    async def capture_loop() -> None:
        loop_box.append(asyncio.get_running_loop())
        print(STATS_PREFIX + json.dumps({"ready": True}), flush=True)

    app.add_startup_callback(capture_loop)
    threading.Thread(target=_stats_thread, args=(app, loop_box), daemon=True).start()
    app.run()


# --------------------------------------------------------------------------- client side


@dataclass
class Tally:
    target: int
    deadline: float
    issued: int = 0
    completed: int = 0
    wrong: int = 0
    conn_errors: int = 0
    aborts: dict[str, int] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)
    first_wrong: str = ""

    def take(self) -> bool:
        if self.issued >= self.target or time.monotonic() > self.deadline:
            return False
        self.issued += 1
        return True


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    close: bool


Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await _skip_trailers(reader)
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


async def _skip_trailers(reader: asyncio.StreamReader) -> None:
    while (await reader.readuntil(b"\r\n")) != b"\r\n":
        pass


async def read_reply(reader: asyncio.StreamReader) -> Reply:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip().lower()
    close = headers.get("connection") == "close"
    if "chunked" in headers.get("transfer-encoding", ""):
        body = await _read_chunked(reader)
    elif "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    else:
        body, close = await reader.read(), True
    return Reply(status, body, close)


def build_request(rng: random.Random) -> tuple[bytes, bytes, bool]:
    """(raw request, expected body, Connection: close?) for one well-formed request."""
    close = rng.random() < 0.02
    conn = b"Connection: close\r\n" if close else b""
    roll = rng.random()
    if roll < 0.4:
        return b"GET / HTTP/1.1\r\nHost: soak\r\n" + conn + b"\r\n", b"Hello, world!", close
    if roll < 0.6:
        return b"GET /user/x HTTP/1.1\r\nHost: soak\r\n" + conn + b"\r\n", b"Hello, x!", close
    body = rng.randbytes(rng.choice((0, 1, 100, 1024, 8192)))
    head = "POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Type: application/octet-stream\r\n"
    head += f"Content-Length: {len(body)}\r\n"
    return head.encode() + conn + b"\r\n" + body, body, close


async def abrupt(port: int, rng: random.Random, tally: Tally) -> None:
    """Open a connection and drop it mid-request / mid-body / before reading the answer."""
    kind = rng.choice(("mid-headers", "mid-body", "unread-response", "reset-after-request"))
    _, writer = await asyncio.open_connection(HOST, port)
    if kind == "mid-headers":
        writer.write(b"GET /user/x HTTP/1.1\r\nHost: soak\r\nX-Half: ")
    elif kind == "mid-body":
        writer.write(b"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: 65536\r\n\r\n" + b"y" * 1000)
    else:
        writer.write(b"GET / HTTP/1.1\r\nHost: soak\r\n\r\n")
    await writer.drain()
    await asyncio.sleep(rng.random() * 0.005)
    if kind == "reset-after-request":
        writer.transport.abort()
    else:
        writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    tally.aborts[kind] = tally.aborts.get(kind, 0) + 1


async def one_request(conn: Conn, rng: random.Random, tally: Tally) -> bool:
    """Send one request on ``conn``; True if the connection can be reused."""
    reader, writer = conn
    raw, expected, close = build_request(rng)
    writer.write(raw)
    reply = await asyncio.wait_for(read_reply(reader), REQUEST_TIMEOUT)
    tally.completed += 1
    tally.statuses[reply.status] = tally.statuses.get(reply.status, 0) + 1
    if reply.status != 200 or reply.body != expected:
        tally.wrong += 1
        tally.first_wrong = tally.first_wrong or f"{raw[:40]!r} -> {reply.status} {reply.body[:80]!r}"
    return not (close or reply.close)


async def worker(port: int, seed: int, tally: Tally, abort_rate: float) -> None:
    rng = random.Random(seed)
    conn: Conn | None = None
    try:
        while tally.take():
            if rng.random() < abort_rate:
                tally.issued -= 1  # aborts don't count as requests
                with contextlib.suppress(OSError, asyncio.TimeoutError):
                    await asyncio.wait_for(abrupt(port, rng, tally), REQUEST_TIMEOUT)
                continue
            try:
                conn = conn or await asyncio.open_connection(HOST, port)
                if not await one_request(conn, rng, tally):
                    _close(conn)
                    conn = None
            except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError):
                tally.conn_errors += 1
                _close(conn)
                conn = None
    finally:
        _close(conn)


def _close(conn: Conn | None) -> None:
    if conn is not None:
        conn[1].close()


# --------------------------------------------------------------------------- orchestration


class ServerProc:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def stats(self) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"stats\n")
        await self.proc.stdin.drain()
        return await self.read_stats()

    async def read_stats(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        while True:
            line = await asyncio.wait_for(self.proc.stdout.readline(), 30)
            if not line:
                raise RuntimeError(f"server exited (code {await self.proc.wait()})")
            text = line.decode(errors="replace")
            if text.startswith(STATS_PREFIX):
                result: dict[str, Any] = json.loads(text[len(STATS_PREFIX) :])
                return result
            print(f"  [server] {text.rstrip()}")

    async def stop(self) -> None:
        if self.proc.returncode is not None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.proc.wait(), 10)
                return


async def start_server(app_ref: str, port: int) -> ServerProc:
    env = {**os.environ, **hump_env(port)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).resolve()),
        "--serve",
        "--app",
        app_ref,
        cwd=REPO,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        preexec_fn=pinned(SERVER_CPU),
    )
    server = ServerProc(proc)
    try:
        ready = await server.read_stats()
        if not ready.get("ready"):
            raise RuntimeError(f"unexpected first message {ready}")
        await _wait_port(port)
    except BaseException:
        await server.stop()
        raise
    return server


async def _wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection(HOST, port)
            writer.close()
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"server not listening on {port} after {timeout:.0f}s")


async def checkpoints(pid: int, tally: Tally, marks: list[int], out: dict[int, int], done: asyncio.Event) -> None:
    """Record server RSS as the completed count crosses each mark."""
    pending = sorted(marks)
    started = time.monotonic()
    while pending and not done.is_set():
        while pending and tally.completed >= pending[0]:
            out[pending.pop(0)] = rss_kib(pid)
            rate = tally.completed / max(time.monotonic() - started, 1e-9)
            print(f"  {tally.completed:>8} requests  RSS {out[max(out)] / 1024:7.1f} MiB  ({rate:.0f} req/s)")
        await asyncio.sleep(0.05)


async def wait_idle(server: ServerProc, baseline_tasks: int, timeout: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    stats = await server.stats()
    while time.monotonic() < deadline and (stats.get("ctxs") or stats.get("tasks", 0) > baseline_tasks):
        await asyncio.sleep(0.25)
        stats = await server.stats()
    return stats


async def soak(args: argparse.Namespace) -> int:
    port = free_port()
    server = await start_server(args.app, port)
    try:
        return await drive(server, port, args)
    finally:
        await server.stop()


async def drive(server: ServerProc, port: int, args: argparse.Namespace) -> int:
    pid = server.proc.pid
    await asyncio.sleep(0.5)  # let the readiness probe's connection finish
    baseline = await server.stats()
    print(f"server pid {pid} on {HOST}:{port}; before load: {baseline}, RSS {rss_kib(pid) / 1024:.1f} MiB")
    tally = Tally(target=args.requests, deadline=time.monotonic() + args.max_seconds)
    marks = sorted({m for m in (args.requests // 8 * i for i in range(1, 9)) if m} | {50_000, args.requests})
    marks = [m for m in marks if m <= args.requests]
    rss: dict[int, int] = {}
    done = asyncio.Event()
    monitor = asyncio.create_task(checkpoints(pid, tally, marks, rss, done))
    started = time.monotonic()
    workers = [worker(port, args.seed + i, tally, args.abort_rate) for i in range(args.concurrency)]
    await asyncio.gather(*workers)
    elapsed = time.monotonic() - started
    await asyncio.sleep(0.2)
    done.set()
    await monitor
    idle = await wait_idle(server, baseline["tasks"])
    return report(args, tally, elapsed, baseline, idle, rss, rss_kib(pid))


def report(
    args: argparse.Namespace,
    tally: Tally,
    elapsed: float,
    baseline: dict[str, Any],
    idle: dict[str, Any],
    rss: dict[int, int],
    rss_idle: int,
) -> int:
    print(f"\ncompleted {tally.completed} requests in {elapsed:.1f}s ({tally.completed / elapsed:.0f} req/s)")
    print(f"statuses {tally.statuses}; wrong replies {tally.wrong}; connection errors {tally.conn_errors}")
    if tally.first_wrong:
        print(f"  first wrong reply: {tally.first_wrong}")
    print(f"abrupt disconnects {sum(tally.aborts.values())}: {tally.aborts}")
    print(f"idle: len(app.ctxs) = {idle.get('ctxs')}, live tasks = {idle.get('tasks')} ", end="")
    print(f"(server's own before load: {baseline.get('tasks')}) {idle.get('task_names')}")
    first = 50_000 if 50_000 in rss else min(rss, default=0)
    last = max(rss, default=0)
    if first and last:
        drift = rss[last] - rss[first]
        print(
            f"RSS at {first}: {rss[first] / 1024:.1f} MiB, at {last}: {rss[last] / 1024:.1f} MiB, "
            f"drift {drift / 1024:+.1f} MiB ({drift * 1024 / max(last - first, 1):+.1f} B/request); "
            f"idle after: {rss_idle / 1024:.1f} MiB"
        )
    leaked = idle.get("ctxs") != 0 or idle.get("tasks", 1 << 30) > baseline.get("tasks", 0)
    short = tally.completed < args.requests
    verdict = "LEAK" if leaked else "FAIL" if tally.wrong or short else "OK"
    print(f"verdict: {verdict}" + (" (stopped by --max-seconds before --requests)" if short else ""))
    return 0 if verdict == "OK" else 1


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="hump_listener leak soak (see benchmarks/README.md)")
    parser.add_argument("--requests", type=int, default=200_000, help="requests to complete (default 200000)")
    parser.add_argument("--max-seconds", type=float, default=600, help="time bound (default 600)")
    parser.add_argument("--concurrency", type=int, default=32, help="client connections (default 32)")
    parser.add_argument("--abort-rate", type=float, default=0.01, help="share of abrupt disconnects")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--app", default="http_web:app", help="tiny-listener app reference")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    if args.serve:
        serve(args.app)
        return 0
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, {CLIENT_CPU})
    return asyncio.run(soak(args))


if __name__ == "__main__":
    sys.exit(main())
