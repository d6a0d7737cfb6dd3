"""What a hostile or vanishing client can do to the server (issue 10), on real sockets.

Each attack is the issue's reproduction, bounded; each test failed on the code before the
fixes. Two kinds of server: the demo as users run it (``tiny-listener`` in a subprocess,
``tests/apps/demo_limits.py`` with small limits, so a leak shows after a few hundred
connections and its log can be read for tracebacks), and an in-process ``Server`` with a
tiny seam app where the test needs a handler the demo does not have.

Only the public protocol API (``Server``, ``ServerConfig``, the seam) is used here. Where
the other side is another process or the kernel there is no event to wait on, so
``until()`` polls the condition once per loop turn, with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import re
import socket
import struct
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from process_helpers import Launched, launch, open_files, tiny_listener, until

from hump_listener.config import ServerConfig
from hump_listener.protocol import Server
from hump_listener.seam import Channel, ClientDisconnect, RequestHead, SeamApp

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts open files in /proc"),
]

#: Small limits for the demo, so that a leak shows within a few hundred connections.
DEMO_OPTIONS = {"max_connections": 64, "linger_timeout": 1.0, "keep_alive_timeout": 2.0}
BIG_FILE = 8 * 1024 * 1024

GET_200K = b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 200000\r\n\r\n"
POST_10G = b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10737418240\r\n\r\n"
REQUEST = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"




def get_status(port: int, path: str = "/") -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def reset(sock: socket.socket) -> None:
    """Close with a reset (SO_LINGER 0), as a client that aborts does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


# ---------------------------------------------------------------------------------------
# The demo in a subprocess


@dataclass
class Demo:
    proc: Launched
    port: int
    baseline: int  # open files of the idle server

    @property
    def pid(self) -> int:
        return self.proc.proc.pid

    def open_files(self) -> int:
        return open_files(self.pid)

    def log_since(self, start: int) -> str:
        return "".join(self.proc.lines[start:])


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    static = tmp_path_factory.mktemp("static")
    (static / "big.bin").write_bytes(os.urandom(BIG_FILE))
    env = {
        "HUMP_TEST_SERVER_OPTIONS": json.dumps(DEMO_OPTIONS),
        "HUMP_TEST_STATIC_DIR": str(static),
        "HUMP_ACCESS_LOG": "0",
    }
    with launch(tiny_listener("apps.demo_limits:app"), env=env) as proc:
        port = proc.serving_port()
        yield Demo(proc, port, open_files(proc.proc.pid))


def send_and_close(port: int, data: bytes, times: int) -> None:
    """The attack: connect, send, close without reading (blocking: run in a thread)."""
    for _ in range(times):
        # OSError: the server may have answered and closed already.
        with socket.create_connection(("127.0.0.1", port)) as sock, contextlib.suppress(OSError):
            sock.sendall(data)


async def back_to_baseline(demo: Demo) -> None:
    assert await until(lambda: demo.open_files() <= demo.baseline), (
        f"{demo.open_files()} open files, {demo.baseline} when idle"
    )
    assert await asyncio.to_thread(get_status, demo.port) == 200


# -- 1. a connection whose client left is released, whatever its state -------------------


@pytest.mark.parametrize(
    ("head", "times"), [(GET_200K, 400), (POST_10G, 300)], ids=["GET-200k-unread", "POST-10GiB-413"]
)
async def test_unread_bodies_then_close_leak_no_connection(demo: Demo, head: bytes, times: int) -> None:
    start = len(demo.proc.lines)
    await asyncio.to_thread(send_and_close, demo.port, head + b"x" * 200_000, times)
    await back_to_baseline(demo)
    assert "Traceback" not in demo.log_since(start)


# -- 2. a client that left is never an error ----------------------------------------------


def sendfile_then_abort(port: int) -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        sock.sendall(b"GET /big/big.bin HTTP/1.1\r\nHost: a\r\n\r\n")
        sock.recv(1000)  # the response has started: the server is in sendfile
        reset(sock)


def sse_then_close(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /clock HTTP/1.1\r\nHost: a\r\n\r\n")
        sock.recv(1000)


async def test_clients_that_leave_log_no_error(demo: Demo) -> None:
    start = len(demo.proc.lines)
    for data in (b"\x01\r\n\r\n", b"GE\x0c\x7fT / HTTP/1.0\r\n\r\n", POST_10G + b"x" * 1000):
        await asyncio.to_thread(send_and_close, demo.port, data, 50)
    for _ in range(20):
        await asyncio.to_thread(sendfile_then_abort, demo.port)
    for _ in range(5):
        await asyncio.to_thread(sse_then_close, demo.port)
    await back_to_baseline(demo)  # the SSE handlers noticed (their next tick failed)
    log = demo.log_since(start)
    assert "Traceback" not in log and "ERROR" not in log, log[-3000:]


# -- 7. every line the server prints goes through our loggers -----------------------------

#: The demo's log format (``hump_listener.logs.FORMAT``).
OUR_LINE = re.compile(r"(DEBUG|INFO|WARNING|ERROR|CRITICAL) +\S")


def unformatted(log: str) -> list[str]:
    return [line for line in log.splitlines() if not OUR_LINE.match(line)]


async def test_malformed_multipart_prints_nothing_of_its_own(demo: Demo) -> None:
    start = len(demo.proc.lines)
    head = b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Type: multipart/form-data; boundary=abc\r\n"
    for body in (b"xxgg", b"--abc\r\nContent-Disposition: form-data\r\n\r\nx\r\n--abX", b"--a\x00"):
        data = head + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body
        got = await asyncio.to_thread(exchange, demo.port, data)
        assert isinstance(got, bytes) and got.startswith(b"HTTP/1.1 400")
    assert get_status(demo.port) == 200  # a request after them: their lines are written
    assert unformatted(demo.log_since(start)) == []


# ---------------------------------------------------------------------------------------
# In-process servers with tiny seam apps


@contextlib.asynccontextmanager
async def serve(app: SeamApp, **options: Any) -> AsyncIterator[Server]:
    server = Server(app, ServerConfig(host="127.0.0.1", port=0, **options))
    await server.start()
    try:
        yield server
    finally:
        await server.shutdown(timeout=2.0)


def connections(server: Server) -> int:
    assert server.state is not None
    return len(server.state.connections)


async def hello(head: RequestHead, channel: Channel) -> None:
    channel.respond(200, [(b"content-type", b"text/plain"), (b"content-length", b"5")], b"hello")


async def echo(head: RequestHead, channel: Channel) -> None:
    chunks = []
    while chunk := await channel.receive():
        chunks.append(chunk)
    body = b"".join(chunks)
    channel.respond(200, [(b"content-length", b"%d" % len(body))], body)


class Stuck:
    """A handler that neither reads its body nor writes until released."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = 0
        self.saw_disconnect: list[bool] = []

    async def __call__(self, head: RequestHead, channel: Channel) -> None:
        self.started += 1
        await self.release.wait()
        self.saw_disconnect.append(channel.disconnected)
        await hello(head, channel)


@pytest.mark.parametrize(
    ("data", "close"),
    [
        (POST_10G + b"x" * 200_000, "close"),  # reading paused above the body high-water mark
        (POST_10G + b"x" * 200_000, "reset"),
        (GET_200K + b"x" * 200_000, "reset"),
        (REQUEST * 2000, "reset"),  # reading paused on pipelined requests
    ],
    ids=["body-close", "body-reset", "whole-body-reset", "pipelined-reset"],
)
async def test_client_leaving_a_paused_connection_is_released(data: bytes, close: str) -> None:
    """Released within a second or so, while the handler still runs. (A client that sent a
    whole request and then closed is a half-close: it is still answered, as it would be
    with reading not paused.)"""
    stuck = Stuck()
    async with serve(stuck) as server:
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(data)
        assert await until(lambda: stuck.started == 1)
        reset(sock) if close == "reset" else sock.close()
        assert server.state is not None
        assert await server.state.wait_connections_closed(10.0), "the connection was never released"
        stuck.release.set()
        assert await until(lambda: bool(stuck.saw_disconnect))
        assert stuck.saw_disconnect == [True]


# -- 3. slow readers are bounded ------------------------------------------------------------


@pytest.mark.parametrize("how", ["sendfile", "respond", "write"])
async def test_a_client_that_reads_nothing_is_closed_after_send_timeout(
    tmp_path: Path, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    size = 32 * 1024 * 1024  # more than loopback's socket buffers hold
    path = tmp_path / "big.bin"
    path.write_bytes(bytes(size))
    files: list[Any] = []
    outcome: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()

    async def app(head: RequestHead, channel: Channel) -> None:
        with open(path, "rb") as file:
            files.append(file)
            try:
                if how == "respond":  # returns at once: the transport holds the rest
                    channel.respond(200, [(b"content-length", b"%d" % size)], file.read())
                    outcome.set_result(None)
                    return
                await channel.start(200, [(b"content-length", b"%d" % size)])
                if how == "sendfile":
                    await channel.sendfile(file, 0, size)
                else:
                    while data := file.read(1024 * 1024):
                        await channel.write(data)
                await channel.end()
            except ClientDisconnect as exc:
                outcome.set_result(exc)
                return
            outcome.set_result(None)

    async with serve(app, send_timeout=0.5) as server:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", server.port))
            sock.sendall(REQUEST)  # and read nothing
            assert server.state is not None
            assert await until(lambda: connections(server) == 1)
            assert await server.state.wait_connections_closed(20.0), "the slow reader was never closed"
            result = await asyncio.wait_for(outcome, 10.0)
    if how != "respond":
        assert isinstance(result, ClientDisconnect)
    assert files and files[0].closed
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")], caplog.text


# -- 4. a graceful close whenever request bytes are unread -----------------------------------


async def read_response_head(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    await reader.readexactly(5)  # hello's body
    return head


async def read_to_end(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes | str:
    """What the client reads before the server's close, or ``"reset"``."""
    try:
        return await reader.read()
    except ConnectionResetError:
        return "reset"
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def test_shutdown_with_requests_already_sent_never_resets() -> None:
    server = Server(hello, ServerConfig(host="127.0.0.1", port=0, linger_timeout=2.0))
    await server.start()
    clients = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(30)]
    for reader, writer in clients:  # one request each: the connections are kept alive, idle
        writer.write(REQUEST)
        assert (await read_response_head(reader)).startswith(b"HTTP/1.1 200")
    for _, writer in clients:
        writer.write(REQUEST)  # in the server's socket buffer, not read yet
    # gather starts the shutdown first: it finds every connection idle with a request unread.
    _, *results = await asyncio.gather(server.shutdown(timeout=5.0), *(read_to_end(r, w) for r, w in clients))
    assert "reset" not in results
    for data in results:  # a complete response, or a clean close
        assert isinstance(data, bytes) and (data == b"" or data.startswith(b"HTTP/1.1 200"))


def exchange(port: int, data: bytes) -> bytes | str:
    """Send ``data``, read until the server closes: what was read, or ``"reset"``. Blocking
    (run in a thread), so the client really races the server as a remote one does."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        got = bytearray()
        try:
            sock.sendall(data)
            while chunk := sock.recv(65536):
                got += chunk
        except (ConnectionResetError, BrokenPipeError):
            return "reset"
        return bytes(got)


async def test_beyond_max_connections_the_503_is_read_not_reset() -> None:
    async with serve(hello, max_connections=2, linger_timeout=2.0) as server:
        held = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(2)]
        for reader, writer in held:
            writer.write(REQUEST)
            await read_response_head(reader)
        post = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 65536\r\n\r\n" + bytes(65536)
        results = [await asyncio.to_thread(exchange, server.port, data) for data in [REQUEST, post] * 25]
        for _, writer in held:
            writer.close()
    assert "reset" not in results
    assert all(isinstance(data, bytes) and data.startswith(b"HTTP/1.1 503") for data in results)


@pytest.mark.parametrize(
    "first",
    [
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.0\r\n\r\n",
    ],
    ids=["connection-close", "http-1.0"],
)
async def test_pipelined_requests_behind_a_close_type_response_do_not_reset_it(first: bytes) -> None:
    async with serve(hello) as server:
        # More than one socket read (256 KiB): some requests are still in the kernel's buffer.
        data = first + REQUEST * 20_000
        results = [await asyncio.to_thread(exchange, server.port, data) for _ in range(10)]
    assert "reset" not in results
    for got in results:
        assert isinstance(got, bytes) and got.startswith(b"HTTP/1.1 200") and got.endswith(b"hello")
        assert got.count(b"HTTP/1.1") == 1


# -- 5. chunked framing never keeps a client waiting -----------------------------------------

CHUNKED = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"5\nhello\n0\n\n", 400),  # bare LF everywhere (the case)
        (b"5\r\nhello\r\n0\n\n", 400),  # bare LF after the last chunk's size
        (b"5\nhello", 400),  # bare LF after a size, nothing more
        (b"5;ext=1\nhello\r\n0\r\n\r\n", 400),  # bare LF after an extension
        (b"5\rhello\r0\r\r", 400),  # bare CR
        (b"5\r\nhello\n0\r\n\r\n", 400),  # bare LF after chunk data
        (b"5\r\nhello\r\n0;" + b"e" * 40_000, 431),  # an endless chunk-size line
        (b"5\r\nhello\r\n0\r\n" + b"X-T: 1\r\n" * 5000, 431),  # endless trailers
        (b"5;a=b\r\nhello\r\n0\r\n\r\n", 200),  # an extension: ignored
        (b"5\r\nhello\r\n0\r\nX-T: 1\n\n", 200),  # trailer fields may end with a bare LF
        (b"5\r\nhello\r\n0\r\n\n", 200),
    ],
    ids=[
        "bare-LF", "bare-LF-last-chunk", "bare-LF-size", "bare-LF-ext", "bare-CR", "bare-LF-data",
        "long-size-line", "long-trailers", "extension", "bare-LF-trailer", "bare-LF-trailer-end",
    ],
)
async def test_chunked_framing_never_keeps_the_client_waiting(body: bytes, status: int) -> None:
    async with serve(echo) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(CHUNKED + body)
        async with asyncio.timeout(2.0):  # the body timeout (10 s) would be a hang here
            data = await read_to_end(reader, writer)
    assert isinstance(data, bytes) and data.startswith(b"HTTP/1.1 %d" % status), data[:100]
    if status == 200:
        assert data.endswith(b"hello")


async def test_a_body_that_stalls_after_a_fast_start_is_answered_408() -> None:
    """Found by the fuzz (seed 20240610, case 15869): 70 000 body bytes at once, one short
    of the Content-Length, then nothing; the body rate's allowance (~290 s) kept it waiting."""
    async with serve(echo, body_timeout=1.0) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 70001\r\n\r\n" + bytes(70_000))
        async with asyncio.timeout(5.0):
            data = await read_to_end(reader, writer)
    assert isinstance(data, bytes) and data.startswith(b"HTTP/1.1 408")


async def test_shutdown_does_not_wait_for_lingering_503s() -> None:
    server = Server(hello, ServerConfig(host="127.0.0.1", port=0, max_connections=1, linger_timeout=30.0))
    await server.start()
    assert server.state is not None
    held = await asyncio.open_connection("127.0.0.1", server.port)
    held[1].write(REQUEST)
    await read_response_head(held[0])
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)  # 503, lingers
    assert (await reader.readuntil(b"\r\n")).startswith(b"HTTP/1.1 503")
    assert await until(lambda: len(server.state.rejected) == 1)  # type: ignore[union-attr]
    async with asyncio.timeout(10.0):  # not the 30 s linger
        await server.shutdown(timeout=1.0)
    assert await until(lambda: not server.state.rejected)  # type: ignore[union-attr]
    for w in (held[1], writer):
        w.close()
