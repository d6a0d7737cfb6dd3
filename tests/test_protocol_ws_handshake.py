"""protocol/ws_handshake.py on its own: the ``Handshake`` mixin on a bare object (no
transport, no HTTP connection), the upgrade-token check, and websockets bound once.
The handshake over real bytes is tests/test_protocol_websocket.py's."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from ws_helpers import ACCEPT, KEY

from hump_listener.config import ServerConfig
from hump_listener.protocol.ws_handshake import QUIET, Handshake, bind_lib, is_websocket_upgrade, open_state
from hump_listener.seam import HeaderList, RequestHead


class Bare(Handshake):
    """The state ``WebSocketProtocol.__init__`` gives the mixin, and nothing else."""

    def __init__(self, headers: HeaderList, *, method: str = "GET", version: str = "1.1", **config: Any) -> None:
        self.config = ServerConfig(**config)
        self._head = RequestHead(method, b"/ws", version, headers, None, None)
        self._ws = None
        self._checked = False
        self._rejection = None
        self._response = None
        self._offered = []


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
    [(b"websocket", True), (b"h2c, websocket", True), (b"websocketx", False), (b"h2c", False), (None, False)],
)
def test_is_websocket_upgrade_matches_whole_tokens(value: bytes | None, expected: bool) -> None:
    assert is_websocket_upgrade(value) is expected


def test_a_valid_handshake_prepares_the_101_and_no_rejection() -> None:
    hs = Bare(upgrade_headers(sec_websocket_protocol=b"chat, superchat"))
    assert hs.rejection is None
    assert hs._response.status_code == 101
    assert hs._response.headers["Sec-WebSocket-Accept"] == ACCEPT.decode()
    assert hs.subprotocols == ["chat", "superchat"]


def test_another_version_is_426_naming_version_13() -> None:
    rejection = Bare(upgrade_headers(sec_websocket_version=b"8")).rejection
    assert rejection is not None
    status, headers, body = rejection
    assert status == 426
    assert (b"sec-websocket-version", b"13") in headers
    assert (b"content-length", b"%d" % len(body)) in headers


@pytest.mark.parametrize("key", [b"short", None])
def test_a_bad_or_missing_key_is_400(key: bytes | None) -> None:
    rejection = Bare(upgrade_headers(sec_websocket_key=key)).rejection
    assert rejection is not None and rejection[0] == 400


def test_a_missing_connection_upgrade_token_is_426_naming_the_upgrade() -> None:
    rejection = Bare(upgrade_headers(connection=b"keep-alive")).rejection
    assert rejection is not None
    assert rejection[0] == 426 and (b"upgrade", b"websocket") in rejection[1]


def test_the_handshake_runs_once() -> None:
    hs = Bare(upgrade_headers())
    assert hs.rejection is None
    prepared = hs._response
    hs._handshake()
    assert hs._response is prepared


def test_deflate_is_offered_only_when_configured() -> None:
    offer = b"permessage-deflate; client_max_window_bits"
    off = Bare(upgrade_headers(sec_websocket_extensions=offer))
    on = Bare(upgrade_headers(sec_websocket_extensions=offer), ws_per_message_deflate=True)
    assert off.rejection is None and on.rejection is None
    assert "Sec-WebSocket-Extensions" not in off._response.headers
    assert "permessage-deflate" in on._response.headers["Sec-WebSocket-Extensions"]


def test_websockets_is_bound_once_with_its_open_state() -> None:
    from websockets.protocol import OPEN

    lib = bind_lib()
    assert lib.bound and bind_lib() is lib
    assert open_state() is OPEN


def test_websockets_own_info_lines_are_quiet(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="hump_listener.error"):
        assert not QUIET.isEnabledFor(logging.INFO)
        assert QUIET.isEnabledFor(logging.WARNING)
