"""ASGI ``websocket`` scopes on the seam: the ``asgi`` adapter's WebSocket half.

``ASGIAdapter.websocket`` hands the app an upgrade request whose channel is an
``ASGIHandshake`` (it can only refuse, with ``respond``) and whose ``websocket`` is an
``ASGIWebSocket``, the seam's ``WebSocketChannel`` over ASGI's ``websocket.*`` messages.
The ASGI server did the handshake, so there is never a ``rejection``. A refusal before
``accept`` goes out as the ``websocket.http.response`` extension (``DENIAL``) when the
server offers it, else as a close before accept (the server answers 403). A failing
``send`` (uvicorn's ClientDisconnected is an ``OSError``) is a ``WebSocketDisconnect``
(1006), as on the built-in server. Like ``asgi.py``, this imports only the seam.
"""

from __future__ import annotations

import contextlib
from typing import IO, TYPE_CHECKING

from .seam import HeaderList, WebSocketDisconnect, plain_reply

if TYPE_CHECKING:
    from .asgi import Message, Receive, Scope, Send

__all__ = ["DENIAL", "ASGIHandshake", "ASGIWebSocket"]

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
