"""A tests-only app for ``uvicorn apps.lifespan_app:app`` (tests/test_asgi_app.py): the
``App`` object itself is the ASGI application. Startup and shutdown callbacks append a
line to the file named by ``$LIFESPAN_LOG``, so the test can see that both ran."""

from __future__ import annotations

import os
import threading

from hump_listener import App, HTTPContext

app = App(access_log=False)
state = {"started": 0}


def _log(line: str) -> None:
    with open(os.environ["LIFESPAN_LOG"], "a") as f:
        f.write(line + "\n")


@app.startup
async def on_startup() -> None:
    state["started"] += 1
    _log("startup")


@app.shutdown
async def on_shutdown() -> None:
    _log("shutdown")


@app.get("/state")
async def get_state(ctx: HTTPContext) -> dict[str, int]:
    return state


@app.get("/thread")
def in_thread(ctx: HTTPContext) -> str:  # a sync handler: runs in the app's thread pool
    return threading.current_thread().name
