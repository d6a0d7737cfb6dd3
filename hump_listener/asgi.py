"""ASGI 3 adapter: run a hump_listener app under uvicorn, hypercorn, granian ...

``asgi(app)`` (or ``app.asgi``; an ``App`` is itself ASGI by delegating to it) is one
more producer of the seam's ``(RequestHead, Channel)``, like the built-in h11 server:
an HTTP scope becomes a ``RequestHead`` and ``receive``/``send`` become a ``Channel``.
Lifespan events run the app's one startup / shutdown lifecycle (``App.run_startup()`` /
``App.run_shutdown()``: callbacks, the background-event drain), with the App's error
policy. Like the h11 server this module knows nothing of routing or tiny-listener; it
imports only the seam.

    uvicorn http_web:app --workers 4           # the App is an ASGI 3 application
    uvicorn http_web:asgi --workers 4          # the same, for http_web.py's asgi = app.asgi

Policy choices, where ASGI leaves room:

- ``respond()`` is synchronous in the seam and ASGI's ``send`` is a coroutine, so the
  response is buffered and sent when the app returns (``App.__call__`` responds as its
  last step, so nothing is delayed); ``start``/``write``/``end`` go out at once.
- Exactly one response: if the app returns (or raises) without responding, the adapter
  answers 500; if it raises after ``start``, the exception propagates so the server closes
  the connection; if it returns after ``start`` without ``end``, the adapter ends it.
- ``http.disconnect`` while reading the body raises ``ClientDisconnect``; a failing
  ``send`` (uvicorn raises an ``OSError`` subclass) is reported the same way.
- ``sendfile`` uses the ``http.response.zerocopysend`` extension when the server offers
  it, else reads the file in a worker thread, ``SENDFILE_CHUNK`` at a time.
- Lifespan: ``lifespan.startup.failed`` (with ``"ExcType: message"``) when
  ``run_startup()`` raises (it has logged the traceback); shutdown never fails (the
  App logs a failing shutdown callback and runs the others). A seam app without
  ``run_startup`` / ``run_shutdown`` has nothing to run: both complete at once.
- ``websocket`` scopes go to the app as an upgrade request whose channel's ``websocket``
  is an ``ASGIWebSocket`` (in ``asgi_websocket``; the server did the handshake, so there
  is no rejection); a refusal before ``accept`` goes out as the ``websocket.http.response``
  extension when the server offers it, else as a close before accept (the server answers
  403). Any other scope type is refused by raising, as the ASGI spec asks.
- ``root_path`` is not stripped: routes match ``scope["path"]`` as sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import IO, Any, Protocol, runtime_checkable
from urllib.parse import quote

from .asgi_websocket import DENIAL, ASGIHandshake, ASGIWebSocket
from .seam import ClientDisconnect, HeaderList, RequestHead, SeamTarget, plain_reply, seam_entry

__all__ = ["SENDFILE_CHUNK", "ASGIAdapter", "ASGIChannel", "Lifespan", "asgi", "head_from_scope"]

error_log = logging.getLogger("hump_listener.error")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@runtime_checkable
class Lifespan(Protocol):
    """What the lifespan scope drives: ``App.run_startup`` / ``App.run_shutdown``."""

    async def run_startup(self) -> None: ...

    async def run_shutdown(self) -> None: ...


#: Read size for ``sendfile`` without the zero-copy extension: Starlette's FileResponse
#: uses 64 KiB chunks too.
SENDFILE_CHUNK = 64 * 1024
_ZEROCOPY = "http.response.zerocopysend"
_INTERNAL_ERROR = plain_reply(500)


#: The seam's scheme of a WebSocket scope's.
_HTTP_SCHEME = {"ws": "http", "wss": "https"}


def head_from_scope(scope: Scope) -> RequestHead:
    """An ASGI ``http`` or ``websocket`` scope as the seam's ``RequestHead`` (a WebSocket
    handshake is a GET; its ``ws``/``wss`` scheme is the seam's ``http``/``https``)."""
    raw_path = scope.get("raw_path")
    if not raw_path:
        # raw_path is optional in ASGI: re-encode the decoded path (best effort).
        raw_path = quote(scope["path"], safe="/:@!$&'()*+,;=-._~").encode("ascii")
    query = scope.get("query_string")
    target = raw_path + b"?" + query if query else raw_path
    headers = scope["headers"]
    client = scope.get("client")
    server = scope.get("server")
    scheme = scope.get("scheme", "http")
    return RequestHead(
        scope.get("method", "GET"),
        target,
        scope.get("http_version", "1.1"),
        headers if type(headers) is list else [tuple(h) for h in headers],
        # Servers give tuples (uvicorn, granian): kept as they are; a list is copied.
        client if client is None or type(client) is tuple else (client[0], client[1]),
        None if server is None or server[1] is None else server if type(server) is tuple else (server[0], server[1]),
        _HTTP_SCHEME.get(scheme) or scheme,
    )


class ASGIChannel:
    """``seam.Channel`` over one request's ASGI ``receive``/``send`` (request lifetime)."""

    __slots__ = (
        "_body_done",
        "_disconnected",
        "_ended",
        "_gone",
        "_pending",
        "_receive",
        "_send",
        "_started",
        "_zerocopy",
    )

    def __init__(self, receive: Receive, send: Send, zerocopy: bool = False) -> None:
        self._receive = receive
        self._send = send
        self._zerocopy = zerocopy
        self._body_done = False
        self._disconnected = False
        self._started = False
        self._ended = False
        self._pending: tuple[int, HeaderList, bytes] | None = None
        self._gone: asyncio.Future[None] | None = None

    @property
    def disconnected(self) -> bool:
        return self._disconnected

    @property
    def started(self) -> bool:
        return self._started

    @property
    def ended(self) -> bool:
        return self._ended

    @property
    def websocket(self) -> None:
        """An ``http`` scope never upgrades (ASGI servers hand WebSockets over as a
        ``websocket`` scope of their own)."""
        return None

    async def receive(self) -> bytes:
        if self._body_done:
            return b""
        if self._disconnected:
            raise ClientDisconnect()
        while True:
            message = await self._receive()
            kind = message["type"]
            if kind == "http.request":
                body: bytes = message.get("body", b"")
                if not message.get("more_body", False):
                    self._body_done = True
                    return body
                if body:
                    return body  # an empty non-final chunk is not the end: read on
            elif kind == "http.disconnect":
                self._mark_gone()
                raise ClientDisconnect()

    def respond(self, status: int, headers: HeaderList, body: bytes) -> None:
        self._claim()
        self._pending = (status, headers, body)

    async def start(self, status: int, headers: HeaderList) -> None:
        self._claim()
        await self._emit({"type": "http.response.start", "status": status, "headers": headers})

    async def write(self, data: bytes) -> None:
        if not self._started or self._ended:
            raise RuntimeError("write() outside a started response")
        if data:
            await self._emit({"type": "http.response.body", "body": data, "more_body": True})

    async def end(self) -> None:
        if self._ended:
            return
        if not self._started:
            raise RuntimeError("end() before start()")
        self._ended = True
        await self._emit({"type": "http.response.body", "body": b"", "more_body": False})

    async def sendfile(self, file: IO[bytes], offset: int, count: int) -> None:
        if not self._started or self._ended:
            raise RuntimeError("sendfile() outside a started response")
        if self._zerocopy:
            await self._emit(
                {
                    "type": _ZEROCOPY,
                    "file": file.fileno(),
                    "offset": offset,
                    "count": count,
                    "more_body": True,
                }
            )
            return

        def read(size: int) -> bytes:
            return file.read(size)

        await asyncio.to_thread(file.seek, offset)
        while count > 0:
            chunk = await asyncio.to_thread(read, min(SENDFILE_CHUNK, count))
            if not chunk:
                raise ValueError(f"file ended {count} bytes before the requested range")
            count -= len(chunk)
            await self.write(chunk)

    async def wait_closed(self) -> None:
        # Placeholder until the adapter listens for http.disconnect while streaming (issue 18
        # item 6): returns once a receive() or a send() has seen the client go.
        if self._disconnected:
            return
        if self._gone is None:
            self._gone = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._gone)

    # -- adapter side --------------------------------------------------------------------

    def _mark_gone(self) -> None:
        self._disconnected = True
        gone = self._gone
        if gone is not None and not gone.done():
            gone.set_result(None)

    def _claim(self) -> None:
        if self._started:
            raise RuntimeError("a response was already started for this request")
        self._started = True

    async def _emit(self, message: Message) -> None:
        try:
            await self._send(message)
        except OSError as exc:  # uvicorn's ClientDisconnected is an OSError
            self._mark_gone()
            raise ClientDisconnect() from exc

    async def finish(self) -> None:
        """Send a buffered ``respond()``, or end a streamed response the app left open
        (called by the adapter once the app has returned)."""
        pending, self._pending = self._pending, None
        if pending is None:
            await self.end()
            return
        status, headers, body = pending
        self._ended = True
        send = self._send
        try:  # _emit's two sends, inlined: every buffered response comes this way
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body, "more_body": False})
        except OSError as exc:
            self._mark_gone()
            raise ClientDisconnect() from exc

    def fail(self) -> bool:
        """Replace a not-yet-sent response with a 500; False if one is already on the wire."""
        if self._started and self._pending is None:
            return False
        self._started = True
        self._pending = _INTERNAL_ERROR
        return True


class ASGIAdapter:
    """An ASGI 3 application that serves a seam app (server lifetime).

    ``app`` is a plain seam callable or an object serving the seam by name (an ``App``:
    its ``handle``, see ``seam.seam_entry``). ``lifespan``: what lifespan events run; by
    default the app itself when it has ``run_startup`` / ``run_shutdown`` (an ``App``),
    else nothing.
    """

    def __init__(self, app: SeamTarget, lifespan: Lifespan | None = None) -> None:
        self.app = app
        self._handle = seam_entry(app)
        self.lifespan_target: Lifespan | None = (
            lifespan if lifespan is not None else app if isinstance(app, Lifespan) else None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            # The http scope is served here, not in a method of its own: one coroutine
            # less per request (~2k instructions, callgrind).
            extensions = scope.get("extensions") or {}
            channel = ASGIChannel(receive, send, _ZEROCOPY in extensions)
            try:
                await self._handle(head_from_scope(scope), channel)
            except ClientDisconnect:
                return
            except Exception:
                if not channel.fail():
                    raise  # mid-response: the server closes the connection (seam rule 3)
                error_log.exception("Exception in the app for %s %s", scope["method"], scope["path"])
            else:
                if not channel._started:  # the fields, not the seam's properties: once per request
                    if channel._disconnected:
                        return  # nobody to answer
                    error_log.error("The app returned without a response for %s %s", scope["method"], scope["path"])
                    channel.fail()
            with contextlib.suppress(ClientDisconnect):
                await channel.finish()
        elif kind == "websocket":
            await self.websocket(scope, receive, send)
        elif kind == "lifespan":
            await self.lifespan(receive, send)
        else:
            raise RuntimeError(f"hump_listener serves HTTP and WebSockets, not {kind!r} connections")

    async def websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A ``websocket`` scope: the seam sees an upgrade request whose channel's
        ``websocket`` is an ``ASGIWebSocket``; a refusal before ``accept`` is sent as the
        ``websocket.http.response`` extension when the server offers it, else as a close
        (the server answers 403)."""
        extensions = scope.get("extensions") or {}
        socket = ASGIWebSocket(scope, receive, send, DENIAL in extensions)
        try:
            await self._handle(head_from_scope(scope), ASGIHandshake(socket))
        except ClientDisconnect:
            return
        except Exception:
            error_log.exception("Exception in the app for WebSocket %s", scope["path"])
            await socket.end(failed=True)
            return
        await socket.end(failed=False)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        target = self.lifespan_target
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "lifespan.startup":
                try:
                    if target is not None:
                        await target.run_startup()  # logs its own failure
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": f"{type(exc).__name__}: {exc}"})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif kind == "lifespan.shutdown":
                try:
                    if target is not None:
                        await target.run_shutdown()
                except Exception as exc:  # App.run_shutdown never raises; another target might
                    error_log.exception("lifespan shutdown failed")
                    await send({"type": "lifespan.shutdown.failed", "message": f"{type(exc).__name__}: {exc}"})
                    return
                await send({"type": "lifespan.shutdown.complete"})
                return


def asgi(app: SeamTarget) -> ASGIAdapter:
    """The ASGI 3 application serving ``app`` (an ``App``, or any seam app)."""
    return ASGIAdapter(app)
