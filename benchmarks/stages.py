"""Where a request's instructions go: each stage of the request path counted alone.

``icount.py`` counts a whole request; this counts its parts, so a profile can say where
the instructions go without the distortion of a tracing profiler (cProfile adds a fixed
cost per Python call, which inflates small functions several-fold). Every stage is a
piece of the real request path, called ``--count`` times in a loop (after ``--warmup``
calls, so specialisation and caches are warm) in one Python process under valgrind's
callgrind; a marker call (``zlib.adler32``, which nothing on the request path calls)
before and after each loop makes callgrind dump its counter there (``--dump-before``),
so one run gives every stage. The cost of the loop itself (an empty stage) is
subtracted. Deterministic: two runs agree within a few instructions per request.

    apt-get install -y valgrind
    python benchmarks/stages.py                    # the built-in server: GET /, S4, S7
    python benchmarks/stages.py --asgi             # the framework layer under ASGI, beside Starlette
    python benchmarks/stages.py --only "GET /"     # one request
    python benchmarks/stages.py --no-valgrind      # the same stages timed with perf_counter (quick look)

Built-in server stages (``GET /`` ...), on the demo app (``http_web.py``), as the server
runs them: the whole request over the in-memory transport (``inproc.py``: protocol, app,
cycle, the event loop), then its parts: ``head.read_head`` (pre-scan, h11, our checks)
and h11's part of it alone (a fresh ``h11.Connection``, ``receive_data``,
``next_event``); ``App.handle`` with a channel that records the reply (the whole
framework side) and its parts (target, routing, the context and ``Request``, the handler
with its injection, the reply's header list); ``writer.serialise_head``; and one asyncio
task with one loop turn, what the server's loop pays per request at the least.

ASGI stages (``--asgi``): one request through ``App.__call__`` (the adapter, the seam,
the framework), through the same app's ``handle`` with a recording channel (so the
adapter's share is the difference), through Starlette's app (``peers/starlette_app.py``)
and through the raw ASGI app (``peers/asgi_raw.py``, the floor); ``receive``/``send``
are coroutines that answer at once, so only the application's instructions are counted,
what every ASGI server pays the same for each of them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BENCH_DIR, REPO

sys.path[:0] = [str(REPO), str(BENCH_DIR / "peers"), str(BENCH_DIR / "apps")]

#: (label, factory): the factory is called once and returns the stage, a zero-argument
#: callable (sync or async) doing one request's worth of that stage.
Stage = tuple[str, Callable[[], Callable[[], Any]]]

_TOTALS = re.compile(r"^totals:\s*(\d+)", re.M)


def mark() -> None:
    """callgrind dumps its counter on entering adler32 (``--dump-before``)."""
    zlib.adler32(b"")


# --------------------------------------------------------------------------- fakes


class RecordingChannel:
    """A ``seam.Channel`` for one request that records the reply; the body, if any, is
    handed over in one piece."""

    websocket = None

    def __init__(self, body: bytes = b"") -> None:
        self._body = body
        self.disconnected = False
        self.started = False
        self.reply: tuple[int, Any, bytes] | None = None

    async def receive(self) -> bytes:
        body, self._body = self._body, b""
        return body

    def respond(self, status: int, headers: Any, body: bytes) -> None:
        self.started = True
        self.reply = (status, headers, body)


def _now(coro: Any) -> Any:
    """Run a coroutine that never waits (the handlers here) to its end, off the loop."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    raise RuntimeError("the coroutine waited")


def _split(raw: bytes) -> tuple[bytes, bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return head + b"\r\n\r\n", body


# --------------------------------------------------------------------------- built-in server


def server_stages(name: str, raw: bytes) -> list[Stage]:
    import inproc

    from hump_listener.config import ServerConfig
    from hump_listener.context import HTTPContext
    from hump_listener.endpoints import call_plan
    from hump_listener.models import Headers, Request
    from hump_listener.protocol.head import ParsedHead, read_head
    from hump_listener.protocol.head import _read_request as read_request
    from hump_listener.protocol.parser import h11
    from hump_listener.protocol.writer import serialise_head
    from hump_listener.proxy import TrustedProxies, effective_peer
    from hump_listener.targets import decode_path, split_target

    app = inproc.http_web.app
    app.configure(access_log=False)
    config = ServerConfig()
    client, server = ("127.0.0.1", 40000), ("127.0.0.1", 8000)
    head_bytes, body = _split(raw)
    parsed = read_head(raw, config, False, client, server, "http")
    assert type(parsed) is ParsedHead
    request = parsed.head
    raw_path, query = split_target(request.target)
    path = decode_path(raw_path)
    endpoint, params = app.route_table.router.match(request.method, path)
    trusted = TrustedProxies(app.config.forwarded_allow_ips)

    def whole() -> Callable[[], Awaitable[None]]:
        _, proto, sink = inproc.connect(app)

        async def one() -> None:
            writes = sink.writes + 1
            proto.data_received(raw)
            while sink.writes < writes:
                await asyncio.sleep(0)

        return one

    def h11_parse() -> Callable[[], object]:
        return lambda: read_request(head_bytes)

    def h11_connection() -> Callable[[], object]:
        def one() -> object:
            conn = h11.Connection(h11.SERVER, max_incomplete_event_size=config.max_head_size)
            conn.receive_data(head_bytes)
            return conn.next_event()

        return one

    def head() -> Callable[[], object]:
        return lambda: read_head(raw, config, False, client, server, "http")

    def handle() -> Callable[[], Awaitable[None]]:
        async def one() -> None:
            await app.handle(request, RecordingChannel(body))

        return one

    def new_context() -> Callable[[], object]:
        def one() -> object:
            ctx = HTTPContext(app, "1")
            peer, scheme = effective_peer(request.client, request.scheme, request.headers, trusted)
            headers = Headers(request.headers)
            ctx.request = Request(
                request.method, path, raw_path, query, request.http_version, headers, peer, scheme, request.server
            )
            return ctx

        return one

    def handler() -> Callable[[], Awaitable[object]]:
        ctx = new_context()()
        assert isinstance(ctx, HTTPContext)

        async def one() -> object:
            ctx.reply = None
            ctx._body, ctx._streamed, ctx.channel = None, False, RecordingChannel(body)
            return await call_plan(endpoint.call, endpoint.plan, ctx, params)

        return one

    def header_list() -> Callable[[], object]:
        ctx = new_context()()
        assert isinstance(ctx, HTTPContext)
        ctx.channel = RecordingChannel(body)
        _now(call_plan(endpoint.call, endpoint.plan, ctx, params))
        response = ctx.reply
        assert response is not None
        return response.header_list

    def writer() -> Callable[[], object]:
        headers = header_list()()
        prefix = b"date: Thu, 01 Jan 2026 00:00:00 GMT\r\nserver: hump_listener\r\n"

        def one() -> object:
            return serialise_head(200, headers, b"x" * 13, request.method, "1.1", True, prefix, 2)  # type: ignore[arg-type]

        return one

    def one_task() -> Callable[[], Awaitable[None]]:
        loop = asyncio.get_running_loop()

        async def noop() -> None:
            pass

        async def one() -> None:
            task = loop.create_task(noop())
            await asyncio.sleep(0)
            assert task.done()

        return one

    return [
        (f"{name}: whole request (inproc)", whole),
        ("  head.read_head (pre-scan + h11 + checks)", head),
        ("    h11's reader alone (what read_head calls)", h11_parse),
        ("    (h11.Connection + next_event, for reference)", h11_connection),
        ("  App.handle (recording channel)", handle),
        ("    targets: split_target + decode_path", lambda: lambda: decode_path(split_target(request.target)[0])),
        ("    routing: Router.match", lambda: lambda: app.route_table.router.match(request.method, path)),
        ("    HTTPContext + Request + peer", new_context),
        ("    handler with injection (call_plan)", handler),
        ("    Response.header_list", header_list),
        ("  writer.serialise_head", writer),
        ("  asyncio: create_task + one loop turn", one_task),
    ]


# --------------------------------------------------------------------------- ASGI


def asgi_scope(raw: bytes) -> tuple[dict[str, Any], bytes]:
    head, body = _split(raw)
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ")
    path, _, query = target.partition("?")
    headers = []
    for line in lines[1:]:
        if line:
            field, _, value = line.partition(":")
            headers.append((field.strip().lower().encode("latin-1"), value.strip().encode("latin-1")))
    scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
        "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
        "query_string": query.encode(), "root_path": "", "headers": headers,
        "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8000), "state": {},
    }
    return scope, body


def asgi_stages(name: str, raw: bytes) -> list[Stage]:
    import asgi_raw
    import starlette_app

    import http_web
    from hump_listener.asgi import head_from_scope

    http_web.app.configure(access_log=False)
    scope, body = asgi_scope(raw)
    request = {"type": "http.request", "body": body, "more_body": False}

    async def receive() -> dict[str, Any]:
        return request

    async def send(message: Any) -> None:
        pass

    def calling(app: Any) -> Callable[[], Callable[[], Awaitable[None]]]:
        def factory() -> Callable[[], Awaitable[None]]:
            async def one() -> None:
                await app(dict(scope), receive, send)  # servers make a scope per request

            return one

        return factory

    def seam_only() -> Callable[[], Awaitable[None]]:
        async def one() -> None:
            await http_web.app.handle(head_from_scope(dict(scope)), RecordingChannel(body))

        return one

    return [
        (f"{name}: App (ASGI: adapter + framework)", calling(http_web.app)),
        ("  App.handle alone (recording channel)", seam_only),
        ("  head_from_scope", lambda: lambda: head_from_scope(scope)),
        ("Starlette app", calling(starlette_app.app)),
        ("raw ASGI app (the floor)", calling(asgi_raw.app)),
    ]


# --------------------------------------------------------------------------- running


def run_stages(stages: list[Stage], count: int, warmup: int, timer: bool) -> list[float]:
    """Run each stage ``warmup`` then ``count`` times, marking around the counted loop;
    an empty stage goes first (the loop's own cost). Returns seconds per call when
    ``timer`` (else the marks are what counts)."""

    async def main() -> list[float]:
        out = []
        for _, factory in [("empty", lambda: lambda: None), *stages]:
            fn = factory()
            is_async = asyncio.iscoroutinefunction(fn)
            for _ in range(warmup):
                if is_async:
                    await fn()
                else:
                    fn()
            mark()
            start = time.perf_counter()
            if is_async:
                for _ in range(count):
                    await fn()
            else:
                for _ in range(count):
                    fn()
            out.append((time.perf_counter() - start) / count)
            mark()
        return out

    return asyncio.run(main())


def _stages(args: argparse.Namespace) -> list[Stage]:
    import inproc

    names = [args.only] if args.only else list(inproc.REQUESTS)
    stages: list[Stage] = []
    for name in names:
        raw = inproc.REQUESTS[name]
        stages += asgi_stages(name, raw) if args.asgi else server_stages(name, raw)
    return stages


def child(args: argparse.Namespace) -> None:
    stages = _stages(args)
    seconds = run_stages(stages, args.count, args.warmup, timer=args.no_valgrind)
    if args.no_valgrind:
        empty = seconds[0]
        for (label, _), s in zip(stages, seconds[1:], strict=True):
            print(f"{label:<48} {(s - empty) * 1e6:8.2f} us")


def parent(args: argparse.Namespace, argv: list[str]) -> int:
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (apt-get install -y valgrind)")
    labels = [label for label, _ in _stages(args)]
    with tempfile.TemporaryDirectory(prefix="hump-stages-") as tmp:
        out = os.path.join(tmp, "cg.out")
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--dump-before=adler32"]
        cmd += [sys.executable, __file__, "--child", *argv]
        run = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if run.returncode != 0:
            sys.exit(f"valgrind run failed:\n{run.stderr[-3000:]}")
        # Dump k (k >= 1) ends at the k-th mark: odd dumps are warm-ups and set-up, even
        # ones the counted loops (the empty stage first).
        dumps = {}
        for path in glob.glob(out + ".*"):
            match = _TOTALS.search(Path(path).read_text(errors="replace"))
            if match:
                dumps[int(path.rsplit(".", 1)[1])] = int(match.group(1))
    loops = [dumps[k] / args.count for k in sorted(dumps) if k % 2 == 0]
    if len(loops) != len(labels) + 1:
        sys.exit(f"expected {len(labels) + 1} counted loops, callgrind dumped {len(loops)}")
    empty = loops[0]
    print(f"{'stage':<48} {'instructions/request':>20}")
    for label, total in zip(labels, loops[1:], strict=True):
        print(f"{label:<48} {(total - empty) / 1000:19.1f}k", flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="", help="one request of inproc.REQUESTS, e.g. 'GET /'")
    parser.add_argument("--asgi", action="store_true", help="the framework layer under ASGI, beside Starlette")
    parser.add_argument("--count", type=int, default=2000, help="calls counted per stage (default 2000)")
    parser.add_argument("--warmup", type=int, default=300, help="calls before counting (default 300)")
    parser.add_argument("--no-valgrind", action="store_true", help="time the stages instead of counting")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    argv = sys.argv[1:]
    args = parser.parse_args(argv)
    if args.only:
        import inproc

        if args.only not in inproc.REQUESTS:
            parser.error(f"unknown request {args.only!r}: one of {', '.join(inproc.REQUESTS)}")
    if args.child or args.no_valgrind:
        child(args)
        return 0
    with contextlib.suppress(KeyboardInterrupt):
        return parent(args, argv)
    return 130


if __name__ == "__main__":
    sys.exit(main())
