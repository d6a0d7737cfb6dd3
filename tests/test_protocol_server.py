"""Real sockets on 127.0.0.1, port 0: serving, capacity, sendfile, graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import tempfile

import pytest
from protocol_helpers import Conn, echo_body, echo_target, exchange, hello, parse_responses, request, serve, settle

from hump_listener.config import ServerConfig
from hump_listener.protocol import Server
from hump_listener.seam import Channel, RequestHead

pytestmark = pytest.mark.timeout(60)

CLOSE = b"Host: x\r\nConnection: close\r\n"


async def test_serves_on_port_zero() -> None:
    async with serve(hello) as server:
        assert server.port > 0 and server.sockets
        data = await exchange(server.port, request(headers=CLOSE))
    assert parse_responses(data)[0].body == b"hello"


async def test_serves_on_an_already_bound_socket() -> None:
    sock = socket.create_server(("127.0.0.1", 0))
    server = Server(echo_target, ServerConfig())
    await server.start(sock=sock)
    try:
        assert server.port == sock.getsockname()[1]
        data = await exchange(server.port, request(b"/sock", headers=CLOSE))
        assert parse_responses(data)[0].body == b"/sock"
    finally:
        await server.shutdown(timeout=1.0)
    assert server.sockets == ()


async def test_half_close_over_a_real_socket() -> None:
    async with serve(echo_body) as server:
        body = request(method=b"POST", headers=b"Host: x\r\nContent-Length: 3\r\n", body=b"abc")
        data = await exchange(server.port, body, half_close=True)
    assert parse_responses(data, ["POST"])[0].body == b"abc"


async def test_idle_connection_closed_by_server() -> None:
    async with serve(hello, first_byte_timeout=0.05) as server:
        async with asyncio.timeout(5):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            assert await reader.read() == b""  # the server closed it, quietly
            writer.close()


async def test_stalled_body_gets_408_over_a_real_socket() -> None:
    async with serve(echo_body, body_timeout=0.05, body_min_rate=0) as server:
        data = await exchange(server.port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
    assert parse_responses(data)[0].status == 408


async def test_connection_limit_answers_503() -> None:
    async with serve(hello, max_connections=3) as server:
        held = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(3)]
        try:
            async with asyncio.timeout(5):
                while len(server.state.connections) < 3:  # type: ignore[union-attr]
                    await asyncio.sleep(0)
            data = await exchange(server.port, request(headers=CLOSE))
            assert parse_responses(data)[0].status == 503
        finally:
            for _, writer in held:
                writer.close()


async def test_2000_idle_connections_do_not_block_a_new_request() -> None:
    async with serve(hello) as server:
        held = []
        try:
            for _ in range(2000):
                held.append(await asyncio.open_connection("127.0.0.1", server.port))
            async with asyncio.timeout(10):
                while len(server.state.connections) < 2000:  # type: ignore[union-attr]
                    await asyncio.sleep(0)
            data = await exchange(server.port, request(headers=CLOSE))
            assert parse_responses(data)[0].status == 200
        finally:
            for _, writer in held:
                writer.close()


async def test_500_keep_alive_clients_times_20_requests() -> None:
    async def client(port: int, n: int) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        ok = 0
        try:
            for i in range(20):
                writer.write(request(b"/%d/%d" % (n, i)))
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                body = await reader.readexactly(length)
                ok += head.startswith(b"HTTP/1.1 200 OK") and body == b"/%d/%d" % (n, i)
        finally:
            writer.close()
        return ok

    async with serve(echo_target) as server:
        async with asyncio.timeout(50):
            results = await asyncio.gather(*(client(server.port, n) for n in range(500)))
    assert sum(results) == 500 * 20


async def test_large_response_with_backpressure() -> None:
    chunk = b"x" * 65536

    async def app(head: RequestHead, channel: Channel) -> None:
        await channel.start(200, [(b"content-length", b"%d" % (len(chunk) * 200))])
        for _ in range(200):
            await channel.write(chunk)
        await channel.end()

    async with serve(app) as server:
        async with asyncio.timeout(20):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(request())
            head = await reader.readuntil(b"\r\n\r\n")
            # the client reads slowly at first: the server must wait for drains, not buffer 13 MB
            for protocol in server.state.connections:  # type: ignore[union-attr]
                assert protocol.transport.get_write_buffer_size() <= 2 * 64 * 1024 + len(chunk)
            body = await reader.readexactly(len(chunk) * 200)
            writer.close()
    assert head.startswith(b"HTTP/1.1 200") and body == chunk * 200


@pytest.mark.parametrize("length", [True, False])
async def test_sendfile_zero_copy(length: bool) -> None:
    content = bytes(range(256)) * 4096  # 1 MiB
    with tempfile.TemporaryFile() as file:
        file.write(content)
        file.flush()

        async def app(head: RequestHead, channel: Channel) -> None:
            headers = [(b"content-length", b"%d" % (len(content) - 100))] if length else []
            await channel.start(200, headers)
            await channel.sendfile(file, 100, len(content) - 100)
            await channel.end()

        async with serve(app) as server:
            data = await exchange(server.port, request(headers=CLOSE) + b"")
    [resp] = parse_responses(data)
    assert resp.body == content[100:]
    assert (resp.header(b"transfer-encoding") is None) is length


async def test_shutdown_drains_in_flight_and_closes_idle() -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def app(head: RequestHead, channel: Channel) -> None:
        if head.target == b"/slow":
            started.set()
            await release.wait()
        await hello(head, channel)

    server = Server(app, ServerConfig(port=0))
    await server.start()
    port = server.port
    async with asyncio.timeout(10):
        idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", port)
        busy_reader, busy_writer = await asyncio.open_connection("127.0.0.1", port)
        busy_writer.write(request(b"/slow"))
        await started.wait()
        shutdown = asyncio.ensure_future(server.shutdown(timeout=10))
        assert await idle_reader.read() == b""  # idle: closed at once
        with pytest.raises(ConnectionRefusedError):  # no longer accepting
            await asyncio.open_connection("127.0.0.1", port)
        release.set()
        data = await busy_reader.read()  # the in-flight request finishes, then closes
        await shutdown
    [resp] = parse_responses(data)
    assert resp.status == 200 and resp.header(b"connection") == b"close"
    for writer in (idle_writer, busy_writer):
        writer.close()


async def test_shutdown_timeout_cancels_with_503() -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def app(head: RequestHead, channel: Channel) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    server = Server(app, ServerConfig(port=0))
    await server.start()
    async with asyncio.timeout(10):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(request())
        await started.wait()
        await server.shutdown(timeout=0.05)
        data = await reader.read()
    assert cancelled.is_set()
    assert parse_responses(data)[0].status == 503
    assert server.state is not None and not server.state.tasks and not server.state.connections
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


async def test_a_second_shutdown_call_cuts_the_first_drain_short() -> None:
    """A second signal calls ``shutdown(0)`` while the first drain (here 60 s) runs: the
    running drain must cancel what is left now, not wait out its own timeout."""
    started = asyncio.Event()

    async def app(head: RequestHead, channel: Channel) -> None:
        started.set()
        await asyncio.Event().wait()

    server = Server(app, ServerConfig(port=0))
    await server.start()
    async with asyncio.timeout(10):  # the first drain alone would take 60 s
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(request())
        await started.wait()
        first = asyncio.ensure_future(server.shutdown(timeout=60))
        await settle(lambda: server.state is not None and server.state.shutting_down)
        await server.shutdown(0)
        assert first.done()
        await first
        data = await reader.read()
    assert parse_responses(data)[0].status == 503
    assert server.state is not None and not server.state.tasks
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


async def test_a_request_task_cancelled_before_its_first_step_leaves_the_task_set() -> None:
    conn = Conn(hello)
    conn.send(request())
    cycle = conn.proto.cycle
    assert cycle is not None and cycle.task is not None and cycle.task in conn.state.tasks
    cycle.cancel_task()  # before the task ever ran: RequestCycle.run's finally never runs
    await conn.settle(lambda: not conn.state.tasks)
    assert cycle.task.cancelled()


async def test_shutdown_ends_an_endless_response_at_once(caplog: pytest.LogCaptureFixture) -> None:
    """Issue 18.7: an endless response (SSE) waits in ``channel.wait_closed()``; a drain
    of 60 s must not wait it out: ``wait_closed`` returns, the app ends its body cleanly
    (the last chunk, so an EventSource reconnects), and nothing is cancelled. The drain's
    line says that a second signal skips the wait."""
    streaming = asyncio.Event()
    ended = asyncio.Event()

    async def app(head: RequestHead, channel: Channel) -> None:
        await channel.start(200, [(b"content-type", b"text/event-stream")])
        await channel.write(b"data: hi\n\n")
        streaming.set()
        await channel.wait_closed()
        await channel.end()
        ended.set()

    server = Server(app, ServerConfig(port=0))
    await server.start()
    with caplog.at_level("INFO", logger="hump_listener.error"):
        async with asyncio.timeout(10):  # the drain alone would take 60 s
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(request())
            await streaming.wait()
            await server.shutdown(timeout=60)
            data = await reader.read()
    assert ended.is_set()
    [resp] = parse_responses(data)
    assert resp.status == 200 and resp.body == b"data: hi\n\n"
    assert data.endswith(b"0\r\n\r\n")  # ended cleanly: the last chunk
    messages = [r.getMessage() for r in caplog.records]
    assert any("a second signal skips the wait" in m for m in messages), messages
    assert not any("cancelling" in m for m in messages), messages
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()
