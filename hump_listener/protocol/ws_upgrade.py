"""The WebSocket opening handshake (RFC 6455 §4): ``WebSocketOffer`` (request lifetime).

A request whose ``Upgrade`` names ``websocket`` carries an offer: the cycle makes it and
the app finds it as ``channel.websocket`` (``seam.WebSocketChannel``). Until ``accept()``
the request is plain HTTP; ``accept()`` writes the 101 and builds the connection that
speaks RFC 6455 from then on (``websocket.WebSocketProtocol``), handing it the transport
and its flow control, never the HTTP connection or the request, as uvicorn's
``h11_impl`` hands its WebSocket protocol the transport. The offer's ``receive``,
``send`` and ``close`` are then the connection's.

The offer talks to its request through one narrow link, ``UpgradeLink`` (the cycle):
``switch_protocols(successor)``, which ends the request as HTTP and lets the HTTP
connection hand over the transport and its place among the server's connections.

Rule (the WebSocket protocol's rule 1): the handshake of a request whose ``Upgrade``
names ``websocket`` is validated in full before the app's handler runs: GET on HTTP/1.1,
the Upgrade and Connection tokens, a 16-byte base64 key, and version 13 (else 426 with
``Sec-WebSocket-Version: 13``, RFC 6455 §4.4); an invalid one is the ``rejection`` the app
answers over HTTP. websockets' sans-I/O ``ServerProtocol`` validates it and prepares the
101.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from hump_listener.protocol.websocket import WebSocketProtocol
from hump_listener.protocol.ws_frames import QUIET, bind_lib
from hump_listener.seam import HeaderList, RequestHead, WebSocketDisconnect

if TYPE_CHECKING:
    import asyncio

    from hump_listener.protocol.flow_control import FlowControl
    from hump_listener.protocol.state import Connection, ServerState

__all__ = ["UpgradeLink", "WebSocketOffer", "is_websocket_upgrade"]

_ABNORMAL = 1006


def is_websocket_upgrade(upgrade: bytes) -> bool:
    """The ``Upgrade`` header (lower-cased) names the ``websocket`` protocol."""
    return b"websocket" in (token.strip() for token in upgrade.split(b","))


class UpgradeLink(Protocol):
    """What an offer asks of its request (``cycle.RequestCycle``), and nothing else."""

    def switch_protocols(self, successor: Connection) -> tuple[bytes, bool] | None:
        """End the request as HTTP and hand the connection to ``successor``: the bytes read
        past the head and whether the client half-closed; None if it is too late (a
        response started, the client or the connection gone)."""


class WebSocketOffer:
    """An ``Upgrade: websocket`` request's offer (request lifetime); implements
    ``seam.WebSocketChannel``, through its connection once accepted."""

    #: The fast path (``ws_assembler`` rule 4) for the connection this offer builds; tests
    #: turn it off on an offer to compare with websockets alone.
    fast_path = True

    def __init__(
        self, link: UpgradeLink, head: RequestHead, transport: asyncio.Transport, flow: FlowControl,
        state: ServerState,
    ) -> None:
        self._link = link
        self._head = head
        self._transport = transport
        self._flow = flow
        self._state = state
        # The handshake, validated on first use (rule above).
        self._checked = False
        self._handshake_ws: Any = None  # the websockets protocol that validated it
        self._response: Any = None  # the 101 websockets prepared
        self._rejection: tuple[int, HeaderList, bytes] | None = None
        self._offered: list[str] = []
        #: The connection ``accept()`` built.
        self.connection: WebSocketProtocol | None = None

    # -- the handshake ------------------------------------------------------------------------

    @property
    def rejection(self) -> tuple[int, HeaderList, bytes] | None:
        self._handshake()
        return self._rejection

    @property
    def subprotocols(self) -> list[str]:
        self._handshake()
        return list(self._offered)

    def _handshake(self) -> None:
        if self._checked:
            return
        self._checked = True
        lib = bind_lib()
        from websockets.datastructures import Headers
        from websockets.http11 import Request

        head, config = self._head, self._state.config
        headers = Headers()
        for name, value in head.headers:
            headers[name.decode("latin-1")] = value.decode("latin-1")
        self._offered = [
            token.strip()
            for value in headers.get_all("Sec-WebSocket-Protocol")
            for token in value.split(",")
            if token.strip()
        ]
        if headers.get_all("Sec-WebSocket-Version") != ["13"]:
            body = b"Unsupported WebSocket version: this server speaks version 13.\n"
            self._rejection = (
                426,
                [
                    (b"sec-websocket-version", b"13"),
                    (b"upgrade", b"websocket"),
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", b"%d" % len(body)),
                ],
                body,
            )
            return
        extensions = None
        if config.ws_per_message_deflate:
            from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory

            bits = config.ws_deflate_window_bits
            extensions = [
                ServerPerMessageDeflateFactory(
                    server_max_window_bits=bits,
                    client_max_window_bits=bits,
                    compress_settings={"memLevel": config.ws_deflate_mem_level},
                )
            ]
        ws = lib.ServerProtocol(extensions=extensions, max_size=config.ws_max_message_size, logger=QUIET)
        request = Request(
            path=head.target.decode("latin-1"),
            headers=headers,
            method=head.method,
            protocol="HTTP/" + head.http_version,
        )
        response = ws.accept(request)
        if response.status_code != 101:
            body = bytes(response.body)
            out: HeaderList = [(b"content-type", b"text/plain; charset=utf-8")]
            for name, value in response.headers.raw_items():
                if name.lower() in ("allow", "upgrade"):
                    out.append((name.lower().encode("latin-1"), value.encode("latin-1")))
            out.append((b"content-length", b"%d" % len(body)))
            self._rejection = (response.status_code, out, body)
            return
        self._handshake_ws = ws
        self._response = response

    # -- accepting ----------------------------------------------------------------------------

    @property
    def accepted(self) -> bool:
        return self.connection is not None

    @property
    def closed(self) -> bool:
        return self.connection is not None and self.connection.closed

    async def accept(self, subprotocol: str | None = None, headers: HeaderList | None = None) -> None:
        self._handshake()
        if self.connection is not None:
            raise RuntimeError("the WebSocket is already accepted")
        if self._rejection is not None:
            raise RuntimeError(f"the WebSocket handshake is invalid ({self._rejection[0]}): answer the rejection")
        response, config = self._response, self._state.config
        if subprotocol is not None:
            if subprotocol not in self._offered:
                raise ValueError(f"subprotocol {subprotocol!r} was not offered by the client: {self._offered}")
            response.headers["Sec-WebSocket-Protocol"] = subprotocol
        for name, value in headers or ():
            text_name, text_value = name.decode("latin-1"), value.decode("latin-1")
            if any(c in text_name + text_value for c in "\r\n"):
                raise ValueError("CR or LF in a response header")
            response.headers[text_name] = text_value
        if config.server_header is not None:
            response.headers["Server"] = config.server_header
        # The handshake's protocol object read no bytes (we parsed the request), so frames
        # go to a fresh one in state OPEN, with the extensions the handshake negotiated:
        # the sans-I/O way to take over after a handshake of one's own.
        lib = bind_lib()
        ws = lib.ServerProtocol(state=lib.OPEN, max_size=config.ws_max_message_size, logger=QUIET)
        ws.extensions = self._handshake_ws.extensions
        ws.subprotocol = subprotocol
        connection = WebSocketProtocol(self._transport, self._flow, self._state, self._head.client, ws, self.fast_path)
        handover = self._link.switch_protocols(connection)
        if handover is None:
            raise WebSocketDisconnect(_ABNORMAL, "the connection is no longer open")
        self.connection = connection
        self._transport.write(response.serialize())
        connection.start(*handover)

    def finish(self, failed: bool) -> None:
        """The handler returned (``failed``: it raised): the connection closes if still
        open (the WebSocket protocol's rule 7)."""
        if self.connection is not None:
            self.connection.finish(failed)

    # -- after accept: the connection's (plain methods returning its coroutines: no extra
    #    frame per message) -------------------------------------------------------------------

    def receive(self) -> Coroutine[Any, Any, str | bytes]:
        if self.connection is None:
            return _refuse("receive() before accept()")
        return self.connection.receive()

    def send(self, message: str | bytes) -> Coroutine[Any, Any, None]:
        if self.connection is None:
            return _refuse("send() before accept()")
        return self.connection.send(message)

    def close(self, code: int = 1000, reason: str = "") -> Coroutine[Any, Any, None]:
        if self.connection is None:
            return _refuse("close() before accept(): refuse the handshake with an HTTP response instead")
        return self.connection.close(code, reason)


async def _refuse(misuse: str) -> Any:
    """A coroutine that raises when awaited, as the connection's own would."""
    raise RuntimeError(misuse)
