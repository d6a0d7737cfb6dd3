"""A tests-only app for the ASGI adapter under a real server (tests/test_asgi.py).

``uvicorn --app-dir tests apps.asgi_stream_app:app``: a lifespan flag, a full-duplex
streaming route (each request-body chunk is echoed as soon as it arrives), a file, and an
endless stream whose end a second request waits for (a client that leaves ends it).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

from tiny_listener import Param

from hump_listener import App, HTTPContext
from hump_listener.responses import FileResponse, StreamingResponse

app = App(access_log=False)
state = {"started": 0, "stopped": 0}
endless_ended = asyncio.Event()


@app.startup
async def on_startup() -> None:
    state["started"] += 1


@app.shutdown
async def on_shutdown() -> None:
    state["stopped"] += 1


@app.on_event("GET:/lifespan")
async def lifespan(ctx: HTTPContext) -> None:
    ctx.json({**state, "pid": os.getpid()})


@app.on_event("POST:/duplex")
async def duplex(ctx: HTTPContext) -> StreamingResponse:
    async def echo() -> AsyncIterator[bytes]:
        async for chunk in ctx.stream():
            yield b"echo:" + chunk + b"\n"
        yield b"done\n"

    return StreamingResponse(echo(), content_type="text/plain")


@app.on_event("GET:/count/<int:n>")
async def count(ctx: HTTPContext, n: Param) -> StreamingResponse:
    async def numbers() -> AsyncIterator[str]:
        for i in range(n):
            yield f"{i}\n"

    return StreamingResponse(numbers())


@app.on_event("GET:/file")
async def file(ctx: HTTPContext) -> FileResponse:
    return FileResponse(os.environ["ASGI_TEST_FILE"])


@app.on_event("GET:/endless")
async def endless(ctx: HTTPContext) -> StreamingResponse:
    async def ticks() -> AsyncIterator[str]:
        try:
            yield "tick\n"
            await asyncio.Event().wait()  # no next tick, ever: only the client's leaving ends it
        finally:
            endless_ended.set()

    return StreamingResponse(ticks())


@app.on_event("GET:/endless/ended")
async def ended(ctx: HTTPContext) -> str:
    """Whether the endless stream's generator has finished (waits up to 5 s for it)."""
    try:
        await asyncio.wait_for(endless_ended.wait(), 5)
    except TimeoutError:
        return "still running"
    return "ended"
