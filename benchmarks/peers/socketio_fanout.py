"""python-socketio on uvicorn for benchmarks/fanout.py: members connect (Socket.IO over
WebSocket) and are put in room "room"; ``GET /publish?n=&size=`` emits N ``msg`` events
to the room, each awaited. ``FANOUT_BROADCAST_URL`` ``redis://...`` uses its
AsyncRedisManager (the cluster setup); ``memory://`` its in-process manager."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import parse_qs

import socketio

url = os.environ.get("FANOUT_BROADCAST_URL", "memory://")
manager = socketio.AsyncRedisManager(url) if url.startswith("redis") else None
sio = socketio.AsyncServer(async_mode="asgi", client_manager=manager, logger=False, engineio_logger=False)


@sio.event
async def connect(sid: str, environ: dict[str, Any]) -> None:
    await sio.enter_room(sid, "room")


async def publish_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    query = parse_qs(scope.get("query_string", b"").decode())
    n, size = int(query.get("n", ["1"])[0]), int(query.get("size", ["64"])[0])
    payload = "x" * size
    for _ in range(n):
        await sio.emit("msg", payload, room="room")
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


app = socketio.ASGIApp(sio, other_asgi_app=publish_app)
