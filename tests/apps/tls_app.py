"""TLS and CLI tests: ``GET /scheme`` answers with ``ctx.request.scheme``."""

from __future__ import annotations

from hump_listener import App, HTTPContext

app = App(access_log=True)  # the command line's --no-access-log must win over this


@app.get("/scheme")
async def scheme(ctx: HTTPContext) -> str:
    return ctx.request.scheme


not_an_app = object()
