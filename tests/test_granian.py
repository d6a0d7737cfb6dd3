"""granian as a deployment: ``granian --interface asgi http_web:app`` serves the demo's HTTP
routes, its WebSockets (the chat through ``app.broadcast``) and the lifespan (startup and
shutdown callbacks), like the uvicorn deployment in tests/test_asgi.py.

granian's HTTP and WebSocket protocols are Rust; only the App runs in Python, so the
parser (``HUMP_PARSER``) is not used and the h11_mypyc pass of scripts/test skips this file.
granian runs on the loop of the pass (``HUMP_TEST_LOOP``: asyncio or uvloop).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets
from test_asgi import check_demo_routes, http
from ws_helpers import said

pytest.importorskip("granian")
pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(
        os.environ.get("HUMP_PARSER") == "h11_mypyc", reason="granian does not use our parser: one pass is enough"
    ),
]

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 30.0


def _free_port() -> int:
    """granian binds by port number (it takes no listening socket), so a free one is
    picked first; ``Granian`` retries if another process took it meanwhile."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Granian:
    """``python -m granian --interface asgi APP`` on 127.0.0.1 with one worker, its output
    collected in a file. Ready when the worker's lifespan startup has run and it accepts
    (``Started worker-1 runtime-1`` in the log, then a connection succeeds)."""

    def __init__(self, app: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> None:
        self.port = _free_port()
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"granian-{os.getpid()}-{self.port}.log"
        loop = os.environ.get("HUMP_TEST_LOOP", "asyncio") or "asyncio"
        argv = [sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1"]
        argv += ["--port", str(self.port), "--workers", "1", "--loop", loop, "--log-level", "info", app]
        path = os.pathsep.join(filter(None, [str(cwd), str(ROOT), os.environ.get("PYTHONPATH", "")]))
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                argv,
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1", **(env or {})},
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"granian exited with {self.proc.returncode}:\n{self.output()}")
            if re.search(r"Started worker-1 runtime-1|Listening at", self.output()):
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                    return
                except OSError:
                    pass
            time.sleep(0.05)  # polling the log and the port for readiness, not a synchronisation
        raise AssertionError(f"granian not ready after {START_TIMEOUT:.0f}s:\n{self.output()}")

    def stop(self, sig: signal.Signals = signal.SIGINT) -> int:
        """Stop granian the way a user would (Ctrl-C) and return its exit code; its output
        is printed, which pytest shows for a failed test."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        print(self.output())
        self.log_path.unlink(missing_ok=True)
        return self.proc.returncode


@pytest.fixture(scope="module")
def demo() -> Iterator[int]:
    server = Granian("http_web:app")
    try:
        yield server.port
    finally:
        server.stop()


def test_demo_http_routes_under_granian(demo: int) -> None:
    check_demo_routes(demo)
    assert json.loads(http(demo, "GET", "/api/users/42")[2]) == {"id": 42, "name": "douglas"}
    status, headers, body = http(demo, "GET", "/static/style.css")
    assert status == 200 and headers["content-type"].startswith("text/css") and body


def test_streamed_request_and_response_under_granian(demo: int) -> None:
    parts = [b"a" * 10, b"b" * 70000, b"c"]
    status, _, body = http(
        demo, "POST", "/echo", iter(parts), {"Transfer-Encoding": "chunked", "Content-Type": "application/x-parts"}
    )
    assert (status, body) == (200, b"".join(parts))
    status, headers, body = http(demo, "GET", "/clock?n=2")  # server-sent events, streamed
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    assert body.count(b"data: ") == 2


def test_websocket_echo_under_granian(demo: int) -> None:
    async def go() -> list[str | bytes]:
        async with websockets.connect(f"ws://127.0.0.1:{demo}/ws/echo") as ws:
            await ws.send("text ✓")
            first = await ws.recv()
            await ws.send(b"\x00binary\xff")
            return [first, await ws.recv()]

    assert asyncio.run(go()) == ["text ✓", b"\x00binary\xff"]


def test_websocket_chat_through_the_broadcast_under_granian(demo: int) -> None:
    """The chat relays through ``app.broadcast``, which the lifespan startup started."""

    async def go() -> list[tuple[str, str]]:
        url = f"ws://127.0.0.1:{demo}/ws/chat/granian"
        async with websockets.connect(url + "?name=a") as a, websockets.connect(url + "?name=b") as b:
            await a.send("from a")
            got = [await said(a), await said(b)]
            await b.send("from b")
            return [*got, await said(a), await said(b)]

    assert asyncio.run(go()) == [("a", "from a"), ("a", "from a"), ("b", "from b"), ("b", "from b")]


def test_lifespan_startup_and_shutdown_callbacks_run_under_granian(tmp_path: Path) -> None:
    """The demo's App with a startup and a shutdown callback added (a module beside it):
    granian runs startup before serving and shutdown on Ctrl-C, then exits 0."""
    marks = tmp_path / "marks.txt"
    (tmp_path / "granian_demo.py").write_text(
        textwrap.dedent(
            """
            import os

            from http_web import app

            def mark(what: str) -> None:
                with open(os.environ["MARKS"], "a") as f:
                    f.write(f"{what} {os.getpid()}\\n")

            @app.startup
            async def started() -> None:
                mark("started")

            @app.shutdown
            async def stopped() -> None:
                mark("stopped")
            """
        )
    )
    server = Granian("granian_demo:app", cwd=tmp_path, env={"MARKS": str(marks)})
    stopped = False
    try:
        assert http(server.port, "GET", "/")[2] == b"Hello, world!"
        lines = marks.read_text().split()
        assert lines[0] == "started" and len(lines) == 2  # once, in the worker, before serving
        worker = lines[1]
        assert int(worker) != server.proc.pid
        assert server.stop() == 0
        stopped = True
    finally:
        if not stopped:
            server.stop()
    assert marks.read_text().split() == ["started", worker, "stopped", worker]
