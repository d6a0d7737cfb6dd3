"""Event: tiny-listener's ``Event``, holding its context and woken instead of polling.

Background events (``ctx.trigger_event``, ``app.trigger_event``) run as these events, in
the contexts of ``context`` (``EventContext``: counted lifetimes); ``background`` runs
them (its rules: every task kept, every error reported once). The rule here:

**Waiting wakes, never polls.** ``event.wait_event_done(name, n)`` is woken by the events
themselves (see ``Event.wait_event_done`` for the exact rule); tiny-listener's own polls
every 0.5 s. And the event holds its context strongly: tiny-listener's holds it by weak
reference, so a background event of a finished request got ``ctx=None``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import tiny_listener
from tiny_listener import Route

if TYPE_CHECKING:
    from .context import EventContext

__all__ = ["Event"]


class Event(tiny_listener.Event[Any]):
    """tiny-listener's ``Event``, holding its context strongly (it is released from
    ``ctx.events`` when the context is dropped, so there is no lasting cycle) and with a
    ``wait_event_done`` that is woken instead of polling."""

    def __init__(self, ctx: EventContext, route: Route, data: dict[str, Any] | None = None) -> None:
        super().__init__(ctx, route, data)
        self._context = ctx
        self._value: Any = None
        self._settled = False  # done, and its hold on the context released
        #: The name it was triggered with (``"step 1: save Alice's data"``); the route's
        #: template until then.
        self.name: str = route.path

    @property
    def ctx(self) -> EventContext:
        """The context the event runs in (held strongly, unlike tiny-listener's weakref)."""
        return self._context

    @property
    def result(self) -> Any:
        """The handler's return value (``None`` until it returned, or if it failed)."""
        return self._value

    async def __call__(self, params: dict[str, Any] | None = None) -> Any:
        """tiny-listener's way to run an event's handler inline."""
        self._value = await self.route.hook(self, params or {})
        return self._value

    async def wait_event_done(self, event_name: str, n: int = 1, timeout: float | None = None) -> list[Any]:
        """Wait for the first ``n`` events named ``event_name`` in this context.

        The rule: wait until at least ``n`` such events have been triggered in this
        context (counting the ones already listed in ``ctx.events``, finished or not,
        then new ones as they are triggered), then until the first ``n`` of them are
        done; return their results in trigger order (tiny-listener's list shape). More
        than ``n`` such events is fine: only the first ``n`` are awaited. The wait may
        start before any of them is triggered. Nothing polls: each new event and each
        finished one wakes the waiter.

        ``event_name`` is the name the event was registered with
        (``"step 1: save {name}'s data"``) or a name it matches. An event waiting for
        itself raises ``RuntimeError`` instead of waiting forever; ``timeout`` raises
        ``asyncio.TimeoutError``. In a context with ``keep_done_events = False``
        finished events are no longer listed, so only running and future ones count.
        """
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        listener = self.ctx.listener
        route = listener.routes.get(event_name)
        if route is None:
            route, _ = listener.match_route(event_name)  # EventNotFound if nothing matches
        ctx = self.ctx

        async def wait() -> list[Any]:
            found = list(ctx.events.get(route, ()))[:n]
            if len(found) < n:
                enough: asyncio.Future[None] = asyncio.get_running_loop().create_future()

                def arrived(event: Event) -> None:
                    found.append(event)
                    if len(found) >= n and not enough.done():
                        enough.set_result(None)

                ctx._watch(route, arrived)
                try:
                    await enough
                finally:
                    ctx._unwatch(route, arrived)
            first = found[:n]
            if self in first:
                raise RuntimeError(f"event {self.name!r} is waiting for itself ({event_name!r})")
            for event in first:
                await event.wait_until_done()
            return [event.result for event in first]

        if timeout is None:
            return await wait()
        return await asyncio.wait_for(wait(), timeout)

    def __repr__(self) -> str:
        return f"Event({self.name!r}, ctx={self._context.cid})"

