"""The seam: the one typed interface between the protocol side and the framework side.

Rule 1: this module imports nothing but the standard library. The protocol side
(``hump_listener.protocol``: h11 and asyncio transports) and the framework side
(``app``, ``context``, ``routing``, ``models`` ...) both import it; neither imports
the other.

Rule 2: the seam is deliberately as small as ASGI's ``(scope, receive, send)``. A server
calls ``await app(head, channel)`` once per request, in a task of its own; the app
answers through ``channel``. ``app`` is a plain ``SeamApp`` callable, or the bound
``handle`` method of an object that serves the seam by name (``App``, whose own
``__call__`` is ASGI 3): ``seam_entry()`` picks it, once, when a server is set up.
There are two producers of ``(RequestHead, Channel)``: the built-in HTTP/1.1 protocol
(``protocol.http11``, with ``protocol.cycle`` as the Channel) and the ASGI adapter
(``asgi``). The in-process test client is not a third one:
it drives the built-in protocol over the in-memory transport (``protocol.memory``), so a
test goes through exactly the code a socket would.

Rule 3: every request gets exactly one response. If the app returns (or raises) without
having started one, the server answers 500 itself; if it raises after starting one,
the server closes the connection.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import IO, NamedTuple, Protocol

__all__ = [
    "Channel",
    "ClientDisconnect",
    "HeaderList",
    "RequestHead",
    "SeamApp",
    "SeamHandler",
    "SeamTarget",
    "WebSocketChannel",
    "WebSocketDisconnect",
    "plain_reply",
    "reason_phrase",
    "seam_entry",
]

#: Header fields as a list of ``(name, value)`` byte pairs; names are lower-case.
HeaderList = list[tuple[bytes, bytes]]


_CLASS_PHRASES = {1: "Informational", 2: "Success", 3: "Redirection", 4: "Client Error", 5: "Server Error"}


def reason_phrase(status: int) -> str:
    """The reason phrase both sides use (status lines, the server's own error bodies, the
    access log, ``HTTPError``'s default detail): the registered phrase, else the phrase of
    the status class (RFC 9110 §15: ``499`` is a "Client Error")."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return _CLASS_PHRASES.get(status // 100, "Unknown")


def plain_reply(status: int) -> tuple[int, HeaderList, bytes]:
    """A plain-text response whose body is the reason phrase, as ``(status, headers, body)``:
    what a server or adapter answers on its own when the app gave nothing (403, 500)."""
    body = reason_phrase(status).encode("ascii")
    return status, [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"%d" % len(body))], body


class ClientDisconnect(Exception):
    """The client went away: reading the body or writing the response is no longer possible."""


class WebSocketDisconnect(ClientDisconnect):
    """The WebSocket connection is closed: raised by ``receive`` and ``send`` alike, so a
    handler that only sends learns of it too. ``code`` is the close code received (1005
    when the close frame had none, 1006 when the connection dropped without one), or the
    one we sent when we closed first; ``reason`` its reason."""

    def __init__(self, code: int = 1000, reason: str = "") -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, reason={self.reason!r})"


class RequestHead(NamedTuple):
    """A parsed request line and header section, as the server received it.

    Framing (Content-Length / Transfer-Encoding), Host and header syntax have already been
    validated by the server; the framework only interprets the values.

    Immutable, like h11's events, but a ``NamedTuple`` rather than a frozen dataclass:
    one is made per request, and a frozen dataclass sets each field through
    ``object.__setattr__`` (callgrind: 11.3k instructions to make one, 3.4k for this).
    """

    method: str
    """Request method, e.g. ``"GET"`` (case preserved as sent)."""
    target: bytes
    """The raw request-target: origin-form (``/a%20b?x=1``) or absolute-form."""
    http_version: str
    """``"1.1"`` or ``"1.0"``."""
    headers: HeaderList
    """Header fields in the order received; names lower-cased once, by the server."""
    client: tuple[str, int] | None
    """Peer address, or ``None`` when unknown."""
    server: tuple[str, int] | None
    """Local address the request arrived on, or ``None`` when unknown."""
    scheme: str = "http"
    """``"http"`` or ``"https"``."""


class Channel(Protocol):
    """One request's way back to the server (request lifetime).

    Exactly one of ``respond`` / ``start`` may be called per request. ``respond`` is the
    fast path: the whole response in one write. ``start`` + ``write`` + ``end`` stream it
    (chunked unless the headers carry a Content-Length). The server adds ``Date`` and
    ``Server`` and handles ``Connection``; the app supplies everything else, including
    ``Content-Length`` for ``respond``.
    """

    @property
    def disconnected(self) -> bool:
        """True once the client has gone away."""

    @property
    def started(self) -> bool:
        """True once a response has been started (``respond`` or ``start``)."""

    async def receive(self) -> bytes:
        """Return the next chunk of the request body, ``b""`` once it is complete.

        The first call answers ``Expect: 100-continue``. Reading is flow-controlled:
        the server stops reading the socket while unconsumed body data piles up.
        Raises ``ClientDisconnect`` if the client goes away mid-body.
        """

    def respond(self, status: int, headers: HeaderList, body: bytes) -> None:
        """Send a complete response at once. ``headers`` must include Content-Length
        (except for 1xx/204/304). For HEAD the caller passes ``b""``."""

    async def start(self, status: int, headers: HeaderList) -> None:
        """Start a streamed response (chunked unless a Content-Length is given)."""

    async def write(self, data: bytes) -> None:
        """Send part of a started response; waits while the transport is paused.

        Raises ``ClientDisconnect`` if the client has gone away."""

    async def end(self) -> None:
        """Finish a started response."""

    async def sendfile(self, file: IO[bytes], offset: int, count: int) -> None:
        """Send ``count`` bytes of ``file`` from ``offset`` as part of a started response,
        zero-copy where the transport allows it."""

    async def wait_closed(self) -> None:
        """Return once this response cannot usefully go on: the client went away (a FIN or
        a reset after the request, an ASGI ``http.disconnect``) or the server is shutting
        down and ends endless responses. A streaming response races its producer against
        it (an SSE generator waiting for its next event learns of it at once); afterwards
        ``end()`` finishes the body cleanly where the connection still stands."""

    @property
    def websocket(self) -> WebSocketChannel | None:
        """The WebSocket this request asks to open (its ``Upgrade`` header names
        ``websocket``), or ``None``. The request is still plain HTTP until the app calls
        ``websocket.accept()``; answering with ``respond`` instead refuses the upgrade."""


class WebSocketChannel(Protocol):
    """One WebSocket connection's way back to the server (connection lifetime).

    Rule 1: before ``accept()`` the request is HTTP: ``rejection`` says whether the
    handshake itself is invalid, and the app answers that (or any refusal) through the
    request's ``Channel``. After ``accept()`` the connection speaks RFC 6455 only.

    Rule 2: messages are ``str`` (text frames) or ``bytes`` (binary frames), whole:
    fragments are reassembled and text is validated as UTF-8 by the server.

    Rule 3: once the connection is closed, by either side or by the network, ``receive``
    and ``send`` raise ``WebSocketDisconnect``; ``close`` is idempotent.
    """

    @property
    def rejection(self) -> tuple[int, HeaderList, bytes] | None:
        """``(status, headers, body)`` to answer instead of a 101 when the handshake is
        invalid (426 for another WebSocket version, 400 for a bad key, ...), else None."""

    @property
    def subprotocols(self) -> list[str]:
        """The subprotocols the client offered (``Sec-WebSocket-Protocol``), in its order."""

    @property
    def accepted(self) -> bool:
        """True once the 101 was sent."""

    @property
    def closed(self) -> bool:
        """True once the connection is closed (or closing): nothing more can be sent."""

    async def accept(self, subprotocol: str | None = None, headers: HeaderList | None = None) -> None:
        """Send the 101 (with ``subprotocol``, which must be one the client offered, and
        any extra ``headers``) and switch the connection to WebSocket."""

    async def receive(self) -> str | bytes:
        """The next message; raises ``WebSocketDisconnect`` once the connection closes."""

    async def send(self, message: str | bytes) -> None:
        """Send one message (text for ``str``, binary for ``bytes``); waits while the
        transport is above its high-water mark. Raises ``WebSocketDisconnect`` if closed."""

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake (a no-op once closed)."""


#: What a server calls once per request.
SeamApp = Callable[[RequestHead, Channel], Awaitable[None]]


class SeamHandler(Protocol):
    """An object that serves the seam through its ``handle`` method instead of being
    called: an ``App``, whose ``__call__`` is the ASGI 3 interface."""

    def handle(self, head: RequestHead, channel: Channel) -> Awaitable[None]:
        """Serve one request (what a server calls)."""


#: What a server, the ASGI adapter or the test client accepts: either kind.
SeamTarget = SeamApp | SeamHandler


def seam_entry(target: SeamTarget) -> SeamApp:
    """The callable to call per request: ``target.handle`` when ``target`` has one (an
    ``App``), else ``target`` itself (a plain seam callable). Resolved once, when a
    server or client is set up, so the request path calls a bound method directly."""
    handle = getattr(target, "handle", None)
    if callable(handle):
        return handle  # type: ignore[no-any-return]
    return target  # type: ignore[return-value]
