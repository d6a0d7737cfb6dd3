"""Starlette + encode/broadcaster on uvicorn for benchmarks/fanout.py: the same contract
as benchmarks/apps/hump_fanout.py (``WS /room``, ``GET /publish?n=&size=``). The backend
is ``FANOUT_BROADCAST_URL`` (``memory://`` or ``redis://...``)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from broadcaster import Broadcast
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

broadcast = Broadcast(os.environ.get("FANOUT_BROADCAST_URL", "memory://"))


async def room(ws: WebSocket) -> None:
    await ws.accept()
    async with broadcast.subscribe(channel="room") as subscriber:
        # broadcaster 0.3.1's Redis listener can miss its first wake-up (see
        # benchmarks/broadcast.py): set the event once the subscription is recorded.
        ready = getattr(broadcast._backend, "_ready", None)
        if ready is not None:
            ready.set()
        await ws.send_text("ready")

        async def relay() -> None:
            async for event in subscriber:
                await ws.send_text(event.message)

        task = asyncio.create_task(relay())
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def publish(request: Request) -> PlainTextResponse:
    n, size = int(request.query_params.get("n", "1")), int(request.query_params.get("size", "64"))
    payload = "x" * size
    ready = getattr(broadcast._backend, "_ready", None)
    if ready is not None:  # the same workaround: a listener that went back to waiting resumes
        ready.set()
    for _ in range(n):
        await broadcast.publish(channel="room", message=payload)
    return PlainTextResponse("ok")


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    await broadcast.connect()
    yield
    await broadcast.disconnect()


app = Starlette(routes=[WebSocketRoute("/room", room), Route("/publish", publish)], lifespan=lifespan)
