"""A test app that relays messages between processes through a Broadcast built from
``HUMP_BROADCAST_URL`` (what ``App(broadcast_url=...)`` will do for ``app.broadcast``).

- ``POST /text/{channel}`` publishes the body as ``str``; ``POST /bytes/{channel}`` as
  ``bytes``; both answer with Redis' receiver count.
- ``GET /subscribe/{channel}?n=N`` streams ``subscribed`` once the subscription is
  active, then one line per message (``str:<text>`` or ``bytes:<hex>``), N of them.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

from tiny_listener import Param

from hump_listener import App, HTTPContext, StreamingResponse
from hump_listener.broadcast import Broadcast

app = App()
broadcast = Broadcast(os.environ.get("HUMP_BROADCAST_URL"))


@app.startup
async def connect() -> None:
    await broadcast.start()


@app.shutdown
async def disconnect() -> None:
    await broadcast.stop()


@app.post("/text/{channel}")
async def text(ctx: HTTPContext, channel: Param) -> str:
    return str(await broadcast.publish(channel, (await ctx.body()).decode()))


@app.post("/bytes/{channel}")
async def raw(ctx: HTTPContext, channel: Param) -> str:
    return str(await broadcast.publish(channel, await ctx.body()))


@app.get("/subscribe/{channel}")
async def subscribe(ctx: HTTPContext, channel: Param) -> StreamingResponse:
    n = int(ctx.request.query.get("n") or 1)

    async def lines() -> AsyncIterator[str]:
        async with broadcast.subscribe(channel) as sub:
            yield "subscribed\n"
            for _ in range(n):
                message = await sub.get()
                yield f"str:{message}\n" if isinstance(message, str) else f"bytes:{message.hex()}\n"

    return StreamingResponse(lines())
