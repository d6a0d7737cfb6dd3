"""Test helpers for the protocol side: a fake transport, a manual clock, a response parser
(h11 in the client role, so our output is checked by an independent parser), tiny seam
apps, and a real-socket server fixture.

Synchronisation never sleeps: ``settle()`` yields to the loop (``sleep(0)``) until a
condition holds, with a bounded number of turns.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import h11

from hump_listener.config import ServerConfig
from hump_listener.protocol.http11 import H11Protocol
from hump_listener.protocol.memory import MemoryTransport
from hump_listener.protocol.server import Server, ServerState
from hump_listener.seam import Channel, HeaderList, RequestHead, SeamApp

# ---------------------------------------------------------------------------------------
# Fakes


def FakeTransport(loop: asyncio.AbstractEventLoop, peer: tuple[str, int] = ("127.0.0.1", 50000)) -> MemoryTransport:
    """The protocol's one in-memory transport (``hump_listener.protocol.memory``)."""
    return MemoryTransport(loop, peer=peer)


class FakeTimer:
    def __init__(self, when: float, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.when = when
        self.callback = callback
        self.args = args
        self._cancelled = False

    def cancel(self) -> None:
        self._cancelled = True

    def cancelled(self) -> bool:
        return self._cancelled


class ClockLoop:
    """The running loop with a manual clock: ``time``/``call_later`` are driven by
    ``advance()``; everything else (futures, tasks, call_soon) is the real loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.now = 1000.0
        self._timers: list[tuple[float, int, FakeTimer]] = []
        self._seq = itertools.count()

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> FakeTimer:
        timer = FakeTimer(self.now + delay, callback, args)
        heapq.heappush(self._timers, (timer.when, next(self._seq), timer))
        return timer

    def pending(self) -> list[FakeTimer]:
        return [t for _, _, t in self._timers if not t.cancelled()]

    def advance(self, seconds: float) -> None:
        target = self.now + seconds
        while self._timers and self._timers[0][0] <= target:
            when, _, timer = heapq.heappop(self._timers)
            self.now = max(self.now, when)
            if not timer.cancelled():
                timer.callback(*timer.args)
        self.now = target

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loop, name)


# ---------------------------------------------------------------------------------------
# A protocol on a fake transport


class Conn:
    """One H11Protocol wired to a FakeTransport; feed bytes, read parsed responses."""

    def __init__(
        self,
        app: SeamApp,
        *,
        clock: bool = False,
        half_close: bool = False,
        extra: dict[str, Any] | None = None,
        **config: Any,
    ) -> None:
        """``half_close``: the transport can write EOF (the lingering close runs);
        ``extra``: more ``get_extra_info`` values (``"socket"``: a real socket, whose file
        descriptor the protocol polls)."""
        real = asyncio.get_running_loop()
        self.clock = ClockLoop(real) if clock else None
        loop: Any = self.clock if self.clock is not None else real
        self.state = ServerState(app, ServerConfig(**config), loop)
        self.proto = H11Protocol(self.state)
        self.transport = MemoryTransport(real, half_close=half_close, extra=extra)
        self.transport.connect(self.proto)

    def send(self, data: bytes) -> None:
        self.proto.data_received(data)

    def eof(self) -> bool:
        return self.proto.eof_received()

    @property
    def out(self) -> bytes:
        return bytes(self.transport.out)

    def responses(self, methods: Sequence[str] = (), eof: bool | None = None) -> list[Resp]:
        return parse_responses(self.out, methods, eof=self.transport.closing if eof is None else eof)

    def waits_for_body(self) -> bool:
        """The app is waiting in ``channel.receive()`` for body bytes (not yet woken)."""
        cycle = self.proto.cycle
        waiter = cycle._waiter if cycle is not None else None
        return waiter is not None and not waiter.done()

    async def settle(self, until: Callable[[], bool] | None = None, turns: int = 200) -> None:
        """Let tasks and callbacks run: until ``until()`` holds, or until nothing is left."""
        for _ in range(turns):
            if until is not None and until():
                return
            await asyncio.sleep(0)
        if until is not None:
            raise AssertionError("condition not reached")


async def settle(until: Callable[[], bool], turns: int = 500) -> None:
    for _ in range(turns):
        if until():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


# ---------------------------------------------------------------------------------------
# Response parsing with h11 as the client


@dataclass
class Resp:
    status: int
    reason: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    informational: list[int] = field(default_factory=list)
    http_version: bytes = b"1.1"

    def header(self, name: bytes) -> bytes | None:
        values = [v for n, v in self.headers if n == name]
        assert len(values) <= 1, f"repeated header {name!r}"
        return values[0] if values else None


def parse_responses(data: bytes, methods: Sequence[str] = (), eof: bool = True) -> list[Resp]:
    """Parse every complete response in ``data``; ``methods[i]`` is request i's method."""
    client = h11.Connection(h11.CLIENT)
    out: list[Resp] = []
    fed = eof_fed = False
    for i in itertools.count():
        method = methods[i] if i < len(methods) else "GET"
        client.send(h11.Request(method=method, target="/", headers=[("host", "x")]))
        client.send(h11.EndOfMessage())
        if not fed:
            client.receive_data(data)
            fed = True
        info: list[int] = []
        head: h11.Response | None = None
        body = bytearray()
        while True:
            event = client.next_event()
            if event is h11.NEED_DATA:
                if eof and not eof_fed:
                    client.receive_data(b"")
                    eof_fed = True
                    continue
                return out
            if type(event) is h11.InformationalResponse:
                info.append(event.status_code)
            elif type(event) is h11.Response:
                head = event
            elif type(event) is h11.Data:
                body += event.data
            elif type(event) is h11.EndOfMessage:
                break
            else:
                return out
        assert head is not None
        out.append(Resp(head.status_code, head.reason, list(head.headers), bytes(body), info, head.http_version))
        if client.our_state is h11.DONE and client.their_state is h11.DONE and client.trailing_data[0]:
            client.start_next_cycle()
        else:
            return out
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------------------------
# Tiny seam apps


def text(body: bytes, status: int = 200, extra: HeaderList | None = None) -> SeamApp:
    async def app(head: RequestHead, channel: Channel) -> None:
        headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
        channel.respond(status, headers + (extra or []), b"" if head.method == "HEAD" else body)

    return app


async def hello(head: RequestHead, channel: Channel) -> None:
    channel.respond(200, [(b"content-type", b"text/plain"), (b"content-length", b"5")], b"hello")


async def echo_target(head: RequestHead, channel: Channel) -> None:
    body = head.target
    channel.respond(200, [(b"content-length", b"%d" % len(body))], body)


async def echo_body(head: RequestHead, channel: Channel) -> None:
    chunks = []
    while chunk := await channel.receive():
        chunks.append(chunk)
    body = b"".join(chunks)
    channel.respond(200, [(b"content-length", b"%d" % len(body))], body)


class Recorder:
    """A seam app that records what it saw and answers ``hello``."""

    def __init__(self) -> None:
        self.heads: list[RequestHead] = []

    async def __call__(self, head: RequestHead, channel: Channel) -> None:
        self.heads.append(head)
        await hello(head, channel)


def request(target: bytes = b"/", method: bytes = b"GET", headers: bytes = b"Host: x\r\n", body: bytes = b"") -> bytes:
    return method + b" " + target + b" HTTP/1.1\r\n" + headers + b"\r\n" + body


# ---------------------------------------------------------------------------------------
# Real sockets on 127.0.0.1, port 0


@contextlib.asynccontextmanager
async def serve(app: SeamApp, **config: Any) -> AsyncIterator[Server]:
    server = Server(app, ServerConfig(host="127.0.0.1", port=0, **config))
    await server.start()
    try:
        yield server
    finally:
        await server.shutdown(timeout=2.0)


async def exchange(port: int, data: bytes, *, half_close: bool = False, timeout: float = 5.0) -> bytes:
    """Send ``data`` on a fresh connection and read until the server closes it."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(data)
            if half_close:
                writer.write_eof()
            await writer.drain()
            return await reader.read()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
