"""A test app whose /slow handler stays in flight until the test sends SIGUSR1."""

from __future__ import annotations

import asyncio
import logging
import signal

from hump_listener import App, HTTPContext

app = App()
log = logging.getLogger("hump_listener.error")
release = asyncio.Event()


@app.startup
async def arm() -> None:
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, release.set)


@app.shutdown
async def bye() -> None:
    log.info("shutdown callback ran")


@app.get("/slow")
async def slow(ctx: HTTPContext) -> str:
    log.info("slow request started")
    await release.wait()
    log.info("slow request finished")
    return "done slowly"
