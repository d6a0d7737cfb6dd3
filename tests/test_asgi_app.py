"""The ``App`` object is itself an ASGI 3 application (issue 14 item 1): ``uvicorn
http_web:app`` serves it, lifespan included, while the built-in server, the test client
and the ASGI adapter call the seam entry ``App.handle``. Unit tests call ``app(scope,
receive, send)`` with fakes; the last ones run a real uvicorn on 127.0.0.1 port 0."""

from __future__ import annotations

import http.client
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest
from process_helpers import launch

from hump_listener import App, HTTPContext
from hump_listener.seam import Channel, RequestHead, seam_entry
from hump_listener.testing import AsyncTestClient

Message = MutableMapping[str, Any]


class Peer:
    """Fake ASGI server side: queued receive messages, recorded sends."""

    def __init__(self, *messages: Message) -> None:
        self.inbox = list(messages)
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        assert self.inbox, "the app read past the last message"
        return self.inbox.pop(0)

    async def send(self, message: Message) -> None:
        self.sent.append(dict(message))


def http_scope(method: str, path: str) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": [(b"host", b"testserver")], "client": ("10.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }


def make_app() -> tuple[App, list[str]]:
    app = App(access_log=False)
    calls: list[str] = []

    @app.startup
    async def up() -> None:
        calls.append("startup")

    @app.shutdown
    async def down() -> None:
        calls.append("shutdown")

    @app.post("/echo")
    async def echo(ctx: HTTPContext) -> bytes:
        return await ctx.body()

    return app, calls


async def test_app_object_serves_an_http_scope() -> None:
    app, _ = make_app()
    peer = Peer({"type": "http.request", "body": b"pi", "more_body": True},
                {"type": "http.request", "body": b"ng", "more_body": False})
    await app(http_scope("POST", "/echo"), peer.receive, peer.send)
    assert [m["type"] for m in peer.sent] == ["http.response.start", "http.response.body"]
    assert peer.sent[0]["status"] == 200 and peer.sent[1]["body"] == b"ping"


async def test_app_object_runs_lifespan() -> None:
    app, calls = make_app()
    peer = Peer({"type": "lifespan.startup"}, {"type": "lifespan.shutdown"})
    await app({"type": "lifespan", "asgi": {"version": "3.0"}}, peer.receive, peer.send)
    assert [m["type"] for m in peer.sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert calls == ["startup", "shutdown"]


async def test_app_is_asgi3_for_servers_that_inspect_it() -> None:
    """uvicorn picks ASGI 3 when ``__call__`` is a coroutine function (``--interface
    auto``): the one ASGI spelling is the ``App`` itself."""
    import asyncio

    app, _ = make_app()
    assert asyncio.iscoroutinefunction(app.__call__)
    from uvicorn.config import Config

    config = Config(app, lifespan="on")
    config.load()
    assert config.interface == "asgi3"


async def test_seam_entry_is_the_bound_handle_and_plain_callables_pass_through() -> None:
    app, _ = make_app()
    assert seam_entry(app) == app.handle

    async def plain(head: RequestHead, channel: Channel) -> None:
        channel.respond(204, [], b"")

    assert seam_entry(plain) is plain
    async with AsyncTestClient(plain) as client:  # the test client takes either kind
        assert (await client.get("/")).status_code == 204
    async with AsyncTestClient(app) as client:
        assert (await client.post("/echo", content=b"x")).text == "x"


# -- a real uvicorn ---------------------------------------------------------------------------

UVICORN_RUNNING = r"Uvicorn running on http://127\.0\.0\.1:(\d+)"


def uvicorn(app: str, *extra: str) -> list[str]:
    pytest.importorskip("uvicorn")
    return [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", "0", *extra]


def request(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "text/x-test"} if body else {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def port_of(line: str) -> int:
    import re

    match = re.search(UVICORN_RUNNING, line)
    assert match is not None
    return int(match.group(1))


def test_uvicorn_http_web_app_serves_the_demo() -> None:
    """What a Starlette user types: ``uvicorn http_web:app`` (default flags: lifespan
    ``auto``, which must find the lifespan supported)."""
    with launch(uvicorn("http_web:app")) as server:
        port = port_of(server.wait_for_line(UVICORN_RUNNING))
        assert request(port, "GET", "/") == (200, b"Hello, world!")
        assert request(port, "POST", "/echo", b"a body") == (200, b"a body")
        assert request(port, "GET", "/api/users/42")[0] == 200
        assert request(port, "GET", "/nope")[0] == 404
        server.wait_for_line("Application startup complete")
        assert "unsupported" not in server.output() and "Exception" not in server.output()


def test_uvicorn_runs_lifespan_startup_and_shutdown_callbacks(tmp_path: Path) -> None:
    import signal

    log = tmp_path / "lifespan.log"
    with launch(uvicorn("apps.lifespan_app:app", "--lifespan", "on"), env={"LIFESPAN_LOG": str(log)}) as server:
        port = port_of(server.wait_for_line(UVICORN_RUNNING))
        status, body = request(port, "GET", "/state")
        assert (status, body) == (200, b'{"started":1}')
        status, body = request(port, "GET", "/thread")
        assert status == 200 and body.startswith(b"hump-sync")
        server.proc.send_signal(signal.SIGTERM)
        # uvicorn >= 0.29 re-raises the signal once it has shut down: -SIGTERM, not 0.
        assert server.proc.wait(timeout=20) in (0, -signal.SIGTERM)
        server.wait_for_line("Application shutdown complete")
    assert log.read_text().splitlines() == ["startup", "shutdown"]
