"""A raw ASGI app (no framework) with the benchmark routes, served by uvicorn.

Routes (the same contract as hump_listener's demo ``http_web:app``):

* ``GET /``                 -> 200 text/plain ``Hello, world!``
* ``POST /echo``            -> 200, the request body echoed with the request Content-Type
* ``GET /api/users/<int>``  -> 200 application/json ``{"id": <int>, "name": "user<int>"}``

Run: ``uvicorn --app-dir benchmarks/peers asgi_raw:app``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

HELLO = b"Hello, world!"
TEXT_HEADERS = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"13")]
USERS_PREFIX = "/api/users/"


async def _respond(send: Send, status: int, body: bytes, content_type: bytes) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _users(path: str, send: Send) -> None:
    tail = path[len(USERS_PREFIX) :]
    if not tail.isdigit():
        await _respond(send, 404, b"Not Found", b"text/plain; charset=utf-8")
        return
    user_id = int(tail)
    body = json.dumps({"id": user_id, "name": f"user{user_id}"}).encode()
    await _respond(send, 200, body, b"application/json")


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    method: str = scope["method"]
    path: str = scope["path"]
    if method == "GET" and path == "/":
        await send({"type": "http.response.start", "status": 200, "headers": TEXT_HEADERS})
        await send({"type": "http.response.body", "body": HELLO})
    elif method == "POST" and path == "/echo":
        body = await _read_body(receive)
        ctype = dict(scope["headers"]).get(b"content-type", b"application/octet-stream")
        await _respond(send, 200, body, ctype)
    elif method == "GET" and path.startswith(USERS_PREFIX):
        await _users(path, send)
    else:
        await _respond(send, 404, b"Not Found", b"text/plain; charset=utf-8")
