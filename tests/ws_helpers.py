"""The ``websockets`` client library against our real servers: connect on loopback
(no proxy from the environment) and bounded waits for a message."""

from __future__ import annotations

import asyncio
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

#: Bound on every wait for a WebSocket message or close (a failing test must end).
WS_WAIT = 10.0


def ws_connect(base_url: str, path: str, **kw: Any) -> connect:
    """The ``websockets`` client on ``ws://`` + the server's address (``http://host:port``
    or ``ws://host:port``)."""
    url = base_url.replace("http://", "ws://", 1) + path
    return connect(url, proxy=None, open_timeout=WS_WAIT, **kw)


async def recv(ws: ClientConnection) -> str | bytes:
    """The next message, or ``ConnectionClosed``; ``TimeoutError`` after ``WS_WAIT``."""
    return await asyncio.wait_for(ws.recv(), WS_WAIT)
