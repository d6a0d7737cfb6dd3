"""An in-process test client: the real protocol code, no network port.

    from hump_listener.testing import TestClient

    with TestClient(app) as client:          # runs the app's startup / shutdown callbacks
        r = client.get("/user/bob")
        assert r.status_code == 200 and r.text == "Hello, bob!"

Each request is serialised by h11 in the client role, fed to a fresh ``H11Protocol``
(the server's own per-connection protocol) over the in-memory transport of
``protocol.memory``, and the bytes it
writes are parsed back by h11. So a test exercises exactly what a socket would: framing,
Content-Length, chunked streams, HEAD, keep-alive decisions, the 500 of a crashing
handler.

Like ``app.py``, this module wires both sides and is the one framework module allowed to
import h11 and the protocol package.

Policy choices:

1. One connection per request (closed once the response is read): requests are
   independent, as with a fresh httpx connection.
2. ``AsyncTestClient`` runs in the caller's event loop. ``TestClient`` runs an event
   loop in a background thread for as long as the client is open, so startup
   callbacks, handlers and shutdown callbacks share one loop (asyncio objects created at
   startup stay usable); every call blocks until its response is complete. Entering
   the ``with`` block runs ``app.run_startup()`` (a failing startup callback raises
   there); leaving it runs ``app.run_shutdown()``, which waits for background events.
3. The whole response is read before the call returns; an endless stream (SSE) never
   returns, so give such tests a source that ends, or ``timeout=``.
4. When the call returns, the request task (the handler, middleware and the app's
   cleanups) has finished; after ``timeout`` it is cancelled and ``TimeoutError``
   raised.
5. Cookies: a dict of name → wire value for the host ``testserver``. ``Set-Cookie``
   from responses updates it (``Max-Age=0`` or a past ``Expires`` deletes), like a
   browser that ignores Domain and Path; ``cookies=`` adds cookies to one request only.
6. WebSockets: ``websocket_connect(path)`` opens one in-memory connection through the
   server's HTTP/1.1 protocol and, after the 101, its WebSocket protocol; the client's
   frames are made and parsed by the ``websockets`` package's sans-I/O client. Leaving
   the block closes the connection (1000) and waits for the handler to end (up to the
   client's timeout); ``receive()`` raises ``WebSocketDisconnect`` once the server closed.
   The sessions (``AsyncWebSocketSession`` and its blocking twin ``WebSocketSession``)
   are this module's last chapter; a refused handshake raises ``WebSocketRejected``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json as json_module
import secrets
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import IO, Any
from urllib.parse import quote, urlencode, urlsplit

import h11

from .config import ServerConfig
from .models import Headers
from .protocol.http11 import H11Protocol
from .protocol.memory import MemoryTransport
from .protocol.server import ServerState
from .seam import SeamTarget, WebSocketDisconnect, seam_entry

__all__ = [
    "AsyncTestClient",
    "AsyncWebSocketSession",
    "TestClient",
    "TestResponse",
    "WebSocketRejected",
    "WebSocketSession",
]

_DEFAULT: Any = object()

DEFAULT_HOST = "testserver"
#: Seconds a request may take before the client gives up (the handler is cancelled).
DEFAULT_TIMEOUT = 30.0
#: Request bodies are fed to the protocol in pieces of this size, honouring its
#: pause_reading (the body high-water mark is 64 KiB).
FEED_SIZE = 64 * 1024

Params = Mapping[str, Any] | Sequence[tuple[str, Any]] | str
HeaderInput = Mapping[str, str] | Sequence[tuple[str, str]]
#: ``files={"name": b"..." | (filename, bytes or file[, content_type])}``
FileInput = bytes | IO[bytes] | tuple[str, bytes | IO[bytes]] | tuple[str, bytes | IO[bytes], str]

_UNSAFE_TARGET = {c: quote(chr(c)) for c in range(0x21)} | {0x7F: "%7F"}


class TestResponse:
    """What ``client.get(...)`` and friends return."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, status_code: int, reason: str, headers: Headers, content: bytes, http_version: str) -> None:
        self.status_code = status_code
        self.reason = reason
        self.headers = headers
        """Case-insensitive, multi-valued: ``r.headers["content-type"]``,
        ``r.headers.getlist("set-cookie")``."""
        self.content = content
        self.http_version = http_version

    @property
    def text(self) -> str:
        """The body decoded with the charset of its ``Content-Type`` (UTF-8 by default)."""
        charset = "utf-8"
        for part in self.headers.get("content-type", "").split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                charset = value.strip('"')
        return self.content.decode(charset, errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json_module.loads(self.content)

    @property
    def cookies(self) -> dict[str, str]:
        """Cookies this response set (name → wire value)."""
        return {name: value for name, value, _ in _parse_set_cookies(self.headers)}

    def __repr__(self) -> str:
        return f"<TestResponse [{self.status_code} {self.reason}]>"


class _ResponseReader:
    """The client's end of an in-memory connection: the server's bytes go to an h11
    client parser, and ``done`` resolves once a whole response (or the close) is in."""

    def __init__(self, loop: asyncio.AbstractEventLoop, client: h11.Connection) -> None:
        self._client = client
        self._closed = False
        self.done: asyncio.Future[None] = loop.create_future()
        self.events: list[h11.Event] = []

    def receive(self, data: bytes) -> None:
        if self.done.done():
            return
        self._client.receive_data(data)
        self._parse()

    def _parse(self) -> None:
        client = self._client
        try:
            while True:
                event = client.next_event()
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    return
                if type(event) is h11.InformationalResponse:
                    continue  # 100 Continue
                assert isinstance(event, h11.Event)
                self.events.append(event)
                if type(event) is h11.EndOfMessage or type(event) is h11.ConnectionClosed:
                    if not self.done.done():
                        self.done.set_result(None)
                    return
        except h11.RemoteProtocolError as exc:
            if not self.done.done():
                problem = (
                    "the server closed the connection before the response was complete"
                    if self._closed
                    else "invalid response from the server"
                )
                self.done.set_exception(ConnectionError(f"{problem}: {exc}"))

    def closed(self) -> None:
        """The server closed the connection."""
        self._closed = True
        if not self.done.done():
            # Close-delimited bodies end here; anything else is an incomplete response.
            self._client.receive_data(b"")
            self._parse()
            if not self.done.done():
                self.done.set_exception(
                    ConnectionError("the server closed the connection before the response was complete")
                )


class AsyncTestClient:
    """``async with AsyncTestClient(app) as client: r = await client.get("/")``.

    Runs in the caller's event loop (see the module docstring for the policy)."""

    __test__ = False

    def __init__(
        self,
        app: SeamTarget,
        base_url: str = f"http://{DEFAULT_HOST}",
        *,
        headers: HeaderInput | None = None,
        cookies: Mapping[str, str] | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        config: ServerConfig | None = None,
    ) -> None:
        self.app = app
        split = urlsplit(base_url)
        self.scheme = split.scheme or "http"
        self.host = split.netloc or DEFAULT_HOST
        self.root_path = split.path.rstrip("/")
        self.headers = _header_list(headers)
        self.cookies: dict[str, str] = dict(cookies or {})
        self.timeout = timeout
        if config is None:
            # The app's own config (``App(config=...)``, the environment), minus TLS: the
            # in-memory connection is plain HTTP whatever the app would listen with.
            app_config = getattr(app, "config", None)
            if isinstance(app_config, ServerConfig):
                config = dataclasses.replace(app_config, ssl=None)
            else:
                config = ServerConfig()
        self.config: ServerConfig = config
        self._state: ServerState | None = None

    # Lifespan: the app's one lifecycle (App.run_startup / App.run_shutdown), as the
    # server and the ASGI lifespan run it. A failing startup callback raises here; the
    # shutdown drains the background events (up to the app's drain time) and never raises.

    async def startup(self) -> None:
        """Run the app's startup (``app.run_startup()``); ``async with`` does it."""
        run_startup = getattr(self.app, "run_startup", None)
        if run_startup is not None:
            await run_startup()

    async def shutdown(self) -> None:
        """Run the app's shutdown (``app.run_shutdown()``, draining background events); ``async
        with`` does it."""
        run_shutdown = getattr(self.app, "run_shutdown", None)
        if run_shutdown is not None:
            await run_shutdown()

    async def __aenter__(self) -> AsyncTestClient:
        await self.startup()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.shutdown()

    # Requests

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Params | None = None,
        headers: HeaderInput | None = None,
        cookies: Mapping[str, str] | None = None,
        content: bytes | str | AsyncIterable[bytes] | Iterable[bytes] | None = None,
        data: Mapping[str, Any] | bytes | str | None = None,
        files: Mapping[str, FileInput] | None = None,
        json: Any = None,
        timeout: Any = _DEFAULT,
    ) -> TestResponse:
        """Send one request through the server's protocol and return the whole response.

        ``params`` (query), ``headers``, ``cookies`` (added to the client's for this
        request), and one body: ``json=`` (JSON), ``files=`` (multipart, with ``data=``
        fields), ``data=`` (a mapping: urlencoded; bytes/str: as is) or ``content=`` (bytes,
        str, or an iterable of chunks, sent chunked). ``timeout`` (seconds, ``None``: none)
        defaults to the client's."""
        target = self._target(url, params)
        extra: list[tuple[str, str]] = []
        body: bytes | AsyncIterable[bytes] | Iterable[bytes] | None = None
        if json is not None:
            body = json_module.dumps(json).encode("utf-8")
            extra.append(("content-type", "application/json"))
        elif files is not None:
            body, ctype = encode_multipart(data if isinstance(data, Mapping) else {}, files)
            extra.append(("content-type", ctype))
        elif isinstance(data, Mapping):
            body = urlencode(list(_pairs(data)), doseq=True).encode("ascii")
            extra.append(("content-type", "application/x-www-form-urlencoded"))
        elif data is not None:
            body = data.encode("utf-8") if isinstance(data, str) else data
        elif content is not None:
            if isinstance(content, str):
                body = content.encode("utf-8")
            elif isinstance(content, (bytearray, memoryview)):
                body = bytes(content)
            else:
                body = content

        given = _header_list(headers)
        names = {k.lower() for k, _ in given}
        hdrs = [(k, v) for k, v in [("host", self.host), *self.headers, *extra] if k.lower() not in names]
        hdrs += given
        names |= {k.lower() for k, _ in hdrs}
        jar = {**self.cookies, **(cookies or {})}
        if jar and "cookie" not in names:
            hdrs.append(("cookie", "; ".join(f"{k}={v}" for k, v in jar.items())))
        if isinstance(body, bytes) and "content-length" not in names and "transfer-encoding" not in names:
            if body or method.upper() not in ("GET", "HEAD", "DELETE", "OPTIONS"):
                hdrs.append(("content-length", str(len(body))))
        elif body is not None and not isinstance(body, bytes) and "content-length" not in names:
            hdrs.append(("transfer-encoding", "chunked"))

        limit: float | None = self.timeout if timeout is _DEFAULT else timeout
        response = await self._exchange(method.upper(), target, hdrs, body, limit)
        self._store_cookies(response)
        return response

    async def get(self, url: str, **kw: Any) -> TestResponse:
        """``request("GET", url, ...)``."""
        return await self.request("GET", url, **kw)

    async def head(self, url: str, **kw: Any) -> TestResponse:
        """``request("HEAD", url, ...)``."""
        return await self.request("HEAD", url, **kw)

    async def options(self, url: str, **kw: Any) -> TestResponse:
        """``request("OPTIONS", url, ...)``."""
        return await self.request("OPTIONS", url, **kw)

    async def post(self, url: str, **kw: Any) -> TestResponse:
        """``request("POST", url, ...)``."""
        return await self.request("POST", url, **kw)

    async def put(self, url: str, **kw: Any) -> TestResponse:
        """``request("PUT", url, ...)``."""
        return await self.request("PUT", url, **kw)

    async def patch(self, url: str, **kw: Any) -> TestResponse:
        """``request("PATCH", url, ...)``."""
        return await self.request("PATCH", url, **kw)

    async def delete(self, url: str, **kw: Any) -> TestResponse:
        """``request("DELETE", url, ...)``."""
        return await self.request("DELETE", url, **kw)

    def websocket_connect(
        self,
        url: str,
        subprotocols: Sequence[str] | None = None,
        headers: HeaderInput | None = None,
        *,
        params: Params | None = None,
        timeout: Any = _DEFAULT,
    ) -> contextlib.AbstractAsyncContextManager[AsyncWebSocketSession]:
        """``async with client.websocket_connect("/ws") as ws: await ws.send_text("hi")``.

        The handshake and every frame go through the server's real HTTP/1.1 and
        WebSocket protocols over the in-memory transport (policy 6). A refused handshake
        raises ``WebSocketRejected`` with the HTTP response."""
        limit: float | None = self.timeout if timeout is _DEFAULT else timeout
        return self._websocket(self._target(url, params), list(subprotocols or ()), _header_list(headers), limit)

    @contextlib.asynccontextmanager
    async def _websocket(
        self, target: bytes, subprotocols: list[str], headers: list[tuple[str, str]], timeout: float | None
    ) -> AsyncIterator[AsyncWebSocketSession]:
        loop = asyncio.get_running_loop()
        protocol = H11Protocol(self._server_state())
        session = AsyncWebSocketSession(loop, self, target, subprotocols, headers, timeout)
        transport = MemoryTransport(
            loop, sockname=(DEFAULT_HOST, 80), on_write=session._received, on_close=session._server_closed,
            half_close=True,
        )
        session._transport = transport
        transport.connect(protocol)
        session._start()
        cycle = protocol.cycle
        task = cycle.task if cycle is not None else None
        try:
            await session._handshake(timeout)
            yield session
        finally:
            await session._finish()
            if task is not None and not task.done():
                # Policy 4: the handler has ended when the block does (bounded).
                done, _ = await asyncio.wait([task], timeout=timeout)
                if not done:
                    task.cancel()
                    await asyncio.wait([task])
            transport.close()
            await asyncio.sleep(0)

    # Internals

    def _target(self, url: str, params: Params | None) -> bytes:
        split = urlsplit(url)
        if split.scheme or split.netloc:
            path, query = split.path or "/", split.query
        else:
            path, _, query = url.partition("?")
            path = self.root_path + path if path.startswith("/") else f"{self.root_path}/{path}"
        if params:
            extra = params if isinstance(params, str) else urlencode(list(_pairs(params)), doseq=True)
            query = f"{query}&{extra}" if query else extra
        target = path + (f"?{query}" if query else "")
        # Keep what the caller wrote (``%2e%2e``, ``..`` are test material); only make it
        # sendable: non-ASCII as UTF-8 escapes, controls and spaces escaped.
        return "".join(
            _UNSAFE_TARGET.get(ord(c), c) if ord(c) < 0x80 else quote(c) for c in target
        ).encode("ascii")

    def _server_state(self) -> ServerState:
        loop = asyncio.get_running_loop()
        if self._state is None or self._state.loop is not loop:
            self._state = ServerState(seam_entry(self.app), self.config, loop)
        return self._state

    async def _exchange(
        self,
        method: str,
        target: bytes,
        headers: list[tuple[str, str]],
        body: bytes | AsyncIterable[bytes] | Iterable[bytes] | None,
        timeout: float | None,
    ) -> TestResponse:
        loop = asyncio.get_running_loop()
        client = h11.Connection(h11.CLIENT)
        protocol = H11Protocol(self._server_state())
        reader = _ResponseReader(loop, client)
        transport = MemoryTransport(
            loop, sockname=(DEFAULT_HOST, 80), on_write=reader.receive, on_close=reader.closed
        )
        transport.connect(protocol)
        head = client.send(h11.Request(method=method, target=target, headers=headers))
        assert head is not None
        tasks: list[asyncio.Task[None]] = []

        def feed(data: bytes) -> None:
            transport.feed(data)
            cycle = protocol.cycle
            if cycle is not None and cycle.task is not None and cycle.task not in tasks:
                tasks.append(cycle.task)

        async def send_body() -> None:
            try:
                feed(head)
                async for chunk in _chunks(body):
                    for piece in _split(client.send(h11.Data(data=chunk)) or b"", FEED_SIZE):
                        await transport.readable.wait()
                        if transport.is_closing():
                            return  # the server answered early and closed: stop sending
                        feed(piece)
                await transport.readable.wait()
                if not transport.is_closing():
                    end = client.send(h11.EndOfMessage())
                    if end:
                        feed(end)
            except Exception as exc:  # e.g. the caller's body iterator failed
                if not reader.done.done():
                    reader.done.set_exception(exc)

        sender = loop.create_task(send_body())
        try:
            try:
                await asyncio.wait_for(reader.done, timeout)
            except (asyncio.TimeoutError, TimeoutError):
                for task in tasks:
                    task.cancel()
                raise TimeoutError(f"no complete response to {method} {target.decode()} in {timeout} s") from None
        finally:
            if not sender.done():
                sender.cancel()
            await asyncio.wait([sender])
            transport.close()
            # Let the request task finish (handler, response, the app's cleanups: policy
            # 4), and connection_lost run (close() scheduled it for the next turn).
            pending = [t for t in tasks if not t.done()]
            if pending:
                await asyncio.wait(pending)
            await asyncio.sleep(0)
            if reader.done.done() and not reader.done.cancelled():
                reader.done.exception()  # mark retrieved: no "never retrieved" warning
        return _build_response(reader.events)

    def _store_cookies(self, response: TestResponse) -> None:
        for name, value, expired in _parse_set_cookies(response.headers):
            if expired:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value


class TestClient:
    """``with TestClient(app) as client: r = client.get("/")``: a blocking client.

    Requests run on an event loop in a background thread (policy 2): the loop starts
    with the ``with`` block (or with the first request; then ``close()`` it) and is shut
    down, with the app's shutdown callbacks, when the block ends.
    """

    __test__ = False

    def __init__(
        self,
        app: SeamTarget,
        base_url: str = f"http://{DEFAULT_HOST}",
        *,
        headers: HeaderInput | None = None,
        cookies: Mapping[str, str] | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        config: ServerConfig | None = None,
    ) -> None:
        self._client = AsyncTestClient(
            app, base_url, headers=headers, cookies=cookies, timeout=timeout, config=config
        )
        self.app = app
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._lifespan = False

    @property
    def cookies(self) -> dict[str, str]:
        """The cookie jar: name → value, updated by each response's ``Set-Cookie``."""
        return self._client.cookies

    @cookies.setter
    def cookies(self, value: dict[str, str]) -> None:
        self._client.cookies = value

    # The loop thread

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                thread = threading.Thread(target=run, name="hump-testclient", daemon=True)
                thread.start()
                ready.wait()
                self._loop, self._thread = loop, thread
            return self._loop

    def _run(self, coro: Any) -> Any:
        loop = self._ensure_loop()
        if self._thread is threading.current_thread():
            coro.close()
            raise RuntimeError("TestClient called from its own event loop: use AsyncTestClient in async code")
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, loop)
        return future.result()

    def close(self) -> None:
        """Stop the loop thread (cancelling anything still running on it)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(_cancel_all(), loop).result()
        asyncio.run_coroutine_threadsafe(loop.shutdown_asyncgens(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()

    def __enter__(self) -> TestClient:
        try:
            self._run(self._client.startup())
        except BaseException:
            self.close()  # no __exit__ follows a failed __enter__: stop the loop thread here
            raise
        self._lifespan = True
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if self._lifespan:
                self._lifespan = False
                self._run(self._client.shutdown())
        finally:
            self.close()

    # Requests

    def request(self, method: str, url: str, **kw: Any) -> TestResponse:
        """See ``AsyncTestClient.request``: params=, headers=, cookies=, content=, data=,
        files=, json=, timeout=."""
        response: TestResponse = self._run(self._client.request(method, url, **kw))
        return response

    def get(self, url: str, **kw: Any) -> TestResponse:
        """``request("GET", url, ...)``."""
        return self.request("GET", url, **kw)

    def head(self, url: str, **kw: Any) -> TestResponse:
        """``request("HEAD", url, ...)``."""
        return self.request("HEAD", url, **kw)

    def options(self, url: str, **kw: Any) -> TestResponse:
        """``request("OPTIONS", url, ...)``."""
        return self.request("OPTIONS", url, **kw)

    def post(self, url: str, **kw: Any) -> TestResponse:
        """``request("POST", url, ...)``."""
        return self.request("POST", url, **kw)

    def put(self, url: str, **kw: Any) -> TestResponse:
        """``request("PUT", url, ...)``."""
        return self.request("PUT", url, **kw)

    def patch(self, url: str, **kw: Any) -> TestResponse:
        """``request("PATCH", url, ...)``."""
        return self.request("PATCH", url, **kw)

    def delete(self, url: str, **kw: Any) -> TestResponse:
        """``request("DELETE", url, ...)``."""
        return self.request("DELETE", url, **kw)

    @contextlib.contextmanager
    def websocket_connect(
        self,
        url: str,
        subprotocols: Sequence[str] | None = None,
        headers: HeaderInput | None = None,
        **kw: Any,
    ) -> Iterator[WebSocketSession]:
        """``with client.websocket_connect("/ws") as ws: ws.send_text("hi")``: see
        ``AsyncTestClient.websocket_connect``; every call blocks until done."""
        manager = self._client.websocket_connect(url, subprotocols, headers, **kw)
        session: AsyncWebSocketSession = self._run(manager.__aenter__())
        try:
            yield WebSocketSession(self, session)
        except BaseException as exc:
            if not self._run(manager.__aexit__(type(exc), exc, exc.__traceback__)):
                raise
        else:
            self._run(manager.__aexit__(None, None, None))


# ---------------------------------------------------------------------------------------
# WebSocket sessions (policy 6): the client's end of an in-memory WebSocket connection
# ---------------------------------------------------------------------------------------


class WebSocketRejected(Exception):
    """The server answered the WebSocket handshake with an HTTP response, not a 101."""

    def __init__(self, response: TestResponse) -> None:
        super().__init__(f"WebSocket handshake refused: {response.status_code} {response.reason}")
        self.response = response


class AsyncWebSocketSession:
    """The client's end of one in-memory WebSocket connection (``websocket_connect``).

    Frames are built and parsed by the ``websockets`` package's sans-I/O client, so the
    server is checked by an independent implementation, as h11 checks its HTTP."""

    __test__ = False

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        client: AsyncTestClient,
        target: bytes,
        subprotocols: list[str],
        headers: list[tuple[str, str]],
        timeout: float | None,
    ) -> None:
        try:
            from websockets.client import ClientProtocol
            from websockets.typing import Subprotocol
            from websockets.uri import parse_uri
        except ImportError as exc:
            raise RuntimeError(
                'websocket_connect needs the websockets package: pip install websockets'
            ) from exc
        self._loop = loop
        self._timeout = timeout
        uri = parse_uri(f"ws://{client.host}{target.decode('ascii')}")
        offered = [Subprotocol(name) for name in subprotocols] or None
        self._ws = ClientProtocol(uri, subprotocols=offered, max_size=None)
        request = self._ws.connect()
        jar = client.cookies
        for name, value in headers:
            request.headers[name] = value
        if jar and "cookie" not in {name for name, _ in headers}:
            request.headers["cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
        self._ws.send_request(request)
        self._transport: MemoryTransport | None = None
        self._opened: asyncio.Future[None] = loop.create_future()
        self._messages: asyncio.Queue[str | bytes | None] = asyncio.Queue()
        self._fragments: list[bytes] = []
        self._fragment_text = False
        #: The 101's headers, once accepted.
        self.headers: Headers = Headers()
        #: The subprotocol the server chose, or None.
        self.subprotocol: str | None = None
        #: The close code and reason the server sent, once it closed.
        self.close_code: int | None = None
        self.close_reason: str | None = None

    # -- wiring to the in-memory transport ------------------------------------------------

    def _start(self) -> None:
        self._send_pending()

    def _send_pending(self) -> None:
        """Hand what the client protocol has to send to the server, from the loop (never
        from inside the server's own write)."""
        transport = self._transport
        assert transport is not None
        for data in self._ws.data_to_send():
            if transport.is_closing():
                return
            if data:
                transport.feed(data)
            else:
                transport.feed_eof()

    def _received(self, data: bytes) -> None:
        from websockets.frames import BINARY, CLOSE, CONT, TEXT, Frame
        from websockets.http11 import Response

        ws = self._ws
        ws.receive_data(data)
        for event in ws.events_received():
            if isinstance(event, Response):
                if event.status_code == 101 and ws.handshake_exc is None:
                    self.headers = Headers(
                        [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in event.headers.raw_items()]
                    )
                    self.subprotocol = ws.subprotocol
                    if not self._opened.done():
                        self._opened.set_result(None)
                else:
                    headers = Headers(
                        [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in event.headers.raw_items()]
                    )
                    response = TestResponse(
                        event.status_code, event.reason_phrase, headers, bytes(event.body or b""), "1.1"
                    )
                    if not self._opened.done():
                        self._opened.set_exception(WebSocketRejected(response))
                continue
            if not isinstance(event, Frame):
                continue
            opcode, data = event.opcode, bytes(event.data)
            if opcode is TEXT or opcode is BINARY:
                if event.fin:
                    self._messages.put_nowait(data.decode() if opcode is TEXT else data)
                else:
                    self._fragments, self._fragment_text = [data], opcode is TEXT
            elif opcode is CONT:
                self._fragments.append(data)
                if event.fin:
                    whole = b"".join(self._fragments)
                    self._messages.put_nowait(whole.decode() if self._fragment_text else whole)
            elif opcode is CLOSE:
                close = ws.close_rcvd
                self.close_code = close.code if close is not None else 1005
                self.close_reason = close.reason if close is not None else ""
                self._messages.put_nowait(None)
        self._loop.call_soon(self._send_pending)

    def _server_closed(self) -> None:
        if self.close_code is None:
            self.close_code = 1006
            self.close_reason = ""
        if not self._opened.done():
            self._opened.set_exception(ConnectionError("the server closed the connection during the handshake"))
        self._messages.put_nowait(None)

    async def _handshake(self, timeout: float | None) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(self._opened), timeout)
        except (asyncio.TimeoutError, TimeoutError):
            raise TimeoutError(f"no answer to the WebSocket handshake in {timeout} s") from None

    async def _finish(self) -> None:
        if self._opened.done() and not self._opened.cancelled() and self._opened.exception() is None:
            await self.close()

    # -- the API -----------------------------------------------------------------------

    async def send(self, message: str | bytes) -> None:
        """Send a text (``str``) or binary (``bytes``) message to the server."""
        if isinstance(message, str):
            self._ws.send_text(message.encode())
        else:
            self._ws.send_binary(message)
        self._send_pending()
        await asyncio.sleep(0)

    async def send_text(self, text: str) -> None:
        """Send ``text`` in a text frame."""
        await self.send(text)

    async def send_bytes(self, data: bytes) -> None:
        """Send ``data`` in a binary frame."""
        await self.send(bytes(data))

    async def send_json(self, data: Any, mode: str = "text") -> None:
        """Send ``data`` as JSON, in a text frame (``mode="binary"``: a binary frame)."""
        text = json_module.dumps(data)
        await self.send(text if mode == "text" else text.encode())

    async def receive(self) -> str | bytes:
        """The next message; ``WebSocketDisconnect`` once the server has closed."""
        if self._messages.empty() and self.close_code is not None:
            raise WebSocketDisconnect(self.close_code, self.close_reason or "")
        try:
            message = await asyncio.wait_for(self._messages.get(), self._timeout)
        except (asyncio.TimeoutError, TimeoutError):
            raise TimeoutError(f"no WebSocket message in {self._timeout} s") from None
        if message is None:
            self._messages.put_nowait(None)  # later calls raise too
            raise WebSocketDisconnect(self.close_code or 1006, self.close_reason or "")
        return message

    async def receive_text(self) -> str:
        """The next message, which must be text (else ``TypeError``)."""
        message = await self.receive()
        if not isinstance(message, str):
            raise TypeError(f"expected a text message, got {message!r}")
        return message

    async def receive_bytes(self) -> bytes:
        """The next message, which must be binary (else ``TypeError``)."""
        message = await self.receive()
        if not isinstance(message, bytes):
            raise TypeError(f"expected a binary message, got {message!r}")
        return message

    async def receive_json(self) -> Any:
        """The next message parsed as JSON."""
        return json_module.loads(await self.receive())

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake (a no-op once the connection is closing)."""
        from websockets.protocol import OPEN

        if self._ws.state is OPEN:
            self._ws.send_close(code, reason)
            self._send_pending()
        await asyncio.sleep(0)


class WebSocketSession:
    """The blocking twin of ``AsyncWebSocketSession`` (``TestClient.websocket_connect``)."""

    __test__ = False

    def __init__(self, client: TestClient, session: AsyncWebSocketSession) -> None:
        self._client = client
        self._session = session

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol the server chose in its 101, or ``None``."""
        return self._session.subprotocol

    @property
    def headers(self) -> Headers:
        """The headers of the server's 101 response."""
        return self._session.headers

    @property
    def close_code(self) -> int | None:
        """The close code the server sent (1006 if it dropped the connection), or ``None``
        while open."""
        return self._session.close_code

    @property
    def close_reason(self) -> str | None:
        """The reason of the server's close frame, or ``None`` while open."""
        return self._session.close_reason

    def send(self, message: str | bytes) -> None:
        """Send a text (``str``) or binary (``bytes``) message to the server."""
        self._client._run(self._session.send(message))

    def send_text(self, text: str) -> None:
        """Send ``text`` in a text frame."""
        self._client._run(self._session.send_text(text))

    def send_bytes(self, data: bytes) -> None:
        """Send ``data`` in a binary frame."""
        self._client._run(self._session.send_bytes(data))

    def send_json(self, data: Any, mode: str = "text") -> None:
        """Send ``data`` as JSON, in a text frame (``mode="binary"``: a binary frame)."""
        self._client._run(self._session.send_json(data, mode))

    def receive(self) -> str | bytes:
        """The next message (``str`` or ``bytes``); ``WebSocketDisconnect`` once the server has
        closed."""
        message: str | bytes = self._client._run(self._session.receive())
        return message

    def receive_text(self) -> str:
        """The next message, which must be text (else ``TypeError``)."""
        text: str = self._client._run(self._session.receive_text())
        return text

    def receive_bytes(self) -> bytes:
        """The next message, which must be binary (else ``TypeError``)."""
        data: bytes = self._client._run(self._session.receive_bytes())
        return data

    def receive_json(self) -> Any:
        """The next message parsed as JSON."""
        return self._client._run(self._session.receive_json())

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake with ``code`` and ``reason`` (a no-op once closing)."""
        self._client._run(self._session.close(code, reason))


# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------


async def _cancel_all() -> None:
    current = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not current]
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks)


def _header_list(headers: HeaderInput | None) -> list[tuple[str, str]]:
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [(str(k).lower(), str(v)) for k, v in items]


def _pairs(data: Mapping[str, Any] | Sequence[tuple[str, Any]]) -> Iterable[tuple[str, Any]]:
    items = data.items() if isinstance(data, Mapping) else data
    for key, value in items:
        if isinstance(value, (list, tuple)):
            for v in value:
                yield key, v
        else:
            yield key, value


async def _chunks(body: bytes | AsyncIterable[bytes] | Iterable[bytes] | None) -> Any:
    if body is None or body == b"":
        return
    if isinstance(body, bytes):
        yield body
    elif isinstance(body, AsyncIterable):
        async for chunk in body:
            if chunk:
                yield chunk
    else:
        for chunk in body:
            if chunk:
                yield chunk


def _split(data: bytes, size: int) -> Iterable[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def _build_response(events: list[h11.Event]) -> TestResponse:
    head = next((e for e in events if type(e) is h11.Response), None)
    if head is None:
        raise ConnectionError("the server closed the connection without a response")
    content = b"".join(bytes(e.data) for e in events if type(e) is h11.Data)
    headers = Headers([(bytes(k), bytes(v)) for k, v in head.headers])
    return TestResponse(
        head.status_code, head.reason.decode("latin-1"), headers, content, head.http_version.decode("ascii")
    )


def _parse_set_cookies(headers: Headers) -> list[tuple[str, str, bool]]:
    """``(name, value, expired)`` for each Set-Cookie header (lenient, like a browser)."""
    out: list[tuple[str, str, bool]] = []
    for header in headers.getlist("set-cookie"):
        pair, *attrs = header.split(";")
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            continue
        expired = False
        for attr in attrs:
            key, _, val = attr.strip().partition("=")
            key = key.lower()
            if key == "max-age":
                with contextlib.suppress(ValueError):
                    expired = int(val) <= 0
            elif key == "expires" and not any(a.strip().lower().startswith("max-age") for a in attrs):
                with contextlib.suppress(TypeError, ValueError):
                    expired = parsedate_to_datetime(val).timestamp() <= time.time()
        out.append((name.strip(), value.strip(), expired))
    return out


def encode_multipart(
    fields: Mapping[str, Any], files: Mapping[str, FileInput], boundary: str | None = None
) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body and its Content-Type, as a browser would send it."""
    boundary = boundary or secrets.token_hex(16)
    out = bytearray()
    for name, value in _pairs(fields):
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{_q(name)}"\r\n\r\n'.encode()
        out += value if isinstance(value, bytes) else str(value).encode("utf-8")
        out += b"\r\n"
    for name, spec in files.items():
        content_type = "application/octet-stream"
        if isinstance(spec, tuple):
            filename, payload = spec[0], spec[1]
            if len(spec) == 3:
                content_type = spec[2]
        else:
            filename, payload = name, spec
        data = payload if isinstance(payload, bytes) else payload.read()
        out += (
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"{_q(name)}\"; "
            f'filename="{_q(filename)}"\r\nContent-Type: {content_type}\r\n\r\n'
        ).encode()
        out += data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def _q(value: str) -> str:
    # What browsers do in a multipart header (WHATWG HTML "multipart/form-data encoding").
    return value.replace("\r", "%0D").replace("\n", "%0A").replace('"', "%22")
