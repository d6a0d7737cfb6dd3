"""The test client's WebSocket sessions (``testing.py``'s policy 6), over the in-memory transport.

    with TestClient(app) as client, client.websocket_connect("/ws/echo") as ws:
        ws.send_text("hi")
        assert ws.receive_text() == "hi"

``AsyncTestClient.websocket_connect`` opens the connection through the server's own HTTP/1.1
and WebSocket protocols; the client's end is an ``AsyncWebSocketSession`` whose frames are
made and parsed by the ``websockets`` package's sans-I/O ``ClientProtocol``, so the server is
checked by an independent implementation, as h11 checks its HTTP. ``WebSocketSession`` is
its blocking twin for ``TestClient``. A refused handshake raises ``WebSocketRejected``
with the HTTP response.
"""

from __future__ import annotations

import asyncio
import json as json_module
from typing import TYPE_CHECKING, Any

from .models import Headers

if TYPE_CHECKING:
    from .protocol.memory import MemoryTransport
    from .testing import AsyncTestClient, TestClient, TestResponse

__all__ = ["AsyncWebSocketSession", "WebSocketRejected", "WebSocketSession"]


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
                    from .testing import TestResponse  # testing imports this module

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
        from .seam import WebSocketDisconnect

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
