"""Worker tests: ``GET /pid`` says which process answered; ``GET /slow`` stays in flight
until the process that took it gets SIGUSR1."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from hump_listener import App, HTTPContext

app = App(access_log=False)
log = logging.getLogger("hump_listener.error")
release = asyncio.Event()


@app.startup
async def arm() -> None:
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, release.set)


@app.get("/pid")
async def pid(ctx: HTTPContext) -> str:
    return str(os.getpid())


@app.get("/slow")
async def slow(ctx: HTTPContext) -> str:
    log.info("slow request started in %d", os.getpid())
    await release.wait()
    return f"done slowly in {os.getpid()}"
