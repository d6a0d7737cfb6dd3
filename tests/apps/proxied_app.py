"""A tests-only app for tests/test_nginx.py: run behind nginx, it says which instance
answered and whom it believes the client to be.

``GET /whoami``: pid, client, scheme and the forwarding headers as received.
``GET /hold?pid=N``: if this is process N, a streamed response that sends ``started``
at once and ``done`` only once the instance has begun its graceful shutdown (so a test
can SIGTERM it while the request is known to be in flight); any other process answers
``not me`` at once.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

from hump_listener import App, HTTPContext
from hump_listener.responses import StreamingResponse

app = App(access_log=False)
#: Longest a held request waits for the shutdown to begin (a failing test must still end).
HOLD_LIMIT = 20.0
#: How often a held request looks at the app's state: app-side polling, cheap and local.
HOLD_POLL = 0.01


@app.get("/whoami")
async def whoami(ctx: HTTPContext) -> dict[str, object]:
    r = ctx.request
    return {
        "pid": os.getpid(),
        "client": r.client,
        "scheme": r.scheme,
        "x_forwarded_for": r.headers.get("x-forwarded-for"),
        "forwarded": r.headers.get("forwarded"),
    }


@app.get("/hold")
async def hold(ctx: HTTPContext) -> object:
    if ctx.request.query.get("pid") != str(os.getpid()):
        return "not me"

    async def until_shutdown() -> AsyncIterator[bytes]:
        yield b"started\n"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + HOLD_LIMIT
        while not app.lifecycle._stopping and loop.time() < deadline:
            await asyncio.sleep(HOLD_POLL)
        yield b"done\n" if app.lifecycle._stopping else b"timeout\n"

    return StreamingResponse(until_shutdown(), headers={"X-Pid": str(os.getpid()), "X-Accel-Buffering": "no"})
