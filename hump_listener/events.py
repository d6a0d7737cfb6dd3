"""Background events: tiny-listener events that outlive the request that fired them.

``ctx.trigger_event("user_created", data={...})`` from a handler, ``app.trigger_event``
outside any request (a startup callback, a timer) and ``app.trigger_event_threadsafe``
from another thread all end up in ``BackgroundEvents.trigger``. tiny-listener's own
``trigger_event`` loses them in four ways, which the rules below undo:

1. **A context lives while it is held.** ``EventContext.hold()`` / ``release()`` count
   who still needs the context: the request (or a WebSocket connection) holds it while it
   runs, every event triggered in it holds it until its task has finished. The context is
   in ``app.ctxs`` exactly while the count is above zero; at zero it is removed and its
   ``events`` lists are cleared, so nothing it collected is held any longer.
   (tiny-listener never drops a context, and its ``Event`` holds the context only by
   weak reference, so a background event of a finished request got ``ctx=None``.)
2. **Every task is kept and inspected.** The app's ``BackgroundEvents.tasks`` holds each
   task until a done-callback removes it. The event's hold on its context is released as
   the coroutine's last step (so whoever awaits the task finds the context released), or
   by that callback for a task cancelled before its first step, which never ran.
3. **Errors are reported exactly once, never re-raised into a detached task.** An
   exception in a handler (or its before/after hooks, or a timeout) runs the matching
   ``on_error`` hooks; with none, it is logged on ``hump_listener.error`` with its
   traceback, the event's name and who fired it (``GET /signup``). The task's result is
   the handler's return value, or ``None`` when it failed (the exception is on
   ``event.error``): awaiting it never raises, and asyncio never logs "Task exception
   was never retrieved".
4. **Waiting wakes, never polls.** ``event.wait_event_done(name, n)`` is woken by the
   events themselves (see ``Event.wait_event_done`` for the exact rule).

Injection is the HTTP handlers' (``endpoints.build_plan``): planned once per event
route, also under ``from __future__ import annotations``; ``ctx: HTTPContext`` is the
context the event was triggered in, ``event: Event`` the event itself, ``x: Data`` its
data, ``x: Param`` the event name's placeholders. ``before_event`` / ``after_event``
hooks run around background events as around requests, as in tiny-listener.

Shutdown (``App.run_shutdown``) drains them: ``drain(timeout)`` waits for every running
event, also ones triggered meanwhile, then cancels the rest with one log line saying
how many.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import weakref
from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

import tiny_listener
from tiny_listener import Context, Route

from . import tiny_internals
from .endpoints import Endpoint, Handler, Plan, build_plan, call_plan

if TYPE_CHECKING:
    from .app import App
    from .models import Request

__all__ = [
    "CANCEL_GRACE",
    "DEFAULT_DRAIN_TIMEOUT",
    "BackgroundEvents",
    "ConnectionContext",
    "Event",
    "EventContext",
]

error_log = logging.getLogger("hump_listener.error")

#: Drain time for background events when neither the app nor its server config says
#: (``App(shutdown_timeout=...)``): the same 10 s as the server's request drain
#: (``protocol.server.DEFAULT_SHUTDOWN_TIMEOUT``, where the precedents are listed).
DEFAULT_DRAIN_TIMEOUT = 10.0
#: After cancelling what the drain left, how long cancelled events get to unwind (their
#: ``finally`` blocks) before we stop waiting. The server gives cancelled requests 1 s too.
CANCEL_GRACE = 1.0


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
        event = Event(self, route, data)
        self.events[route].append(event)
        watchers = self._watchers
        if watchers is not None and route in watchers:
            for notify in list(watchers[route]):
                notify(event)
        return event

    def trigger_event(
        self, path: str, timeout: float | None = None, data: dict[str, Any] | None = None
    ) -> asyncio.Task[Any]:
        """Run the event ``path`` in the background, in this context (which stays alive
        until it has finished). Awaiting the task gives the handler's return value, or
        ``None`` if it failed (the error went to ``on_error`` hooks or the log)."""
        app: App = self.listener  # type: ignore[assignment]
        return app.background.trigger(self, path, timeout=timeout, data=data)

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


class BackgroundEvents:
    """The app's background events (server lifetime): every running task, the event
    loop they run on, the planned handlers, the shutdown drain."""

    def __init__(self, app: App) -> None:
        self.app = app
        #: Every running background event's task; each is removed by its done-callback.
        self.tasks: set[asyncio.Task[Any]] = set()
        #: The loop events run on (known once the app started or an event was triggered);
        #: ``trigger_threadsafe`` schedules onto it.
        self.loop: asyncio.AbstractEventLoop | None = None
        # Event route → (handler, injection plan), planned on first trigger.
        self._plans: weakref.WeakKeyDictionary[Route, tuple[Handler, Plan]] = weakref.WeakKeyDictionary()
        self._idle_waiters: list[asyncio.Future[None]] = []
        self._cut = False  # a second signal: stop draining

    # -- triggering -------------------------------------------------------------------

    def trigger(
        self, ctx: EventContext, path: str, *, timeout: float | None = None, data: Mapping[str, Any] | None = None
    ) -> asyncio.Task[Any]:
        """Run event ``path`` in ``ctx`` as a task of its own (see the module rules)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                f"trigger_event({path!r}) needs a running event loop; from another thread "
                "use app.trigger_event_threadsafe()"
            ) from None
        route, params = self.app.match_route(path)
        if isinstance(route, Endpoint):
            raise ValueError(
                f"{path!r} is an HTTP route: requests come from the server, they are not triggered"
            )
        fn, plan = self._plan(route)
        self.loop = loop
        ctx.hold()
        try:
            event = ctx.new_event(route, data if isinstance(data, dict) else dict(data or {}))
            event.name = path
            task = loop.create_task(self._run(event, fn, plan, params, timeout), name=f"hump-event {path}")
        except BaseException:
            ctx.release()
            raise
        self.tasks.add(task)
        task.add_done_callback(partial(self._finished, event))
        return task

    def trigger_threadsafe(
        self, ctx_factory: Callable[[], EventContext], path: str, *, timeout: float | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> concurrent.futures.Future[Any]:
        """``trigger`` from any thread: scheduled onto the app's loop; the future gets the
        handler's return value (``None`` if it failed: the error was reported there), or
        the exception that kept it from being triggered (``EventNotFound``)."""
        loop = self.loop
        if loop is None or loop.is_closed() or not loop.is_running():
            raise RuntimeError(
                "the app is not running: trigger_event_threadsafe() needs the app's event loop, "
                "known once it has started (the server, the ASGI lifespan, the test client's with block)"
            )
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def relay(task: asyncio.Task[Any]) -> None:
            if task.cancelled():
                future.set_exception(concurrent.futures.CancelledError(f"event {path!r} was cancelled"))
            elif (exc := task.exception()) is not None:
                future.set_exception(exc)
            else:
                future.set_result(task.result())

        def start() -> None:
            if not future.set_running_or_notify_cancel():
                return  # the caller cancelled before it started
            try:
                task = self.trigger(ctx_factory(), path, timeout=timeout, data=data)
            except Exception as exc:
                future.set_exception(exc)
                return
            task.add_done_callback(relay)

        loop.call_soon_threadsafe(start)
        return future

    def _plan(self, route: Route) -> tuple[Handler, Plan]:
        found = self._plans.get(route)
        if found is None:
            fn = tiny_internals.hook_fn(route.hook)
            params = list(getattr(route, "convertors", {}))
            found = self._plans[route] = (fn, build_plan(fn, params, f"event {route.path!r}"))
        return found

    async def _run(
        self, event: Event, fn: Handler, plan: Plan, params: dict[str, Any], timeout: float | None
    ) -> Any:
        app = self.app
        ctx = event.ctx
        event.running = True
        try:
            for hook in app._before_hooks:
                await hook(event, {})
            call = call_plan(fn, plan, ctx, params, event)  # type: ignore[arg-type]
            event._value = await (call if timeout is None else asyncio.wait_for(call, timeout))
            for hook in app._after_hooks:
                await hook(event, {})
            return event._value
        except Exception as exc:
            event.error = exc
            await self._report(event, exc)
            return None
        finally:
            event.running = False
            self._settle(event)

    async def _report(self, event: Event, exc: Exception) -> None:
        """``on_error`` hooks, else one log line with the traceback (rule 3)."""
        hooks = [hook for kls, hook in self.app._error_hooks if isinstance(exc, kls)]
        where = event.ctx.describe()
        if not hooks:
            error_log.error("Exception in background event %r (fired by %s)", event.name, where, exc_info=exc)
            return
        for hook in hooks:
            try:
                await hook(event, {})
            except Exception as hook_exc:
                error_log.error(
                    "on_error hook %r failed handling %r in background event %r (fired by %s)",
                    hook, exc, event.name, where, exc_info=hook_exc,
                )

    def _finished(self, event: Event, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            # Only a BaseException the coroutine does not catch can get here.
            error_log.error(
                "background event %r (fired by %s) ended with %r", event.name, event.ctx.describe(), exc,
                exc_info=exc,
            )
        self._settle(event)  # a no-op unless it was cancelled before its first step
        if not self.tasks:
            self._wake_idle()

    @staticmethod
    def _settle(event: Event) -> None:
        """Once per event: mark it done (unless the handler took that over with
        ``prevent_auto_done``), unlist it from a context that keeps no done events,
        release its hold on the context."""
        if event._settled:
            return
        event._settled = True
        if event.auto_done:
            event.done()
        ctx = event.ctx
        if not ctx.keep_done_events:
            ctx._forget(event)
        ctx.release()

    # -- waiting and draining -------------------------------------------------------------

    async def join(self, timeout: float | None = None) -> bool:
        """Wait until no background event is running, including ones triggered while
        waiting (True), or until ``timeout`` / a ``cut()`` (False)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while self.tasks and not self._cut:
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                break
            waiter: asyncio.Future[None] = loop.create_future()
            self._idle_waiters.append(waiter)
            try:
                await asyncio.wait((waiter,), timeout=remaining)
            finally:
                if waiter in self._idle_waiters:
                    self._idle_waiters.remove(waiter)
        return not self.tasks

    async def drain(self, timeout: float, why: str = "shutdown") -> int:
        """Give running events up to ``timeout`` seconds to finish, then cancel the rest
        (one warning line saying how many); returns how many were cancelled."""
        if self.tasks and not self._cut and timeout > 0:
            error_log.info("%s: waiting up to %.3g s for %d background event(s)", why, timeout, len(self.tasks))
            await self.join(timeout)
        pending = [task for task in self.tasks if not task.done()]
        if not pending:
            return 0
        error_log.warning("%s: cancelling %d background event(s) still running", why, len(pending))
        for task in pending:
            task.cancel()
        _, stuck = await asyncio.wait(pending, timeout=CANCEL_GRACE)
        if stuck:
            error_log.error("%s: %d background event(s) ignored cancellation", why, len(stuck))
        return len(pending)

    def cut(self) -> None:
        """Stop any drain now (a second signal): ``drain`` cancels what is left."""
        self._cut = True
        self._wake_idle()

    def started(self, loop: asyncio.AbstractEventLoop) -> None:
        """The app (re)starts on ``loop``."""
        self.loop = loop
        self._cut = False

    def _wake_idle(self) -> None:
        waiters, self._idle_waiters = self._idle_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
