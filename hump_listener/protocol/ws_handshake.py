"""The WebSocket opening handshake (RFC 6455 §4), and the ``websockets`` package bound once.

``Handshake`` is the half of ``websocket.WebSocketProtocol`` that runs while the request is
still HTTP (request lifetime): it turns the parsed ``RequestHead`` into websockets'
``Request``, lets websockets' sans-I/O ``ServerProtocol`` validate it and prepare the 101,
and keeps either that response or the ``rejection`` the app answers over HTTP.

Rule (the protocol's rule 1): the handshake of a request whose ``Upgrade`` names
``websocket`` is validated in full before the app's handler runs: GET on HTTP/1.1, the
Upgrade and Connection tokens, a 16-byte base64 key, and version 13 (else 426 with
``Sec-WebSocket-Version: 13``, RFC 6455 §4.4).

websockets is a dependency, imported lazily: nothing here imports it before the first upgrade
(a broken install says ``pip install websockets``) (``load_websockets``, ``bind_lib``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hump_listener.config import ServerConfig
    from hump_listener.seam import HeaderList, RequestHead

__all__ = [
    "EXTRA_HINT",
    "QUIET",
    "Handshake",
    "Lib",
    "bind_lib",
    "is_websocket_upgrade",
    "load_websockets",
    "open_state",
]

logger = logging.getLogger("hump_listener.error")

EXTRA_HINT = "WebSockets need the websockets package: pip install websockets"


def load_websockets() -> Any:
    """The ``websockets`` package, or a RuntimeError naming the extra that installs it."""
    try:
        import websockets.frames
        import websockets.server
    except ImportError as exc:  # pragma: no cover - exercised in a venv without it
        raise RuntimeError(EXTRA_HINT) from exc
    return websockets


class Lib:
    """The names of websockets used per frame, bound once by ``_bind`` on the first
    handshake: the package is an optional dependency, so this module cannot import it at
    import time, and a ``from websockets... import`` statement in a hot function costs about
    a microsecond per call even once the module is loaded (it goes through importlib's
    ``_handle_fromlist``); a class attribute costs tens of nanoseconds."""

    bound = False
    OPEN: Any = None
    TEXT: Any = None
    BINARY: Any = None
    CONT: Any = None
    PONG: Any = None
    CLOSE: Any = None
    ServerProtocol: Any = None
    #: websockets' own unmasking: the C speedup, or its pure-Python fallback if that
    #: was not built, so both paths always unmask with the same function.
    apply_mask: Any = None
    #: Recognising that websockets' parser is at a frame boundary (``_at_frame_boundary``)
    #: means recognising its generators; None if this version's look different, which
    #: turns the fast read path off (everything then goes through websockets).
    parse_code: Any = None
    at_eof_code: Any = None


def bind_lib() -> type[Lib]:
    if not Lib.bound:
        load_websockets()
        from websockets import frames, protocol, server, streams

        lib = Lib
        lib.OPEN, lib.ServerProtocol = protocol.OPEN, server.ServerProtocol
        lib.TEXT, lib.BINARY, lib.CONT = frames.TEXT, frames.BINARY, frames.CONT
        lib.PONG, lib.CLOSE = frames.PONG, frames.CLOSE
        lib.apply_mask = frames.apply_mask  # type: ignore[attr-defined]
        parse = getattr(protocol.Protocol, "parse", None)
        at_eof = getattr(streams.StreamReader, "at_eof", None)
        lib.parse_code = getattr(parse, "__code__", None)
        lib.at_eof_code = getattr(at_eof, "__code__", None)
        lib.bound = True
    return Lib


def open_state() -> Any:
    return bind_lib().OPEN


def is_websocket_upgrade(upgrade: bytes | None) -> bool:
    """The ``Upgrade`` header (lower-cased) names the ``websocket`` protocol."""
    return upgrade is not None and b"websocket" in (token.strip() for token in upgrade.split(b","))


class _QuietLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """websockets logs every open and close at INFO on its own loggers; ours say what
    matters, so only its warnings and errors pass, on ``hump_listener.error``."""

    def isEnabledFor(self, level: int) -> bool:
        return level >= logging.WARNING and self.logger.isEnabledFor(level)

QUIET = _QuietLogger(logger, {})


class Handshake:
    """Validating the upgrade request and preparing the 101 (a mixin of
    ``WebSocketProtocol``, whose per-connection state it fills in: the websockets protocol
    object, the prepared response or the rejection, the subprotocols offered)."""

    config: ServerConfig
    _head: RequestHead
    _ws: Any
    _checked: bool
    _rejection: tuple[int, HeaderList, bytes] | None
    _response: Any
    _offered: list[str]

    def _handshake(self) -> None:
        if self._checked:
            return
        self._checked = True
        lib = bind_lib()
        from websockets.datastructures import Headers
        from websockets.http11 import Request

        head, config = self._head, self.config
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
        ws = lib.ServerProtocol(
            extensions=extensions,
            max_size=config.ws_max_message_size,
            logger=QUIET,
        )
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
        self._ws = ws
        self._response = response

    @property
    def rejection(self) -> tuple[int, HeaderList, bytes] | None:
        self._handshake()
        return self._rejection

    @property
    def subprotocols(self) -> list[str]:
        self._handshake()
        return list(self._offered)
