"""A durable-events worker for the kill test (tests/test_durable_kill.py): run it with
``python -m hump_listener durable_worker_app:app`` and ``HUMP_BROADCAST_URL=redis://...``.

``work {n:int}`` sleeps ``ms`` (its data), then appends ``n`` to the Redis list
``{prefix}:done``: one entry per completed run, duplicates included, so the test can
count them. ``DURABLE_PREFIX`` and ``DURABLE_VISIBILITY`` (seconds) come from the
environment."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import redis.asyncio
from tiny_listener import Data, Param

from hump_listener import App
from hump_listener.durable import Durable

PREFIX = os.environ.get("DURABLE_PREFIX", "kill")

app = App(access_log=False)
app.durable.configure(prefix=PREFIX, visibility_timeout=float(os.environ.get("DURABLE_VISIBILITY", "3")))
client: Any = None


@app.startup
async def connect() -> None:
    global client
    client = redis.asyncio.Redis.from_url(app.durable.url)


@app.shutdown
async def disconnect() -> None:
    await client.aclose()


# Many attempts: an event may be running at several kills in a row; none must die of it.
@app.on_event("work {n:int}", durable=Durable(attempts=50))
async def work(n: Param, ms: Data) -> None:
    await asyncio.sleep(ms / 1000)
    await client.rpush(f"{PREFIX}:done", n)
