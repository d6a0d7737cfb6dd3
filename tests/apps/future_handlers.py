"""Handlers in a module using postponed annotations (PEP 563): they must still be injected."""

from __future__ import annotations

from tiny_listener import Event, Param

from hump_listener import App, HTTPContext


def register(app: App) -> None:
    @app.on_event("GET:/future/{name}")
    async def future(ctx: HTTPContext, name: Param, event: Event) -> None:  # type: ignore[type-arg]
        ctx.response(200, f"{name} {type(event).__name__} {type(ctx).__name__}")
