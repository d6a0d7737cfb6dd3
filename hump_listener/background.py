"""Background events: tiny-listener events fired by name, run as tasks of their own that
outlive the request that fired them (``context`` has the contexts they run in, ``events``
the ``Event``).

``ctx.trigger_event("user_created", data={...})`` from a handler, ``app.trigger_event``
outside any request (a startup callback, a timer) and ``app.trigger_event_threadsafe``
from another thread all end in one function, ``BackgroundEvents.trigger``. tiny-listener's
own ``trigger_event`` loses them (its detached tasks are never kept, their errors
re-raised into nowhere); the rules here undo that:

1. **Every task is kept and inspected.** ``BackgroundEvents.tasks`` holds each task until
   a done-callback removes it. The event's hold on its context is released as the
   coroutine's last step (so whoever awaits the task finds the context released), or by
   that callback for a task cancelled before its first step, which never ran.
2. **Errors are reported exactly once, never re-raised into a detached task.** An
   exception in a handler (or its before/after hooks, or a timeout) goes to the hooks'
   one error path (``Hooks.report``: the matching ``on_error`` hooks, else a log line on
   ``hump_listener.error`` with the traceback, the event's name and who fired it: ``GET
   /signup``). The task's result is the handler's return value, or ``None`` when it
   failed (the exception is on ``event.error``): awaiting it never raises, and asyncio
   never logs "Task exception was never retrieved".
3. **They are bounded.** At most ``limit`` run at once (``App(max_background_events=...)``,
   ``DEFAULT_MAX_BACKGROUND_EVENTS``); beyond it ``trigger`` raises
   ``BackgroundEventsFull`` at once, an ``HTTPError`` 503 with ``Retry-After``, so a
   request that triggers one is answered 503 unless it catches it, and memory does not
   grow with the request rate behind a slow handler.

Injection is the HTTP handlers' (``endpoints.build_plan``): planned once per event
route, also under ``from __future__ import annotations``; ``ctx: HTTPContext`` is the
context the event was triggered in, ``event: Event`` the event itself, ``x: Data`` its
data, ``x: Param`` the event name's placeholders. ``before_event`` / ``after_event``
hooks run around background events as around requests, as in tiny-listener.

Shutdown (``Lifecycle.shutdown``) drains them: ``drain(timeout)`` waits for every running
event, also ones triggered meanwhile, then cancels the rest with one log line saying
how many.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import weakref
from collections.abc import Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from tiny_listener import ContextNotFound, Route

from . import tiny_internals
from .endpoints import Endpoint, Handler, Plan, build_plan, call_plan
from .errors import HTTPError

if TYPE_CHECKING:
    from .context import Contexts, EventContext
    from .durable import DurableEvents
    from .events import Event
    from .hooks import Hooks
    from .registration import RouteTable

__all__ = ["CANCEL_GRACE", "DEFAULT_MAX_BACKGROUND_EVENTS", "BackgroundEvents", "BackgroundEventsFull"]

error_log = logging.getLogger("hump_listener.error")

#: After cancelling what the drain left, how long cancelled events get to unwind (their
#: ``finally`` blocks) before we stop waiting. The server gives cancelled requests 1 s too.
CANCEL_GRACE = 1.0
#: Most background events running at once (rule 3). Precedents: aiojobs' ``Scheduler``
#: runs 100 jobs and queues up to ``pending_limit=10000`` more before ``spawn`` waits;
#: arq's worker ``max_jobs`` is 10 per process; Starlette's ``BackgroundTasks`` and
#: tiny-listener set none. Ours run at once (no queue), so the cap is aiojobs' whole
#: backlog: a handler stuck on a slow service holds at most ~10,000 tasks (tens of MB),
#: while a burst of ordinary work never meets it.
DEFAULT_MAX_BACKGROUND_EVENTS = 10_000


class BackgroundEventsFull(HTTPError):
    """``limit`` background events are already running (rule 3): an ``HTTPError`` 503 with
    ``Retry-After: 1``, so a request that fires one more is answered "try again"."""

    def __init__(self, name: str, limit: int) -> None:
        super().__init__(
            503,
            f"cannot run background event {name!r}: {limit} are already running "
            "(App(max_background_events=...))",
            {"Retry-After": "1"},
        )
        self.name = name
        self.limit = limit


class BackgroundEvents:
    """The app's background events (server lifetime): every running task, the event
    loop they run on, the planned handlers, the limit, the shutdown drain. Handed the
    route table (events are found by name), the hooks and the context factory."""

    def __init__(
        self,
        routes: RouteTable,
        hooks: Hooks,
        contexts: Contexts,
        ctxs: Mapping[str, EventContext],
        limit: int = DEFAULT_MAX_BACKGROUND_EVENTS,
        durable: DurableEvents | None = None,
    ) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"max_background_events must be a positive integer, got {limit!r}")
        self.routes = routes
        self.hooks = hooks
        self.contexts = contexts
        self.ctxs = ctxs
        #: Durable events (durable.py): a trigger of one is stored there instead of run here.
        self.durable = durable
        #: Most events running at once (rule 3).
        self.limit = limit
        #: Every running background event's task; each is removed by its done-callback.
        self.tasks: set[asyncio.Task[Any]] = set()
        #: The loop events run on (known once the app started or an event was triggered);
        #: ``trigger_threadsafe`` schedules onto it.
        self.loop: asyncio.AbstractEventLoop | None = None
        # Event route → (handler, injection plan), planned on first trigger.
        self._plans: weakref.WeakKeyDictionary[Route, tuple[Handler, Plan]] = weakref.WeakKeyDictionary()
        self._idle_waiters: list[asyncio.Future[None]] = []
        self._cut = False  # a second signal: stop draining

    # -- triggering (the one path) ------------------------------------------------------

    def trigger(
        self,
        path: str,
        ctx: EventContext | None = None,
        *,
        timeout: float | None = None,
        data: Mapping[str, Any] | None = None,
        key: str | None = None,
        delay: float | None = None,
    ) -> asyncio.Task[Any]:
        """Run event ``path`` as a task of its own (see the module rules), in ``ctx``, or
        in a fresh context dropped when it is done. ``EventNotFound`` for an unknown
        name, ``ValueError`` for an HTTP route, ``BackgroundEventsFull`` beyond the limit.
        A durable event (``key``, ``delay``: durable.py) is stored instead; the task
        gives its id."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                f"trigger_event({path!r}) needs a running event loop; from another thread "
                "use app.trigger_event_threadsafe()"
            ) from None
        route, params = self.routes.match_route(path)
        if isinstance(route, Endpoint):
            raise ValueError(
                f"{path!r} is an HTTP route: requests come from the server, they are not triggered"
            )
        durable = self.durable
        if durable is not None and (key is not None or delay is not None or durable.handles(route)):
            return durable.trigger(route, path, data, timeout=timeout, key=key, delay=delay)
        if len(self.tasks) >= self.limit:
            raise BackgroundEventsFull(path, self.limit)
        fn, plan = self._plan(route)
        self.loop = loop
        if ctx is None:
            ctx = self.contexts.for_event()
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

    def live_context(self, cid: str) -> EventContext:
        """The live context ``cid`` (``app.trigger_event(name, cid=...)``), or
        ``ContextNotFound`` once its request and events have finished."""
        found = self.ctxs.get(cid)
        if found is None:
            raise ContextNotFound(f"context {cid!r} is not alive (its request and events have finished)")
        return found

    def trigger_threadsafe(
        self,
        path: str,
        *,
        timeout: float | None = None,
        data: Mapping[str, Any] | None = None,
        key: str | None = None,
        delay: float | None = None,
    ) -> concurrent.futures.Future[Any]:
        """``trigger`` from any thread, in a fresh context: scheduled onto the app's loop;
        the future gets the handler's return value (``None`` if it failed: the error was
        reported there), or the exception that kept it from being triggered
        (``EventNotFound``, ``BackgroundEventsFull``)."""
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
                task = self.trigger(path, timeout=timeout, data=data, key=key, delay=delay)
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
        hooks = self.hooks
        ctx = event.ctx
        event.running = True
        try:
            if hooks.before:
                await hooks.run_before(event)
            call = call_plan(fn, plan, ctx, params, event)  # type: ignore[arg-type]
            event._value = await (call if timeout is None else asyncio.wait_for(call, timeout))
            if hooks.after:
                await hooks.run_after(event)
            return event._value
        except Exception as exc:
            event.error = exc
            await hooks.report(event, exc, f"background event {event.name!r} (fired by {ctx.describe()})")
            return None
        finally:
            event.running = False
            self._settle(event)

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
