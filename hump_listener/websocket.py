"""WebSocket: the per-connection context a ``WS:/path`` handler receives.

A WebSocket connection is one tiny-listener ``Context`` for as long as it is open: the
handler's ``Depends`` are cached per connection, ``ws.trigger_event(...)`` fires events in
it, and it is dropped (with every event it held) when the connection ends. It talks to the
server only through the seam's ``WebSocketChannel``; it never sees a frame or a socket.

    @app.websocket("/ws/echo")
    async def echo(ws: WebSocket) -> None:
        await ws.accept()
        async for message in ws:          # str for text frames, bytes for binary
            await ws.send(message)

Rules:

1. Before ``accept()`` the request is still HTTP: ``ws.deny(status, body)`` or raising
   ``HTTPError`` answers it with that response instead of a 101; a handler that returns
   without accepting is answered 403, one that raises 500. The access line tells the
   status that was sent (the 101, or the refusal's), told to ``on_answer`` as it is sent.
2. After ``accept()``: a peer that goes away raises ``WebSocketDisconnect(code, reason)``
   from ``receive*`` and from ``send*`` alike; ``async for`` ends quietly instead. A handler
   that returns leaves the connection closed with 1000, one that raises with 1011 (after
   the ``on_error`` hooks, else a traceback on ``hump_listener.error``: ``Hooks.report``).
3. ``receive_text`` / ``receive_bytes`` are strict: a message of the other kind closes the
   connection with 1003 (unsupported data) and raises ``WebSocketDisconnect``.
"""

from __future__ import annotations

import enum
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

from .context import ConnectionContext
from .endpoints import call_plan
from .errors import HTTPError
from .models import Request, Response, dump_json
from .replies import error_response
from .seam import Channel, HeaderList, WebSocketChannel, WebSocketDisconnect

if TYPE_CHECKING:
    from tiny_listener import Listener

    from .hooks import Hooks

error_log = logging.getLogger("hump_listener.error")

__all__ = ["WebSocket", "WebSocketDisconnect", "WebSocketState", "close_code_for", "serve"]

_UNSUPPORTED_DATA = 1003
_NORMAL = 1000


class WebSocketState(enum.Enum):
    """Where a WebSocket connection is, as Starlette names it."""

    CONNECTING = 0
    CONNECTED = 1
    DISCONNECTED = 2


class WebSocket(ConnectionContext):
    """One WebSocket connection (connection lifetime), injected as ``ws: WebSocket``."""

    # Per-connection state, set by the app right after construction / routing.
    request: Request
    """The handshake request: path, query, headers, cookies, client (after trusted proxy
    headers) and scheme (``ws`` / ``wss``)."""
    channel: WebSocketChannel
    http: Channel
    #: A connection lives long: events it fired are forgotten as they finish.
    keep_done_events = False

    def __init__(self, listener: Listener[Any], cid: str, scope: dict[str, Any] | None = None) -> None:
        super().__init__(listener, cid, scope)
        self._denied = False
        #: Told the status of the handshake's answer as it is sent: 101, or the refusal's
        #: (the request path logs the access line with it).
        self.on_answer: Callable[[int], None] | None = None

    # -- state ---------------------------------------------------------------------------

    @property
    def client_state(self) -> WebSocketState:
        """CONNECTING before the 101, CONNECTED while open, DISCONNECTED once closed (by
        either side) or refused."""
        channel = self.channel
        if self._denied or channel.closed:
            return WebSocketState.DISCONNECTED
        return WebSocketState.CONNECTED if channel.accepted else WebSocketState.CONNECTING

    @property
    def accepted(self) -> bool:
        """The 101 was sent (``accept()`` ran); stays True after the connection closed."""
        return self.channel.accepted

    @property
    def subprotocols(self) -> list[str]:
        """The subprotocols the client offered, in its order."""
        return self.channel.subprotocols

    # -- the handshake ---------------------------------------------------------------------

    async def accept(self, subprotocol: str | None = None, headers: Mapping[str, str] | None = None) -> None:
        """Send the 101 and open the connection; ``subprotocol`` must be one the client
        offered (``ws.subprotocols``); ``headers`` go on the 101."""
        if self._denied:
            raise RuntimeError("the WebSocket was already refused with an HTTP response")
        extra: HeaderList = [
            (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in (headers or {}).items()
        ]
        await self.channel.accept(subprotocol, extra)
        self._answered(101)

    async def deny(
        self, status: int = 403, body: str | bytes = b"", headers: Mapping[str, str] | None = None
    ) -> None:
        """Refuse the handshake with an HTTP response instead of a 101 (before ``accept``)."""
        if self.channel.accepted:
            raise RuntimeError("deny() after accept(): close the connection instead")
        if self._denied:
            raise RuntimeError("the WebSocket was already refused")
        await self._refuse(Response(body, status, headers))

    async def _refuse(self, response: Response) -> None:
        """Answer the handshake with ``response`` instead of a 101; its status is the one
        the access line tells."""
        self._denied = True
        await response.send(self.http, False)
        self._answered(response.status)

    def _answered(self, status: int) -> None:
        on_answer = self.on_answer
        if on_answer is not None:
            on_answer(status)

    # -- receiving ---------------------------------------------------------------------------

    async def receive(self) -> str | bytes:
        """The next message: ``str`` for a text frame, ``bytes`` for binary."""
        return await self.channel.receive()

    async def receive_text(self) -> str:
        """The next message, which must be text: a binary one closes the connection with 1003
        and raises ``WebSocketDisconnect``."""
        message = await self.channel.receive()
        if not isinstance(message, str):
            await self._unsupported("expected a text message")
        assert isinstance(message, str)
        return message

    async def receive_bytes(self) -> bytes:
        """The next message, which must be binary: a text one closes the connection with 1003
        and raises ``WebSocketDisconnect``."""
        message = await self.channel.receive()
        if not isinstance(message, bytes):
            await self._unsupported("expected a binary message")
        assert isinstance(message, bytes)
        return message

    async def receive_json(self) -> Any:
        """The next message parsed as JSON (text or binary); invalid JSON closes with
        1003 and raises ``WebSocketDisconnect``."""
        message = await self.channel.receive()
        try:
            return json.loads(message)
        except ValueError:
            await self._unsupported("invalid JSON")

    async def _unsupported(self, reason: str) -> None:
        await self.channel.close(_UNSUPPORTED_DATA, reason)
        raise WebSocketDisconnect(_UNSUPPORTED_DATA, reason)

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        return self.iter_messages()

    async def iter_messages(self) -> AsyncIterator[str | bytes]:
        """Every message until the connection closes; ends quietly on any close."""
        receive = self.channel.receive
        try:
            while True:
                yield await receive()
        except WebSocketDisconnect:
            return

    async def iter_text(self) -> AsyncIterator[str]:
        """Every message as ``receive_text()`` gives it; ends quietly when the connection
        closes."""
        try:
            while True:
                yield await self.receive_text()
        except WebSocketDisconnect:
            return

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        """Every message as ``receive_bytes()`` gives it; ends quietly when the connection
        closes."""
        try:
            while True:
                yield await self.receive_bytes()
        except WebSocketDisconnect:
            return

    async def iter_json(self) -> AsyncIterator[Any]:
        """Every message as ``receive_json()`` gives it; ends quietly when the connection
        closes."""
        try:
            while True:
                yield await self.receive_json()
        except WebSocketDisconnect:
            return

    # -- sending ---------------------------------------------------------------------------

    async def send(self, message: str | bytes) -> None:
        """Send a text (``str``) or binary (``bytes``) message; waits while the client is
        slow to read. Raises ``WebSocketDisconnect`` if the connection is closed."""
        await self.channel.send(message)

    async def send_text(self, text: str) -> None:
        """Send ``text`` in a text frame (``WebSocketDisconnect`` if the connection is closed)."""
        await self.channel.send(text)

    async def send_bytes(self, data: bytes) -> None:
        """Send ``data`` in a binary frame (``WebSocketDisconnect`` if the connection is
        closed)."""
        await self.channel.send(bytes(data))

    async def send_json(self, data: Any, mode: str = "text") -> None:
        """Send ``data`` as JSON in a text frame (``mode="binary"``: a binary frame)."""
        encoded = dump_json(data)
        await self.channel.send(encoded.decode("utf-8") if mode == "text" else encoded)

    async def close(self, code: int = _NORMAL, reason: str = "") -> None:
        """Close the connection (the closing handshake finishes in the background)."""
        if not self.channel.accepted:
            # Starlette's rule: closing before accept refuses the handshake with a 403.
            if not self._denied:
                await self.deny(403)
            return
        await self.channel.close(code, reason)

    def __repr__(self) -> str:
        req = getattr(self, "request", None)
        return f"{type(self).__name__}(cid={self.cid}, {req.path if req else '-'})"


def close_code_for(exc: HTTPError) -> int:
    """The close code for an ``HTTPError`` raised after ``accept``: 1008 (policy violation)
    for a 4xx, 1011 (internal error) otherwise."""
    return 1008 if 400 <= exc.status < 500 else 1011


async def serve(ctx: WebSocket, hooks: Hooks) -> None:
    """Run the handler of ``ctx.endpoint`` for one WebSocket connection (rules 1 and 2),
    with the app's hooks around it; ``ctx`` comes from the request path with its
    ``request``, channels, route and ``on_answer``. The connection's context is held
    while the handler runs and dropped, with its events, after."""
    channel = ctx.channel
    rejection = channel.rejection
    if rejection is not None:  # an invalid handshake: answered as HTTP, no handler
        status, headers, body = rejection
        ctx._denied = True
        ctx.http.respond(status, headers, body)
        ctx._answered(status)
        return
    endpoint = ctx.endpoint
    assert endpoint is not None  # routed by the request path
    ctx.hold()
    failed = False
    try:
        try:
            if hooks.before:
                await hooks.run_before(ctx.event)
            await call_plan(endpoint.call, endpoint.plan, ctx, ctx.params)
            if hooks.after:
                await hooks.run_after(ctx.event)
        except WebSocketDisconnect as exc:
            error_log.debug("WebSocket %s closed by the client (%d)", ctx.request.path, exc.code)
        except HTTPError as exc:
            if channel.accepted:
                await channel.close(close_code_for(exc), exc.detail[:120])
            elif not ctx._denied:
                await ctx._refuse(error_response(exc))
        except Exception as exc:
            failed = True
            await hooks.report(ctx.event, exc, f"WebSocket handler {endpoint.qualname} for {ctx.request.path}")
            if not channel.accepted and not ctx._denied:
                await ctx._refuse(Response("Internal Server Error", 500))
        if not channel.accepted:
            if not ctx._denied:  # returned without accepting: refused, as Starlette does
                await ctx._refuse(Response(b"", 403))
        elif not channel.closed:
            await channel.close(1011 if failed else _NORMAL)
    finally:
        event = ctx._event
        if event is not None and event.auto_done:
            event.done()
        ctx.release()
