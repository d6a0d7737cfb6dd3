"""An app whose startup always fails: a worker running it exits at once."""

from __future__ import annotations

from hump_listener import App

app = App(access_log=False)


@app.startup
async def boom() -> None:
    raise RuntimeError("this worker cannot start")
