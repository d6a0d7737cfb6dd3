"""The demo app as a user runs it: ``tiny-listener http_web:app`` in a subprocess,
checked route by route with a real HTTP client, its WebSockets with the ``websockets``
client library; plus raw-socket pipelining and a graceful shutdown with chats open."""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Iterator

import httpx
import pytest
from servers import RunningServer, run_server
from websockets.exceptions import ConnectionClosed
from ws_helpers import recv, said, ws_connect


@pytest.fixture(scope="module")
def demo() -> Iterator[RunningServer]:
    with run_server("http_web:app") as server:
        yield server


@pytest.fixture
def client(demo: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=demo.url, timeout=10) as c:
        yield c


def test_index(client: httpx.Client) -> None:
    r = client.get("/")
    assert r.status_code == 200 and r.text == "Hello, world!"
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.headers["content-length"] == "13"
    assert r.headers["server"] and r.headers["date"]


def test_user_ignores_the_query_string(client: httpx.Client) -> None:
    assert client.get("/user/bob").text == "Hello, bob!"
    assert client.get("/user/bob?x=1").text == "Hello, bob!"
    assert client.get("/user/b%C3%B6b").text == "Hello, böb!"


def test_api_users(client: httpx.Client) -> None:
    r = client.get("/api/users/42")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json()["id"] == 42 and isinstance(r.json()["name"], str)
    assert client.get("/api/users/abc").status_code == 404


def test_search(client: httpx.Client) -> None:
    assert client.get("/search?q=a&q=b&n=3").json() == {"q": ["a", "b"], "n": "3"}


def test_echo(client: httpx.Client) -> None:
    r = client.post("/echo", content=b'{"a": 1}', headers={"Content-Type": "application/json"})
    assert (r.status_code, r.content, r.headers["content-type"]) == (200, b'{"a": 1}', "application/json")


def test_throw_teapot_page(client: httpx.Client) -> None:
    r = client.get("/throw")
    assert r.status_code == 500 and r.text == "Internal Server Error"
    r = client.get("/teapot")
    assert r.status_code == 418 and r.reason_phrase == "I'm a Teapot"
    r = client.get("/page")
    assert r.status_code == 200 and r.headers["content-type"] == "text/html; charset=utf-8"
    assert 'href="/user/bob"' in r.text


def test_405_head_and_404(client: httpx.Client) -> None:
    r = client.delete("/")
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"
    r = client.head("/")
    assert r.status_code == 200 and r.headers["content-length"] == "13" and r.content == b""
    assert client.get("/no/such/page").status_code == 404


def test_access_log_is_on_by_default(client: httpx.Client, demo: RunningServer) -> None:
    client.get("/user/logged")
    line = demo.wait_for_line(r'"GET /user/logged HTTP/1.1" 200 OK')
    assert "127.0.0.1:" in line


def recv_until(sock: socket.socket, marker: bytes, count: int) -> bytes:
    data = b""
    while data.count(marker) < count:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_two_pipelined_requests_in_one_packet_are_answered_in_order(demo: RunningServer) -> None:
    with socket.create_connection(("127.0.0.1", demo.port), timeout=10) as sock:
        sock.sendall(
            b"GET /user/first HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /user/second HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        data = recv_until(sock, b"HTTP/1.1 200 OK", 2)
        # both bodies arrive, in order
        assert data.count(b"HTTP/1.1 200 OK") == 2
        assert data.index(b"Hello, first!") < data.index(b"Hello, second!")


def test_server_survives_garbage(demo: RunningServer, client: httpx.Client) -> None:
    with socket.create_connection(("127.0.0.1", demo.port), timeout=10) as sock:
        sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n")
        data = sock.recv(65536)
        assert data == b"" or data.startswith(b"HTTP/1.1 400")
    assert client.get("/").status_code == 200


def read_response(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def test_declared_body_over_the_limit_is_413_before_reading_and_closes(demo: RunningServer) -> None:
    with socket.create_connection(("127.0.0.1", demo.port), timeout=10) as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        data = read_response(sock)  # no body was sent: the answer comes anyway, then close
    assert data.startswith(b"HTTP/1.1 413 Content Too Large\r\n") or data.startswith(
        b"HTTP/1.1 413 Request Entity Too Large\r\n"
    )
    assert b"100 Continue" not in data and b"connection: close" in data.lower()


def test_chunked_body_over_the_limit_is_413_mid_stream(demo: RunningServer) -> None:
    chunk = b"x" * 65536
    with socket.create_connection(("127.0.0.1", demo.port), timeout=10) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        # 17 x 64 KiB: just past the demo's 1 MiB limit; no Content-Length to refuse early,
        # so the handler finds out mid-stream. (Stop there, so the server has read all we
        # sent when it closes: unread bytes would turn its close into a reset.)
        for _ in range(17):
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        data = read_response(sock)
    assert data.startswith(b"HTTP/1.1 413 ")
    assert b"connection: close" in data.lower()


def test_signup_runs_its_event_in_the_background(client: httpx.Client) -> None:
    r = client.post("/signup", data={"name": "server-side ann"})
    assert r.status_code == 202 and r.json()["name"] == "server-side ann"
    # The event runs after the response: poll (each poll a round trip, bounded) until the
    # name is listed.
    for _ in range(100):
        names = client.get("/signups").json()
        if "server-side ann" in names:
            break
    assert names.count("server-side ann") == 1


# -- WebSockets, with the websockets client library ---------------------------------------


async def test_ws_echo_with_a_real_client(demo: RunningServer) -> None:
    async with ws_connect(demo.url, "/ws/echo") as ws:
        await ws.send("text ✓")
        assert await recv(ws) == "text ✓"
        await ws.send(b"\x00binary\xff")
        assert await recv(ws) == b"\x00binary\xff"
        big = bytes(range(256)) * 1000  # 256 kB: several reads and writes
        await ws.send(big)
        assert await recv(ws) == big
        # websockets offers permessage-deflate; the demo runs with it off (the default).
        assert ws.response is not None and "Sec-WebSocket-Extensions" not in ws.response.headers
    assert ws.close_code == 1000
    demo.wait_for_line(r'"GET /ws/echo HTTP/1.1" 101')


async def test_ws_chat_with_real_clients(demo: RunningServer) -> None:
    async with ws_connect(demo.url, "/ws/chat/real?name=a") as a, ws_connect(demo.url, "/ws/chat/real?name=b") as b, \
            ws_connect(demo.url, "/ws/chat/elsewhere") as other:
        await a.send("from a")
        assert await said(a) == ("a", "from a") and await said(b) == ("a", "from a")
        await b.send("from b")
        assert await said(b) == ("b", "from b") and await said(a) == ("b", "from b")
        await other.send("elsewhere")
        assert (await said(other))[1] == "elsewhere"  # its room's first message: nothing from "real"


async def test_ws_upgrade_to_an_http_route_is_answered_as_http(demo: RunningServer) -> None:
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus) as info:
        async with ws_connect(demo.url, "/user/bob"):
            pass
    assert info.value.response.status_code == 200  # the GET route answered; no hang


async def test_sigterm_closes_open_chats_1001_and_drains_at_once() -> None:
    """SIGTERM with chat connections open: each gets close 1001, its handler returns (its
    relay task, blocked on the subscription, is cancelled), so the drain ends without
    waiting out ``shutdown_timeout`` and nothing is cancelled; the process exits 0."""
    with run_server("http_web:app") as server:
        async with ws_connect(server.url, "/ws/chat/shutdown") as a, ws_connect(
            server.url, "/ws/chat/shutdown"
        ) as b, ws_connect(server.url, "/ws/echo") as echo:
            await a.send("before")
            assert (await said(a))[1] == "before" and (await said(b))[1] == "before"
            server.proc.send_signal(signal.SIGTERM)
            for ws in (a, b, echo):
                with pytest.raises(ConnectionClosed):
                    while True:  # what was queued (a presence frame), then the close
                        await recv(ws)
                assert ws.close_code == 1001, ws.close_reason
        assert await asyncio.to_thread(server.proc.wait, 30) == 0
        log = server.output()
    assert "Stopped accepting connections; 3 request(s) in flight" in log
    assert "cancelling" not in log, log  # neither requests nor background events were cut off
