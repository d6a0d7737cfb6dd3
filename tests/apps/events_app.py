"""A test app with background events, served by a real ``tiny-listener`` process.

- ``POST /signup?name=ann`` fires ``user_created`` without awaiting it and answers at once;
  the event records the name (``GET /signups``).
- ``POST /job`` fires ``slow_job``, which stays in flight until the test sends SIGUSR1
  (logging "job started" / "job finished", or "job cancelled" when the drain cancels it).
- ``POST /boom`` fires ``explode``, which raises (logged with the request that fired it).
- ``GET /slow`` is a request that stays in flight until SIGUSR1.
- ``GET /stats``: live contexts (other than this request's), running background events,
  and Event objects still alive after a collection.

``TEST_SHUTDOWN_TIMEOUT`` sets the drain time; with ``TEST_SLOW_STARTUP=1`` the startup
waits for SIGUSR1 too.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import weakref

from tiny_listener import Data, Event

from hump_listener import App, HTTPContext

app = App(shutdown_timeout=float(os.environ.get("TEST_SHUTDOWN_TIMEOUT", "30")))
log = logging.getLogger("hump_listener.error")
release = asyncio.Event()
signups: list[str] = []
events_seen: weakref.WeakSet[Event] = weakref.WeakSet()  # type: ignore[type-arg]


@app.startup
async def arm() -> None:
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, release.set)
    if os.environ.get("TEST_SLOW_STARTUP"):
        log.info("startup waiting")
        await release.wait()
        release.clear()
        log.info("startup finished")


@app.shutdown
async def bye() -> None:
    log.info("shutdown callback ran (%d signups)", len(signups))


@app.on_event("user_created")
async def user_created(ctx: HTTPContext, event: Event, name: Data) -> None:  # type: ignore[type-arg]
    events_seen.add(event)
    await asyncio.sleep(0)  # finish after the response went out
    signups.append(f"{name} via {ctx.request.method} {ctx.request.path}")


@app.on_event("slow_job")
async def slow_job() -> None:
    log.info("job started")
    try:
        await release.wait()
    except asyncio.CancelledError:
        log.info("job cancelled")
        raise
    log.info("job finished")


@app.on_event("explode")
async def explode() -> None:
    raise ValueError("background failure")


@app.post("/signup")
async def signup(ctx: HTTPContext) -> str:
    ctx.trigger_event("user_created", data={"name": ctx.request.query.get("name", "?")})
    return "ok"


@app.post("/job")
async def job(ctx: HTTPContext) -> str:
    ctx.trigger_event("slow_job")
    return "queued"


@app.post("/boom")
async def boom(ctx: HTTPContext) -> str:
    ctx.trigger_event("explode")
    return "fired"


@app.get("/slow")
async def slow(ctx: HTTPContext) -> str:
    log.info("slow request started")
    await release.wait()
    log.info("slow request finished")
    return "done slowly"


@app.get("/signups")
async def list_signups() -> list[str]:
    return signups


@app.get("/stats")
async def stats(ctx: HTTPContext) -> dict[str, int]:
    gc.collect()
    return {
        "ctxs": len([c for c in app.ctxs.values() if c is not ctx]),
        "tasks": len(app.background.tasks),
        "events_alive": len(events_seen),
        "signups": len(signups),
    }
