"""responses.StreamingResponse, Server-Sent Events and file downloads:
HTTPContext.stream_response / sse / file. Disconnects are simulated on the in-memory
Channel; framing is checked through the TestClient (the real protocol)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from framework_helpers import MemoryChannel, call

from hump_listener import App, ClientDisconnect, HTTPContext
from hump_listener.responses import StreamingResponse, encode_sse, sse_stream
from hump_listener.testing import TestClient


class DisconnectAfter(MemoryChannel):
    """The client goes away after ``n`` writes."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.left = n

    async def write(self, data: bytes) -> None:
        if self.left == 0:
            self.disconnected = True
            raise ClientDisconnect()
        self.left -= 1
        await super().write(data)


class Tracker:
    def __init__(self) -> None:
        self.produced = 0
        self.closed = False

    async def numbers(self, n: int = 5) -> AsyncIterator[str]:
        try:
            for i in range(n):
                self.produced += 1
                yield f"{i}\n"
        finally:
            self.closed = True


def streaming_app(tracker: Tracker) -> App:
    app = App(access_log=False)

    @app.get("/numbers")
    async def numbers(ctx: HTTPContext) -> None:
        ctx.stream_response(tracker.numbers(), headers={"X-Kind": "numbers"})

    @app.get("/bytes")
    async def raw(ctx: HTTPContext) -> None:
        async def gen() -> AsyncIterator[bytes]:
            yield b"\x00\x01"
            yield b""  # empty chunks are skipped: an empty chunk would end a chunked body
            yield b"\x02"

        ctx.stream_response(gen(), content_type="application/octet-stream")

    @app.get("/broken")
    async def broken(ctx: HTTPContext) -> None:
        async def gen() -> AsyncIterator[str]:
            try:
                yield "first"
                raise RuntimeError("source failed")
            finally:
                tracker.closed = True

        ctx.stream_response(gen())

    return app


# -- streaming -------------------------------------------------------------------------------


def test_streamed_body_is_chunked() -> None:
    tracker = Tracker()
    with TestClient(streaming_app(tracker)) as client:
        r = client.get("/numbers")
        assert r.status_code == 200
        assert r.text == "0\n1\n2\n3\n4\n"
        assert r.headers["transfer-encoding"] == "chunked"
        assert "content-length" not in r.headers
        assert r.headers["content-type"] == "text/plain; charset=utf-8"
        assert r.headers["x-kind"] == "numbers"
        assert tracker.closed
        assert client.get("/bytes").content == b"\x00\x01\x02"


def test_head_does_not_iterate_but_closes() -> None:
    tracker = Tracker()
    with TestClient(streaming_app(tracker)) as client:
        r = client.head("/numbers")
        assert r.status_code == 200 and r.content == b""
    assert tracker.produced == 0


async def test_client_disconnect_stops_and_closes_the_iterator() -> None:
    tracker = Tracker()
    app = streaming_app(tracker)
    channel = DisconnectAfter(2)
    from framework_helpers import make_head

    await app.handle(make_head(target=b"/numbers"), channel)  # the app absorbs the disconnect
    assert channel.sent == b"0\n1\n"
    assert tracker.produced == 3  # the third item failed to send; nothing after it
    assert tracker.closed
    assert not channel.ended


@pytest.mark.parametrize("client_left", [True, False], ids=["client-left", "server-shutdown"])
async def test_an_endless_stream_ends_when_the_channel_closes(client_left: bool) -> None:
    """Issue 18 items 6-7: a generator waiting for its next item (SSE, a feed marked
    ``endless``) is ended when ``wait_closed()`` returns, not after its next failed write
    (which never comes)."""
    from framework_helpers import MemoryChannel, make_head

    app = App(access_log=False)
    waiting = asyncio.Event()
    finished: list[str] = []

    @app.get("/feed")
    async def feed(ctx: HTTPContext) -> StreamingResponse:
        async def items() -> AsyncIterator[str]:
            try:
                yield "first\n"
                waiting.set()
                await asyncio.Event().wait()  # no next item, ever
                yield "never\n"
            finally:
                finished.append("finally")

        return StreamingResponse(items(), endless=True)

    channel = MemoryChannel()
    served = asyncio.ensure_future(app.handle(make_head(target=b"/feed"), channel))
    await waiting.wait()
    assert not served.done() and finished == []
    channel.close(client_left)
    await served  # the app absorbs a client that left
    assert finished == ["finally"]
    assert channel.sent == b"first\n"
    assert channel.ended is not client_left  # a shutdown ends the body cleanly
    assert app.ctxs == {}


async def test_a_finite_stream_drains_at_shutdown() -> None:
    """A stream not marked endless may be a finite download: a clean early end would
    truncate it silently, so at shutdown it goes on (within the drain) to its own end."""
    from framework_helpers import MemoryChannel, make_head

    app = App(access_log=False)
    channel = MemoryChannel()
    written = asyncio.Event()

    @app.get("/download")
    async def download(ctx: HTTPContext) -> None:
        async def parts() -> AsyncIterator[str]:
            yield "part 1\n"
            written.set()  # resumed: part 1 was written
            await channel.closed.wait()  # the server is shutting down...
            for _ in range(20):  # ...and this download still has work to do (loop turns
                await asyncio.sleep(0)  # in which a stream cut at shutdown is cancelled)
            yield "part 2\n"

        ctx.stream_response(parts())

    served = asyncio.ensure_future(app.handle(make_head(target=b"/download"), channel))
    await written.wait()
    assert channel.sent == b"part 1\n"
    channel.close(False)  # the server shuts down
    await served
    assert channel.sent == b"part 1\npart 2\n"
    assert channel.ended


async def test_an_idle_sse_stream_ends_cleanly_at_shutdown() -> None:
    """Issue 18 item 7: at shutdown an SSE body ends cleanly (an EventSource reconnects to
    the next process), and its source's ``finally`` runs."""
    from framework_helpers import MemoryChannel, make_head

    app = App(access_log=False)
    waiting = asyncio.Event()
    finished: list[str] = []

    @app.get("/events")
    async def events(ctx: HTTPContext) -> None:
        async def source() -> AsyncIterator[str]:
            try:
                yield "hello"
                waiting.set()
                await asyncio.Event().wait()
                yield "never"
            finally:
                finished.append("finally")

        ctx.sse(source(), ping=None)

    channel = MemoryChannel()
    served = asyncio.ensure_future(app.handle(make_head(target=b"/events"), channel))
    await waiting.wait()
    channel.close(client_left=False)  # the server shuts down; the connection still stands
    await served
    assert (channel.sent, channel.ended, finished) == (b"data: hello\n\n", True, ["finally"])


def test_source_failure_mid_stream_closes_the_connection() -> None:
    tracker = Tracker()
    with TestClient(streaming_app(tracker)) as client, pytest.raises(ConnectionError):
        client.get("/broken")
    assert tracker.closed


# -- Server-Sent Events ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "wire"),
    [
        ("hello", b"data: hello\n\n"),
        ("two\nlines", b"data: two\ndata: lines\n\n"),
        ("", b"data: \n\n"),
        ({"data": {"x": 1}, "event": "update", "id": "7"}, b'event: update\nid: 7\ndata: {"x":1}\n\n'),
        ({"retry": 3000}, b"retry: 3000\n\n"),
        ({"comment": "hi"}, b": hi\n\n"),
        (b"bytes", b"data: bytes\n\n"),
    ],
)
def test_encode_sse(event: Any, wire: bytes) -> None:
    assert encode_sse(event) == wire


@pytest.mark.parametrize("event", [{"event": "a\nb", "data": "x"}, {"nope": 1}, {}])
def test_encode_sse_rejects(event: Any) -> None:
    with pytest.raises(ValueError):
        encode_sse(event)


def test_sse_response() -> None:
    app = App(access_log=False)

    @app.get("/events")
    async def events(ctx: HTTPContext) -> None:
        async def source() -> AsyncIterator[Any]:
            yield "hello"
            yield {"event": "tick", "data": [1, 2], "id": 1}

        ctx.sse(source())

    with TestClient(app) as client:
        r = client.get("/events")
        assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert r.headers["cache-control"] == "no-cache"
        assert r.text == 'data: hello\n\nevent: tick\nid: 1\ndata: [1,2]\n\n'


class PingChannel(MemoryChannel):
    """Sets ``pinged`` when a keep-alive comment goes out."""

    def __init__(self) -> None:
        super().__init__()
        self.pinged = asyncio.Event()

    async def write(self, data: bytes) -> None:
        await super().write(data)
        if data == b": ping\n\n":
            self.pinged.set()


async def test_sse_pings_while_the_source_is_idle() -> None:
    app = App(access_log=False)
    channel = PingChannel()

    @app.get("/events")
    async def events(ctx: HTTPContext) -> None:
        async def source() -> AsyncIterator[str]:
            yield "first"
            await channel.pinged.wait()  # idle until a ping went out
            yield "after ping"

        ctx.sse(source(), ping=0.01)

    from framework_helpers import make_head

    await app.handle(make_head(target=b"/events"), channel)
    text = channel.sent.decode()
    assert text.startswith("data: first\n\n: ping\n\n")
    assert text.endswith("data: after ping\n\n")
    assert channel.ended


async def test_sse_stops_and_closes_the_source_when_the_client_goes_away() -> None:
    closed = asyncio.Event()
    never = asyncio.Event()

    async def source() -> AsyncIterator[str]:
        try:
            yield "one"
            await never.wait()  # idle forever: only a failed ping can end this
            yield "unreachable"
        finally:
            closed.set()

    app = App(access_log=False)

    @app.get("/events")
    async def events(ctx: HTTPContext) -> None:
        ctx.sse(source(), ping=0.01)

    from framework_helpers import make_head

    channel = DisconnectAfter(1)  # "one" goes out, the first ping fails
    await app.handle(make_head(target=b"/events"), channel)
    assert channel.sent == b"data: one\n\n"
    assert closed.is_set()


async def test_sse_stream_without_ping_closes_the_source() -> None:
    closed: list[bool] = []

    async def source() -> AsyncIterator[str]:
        try:
            yield "a"
            yield "b"
        finally:
            closed.append(True)

    stream = sse_stream(source(), ping=None)
    assert await stream.__anext__() == b"data: a\n\n"
    await stream.aclose()
    assert closed == [True]


# -- downloads --------------------------------------------------------------------------------


@pytest.fixture
def download_app(tmp_path: Path) -> App:
    (tmp_path / "report.csv").write_text("a,b\n1,2\n")
    app = App(access_log=False)

    @app.get("/download/{name}")
    async def download(ctx: HTTPContext) -> None:
        name = ctx.params["name"]
        ctx.file(tmp_path / "report.csv", filename=name if name != "-" else None)

    @app.get("/missing")
    async def missing(ctx: HTTPContext) -> None:
        ctx.file(tmp_path / "nope.csv")

    @app.get("/typed")
    async def typed(ctx: HTTPContext) -> None:
        ctx.file(tmp_path / "report.csv", content_type="text/x-custom")

    return app


def test_download_with_ascii_filename(download_app: App) -> None:
    with TestClient(download_app) as client:
        r = client.get("/download/report.csv")
        assert r.status_code == 200
        assert r.text == "a,b\n1,2\n"
        assert r.headers["content-disposition"] == 'attachment; filename="report.csv"'
        assert r.headers["content-type"] == "text/csv; charset=utf-8"


def test_download_with_unicode_filename(download_app: App) -> None:
    with TestClient(download_app) as client:
        r = client.get("/download/r%C3%A9sum%C3%A9%20%22final%22.csv")
        assert r.headers["content-disposition"] == (
            "attachment; filename=\"r_sum_ _final_.csv\"; "
            "filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22.csv"
        )


def test_file_without_filename_is_inline(download_app: App) -> None:
    with TestClient(download_app) as client:
        r = client.get("/download/-")
        assert "content-disposition" not in r.headers
        assert client.get("/typed").headers["content-type"] == "text/x-custom; charset=utf-8"


def test_download_resumes_with_a_range(download_app: App) -> None:
    with TestClient(download_app) as client:
        r = client.get("/download/report.csv", headers={"Range": "bytes=4-"})
        assert r.status_code == 206
        assert r.text == "1,2\n"


async def test_missing_file_is_404(download_app: App) -> None:
    ch = await call(download_app, "GET", "/missing")
    assert ch.status == 404


def test_sse_data_that_is_not_text_is_json() -> None:
    assert json.loads(encode_sse({"data": {"k": "é"}}).decode()[6:]) == {"k": "é"}
