"""seam.py: the few things the seam does besides declaring types: ``reason_phrase``, ``plain_reply``,
``seam_entry``, ``RequestHead`` and ``WebSocketDisconnect``."""

from __future__ import annotations

import pytest
from framework_helpers import MemoryChannel, make_head

from hump_listener import App
from hump_listener.seam import (
    Channel,
    ClientDisconnect,
    RequestHead,
    WebSocketDisconnect,
    plain_reply,
    reason_phrase,
    seam_entry,
)


@pytest.mark.parametrize(
    ("status", "phrase"),
    [(200, "OK"), (101, "Switching Protocols"), (199, "Informational"), (399, "Redirection"), (999, "Unknown")],
)
def test_reason_phrase(status: int, phrase: str) -> None:
    assert reason_phrase(status) == phrase


@pytest.mark.parametrize(("status", "body"), [(403, b"Forbidden"), (500, b"Internal Server Error")])
def test_plain_reply_is_the_reason_phrase_as_plain_text(status: int, body: bytes) -> None:
    assert plain_reply(status) == (
        status,
        [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"%d" % len(body))],
        body,
    )


async def test_seam_entry_picks_handle_or_the_callable_itself() -> None:
    async def plain(head: RequestHead, channel: Channel) -> None:
        channel.respond(204, [], b"")

    assert seam_entry(plain) is plain
    app = App(access_log=False)
    entry = seam_entry(app)
    assert entry == app.handle  # the bound seam method, not ASGI's __call__
    channel = MemoryChannel()
    await entry(make_head(), channel)
    assert channel.status == 404


def test_request_head_is_immutable_and_defaults_to_http() -> None:
    head = make_head()
    assert head.scheme == "http"
    with pytest.raises(AttributeError):
        head.method = "POST"  # type: ignore[misc]


def test_websocket_disconnect_is_a_client_disconnect_with_a_code() -> None:
    exc = WebSocketDisconnect(1001, "going away")
    assert isinstance(exc, ClientDisconnect)
    assert (exc.code, exc.reason) == (1001, "going away")
    assert repr(exc) == "WebSocketDisconnect(code=1001, reason='going away')"
    assert WebSocketDisconnect().code == 1000
