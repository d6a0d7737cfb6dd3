"""The WebSocket load generator of benchmarks/websocket.py: one process, one core.

    python benchmarks/wsload.py echo --port P --server-pid PID --connections 50 \
        --warmup 1 --duration 5 [--size 32]
    python benchmarks/wsload.py idle --port P --server-pid PID --connections 2000
    python benchmarks/wsload.py flood --port P --server-pid PID --attack ping \
        --warmup 1 --duration 5

It prints one JSON line (``WSLOAD {...}``) and exits; websocket.py runs it pinned to CPU 1
while the server has CPU 0. It measures the server from /proc itself, at the exact edges
of its measuring window, so nothing the harness does falls inside the window.

Why it is cheap enough not to be the bottleneck (a general-purpose Python client such as
the ``websockets`` library costs more per message than the servers it would measure):

* every frame the client sends is built once: the same masked 32-byte text frame is written
  again and again (a fixed masking key: the server unmasks it all the same, RFC 6455 §5.3
  asks for unpredictable keys to protect proxies' caches, which loopback has none of);
* a reply is checked by comparing bytes with the one reply every echo server must send (an
  unmasked FIN text frame with the same payload); any other frame is parsed (a ping gets
  its pong, anything else fails the run), so a wrong server cannot pass;
* it runs on uvloop when installed (a libuv loop: less CPU per callback than asyncio's),
  with ``asyncio.Protocol`` callbacks, no streams and no tasks per message.

``echo``: every connection is in lock-step (send, wait for the echo, send the next); after
``--warmup`` seconds the window opens for ``--duration`` seconds, and the replies received
in it are the messages counted, each with its round-trip time (from the write of the
request to the reply's arrival in ``data_received``). ``idle``: connections are opened
(handshake and one echo each, so every server's handler has reached its receive loop)
64 at a time, then held for a second before the server's RSS is read.

``flood`` (issue 18.2): one connection streams tiny frames as fast as the server takes them
(``--attack binary``: 1-byte binary frames, echoed; ``ping``: pings; ``cont``: messages of
4,000 one-byte fragments; ``none``: no flood, the idle figure), reading whatever comes
back, while another connection sends ``GET /`` in lock-step (keep-alive; any status: it
measures the server's turn-around, the route does not matter); the result is that probe's
p50/p99 round-trip time over the window.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import resource
import struct
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import cpu_busy_seconds, cpu_seconds, rss_kib

HOST = "127.0.0.1"
SERVER_CPU, CLIENT_CPU = 0, 1
MASK = b"\x37\xfa\x21\x3d"  # RFC 6455 §5.7's example key
KEY = base64.b64encode(b"hump-bench-key16").decode()  # any 16 bytes, base64
#: Connections handshaking at once when many are opened: below the servers' backlogs.
OPEN_CONCURRENCY = 64
CLOSE_TIMEOUT = 5.0
HANDSHAKE_TIMEOUT = 10.0


def payload(size: int) -> bytes:
    text = b"hump_listener WebSocket echo benchmark payload. " * (size // 48 + 1)
    return text[:size]


def masked_frame(opcode: int, data: bytes) -> bytes:
    n = len(data)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    mask = (MASK * (n // 4 + 1))[:n]
    return head + MASK + bytes(a ^ b for a, b in zip(data, mask, strict=True))


def server_frame(opcode: int, data: bytes) -> bytes:
    n = len(data)
    if n < 126:
        return struct.pack("!BB", 0x80 | opcode, n) + data
    if n < 65536:
        return struct.pack("!BBH", 0x80 | opcode, 126, n) + data
    return struct.pack("!BBQ", 0x80 | opcode, 127, n) + data


class BenchError(Exception):
    pass


class Shared:
    """State of the whole run, shared by the connections."""

    def __init__(self, request: bytes, reply: bytes) -> None:
        self.request = request
        self.reply = reply
        self.running = True  # send the next message after each reply
        self.recording = False
        self.count = 0  # replies received while recording
        self.latencies: list[int] = []  # ns, while recording
        self.failure: BaseException | None = None


class EchoConnection(asyncio.Protocol):
    """One WebSocket client connection in lock-step: send, wait for the echo, send again."""

    def __init__(self, shared: Shared, port: int, path: str) -> None:
        self.shared = shared
        self.handshake = (
            f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.open = False
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.echoed: asyncio.Future[None] | None = None  # idle mode: the one echo
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.sent_at = 0
        self.at_eof = False

    # -- asyncio callbacks ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport subclass
        transport.write(self.handshake)

    def data_received(self, data: bytes) -> None:
        if self.open:
            # The common case, first and with the least work: exactly one whole reply.
            shared = self.shared
            if data == shared.reply and not self.buffer:
                self._replied(shared)
                return
            self.buffer += data
            self._frames()
            return
        self.buffer += data
        head, sep, rest = self.buffer.partition(b"\r\n\r\n")
        if not sep:
            return
        if not head.startswith(b"HTTP/1.1 101"):
            self._fail(BenchError(f"handshake refused: {head.splitlines()[0].decode(errors='replace')}"))
            return
        self.open, self.buffer = True, rest
        if not self.opened.done():
            self.opened.set_result(None)
        if self.buffer:
            self._frames()

    def eof_received(self) -> bool:
        self.at_eof = True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        if not self.opened.done():
            self.opened.set_exception(BenchError(f"connection lost during the handshake: {exc!r}"))
        if self.echoed is not None and not self.echoed.done():
            self.echoed.set_exception(BenchError(f"connection lost before the echo: {exc!r}"))
        if self.shared.running and self.echoed is None:
            self._fail(BenchError(f"the server closed a connection during the run: {exc!r}"))

    # -- frames -----------------------------------------------------------------------------

    def send(self) -> None:
        assert self.transport is not None
        self.sent_at = time.perf_counter_ns()
        self.transport.write(self.shared.request)

    def _replied(self, shared: Shared) -> None:
        if shared.recording:
            shared.count += 1
            shared.latencies.append(time.perf_counter_ns() - self.sent_at)
        echoed = self.echoed
        if echoed is not None:
            if not echoed.done():
                echoed.set_result(None)
        elif shared.running:
            self.send()

    def _frames(self) -> None:
        """Everything but one whole reply per read: split or coalesced reads, pings."""
        shared, reply = self.shared, self.shared.reply
        while len(self.buffer) >= 2:
            buffer = self.buffer
            if buffer.startswith(reply):
                self.buffer = buffer[len(reply) :]
                self._replied(shared)
                continue
            opcode, length = buffer[0] & 0x0F, buffer[1] & 0x7F
            if buffer[1] & 0x80 or length > 125:
                self._fail(BenchError(f"unexpected frame from the server: {buffer[:16]!r}"))
                return
            if len(buffer) < 2 + length:
                return
            if opcode == 0x9:  # ping: answer it, as every client must
                assert self.transport is not None
                self.transport.write(masked_frame(0xA, buffer[2 : 2 + length]))
            elif opcode == 0x8:  # close: the server is done with us
                self.buffer = b""
                if self.transport is not None:
                    self.transport.close()
                return
            elif opcode != 0xA and len(buffer) >= len(reply):
                self._fail(BenchError(f"wrong echo: {buffer[: len(reply)]!r}, expected {reply!r}"))
                return
            elif opcode != 0xA:
                return  # a partial reply: wait for the rest
            self.buffer = buffer[2 + length :]

    def _fail(self, exc: BaseException) -> None:
        shared = self.shared
        if shared.failure is None:
            shared.failure = exc
        shared.running = False
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        """Send a close frame (1000); the server answers and closes the TCP connection."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(masked_frame(0x8, struct.pack("!H", 1000)))


async def open_connections(
    shared: Shared, port: int, path: str, count: int, echo_once: bool = False
) -> list[EchoConnection]:
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(OPEN_CONCURRENCY)
    conns: list[EchoConnection] = []

    async def one() -> None:
        async with gate:
            conn = EchoConnection(shared, port, path)
            conns.append(conn)
            await loop.create_connection(lambda: conn, HOST, port)
            await asyncio.wait_for(conn.opened, HANDSHAKE_TIMEOUT)
            if echo_once:  # idle mode: one echo, then the connection stays quiet
                conn.echoed = loop.create_future()
                conn.send()
                await asyncio.wait_for(conn.echoed, HANDSHAKE_TIMEOUT)

    await asyncio.gather(*(one() for _ in range(count)))
    return conns


async def close_all(conns: list[EchoConnection]) -> int:
    """Close every connection properly; returns how many the server did not close in time."""
    for conn in conns:
        conn.close()
    pending = [conn.closed for conn in conns if not conn.closed.done()]
    if pending:
        await asyncio.wait(pending, timeout=CLOSE_TIMEOUT)
    stuck = 0
    for conn in conns:
        if not conn.closed.done() and conn.transport is not None:
            stuck += 1
            conn.transport.abort()
    return stuck


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def snapshot(server_pid: int) -> dict[str, float]:
    return {
        "wall": time.perf_counter(),
        "server": cpu_seconds(server_pid),
        "cpu0": cpu_busy_seconds(SERVER_CPU),
        "cpu1": cpu_busy_seconds(CLIENT_CPU),
        "client": own_cpu(),
    }


def percentile(sorted_values: list[int], percent: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(percent / 100 * len(sorted_values) + 0.5) - 1))
    return float(sorted_values[index])


async def run_echo(args: argparse.Namespace) -> dict[str, Any]:
    data = payload(args.size)
    shared = Shared(masked_frame(0x1, data), server_frame(0x1, data))
    conns = await open_connections(shared, args.port, args.path, args.connections)
    for conn in conns:
        conn.send()
    await asyncio.sleep(args.warmup)
    if shared.failure:
        raise shared.failure
    before = snapshot(args.server_pid)
    shared.recording = True
    await asyncio.sleep(args.duration)
    shared.recording = False
    after = snapshot(args.server_pid)
    shared.running = False
    count = shared.count
    latencies = sorted(shared.latencies)
    stuck = await close_all(conns)
    if shared.failure:
        raise shared.failure
    wall = after["wall"] - before["wall"]
    server = after["server"] - before["server"]
    client = after["client"] - before["client"]
    return {
        "messages": count,
        "wall_s": wall,
        "server_cpu_s": server,
        "client_cpu_s": client,
        "other_cpu0_s": max(0.0, after["cpu0"] - before["cpu0"] - server),
        "other_cpu1_s": max(0.0, after["cpu1"] - before["cpu1"] - client),
        "p50_us": percentile(latencies, 50) / 1000,
        "p99_us": percentile(latencies, 99) / 1000,
        "not_closed": stuck,
    }


async def run_idle(args: argparse.Namespace) -> dict[str, Any]:
    data = payload(args.size)
    shared = Shared(masked_frame(0x1, data), server_frame(0x1, data))
    shared.running = False  # idle: no lock-step, one echo per connection
    await asyncio.sleep(0.3)
    idle = rss_kib(args.server_pid)
    conns = await open_connections(shared, args.port, args.path, args.connections, echo_once=True)
    await asyncio.sleep(1.0)
    loaded = rss_kib(args.server_pid)
    alive = sum(1 for conn in conns if not conn.closed.done() and not conn.at_eof)
    stuck = await close_all(conns)
    if shared.failure:
        raise shared.failure
    return {
        "rss_idle_kib": idle,
        "rss_loaded_kib": loaded,
        "kib_per_conn": (loaded - idle) / max(len(conns), 1),
        "opened": len(conns),
        "alive": alive,
        "not_closed": stuck,
    }


#: ``flood``: the bytes one attacker write holds (about a socket buffer of frames).
FLOOD_WRITE = 256 * 1024
PROBE_REQUEST = f"GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()


def flood_bytes(attack: str) -> bytes:
    """One write's worth of the attack's frames."""
    if attack == "binary":
        one = masked_frame(0x2, b"x")
        return one * (FLOOD_WRITE // len(one))
    if attack == "ping":
        one = masked_frame(0x9, b"")
        return one * (FLOOD_WRITE // len(one))
    # cont: whole messages of 4,000 one-byte fragments (under every server's fragment
    # limit: a message that never ends would be closed 1009 after a few thousand).
    rest = masked_frame(0x0, b"x")[1:]  # masked_frame sets FIN: the first byte is ours to write
    message = b"\x01" + rest + (b"\x00" + rest) * 3998 + b"\x80" + rest
    return message * max(1, FLOOD_WRITE // len(message))


class Attacker(asyncio.Protocol):
    """A WebSocket connection that writes ``data`` again and again while the transport
    takes it, and drops whatever the server sends."""

    def __init__(self, port: int, path: str, data: bytes) -> None:
        self.handshake = (
            f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self.data = data
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.running = False
        self.paused = False
        self.head = b""
        self.lost = False
        self.sent = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.handshake)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if not self.opened.done():
            self.head += data
            if b"\r\n\r\n" in self.head:
                if not self.head.startswith(b"HTTP/1.1 101"):
                    self.opened.set_exception(BenchError(f"handshake refused: {self.head[:80]!r}"))
                else:
                    self.opened.set_result(None)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self.pump()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True

    def pump(self) -> None:
        transport = self.transport
        while self.running and not self.paused and transport is not None and not transport.is_closing():
            transport.write(self.data)
            self.sent += len(self.data)


class Probe(asyncio.Protocol):
    """``GET /`` in lock-step on one keep-alive connection, each round trip timed."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.sent_at = 0
        self.recording = False
        self.running = True
        self.latencies: list[int] = []
        self.failure: BaseException | None = None
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.send()

    def send(self) -> None:
        assert self.transport is not None
        self.sent_at = time.perf_counter_ns()
        self.transport.write(PROBE_REQUEST)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buffer[:end].lower()
        at = head.find(b"content-length:")
        if at < 0:
            self.failure = BenchError(f"a probe response without Content-Length: {head[:200]!r}")
            return
        length = int(head[at + 15 :].split(b"\r\n", 1)[0])
        if len(self.buffer) < end + 4 + length:
            return
        now = time.perf_counter_ns()
        self.buffer = self.buffer[end + 4 + length :]
        if self.recording:
            self.latencies.append(now - self.sent_at)
        if self.running:
            self.send()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.running and self.failure is None:
            self.failure = BenchError(f"the probe connection was closed ({exc})")
        if not self.lost.done():
            self.lost.set_result(None)


async def run_flood(args: argparse.Namespace) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    attacker: Attacker | None = None
    if args.attack != "none":
        attacker = flooder = Attacker(args.port, args.path, flood_bytes(args.attack))
        await loop.create_connection(lambda: flooder, HOST, args.port)
        await asyncio.wait_for(flooder.opened, HANDSHAKE_TIMEOUT)
        flooder.running = True
        flooder.pump()
    probe = Probe()
    await loop.create_connection(lambda: probe, HOST, args.port)
    await asyncio.sleep(args.warmup)
    before = snapshot(args.server_pid)
    probe.recording = True
    await asyncio.sleep(args.duration)
    probe.recording = False
    after = snapshot(args.server_pid)
    probe.running = False
    cut = attacker is not None and attacker.lost  # the server closed it during the run
    if attacker is not None:
        attacker.running = False
        if attacker.transport is not None:
            attacker.transport.abort()
    if probe.transport is not None:
        probe.transport.close()
    if probe.failure:
        raise probe.failure
    latencies = sorted(probe.latencies)
    wall = after["wall"] - before["wall"]
    return {
        "attack": args.attack,
        "probes": len(latencies),
        "wall_s": wall,
        "server_cpu_s": after["server"] - before["server"],
        "client_cpu_s": after["client"] - before["client"],
        "attack_mb_sent": (attacker.sent if attacker is not None else 0) / 1e6,
        "attacker_cut": cut,
        "p50_ms": percentile(latencies, 50) / 1e6,
        "p99_ms": percentile(latencies, 99) / 1e6,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("echo", "idle", "flood"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--server-pid", type=int, required=True)
    parser.add_argument("--path", default="/echo")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--size", type=int, default=32, help="payload bytes (text), default 32")
    parser.add_argument("--attack", choices=("none", "binary", "ping", "cont"), default="none", help="flood mode")
    parser.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, {CLIENT_CPU})
    loop_name = args.loop
    if loop_name == "auto":
        try:
            import uvloop

            loop_name = "uvloop"
        except ImportError:
            loop_name = "asyncio"
    if loop_name == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    mode = {"echo": run_echo, "idle": run_idle, "flood": run_flood}[args.mode]
    try:
        result = asyncio.run(mode(args))
    except (BenchError, OSError, asyncio.TimeoutError) as exc:
        result = {"error": f"{type(exc).__name__}: {exc}"}
    result["client_loop"] = loop_name
    print("WSLOAD " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
