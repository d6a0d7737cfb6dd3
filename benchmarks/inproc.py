"""CPU per request of hump_listener's own code, without sockets or a load generator.

Feeds raw requests to the real ``H11Protocol`` over an in-memory transport, serving the
demo app, one request at a time on one kept-alive connection, and reports µs/request
(best of ``--repeat``). Deterministic enough to compare optimisations, unlike wrk on a
shared 2-core VM; ``benchmarks/run.py`` remains the benchmark against peers.

    python benchmarks/inproc.py [--requests 20000] [--repeat 5] [--profile]

The ``WS echo`` rows do the same for WebSocket messages: one connection to
``benchmarks/apps/hump_ws.py``'s echo route is upgraded, then masked 32-byte text frames are
fed one per ``data_received`` (or 16 per read, as a busy connection's reads coalesce) and
each echo is waited for: µs per message through the protocol, the WebSocket context and the
handler (``benchmarks/websocket.py`` is the benchmark against peers).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import time
from collections.abc import Callable, Coroutine
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO

sys.path.insert(0, str(REPO))

import http_web
from hump_listener.config import ServerConfig
from hump_listener.protocol.http11 import H11Protocol
from hump_listener.protocol.memory import MemoryTransport
from hump_listener.protocol.server import ServerState

sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "benchmarks" / "apps"))

import hump_ws
from wsload import KEY, masked_frame, payload

REQUESTS = {
    "GET /": b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n",
    "POST /echo 1 KiB": (
        b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nContent-Length: 1024\r\n"
        b"Content-Type: application/octet-stream\r\n\r\n" + b"x" * 1024
    ),
    "GET /api/users/42": b"GET /api/users/42 HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n",
}


def connect(app: Any) -> tuple[ServerState, H11Protocol, MemoryTransport]:
    """One server connection to ``app`` over the one in-memory transport; what the server
    writes is counted (``sink.writes``) and dropped."""
    app.configure(access_log=False)
    state = ServerState(app.handle, ServerConfig(), asyncio.get_running_loop())
    proto = H11Protocol(state)
    sink = MemoryTransport(state.loop, on_write=lambda data: None)
    sink.connect(proto)
    return state, proto, sink


async def run(raw: bytes, n: int) -> float:
    state, proto, sink = connect(http_web.app)  # one write per response on these routes
    start = time.process_time()
    for i in range(1, n + 1):
        proto.data_received(raw)
        while sink.writes < i:  # let the request task run to its response
            await asyncio.sleep(0)
    elapsed = time.process_time() - start
    for task in list(state.tasks):
        await task
    return elapsed / n * 1e6


WS_HANDSHAKE = (
    "GET /echo HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
).encode()
#: name -> frames fed per data_received
WS_RUNS = {"WS echo 32 B": 1, "WS echo 32 B, 16 per read": 16}


async def run_ws(per_read: int, n: int) -> float:
    state, proto, sink = connect(hump_ws.app)
    proto.data_received(WS_HANDSHAKE)
    while sink.writes < 1:  # the 101
        await asyncio.sleep(0)
    ws = sink.protocol  # the WebSocket protocol took the transport over
    assert ws is not None and ws is not proto
    chunk = masked_frame(0x1, payload(32)) * per_read
    rounds = n // per_read
    start = time.process_time()
    for i in range(1, rounds + 1):
        ws.data_received(chunk)  # type: ignore[attr-defined]
        while sink.writes < 1 + i * per_read:  # one write per echo
            await asyncio.sleep(0)
    elapsed = time.process_time() - start
    sink.close()
    for task in list(state.tasks):
        await task
    return elapsed / (rounds * per_read) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="cProfile one run of each, top 25 by own time")
    args = parser.parse_args()
    cases: list[tuple[str, str, Callable[[], Coroutine[Any, Any, float]]]] = [
        (name, "request", partial(run, raw, args.requests)) for name, raw in REQUESTS.items()
    ]
    cases += [(name, "message", partial(run_ws, per_read, args.requests)) for name, per_read in WS_RUNS.items()]
    for name, unit, case in cases:
        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
            asyncio.run(case())
            prof.disable()
            print(f"== {name}")
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)
            continue
        best = min(asyncio.run(case()) for _ in range(args.repeat))
        print(f"{name:26s} {best:6.1f} us/{unit}")

if __name__ == "__main__":
    main()
