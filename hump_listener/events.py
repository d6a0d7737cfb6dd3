"""Events and their contexts: tiny-listener's ``Context`` and ``Event``, with lifetimes
that are counted and waits that are woken.

Background events (``ctx.trigger_event``, ``app.trigger_event``) run in these contexts;
``background.BackgroundEvents`` runs them (its rules: every task kept, every error
reported once). tiny-listener's own contexts and events lose them in ways the rules
here undo:

1. **A context lives while it is held.** ``EventContext.hold()`` / ``release()`` count
   who still needs the context: the request (or a WebSocket connection) holds it while it
   runs, every event triggered in it holds it until its task has finished. The context is
   in ``app.ctxs`` exactly while the count is above zero; at zero it is removed and its
   ``events`` lists are cleared, so nothing it collected is held any longer.
   (tiny-listener never drops a context, and its ``Event`` holds the context only by
   weak reference, so a background event of a finished request got ``ctx=None``.)
2. **Waiting wakes, never polls.** ``event.wait_event_done(name, n)`` is woken by the
   events themselves (see ``Event.wait_event_done`` for the exact rule).

``BackgroundEvents``, ``DEFAULT_DRAIN_TIMEOUT`` and ``CANCEL_GRACE`` are re-exported from
``background``, where they live.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import tiny_listener
from tiny_listener import Context, Route

from .background import CANCEL_GRACE, DEFAULT_DRAIN_TIMEOUT, BackgroundEvents

if TYPE_CHECKING:
    from .app import App
    from .endpoints import Endpoint
    from .models import Request

__all__ = [
    "CANCEL_GRACE",
    "DEFAULT_DRAIN_TIMEOUT",
    "BackgroundEvents",
    "ConnectionContext",
    "Event",
    "EventContext",
]


class EventContext(Context):
    """A tiny-listener ``Context`` whose lifetime is counted (rule 1).

    ``HTTPContext`` is one (the request holds it); a per-connection context (WebSocket)
    can be one too: ``hold()`` when the connection opens, ``release()`` when it closes,
    and set ``keep_done_events = False`` so finished events do not pile up for as long as
    the connection lives.
    """

    # Class-level defaults: a request context pays nothing for them until used.
    _holds = 0
    #: Per-route callbacks told of each new event (``wait_event_done`` waiting for
    #: events not triggered yet); ``None`` until someone waits.
    _watchers: dict[Route, list[Callable[[Event], None]]] | None = None
    #: True: finished events stay in ``events`` until the context is dropped (what
    #: ``wait_event_done`` counts). False: each is removed as it finishes (long-lived
    #: contexts).
    keep_done_events = True
    #: Who fires events in a context that is not a request's (for log lines).
    origin = "app.trigger_event"

    # -- lifetime (rule 1) ---------------------------------------------------------------

    @property
    def holds(self) -> int:
        """How many holders (the request or connection, running events) it has."""
        return self._holds

    def hold(self) -> None:
        """Keep this context alive (and in ``app.ctxs``) until a matching ``release()``."""
        if self._holds:
            self._holds += 1
        else:
            self._holds = 1
            self.listener.ctxs[self.cid] = self

    def release(self) -> bool:
        """Undo one ``hold()``; the last one drops the context and clears its events.
        Returns True when the context was dropped."""
        holds = self._holds - 1
        if holds < 0:
            raise RuntimeError(f"{self!r}: release() without a matching hold()")
        self._holds = holds
        if holds:
            return False
        self.listener.ctxs.pop(self.cid, None)
        if self.events:
            self.events.clear()
        self._watchers = None
        return True

    def describe(self) -> str:
        """Who fired the events of this context, for log lines (``GET /signup``)."""
        return self.origin

    # -- events ------------------------------------------------------------------------

    def new_event(self, route: Route, data: dict[str, Any]) -> Event:
        """A new ``Event`` of ``route`` in this context, listed in ``events`` (and told to
        any ``wait_event_done`` waiting for one)."""
        event = Event(self, route, data)
        self.events[route].append(event)
        watchers = self._watchers
        if watchers is not None and route in watchers:
            for notify in list(watchers[route]):
                notify(event)
        return event

    def trigger_event(
        self, path: str, timeout: float | None = None, data: dict[str, Any] | None = None, *,
        key: str | None = None, delay: float | None = None,
    ) -> asyncio.Task[Any]:
        """Run the event ``path`` in the background, in this context (which stays alive
        until it has finished). Awaiting the task gives the handler's return value, or
        ``None`` if it failed (the error went to ``on_error`` hooks or the log).

        A durable event (``on_event(..., durable=True)``) is stored instead, to run in a
        fresh context on any worker: awaiting the task gives its id once stored;
        ``key=`` (idempotency) and ``delay=`` (seconds) are for those (durable.py)."""
        app: App = self.listener  # type: ignore[assignment]
        return app.background.trigger(self, path, timeout=timeout, data=data, key=key, delay=delay)

    def prune_events(self) -> int:
        """Remove finished events from ``events`` (for long-lived contexts that keep
        them); returns how many were removed."""
        removed = 0
        for route in list(self.events):
            events = self.events[route]
            kept = [e for e in events if not e.is_done]
            removed += len(events) - len(kept)
            if kept:
                events[:] = kept
            else:
                del self.events[route]
        return removed

    def _forget(self, event: Event) -> None:
        events = self.events.get(event.route)
        if events is not None:
            if event in events:
                events.remove(event)
            if not events:
                del self.events[event.route]

    def _watch(self, route: Route, notify: Callable[[Event], None]) -> None:
        if self._watchers is None:
            self._watchers = {}
        self._watchers.setdefault(route, []).append(notify)

    def _unwatch(self, route: Route, notify: Callable[[Event], None]) -> None:
        watchers = self._watchers
        if watchers is None or route not in watchers:
            return
        if notify in watchers[route]:
            watchers[route].remove(notify)
        if not watchers[route]:
            del watchers[route]


class ConnectionContext(EventContext):
    """The context of one request (``HTTPContext``) or one WebSocket connection
    (``WebSocket``): the ``Request`` it came with, the route it matched (``endpoint``,
    ``params``) and the tiny-listener ``Event`` it fired, made on first use."""

    # Set by the app right after construction / routing.
    request: Request
    params: dict[str, Any]
    endpoint: Endpoint | None = None
    _event: Event | None = None

    @property
    def event(self) -> Event:
        """The tiny-listener ``Event`` this request or connection fired (created on first
        use: most handlers never ask for it)."""
        if self._event is None:
            if self.endpoint is None:
                raise RuntimeError("no event yet: the request has not been routed")
            self._event = self.new_event(self.endpoint, {})
        return self._event

    def describe(self) -> str:
        """``GET /signup``: the request that fired this context's events."""
        req = getattr(self, "request", None)
        return f"{req.method} {req.path}" if req is not None else self.origin


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

