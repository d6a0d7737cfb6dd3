"""asgi.py: the ASGI 3 adapter. Unit tests call it with fake receive/send (no server);
the last tests run the demo and a streaming app under a real uvicorn on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterable, Iterator, MutableMapping
from pathlib import Path
from typing import IO, Any

import pytest

from hump_listener import App, HTTPContext
from hump_listener.asgi import SENDFILE_CHUNK, ASGIAdapter, ASGIChannel, head_from_scope
from hump_listener.responses import FileResponse, StreamingResponse
from hump_listener.seam import Channel, ClientDisconnect, RequestHead

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
Message = dict[str, Any]


# -- fakes -----------------------------------------------------------------------------------


def scope(method: str = "GET", path: str = "/", query: bytes = b"", **kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("10.1.2.3", 40000),
        "server": ("127.0.0.1", 8000),
    }
    base.update(kw)
    return base


class Peer:
    """Fake ASGI server side: queued receive messages, recorded sends."""

    def __init__(self, *messages: Message, send_error: Exception | None = None) -> None:
        self.inbox = list(messages)
        self.sent: list[Message] = []
        self.send_error = send_error

    async def receive(self) -> Message:
        assert self.inbox, "the app read past the last message"
        return self.inbox.pop(0)

    async def send(self, message: MutableMapping[str, Any]) -> None:
        if self.send_error is not None:
            raise self.send_error
        self.sent.append(dict(message))

    @property
    def types(self) -> list[str]:
        return [m["type"] for m in self.sent]

    @property
    def status(self) -> int:
        assert self.sent[0]["type"] == "http.response.start"
        return int(self.sent[0]["status"])

    def header(self, name: bytes) -> bytes | None:
        return dict(self.sent[0]["headers"]).get(name)

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")


async def run(app: Any, sc: dict[str, Any], *messages: Message) -> Peer:
    peer = Peer(*(messages or ({"type": "http.request", "body": b"", "more_body": False},)))
    await app(sc, peer.receive, peer.send)
    return peer


def req(body: bytes, more: bool = False) -> Message:
    return {"type": "http.request", "body": body, "more_body": more}


@pytest.fixture
def app() -> App:
    app = App(access_log=False)

    @app.on_event("GET:/")
    async def index(ctx: HTTPContext) -> None:
        ctx.response(200, "Hello, world!")

    @app.on_event("GET:/who")
    async def who(ctx: HTTPContext) -> None:
        r = ctx.request
        ctx.json(
            {
                "client": r.client,
                "scheme": r.scheme,
                "server": r.server,
                "url": r.url,
                "query": r.query.to_dict(),
                "path": r.path,
            }
        )

    @app.on_event("POST:/echo")
    async def echo(ctx: HTTPContext) -> None:
        ctx.response(200, await ctx.body(), content_type=ctx.request.content_type)

    @app.on_event("GET:/count")
    async def count(ctx: HTTPContext) -> StreamingResponse:
        async def numbers() -> Any:
            for i in range(3):
                yield f"{i}\n"

        return StreamingResponse(numbers())

    @app.on_event("GET:/boom")
    async def boom(ctx: HTTPContext) -> None:
        raise RuntimeError("boom")

    return app


# -- the scope becomes a RequestHead ---------------------------------------------------------


def test_head_from_scope_keeps_the_raw_target_and_addresses() -> None:
    sc = scope(
        "GET",
        "/a b",
        b"x=1&y=%20",
        raw_path=b"/a%20b",
        scheme="https",
        http_version="1.0",
        headers=[(b"host", b"h"), (b"x-a", b"1")],
    )
    head = head_from_scope(sc)
    assert head == RequestHead(
        "GET",
        b"/a%20b?x=1&y=%20",
        "1.0",
        [(b"host", b"h"), (b"x-a", b"1")],
        ("10.1.2.3", 40000),
        ("127.0.0.1", 8000),
        "https",
    )


def test_head_from_scope_without_raw_path_client_or_server() -> None:
    sc = scope("GET", "/caf\u00e9 x", raw_path=None, client=None, server=None, headers=((b"host", b"h"),))
    head = head_from_scope(sc)
    assert head.target == b"/caf%C3%A9%20x"
    assert head.client is None and head.server is None
    assert head.headers == [(b"host", b"h")]


async def test_routes_and_request_fields_through_the_adapter(app: App) -> None:
    peer = await run(app, scope("GET", "/who", b"q=a&q=b", scheme="https"))
    assert peer.types == ["http.response.start", "http.response.body"]
    assert peer.sent[1]["more_body"] is False
    assert peer.status == 200
    assert json.loads(peer.body) == {
        "client": ["10.1.2.3", 40000],
        "scheme": "https",
        "server": ["127.0.0.1", 8000],
        "url": "https://testserver/who?q=a&q=b",
        "query": {"q": ["a", "b"]},
        "path": "/who",
    }


async def test_the_app_is_the_asgi_application(app: App) -> None:
    peer = await run(app, scope())
    assert (peer.status, peer.body, peer.header(b"content-length")) == (200, b"Hello, world!", b"13")
    assert peer.header(b"content-type") == b"text/plain; charset=utf-8"


async def test_404_405_and_head(app: App) -> None:
    assert (await run(app, scope("GET", "/nope"))).status == 404
    peer = await run(app, scope("DELETE", "/"))
    assert peer.status == 405 and peer.header(b"allow") is not None
    peer = await run(app, scope("HEAD", "/"))
    assert (peer.status, peer.body, peer.header(b"content-length")) == (200, b"", b"13")


# -- request bodies --------------------------------------------------------------------------


async def test_request_body_is_streamed_chunk_by_chunk(app: App) -> None:
    sc = scope("POST", "/echo", headers=[(b"content-type", b"application/x-thing")])
    peer = await run(app, sc, req(b"ab", True), req(b"", True), req(b"cd", True), req(b"e"))
    assert peer.body == b"abcde"
    assert peer.header(b"content-type") == b"application/x-thing"


async def test_channel_receive_skips_empty_interim_chunks_and_stays_done() -> None:
    peer = Peer(req(b"", True), req(b"x", True), req(b"", False))
    channel = ASGIChannel(peer.receive, peer.send)
    assert [await channel.receive() for _ in range(3)] == [b"x", b"", b""]
    assert peer.inbox == []


async def test_disconnect_while_reading_raises_and_nothing_is_sent() -> None:
    seen: list[BaseException] = []

    async def seam_app(head: RequestHead, channel: Channel) -> None:
        try:
            await channel.receive()
            await channel.receive()
        except ClientDisconnect as exc:
            seen.append(exc)
            assert channel.disconnected
            raise

    peer = await run(ASGIAdapter(seam_app), scope("POST", "/"), req(b"a", True), {"type": "http.disconnect"})
    assert len(seen) == 1
    assert peer.sent == []


async def test_app_disconnect_mid_body_through_the_app(app: App) -> None:
    peer = await run(app, scope("POST", "/echo"), req(b"a", True), {"type": "http.disconnect"})
    assert peer.sent == []
    assert app.ctxs == {}


# -- exactly one response --------------------------------------------------------------------


async def test_app_returning_without_a_response_gets_500(caplog: pytest.LogCaptureFixture) -> None:
    async def silent(head: RequestHead, channel: Channel) -> None:
        return None

    with caplog.at_level(logging.ERROR, "hump_listener.error"):
        peer = await run(ASGIAdapter(silent), scope())
    assert (peer.status, peer.body) == (500, b"Internal Server Error")
    assert peer.header(b"content-length") == b"21"
    assert "without a response" in caplog.text


async def test_exception_before_responding_is_a_logged_500(caplog: pytest.LogCaptureFixture) -> None:
    async def broken(head: RequestHead, channel: Channel) -> None:
        channel.respond(200, [(b"content-length", b"2")], b"ok")
        raise RuntimeError("after respond, before it was sent")

    with caplog.at_level(logging.ERROR, "hump_listener.error"):
        peer = await run(ASGIAdapter(broken), scope())
    assert peer.status == 500
    assert peer.types == ["http.response.start", "http.response.body"]
    assert "after respond" in caplog.text


async def test_handler_exception_is_the_apps_500(app: App, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        peer = await run(app, scope("GET", "/boom"))
    assert peer.status == 500
    assert "boom" in caplog.text


async def test_exception_after_start_propagates_so_the_server_closes() -> None:
    async def half(head: RequestHead, channel: Channel) -> None:
        await channel.start(200, [])
        await channel.write(b"partial")
        raise RuntimeError("mid-response")

    peer = Peer(req(b""))
    with pytest.raises(RuntimeError, match="mid-response"):
        await ASGIAdapter(half)(scope(), peer.receive, peer.send)
    assert peer.types == ["http.response.start", "http.response.body"]
    assert peer.sent[-1]["more_body"] is True


async def test_second_response_is_refused() -> None:
    errors: list[Exception] = []

    async def twice(head: RequestHead, channel: Channel) -> None:
        channel.respond(204, [], b"")
        try:
            await channel.start(200, [])
        except RuntimeError as exc:
            errors.append(exc)

    peer = await run(ASGIAdapter(twice), scope())
    assert len(errors) == 1
    assert peer.status == 204 and len(peer.sent) == 2


async def test_started_response_left_open_is_ended() -> None:
    async def open_ended(head: RequestHead, channel: Channel) -> None:
        await channel.start(200, [])
        await channel.write(b"x")

    peer = await run(ASGIAdapter(open_ended), scope())
    assert [m.get("more_body") for m in peer.sent[1:]] == [True, False]


async def test_send_failure_is_a_client_disconnect() -> None:
    seen: list[bool] = []

    async def streamer(head: RequestHead, channel: Channel) -> None:
        try:
            await channel.start(200, [])
        except ClientDisconnect:
            seen.append(channel.disconnected)
            raise

    peer = Peer(req(b""), send_error=ConnectionResetError())
    await ASGIAdapter(streamer)(scope(), peer.receive, peer.send)
    assert seen == [True]


class Listening(Peer):
    """A server whose ``receive`` waits, once its messages are read, until the test says
    the client left (``leave``), as uvicorn's does; ``drained`` is set when it waits."""

    def __init__(self, *messages: Message) -> None:
        super().__init__(*messages)
        self.drained = asyncio.Event()
        self.left = asyncio.Event()

    async def receive(self) -> Message:
        if self.inbox:
            return self.inbox.pop(0)
        self.drained.set()
        await self.left.wait()
        return {"type": "http.disconnect"}

    def leave(self) -> None:
        self.left.set()


async def test_a_stream_waiting_on_its_generator_ends_at_http_disconnect() -> None:
    """Issue 18 item 6, in process: the adapter listens for ``http.disconnect`` while the
    response streams and the generator, waiting for an item that never comes, is closed."""
    app = App(access_log=False)
    finished: list[str] = []

    @app.get("/feed")
    async def feed(ctx: HTTPContext) -> StreamingResponse:
        async def items() -> AsyncIterator[str]:
            try:
                yield "first"
                await asyncio.Event().wait()
            finally:
                finished.append("finally")

        return StreamingResponse(items())

    peer = Listening(req(b""))
    served = asyncio.ensure_future(app(scope("GET", "/feed"), peer.receive, peer.send))
    await peer.drained.wait()
    assert finished == [] and not served.done()
    peer.leave()
    await served
    assert finished == ["finally"]
    assert peer.types == ["http.response.start", "http.response.body"]  # no end for nobody


async def test_body_chunks_read_while_listening_are_kept_for_the_app() -> None:
    """The listener and the app share one reader: chunks it reads first reach the app."""
    app = App(access_log=False)

    @app.post("/late")
    async def late(ctx: HTTPContext) -> StreamingResponse:
        async def echo() -> AsyncIterator[bytes]:
            yield b"started;"
            await peer.drained.wait()  # the listener has read the whole body by now
            async for chunk in ctx.stream():
                yield chunk
            yield b";done"

        return StreamingResponse(echo())

    peer = Listening(req(b"ab", True), req(b"", True), req(b"cd", True), req(b"e"))
    await app(scope("POST", "/late"), peer.receive, peer.send)
    body = b"".join(m.get("body", b"") for m in peer.sent[1:])
    assert body == b"started;abcde;done"
    assert peer.sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}


# -- streamed responses and files ------------------------------------------------------------


async def test_streaming_response_uses_more_body(app: App) -> None:
    peer = await run(app, scope("GET", "/count"))
    assert peer.status == 200 and peer.header(b"content-length") is None
    assert [(m["body"], m["more_body"]) for m in peer.sent[1:]] == [
        (b"0\n", True),
        (b"1\n", True),
        (b"2\n", True),
        (b"", False),
    ]


@pytest.fixture
def data_file() -> Iterator[tuple[str, bytes]]:
    data = bytes(range(256)) * ((SENDFILE_CHUNK * 2 + 1000) // 256)
    with tempfile.NamedTemporaryFile(delete=False) as f:
        f.write(data)
    try:
        yield f.name, data
    finally:
        os.unlink(f.name)


async def test_sendfile_reads_in_chunks_without_the_extension(data_file: tuple[str, bytes]) -> None:
    path, data = data_file
    app = App(access_log=False)

    @app.on_event("GET:/f")
    async def f(ctx: HTTPContext) -> FileResponse:
        return FileResponse(path)

    peer = await run(app, scope("GET", "/f"))
    assert peer.status == 200 and peer.header(b"content-length") == str(len(data)).encode()
    assert peer.body == data
    bodies = [m for m in peer.sent if m["type"] == "http.response.body"]
    assert max(len(m["body"]) for m in bodies) == SENDFILE_CHUNK
    assert bodies[-1] == {"type": "http.response.body", "body": b"", "more_body": False}


async def test_sendfile_range_without_the_extension(data_file: tuple[str, bytes]) -> None:
    path, data = data_file

    async def ranged(head: RequestHead, channel: Channel) -> None:
        await channel.start(206, [])
        with open(path, "rb") as file:
            await channel.sendfile(file, 100, 5000)
        await channel.end()

    assert (await run(ASGIAdapter(ranged), scope())).body == data[100:5100]


async def test_sendfile_uses_zerocopysend_when_offered(data_file: tuple[str, bytes]) -> None:
    path, _ = data_file
    fds: list[int] = []

    async def ranged(head: RequestHead, channel: Channel) -> None:
        await channel.start(200, [])
        file: IO[bytes]
        with open(path, "rb") as file:
            fds.append(file.fileno())
            await channel.sendfile(file, 10, 20)
        await channel.end()

    sc = scope(extensions={"http.response.zerocopysend": {}})
    peer = await run(ASGIAdapter(ranged), sc)
    assert peer.sent[1] == {
        "type": "http.response.zerocopysend",
        "file": fds[0],
        "offset": 10,
        "count": 20,
        "more_body": True,
    }
    assert peer.sent[2]["more_body"] is False


# -- lifespan and other scopes ---------------------------------------------------------------


async def test_lifespan_runs_the_listener_callbacks(app: App) -> None:
    calls: list[str] = []

    @app.startup
    async def up() -> None:
        calls.append("up")

    @app.shutdown
    async def down() -> None:
        calls.append("down")

    peer = Peer({"type": "lifespan.startup"}, {"type": "lifespan.shutdown"})
    await app({"type": "lifespan", "asgi": {"version": "3.0"}}, peer.receive, peer.send)
    assert calls == ["up", "down"]
    assert peer.types == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


async def test_lifespan_startup_failure_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    class FailingLifespan:
        async def run_startup(self) -> None:
            raise ValueError("no database")

        async def run_shutdown(self) -> None:
            raise AssertionError("no shutdown after a failed startup")

    async def never(head: RequestHead, channel: Channel) -> None:
        raise AssertionError

    adapter = ASGIAdapter(never, lifespan=FailingLifespan())
    peer = Peer({"type": "lifespan.startup"})
    with caplog.at_level(logging.ERROR):
        await adapter({"type": "lifespan"}, peer.receive, peer.send)
    assert peer.sent == [{"type": "lifespan.startup.failed", "message": "ValueError: no database"}]


async def test_lifespan_of_a_plain_seam_app_has_nothing_to_run() -> None:
    async def never(head: RequestHead, channel: Channel) -> None:
        raise AssertionError

    peer = Peer({"type": "lifespan.startup"}, {"type": "lifespan.shutdown"})
    await ASGIAdapter(never)({"type": "lifespan"}, peer.receive, peer.send)
    assert peer.types == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


async def test_other_scopes_are_refused(app: App) -> None:
    peer = Peer()
    with pytest.raises(RuntimeError, match="webtransport"):
        await app({"type": "webtransport"}, peer.receive, peer.send)


# -- under a real uvicorn --------------------------------------------------------------------


class Uvicorn:
    """``uvicorn APP --fd N`` on a socket we bind and listen on first: no port race, and
    requests simply queue in the backlog until the server (or a worker) accepts them, so
    nothing waits for readiness. Output goes to a temp file, shown when a test fails."""

    def __init__(self, app: str, *args: str, env: dict[str, str] | None = None) -> None:
        pytest.importorskip("uvicorn")
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop())
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            sock.listen(128)
            self.port = int(sock.getsockname()[1])
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    app,
                    "--fd",
                    str(sock.fileno()),
                    "--app-dir",
                    str(TESTS if app.startswith("apps.") else ROOT),
                    "--http",
                    "h11",
                    "--lifespan",
                    "on",
                    "--no-access-log",
                    *args,
                ],
                cwd=ROOT,
                stdout=self.log,
                stderr=subprocess.STDOUT,
                pass_fds=[sock.fileno()],
                env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
            )

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self) -> None:
        """Stop the server; its output is printed, which pytest shows for failed tests."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        print(self.output())
        self.log.close()


def http(
    port: int,
    method: str,
    target: str,
    body: bytes | Iterable[bytes] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection; an iterable body is sent chunked."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        chunked = body is not None and not isinstance(body, bytes)
        conn.request(method, target, body=body, headers=headers or {}, encode_chunked=chunked)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


@pytest.fixture(scope="module")
def demo() -> Iterator[int]:
    server = Uvicorn("http_web:app")
    try:
        yield server.port
    finally:
        server.stop()


def check_demo_routes(port: int) -> None:
    """The demo's HTTP route contract, as any server that runs ``http_web:app`` must keep
    it (uvicorn here, granian in tests/test_granian.py)."""
    status, headers, body = http(port, "GET", "/")
    assert (status, body) == (200, b"Hello, world!")
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert http(port, "GET", "/user/bob?x=1")[2] == b"Hello, bob!"
    status, headers, body = http(port, "GET", "/api/users/42")
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(body)["id"] == 42
    assert http(port, "GET", "/api/users/abc")[0] == 404
    assert json.loads(http(port, "GET", "/search?q=a&q=b&n=3")[2]) == {"q": ["a", "b"], "n": "3"}
    status, headers, body = http(port, "POST", "/echo", b"ping", {"Content-Type": "text/x-ping"})
    assert (status, body) == (200, b"ping") and headers["content-type"].startswith("text/x-ping")
    assert http(port, "GET", "/throw")[0] == 500
    assert http(port, "GET", "/teapot")[0] == 418
    status, headers, _ = http(port, "DELETE", "/")
    assert status == 405 and "GET" in headers["allow"]


def test_demo_route_contract_under_uvicorn(demo: int) -> None:
    check_demo_routes(demo)
    status, headers, body = http(demo, "GET", "/page")
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    assert body.startswith(b"<!doctype html>")
    status, headers, body = http(demo, "HEAD", "/")
    assert (status, body, headers["content-length"]) == (200, b"", "13")


def test_chunked_request_body_under_uvicorn(demo: int) -> None:
    parts = [b"a" * 10, b"b" * 70000, b"c"]
    status, _, body = http(
        demo, "POST", "/echo", iter(parts), {"Transfer-Encoding": "chunked", "Content-Type": "application/x-parts"}
    )
    assert (status, body) == (200, b"".join(parts))


@pytest.fixture(scope="module")
def stream_app() -> Iterator[tuple[int, bytes]]:
    data = os.urandom(300_000)
    with tempfile.NamedTemporaryFile(delete=False) as f:
        f.write(data)
    server = Uvicorn("apps.asgi_stream_app:app", env={"ASGI_TEST_FILE": f.name})
    try:
        yield server.port, data
    finally:
        server.stop()
        os.unlink(f.name)


def read_until(sock: socket.socket, buf: bytearray, marker: bytes) -> bytes:
    while marker not in buf:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before {marker!r}; got {bytes(buf)!r}"
        buf += chunk
    head, _, rest = bytes(buf).partition(marker)
    buf[:] = rest
    return head


def test_full_duplex_streaming_under_uvicorn(stream_app: tuple[int, bytes]) -> None:
    """Each body chunk is echoed before the next one is sent: both directions stream."""
    port, _ = stream_app
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /duplex HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        buf = bytearray()
        sock.sendall(b"3\r\none\r\n")
        head = read_until(sock, buf, b"\r\n\r\n").lower()
        assert head.startswith(b"http/1.1 200") and b"transfer-encoding: chunked" in head
        assert read_until(sock, buf, b"echo:one\n") == b"9\r\n"  # chunk-size line only
        sock.sendall(b"3\r\ntwo\r\n")
        assert read_until(sock, buf, b"echo:two\n").endswith(b"9\r\n")
        sock.sendall(b"0\r\n\r\n")
        assert read_until(sock, buf, b"done\n").endswith(b"5\r\n")
        read_until(sock, buf, b"0\r\n\r\n")


def test_streamed_response_file_and_lifespan_under_uvicorn(stream_app: tuple[int, bytes]) -> None:
    port, data = stream_app
    status, headers, body = http(port, "GET", "/count/1000")
    assert status == 200 and headers.get("transfer-encoding") == "chunked"
    assert body == "".join(f"{i}\n" for i in range(1000)).encode()
    status, headers, body = http(port, "GET", "/file")
    assert status == 200 and headers["content-length"] == str(len(data))
    assert body == data
    state = json.loads(http(port, "GET", "/lifespan")[2])
    assert (state["started"], state["stopped"]) == (1, 0)


@pytest.mark.parametrize("http_impl", ["h11", "httptools"])
def test_a_client_that_leaves_ends_the_stream_under_uvicorn(http_impl: str) -> None:
    """Issue 18 item 6: ``timeout 2.5 curl -sN /clock`` left the generator ticking under
    uvicorn (which drops a gone client's sends silently). The adapter listens for
    ``http.disconnect`` while the response streams, and ends the generator."""
    pytest.importorskip(http_impl)
    server = Uvicorn("apps.asgi_stream_app:app", "--http", http_impl, env={"ASGI_TEST_FILE": "-"})
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"GET /endless HTTP/1.1\r\nHost: t\r\n\r\n")
            buf = bytearray()
            read_until(sock, buf, b"tick\n")
        # The client has gone: the generator's finally has run (or runs within 5 s).
        assert http(server.port, "GET", "/endless/ended")[2] == b"ended", server.output()
    finally:
        server.stop()


def test_uvicorn_workers_serve_the_app() -> None:
    """``uvicorn MODULE:app --workers 2``: the module-level ``app`` imports in each
    worker process, and lifespan startup runs there."""
    server = Uvicorn("apps.asgi_stream_app:app", "--workers", "2", env={"ASGI_TEST_FILE": "-"})
    try:
        status, _, body = http(server.port, "GET", "/lifespan")
        state = json.loads(body)
        assert status == 200 and state["started"] == 1
        assert state["pid"] != server.proc.pid  # answered by a worker, not the supervisor
    finally:
        server.stop()
