"""protocol/ws_upgrade.py on its own: the ``WebSocketOffer``'s handshake on a bare offer
(no transport, no HTTP connection: its link is a stub that records), the upgrade-token
check, and what ``accept()`` refuses. The handshake over real bytes is
tests/test_protocol_websocket.py's."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from ws_helpers import ACCEPT, KEY

from hump_listener.config import ServerConfig
from hump_listener.protocol.ws_upgrade import WebSocketOffer, is_websocket_upgrade
from hump_listener.seam import HeaderList, RequestHead, WebSocketDisconnect


class Link:
    """The offer's ``UpgradeLink``: records the switch, and can say it is too late."""

    def __init__(self, too_late: bool = False) -> None:
        self.too_late = too_late
        self.switched: list[Any] = []

    def switch_protocols(self, successor: Any) -> tuple[bytes, bool] | None:
        self.switched.append(successor)
        return None if self.too_late else (b"", False)


def offer(headers: HeaderList, *, link: Link | None = None, method: str = "GET", **config: Any) -> WebSocketOffer:
    head = RequestHead(method, b"/ws", "1.1", headers, None, None)
    state: Any = SimpleNamespace(config=ServerConfig(**config), loop=None)
    return WebSocketOffer(link or Link(), head, None, None, state)  # type: ignore[arg-type]


def upgrade_headers(**overrides: bytes | None) -> HeaderList:
    fields: dict[str, bytes | None] = {
        "host": b"x",
        "upgrade": b"websocket",
        "connection": b"Upgrade",
        "sec-websocket-key": KEY,
        "sec-websocket-version": b"13",
    }
    fields.update({name.replace("_", "-"): value for name, value in overrides.items()})
    return [(name.encode(), value) for name, value in fields.items() if value is not None]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(b"websocket", True), (b"h2c, websocket", True), (b"websocketx", False), (b"h2c", False), (b"", False)],
)
def test_is_websocket_upgrade_matches_whole_tokens(value: bytes, expected: bool) -> None:
    assert is_websocket_upgrade(value) is expected


def test_a_valid_handshake_prepares_the_101_and_no_rejection() -> None:
    ws = offer(upgrade_headers(sec_websocket_protocol=b"chat, superchat"))
    assert ws.rejection is None
    assert ws._response.status_code == 101
    assert ws._response.headers["Sec-WebSocket-Accept"] == ACCEPT.decode()
    assert ws.subprotocols == ["chat", "superchat"]
    assert not ws.accepted and not ws.closed


def test_another_version_is_426_naming_version_13() -> None:
    rejection = offer(upgrade_headers(sec_websocket_version=b"8")).rejection
    assert rejection is not None
    status, headers, body = rejection
    assert status == 426
    assert (b"sec-websocket-version", b"13") in headers
    assert (b"content-length", b"%d" % len(body)) in headers


@pytest.mark.parametrize("key", [b"short", None])
def test_a_bad_or_missing_key_is_400(key: bytes | None) -> None:
    rejection = offer(upgrade_headers(sec_websocket_key=key)).rejection
    assert rejection is not None and rejection[0] == 400


def test_a_missing_connection_upgrade_token_is_426_naming_the_upgrade() -> None:
    rejection = offer(upgrade_headers(connection=b"keep-alive")).rejection
    assert rejection is not None
    assert rejection[0] == 426 and (b"upgrade", b"websocket") in rejection[1]


def test_the_handshake_runs_once() -> None:
    ws = offer(upgrade_headers())
    assert ws.rejection is None
    prepared = ws._response
    ws._handshake()
    assert ws._response is prepared


def test_deflate_is_offered_only_when_configured() -> None:
    extensions = b"permessage-deflate; client_max_window_bits"
    off = offer(upgrade_headers(sec_websocket_extensions=extensions))
    on = offer(upgrade_headers(sec_websocket_extensions=extensions), ws_per_message_deflate=True)
    assert off.rejection is None and on.rejection is None
    assert "Sec-WebSocket-Extensions" not in off._response.headers
    assert "permessage-deflate" in on._response.headers["Sec-WebSocket-Extensions"]


async def test_accept_refuses_an_invalid_handshake_and_an_unoffered_subprotocol() -> None:
    link = Link()
    with pytest.raises(RuntimeError, match="invalid"):
        await offer(upgrade_headers(sec_websocket_key=b"short"), link=link).accept()
    with pytest.raises(ValueError, match="not offered"):
        await offer(upgrade_headers(sec_websocket_protocol=b"chat"), link=link).accept("other")
    assert link.switched == []  # nothing handed over, nothing written (no transport here)


async def test_accept_when_too_late_is_a_1006_disconnect_and_nothing_is_written() -> None:
    link = Link(too_late=True)
    ws = offer(upgrade_headers(), link=link)
    with pytest.raises(WebSocketDisconnect) as caught:
        await ws.accept()  # the transport is None: a write would raise AttributeError
    assert caught.value.code == 1006
    assert len(link.switched) == 1 and not ws.accepted


@pytest.mark.parametrize("method", ["receive", "send", "close"])
async def test_messages_before_accept_are_a_misuse(method: str) -> None:
    ws = offer(upgrade_headers())
    call = getattr(ws, method)
    with pytest.raises(RuntimeError, match="before accept"):
        await (call("x") if method == "send" else call())
