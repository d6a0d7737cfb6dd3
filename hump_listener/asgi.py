"""ASGI 3 adapter: run a hump_listener app under uvicorn, hypercorn, granian ...

An ``App`` is itself an ASGI 3 application (``App.__call__`` delegates to an
``ASGIAdapter`` made once): one more producer of the seam's ``(RequestHead, Channel)``, like the built-in h11 server:
an HTTP scope becomes a ``RequestHead`` and ``receive``/``send`` become a ``Channel``.
Lifespan events run the app's one startup / shutdown lifecycle (``App.run_startup()`` /
``App.run_shutdown()``: callbacks, the background-event drain), with the App's error
policy. Like the h11 server this module knows nothing of routing or tiny-listener; it
imports only the seam.

    uvicorn http_web:app --workers 4           # the App is an ASGI 3 application

Policy choices, where ASGI leaves room:

- ``respond()`` is synchronous in the seam and ASGI's ``send`` is a coroutine, so the
  response is buffered and sent when the app returns (``App.__call__`` responds as its
  last step, so nothing is delayed); ``start``/``write``/``end`` go out at once.
- Exactly one response: if the app returns (or raises) without responding, the adapter
  answers 500; if it raises after ``start``, the exception propagates so the server closes
  the connection; if it returns after ``start`` without ``end``, the adapter ends it.
- ``http.disconnect`` while reading the body raises ``ClientDisconnect``; a failing
  ``send`` (uvicorn raises an ``OSError`` subclass) is reported the same way. While a
  response streams, ``wait_closed`` listens for ``http.disconnect`` (uvicorn drops the
  sends of a client that left silently), so the stream's generator is ended at once.
- ``sendfile`` uses the ``http.response.zerocopysend`` extension when the server offers
  it, else reads the file in a worker thread, ``SENDFILE_CHUNK`` at a time.
- Lifespan: ``lifespan.startup.failed`` (with ``"ExcType: message"``) when
  ``run_startup()`` raises (it has logged the traceback); shutdown never fails (the
  App logs a failing shutdown callback and runs the others). A seam app without
  ``run_startup`` / ``run_shutdown`` has nothing to run: both complete at once.
- ``websocket`` scopes go to the app as an upgrade request whose channel is an
  ``ASGIHandshake`` (it can only refuse) and whose ``websocket`` is an ``ASGIWebSocket``
  (the server did the handshake, so there is no rejection; a failing ``send`` is a
  ``WebSocketDisconnect`` with 1006, as on the built-in server). A refusal before
  ``accept`` goes out as the ``websocket.http.response`` extension when the server
  offers it, else as a close before accept (the server answers 403). Any other scope
  type is refused by raising, as the ASGI spec asks.
- ``root_path`` is not stripped: routes match ``scope["path"]`` as sent.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import IO, Any, Protocol, runtime_checkable
from urllib.parse import quote

from .seam import ClientDisconnect, HeaderList, RequestHead, SeamTarget, WebSocketDisconnect, plain_reply, seam_entry

__all__ = [
    "DENIAL",
    "SENDFILE_CHUNK",
    "ASGIAdapter",
    "ASGIChannel",
    "ASGIHandshake",
    "ASGIWebSocket",
    "Lifespan",
    "head_from_scope",
]

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
#: Request-body bytes ``wait_closed`` reads ahead of the app before it waits for the app to
#: take them: the built-in server's ``DEFAULT_BODY_HIGH_WATER`` (uvicorn's 64 KiB).
_EARLY_LIMIT = 64 * 1024
_INTERNAL_ERROR = plain_reply(500)


_new_tuple = tuple.__new__

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
    return _new_tuple(RequestHead, (  # tuple.__new__: see protocol/head.py
        scope.get("method", "GET"),
        target,
        scope.get("http_version", "1.1"),
        headers if type(headers) is list else [tuple(h) for h in headers],
        # Servers give tuples (uvicorn, granian): kept as they are; a list is copied.
        client if client is None or type(client) is tuple else (client[0], client[1]),
        None if server is None or server[1] is None else server if type(server) is tuple else (server[0], server[1]),
        _HTTP_SCHEME.get(scheme) or scheme,
    ))


class ASGIChannel:
    """``seam.Channel`` over one request's ASGI ``receive``/``send`` (request lifetime).

    One reader of ``receive`` at a time (``_reading``): the app reading its body
    (``receive``) and, while a response streams, ``wait_closed`` listening for
    ``http.disconnect`` (issue 18 item 6: uvicorn drops the sends of a client that left
    silently, so a stream waiting on its generator would never learn of it). Body chunks
    the listener reads before the app asks are kept for it (``_early``), at most
    ``_EARLY_LIMIT`` bytes: past that the listener waits for the app to take them."""

    __slots__ = (
        "_body_done",
        "_disconnected",
        "_early",
        "_early_size",
        "_ended",
        "_pending",
        "_reading",
        "_receive",
        "_send",
        "_started",
        "_taken",
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
        #: Made on first use (``_lock``): most requests never read their body twice over.
        self._reading: asyncio.Lock | None = None
        #: Body chunks read by ``wait_closed`` before the app asked for them (made on the first).
        self._early: collections.deque[bytes] | None = None
        self._early_size = 0
        #: Set when the app takes early chunks (the listener waits on it past the limit).
        self._taken: asyncio.Event | None = None

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
        while True:
            if self._early:
                chunk = self._early.popleft()
                self._early_size -= len(chunk)
                if self._taken is not None:
                    self._taken.set()
                return chunk
            if self._body_done:
                return b""
            if self._disconnected:
                raise ClientDisconnect()
            async with self._lock():
                if self._early or self._body_done or self._disconnected:
                    continue  # the listener read meanwhile
                taken = self._take(await self._receive())
            if taken is not None:
                return taken

    def _take(self, message: Message) -> bytes | None:
        """One message read: a body chunk (``b""`` only as the last), else None (an empty
        non-final chunk, a disconnect: ``disconnected`` is set)."""
        kind = message["type"]
        if kind == "http.request":
            body: bytes = message.get("body", b"")
            if not message.get("more_body", False):
                self._body_done = True
                return body
            return body or None  # an empty non-final chunk is not the end: read on
        if kind == "http.disconnect":
            self._mark_gone()
        return None

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
        """Listen for ``http.disconnect`` (the class docstring): returns once the client
        has gone. A body chunk read meanwhile is kept for the app's ``receive``."""
        while not self._disconnected:
            if self._early_size > _EARLY_LIMIT:
                taken = self._taken = asyncio.Event()
                await taken.wait()
                self._taken = None
                continue
            async with self._lock():
                if self._disconnected:
                    return
                chunk = self._take(await self._receive())
            if chunk:
                if self._early is None:
                    self._early = collections.deque()
                self._early.append(chunk)
                self._early_size += len(chunk)

    # -- adapter side --------------------------------------------------------------------

    def _lock(self) -> asyncio.Lock:
        """The one-reader lock (the class docstring), made on first use."""
        if self._reading is None:
            self._reading = asyncio.Lock()
        return self._reading

    def _mark_gone(self) -> None:
        self._disconnected = True

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
        if self._disconnected:
            return  # nobody to finish it for (uvicorn would drop the message)
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


# ---------------------------------------------------------------------------------------
# WebSocket scopes: websocket.* messages as the seam's WebSocketChannel
# ---------------------------------------------------------------------------------------

#: The ASGI extension that lets an app refuse a handshake with an HTTP response.
DENIAL = "websocket.http.response"


class ASGIHandshake:
    """``seam.Channel`` for the request of an ASGI ``websocket`` scope (request lifetime):
    it can only refuse the handshake (``respond``, sent once the app returns); its
    ``websocket`` is the connection."""

    def __init__(self, socket: ASGIWebSocket) -> None:
        self._socket = socket

    @property
    def websocket(self) -> ASGIWebSocket:
        return self._socket

    @property
    def disconnected(self) -> bool:
        return self._socket.closed

    @property
    def started(self) -> bool:
        return self._socket.accepted or self._socket.refusal is not None

    async def receive(self) -> bytes:
        return b""  # a handshake has no body

    async def wait_closed(self) -> None:
        raise RuntimeError("a WebSocket handshake has no streamed response to wait on")

    def respond(self, status: int, headers: HeaderList, body: bytes) -> None:
        if self.started:
            raise RuntimeError("a response was already started for this request")
        self._socket.refusal = (status, headers, body)

    async def start(self, status: int, headers: HeaderList) -> None:
        raise RuntimeError("a WebSocket handshake is refused with respond(), not a stream")

    async def write(self, data: bytes) -> None:
        raise RuntimeError("write() outside a started response")

    async def end(self) -> None:
        pass

    async def sendfile(self, file: IO[bytes], offset: int, count: int) -> None:
        raise RuntimeError("sendfile() on a WebSocket handshake")


class ASGIWebSocket:
    """``seam.WebSocketChannel`` over one ASGI ``websocket`` scope (connection lifetime).
    The ASGI server has validated the handshake, so there is never a ``rejection``."""

    def __init__(self, scope: Scope, receive: Receive, send: Send, denial: bool) -> None:
        self._scope = scope
        self._receive = receive
        self._send = send
        self._denial = denial  # the server offers websocket.http.response
        self._connected = False  # websocket.connect received
        self._accepted = False
        #: The HTTP response refusing the handshake, once the app gave one.
        self.refusal: tuple[int, HeaderList, bytes] | None = None
        #: Why receive/send now raise (the close received, or the one sent).
        self._closed_by: WebSocketDisconnect | None = None

    # -- seam.WebSocketChannel -----------------------------------------------------------

    @property
    def rejection(self) -> None:
        return None

    @property
    def subprotocols(self) -> list[str]:
        return list(self._scope.get("subprotocols") or ())

    @property
    def accepted(self) -> bool:
        return self._accepted

    @property
    def closed(self) -> bool:
        return self._closed_by is not None

    async def _connect(self) -> None:
        if not self._connected:
            message = await self._receive()
            if message["type"] != "websocket.connect":
                self._closed_by = WebSocketDisconnect(message.get("code", 1006), message.get("reason") or "")
                raise WebSocketDisconnect(self._closed_by.code, self._closed_by.reason)
            self._connected = True

    async def accept(self, subprotocol: str | None = None, headers: HeaderList | None = None) -> None:
        if self._accepted or self.refusal is not None:
            raise RuntimeError("the WebSocket is already accepted or refused")
        if subprotocol is not None and subprotocol not in self.subprotocols:
            raise ValueError(f"subprotocol {subprotocol!r} was not offered by the client: {self.subprotocols}")
        await self._connect()
        await self._emit({"type": "websocket.accept", "subprotocol": subprotocol, "headers": list(headers or ())})
        self._accepted = True

    async def receive(self) -> str | bytes:
        if not self._accepted:
            raise RuntimeError("receive() before accept()")
        closed = self._closed_by
        if closed is not None:
            raise WebSocketDisconnect(closed.code, closed.reason)
        while True:
            message = await self._receive()
            kind = message["type"]
            if kind == "websocket.receive":
                text = message.get("text")
                if text is not None:
                    return str(text)
                return bytes(message.get("bytes") or b"")
            if kind == "websocket.disconnect":
                self._closed_by = WebSocketDisconnect(message.get("code", 1005), message.get("reason") or "")
                raise WebSocketDisconnect(self._closed_by.code, self._closed_by.reason)

    async def send(self, message: str | bytes) -> None:
        if not self._accepted:
            raise RuntimeError("send() before accept()")
        closed = self._closed_by
        if closed is not None:
            raise WebSocketDisconnect(closed.code, closed.reason)
        if isinstance(message, str):
            await self._emit({"type": "websocket.send", "text": message})
        else:
            await self._emit({"type": "websocket.send", "bytes": bytes(message)})

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if not self._accepted:
            raise RuntimeError("close() before accept(): refuse the handshake with an HTTP response instead")
        if self._closed_by is None:
            self._closed_by = WebSocketDisconnect(code, reason)
            with contextlib.suppress(WebSocketDisconnect):
                await self._emit({"type": "websocket.close", "code": code, "reason": reason})

    async def _emit(self, message: Message) -> None:
        try:
            await self._send(message)
        except OSError as exc:  # uvicorn's ClientDisconnected is an OSError
            if self._closed_by is None:
                self._closed_by = WebSocketDisconnect(1006, "")
            raise WebSocketDisconnect(self._closed_by.code, self._closed_by.reason) from exc

    async def end(self, failed: bool) -> None:
        """The app returned (or raised): send a buffered refusal, or close what is open."""
        with contextlib.suppress(WebSocketDisconnect):
            if self._accepted:
                if self._closed_by is None:
                    await self.close(1011 if failed else 1000)
                return
            refusal = self.refusal or plain_reply(500 if failed else 403)
            status, headers, body = refusal
            if self._denial:
                await self._connect()
                await self._emit({"type": "websocket.http.response.start", "status": status, "headers": headers})
                await self._emit({"type": "websocket.http.response.body", "body": body})
            else:  # the server answers a close before accept with 403
                await self._emit({"type": "websocket.close", "code": 1008, "reason": ""})


# ---------------------------------------------------------------------------------------
# The adapter
# ---------------------------------------------------------------------------------------


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
            try:  # (not contextlib.suppress: ~0.3 us per request)
                await channel.finish()
            except ClientDisconnect:
                return
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
