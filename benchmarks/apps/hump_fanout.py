"""The hump_listener side of benchmarks/fanout.py: every WebSocket on /room receives every
message published on the room's channel; ``GET /publish?n=N&size=S`` publishes N text
messages of S bytes (one at a time, each awaited) and answers when done."""

from __future__ import annotations

import asyncio

from hump_listener import App, HTTPContext, WebSocket

app = App()


@app.websocket("/room")
async def room(ws: WebSocket) -> None:
    async with app.broadcast.subscribe("room", max_queue=100_000) as sub:
        await ws.accept()

        async def relay() -> None:
            async for message in sub:
                await ws.send(message)

        task = asyncio.create_task(relay())
        try:
            async for _ in ws:
                pass
        finally:
            task.cancel()
            await asyncio.wait([task])


@app.get("/publish")
async def publish(ctx: HTTPContext) -> str:
    n, size = int(ctx.request.query.get("n", "1")), int(ctx.request.query.get("size", "64"))
    payload = "x" * size
    for _ in range(n):
        await app.broadcast.publish("room", payload)
    return "ok"
