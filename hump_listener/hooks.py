"""Hooks: tiny-listener's ``before_event`` / ``after_event`` / ``on_error`` hooks, run in
one place for every kind of event (a request, a WebSocket connection, a background event).

``@app.before_event``, ``@app.after_event`` and ``@app.on_error(exc)`` register into the
lists tiny-listener's ``Listener`` owns (``tiny_internals``), each hook with its injection
planned once (``endpoints.PlannedHook``). ``Hooks`` holds those live lists and is handed
to the request path, the WebSocket path and the background events, which run them here:

1. ``before(event)`` / ``after(event)``: every hook of that kind, in order, with the event
   (``event.ctx`` is the context). An exception propagates to the caller, as one from the
   handler would.
2. ``report(event, exc, where)``: **on_error hooks, else log**. The hooks registered for a
   class of ``exc`` run with ``event.error`` set; with none (or no event: the request was
   not routed), ``exc`` is logged on ``hump_listener.error`` with its traceback as
   ``Exception in <where>``. A hook that fails is logged with the error it was handling,
   and the next one still runs. A request is the one caller that needs more
   (``answered``): its hooks may answer it (reply, or raise ``HTTPError``, which
   propagates for the request path to send); one that no hook answered is a 500, and its
   traceback is logged as well.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .endpoints import Handler, PlannedHook
from .errors import HTTPError

if TYPE_CHECKING:
    from tiny_listener import Event

__all__ = ["Hooks"]

error_log = logging.getLogger("hump_listener.error")


class Hooks:
    """The app's hooks (server lifetime): the live lists tiny-listener's decorators fill,
    and the one runner (rules in the module docstring)."""

    __slots__ = ("after", "before", "errors")

    def __init__(
        self, before: list[Any], after: list[Any], errors: list[tuple[type[Exception], Any]]
    ) -> None:
        #: ``before_event`` hooks (``hook(event, params)`` callables), in order.
        self.before = before
        #: ``after_event`` hooks, in order.
        self.after = after
        #: ``(exception class, hook)`` pairs, in order.
        self.errors = errors

    # -- registering (``@app.before_event`` ...) -------------------------------------------

    def add_before(self, fn: Handler) -> None:
        """``fn`` runs before every handler, request or event."""
        self.before.append(PlannedHook(fn, "before_event"))

    def add_after(self, fn: Handler) -> None:
        """``fn`` runs after every handler that returned."""
        self.after.append(PlannedHook(fn, "after_event"))

    def add_error(self, fn: Handler, exc: type[Exception]) -> None:
        """``fn`` runs when a handler raises an ``exc`` (rule 2)."""
        self.errors.append((exc, PlannedHook(fn, "on_error")))

    # -- running (rules 1 and 2) -------------------------------------------------------------

    async def run_before(self, event: Event[Any]) -> None:
        """Every ``before_event`` hook, in order (rule 1)."""
        for hook in self.before:
            await hook(event, {})

    async def run_after(self, event: Event[Any]) -> None:
        """Every ``after_event`` hook, in order (rule 1)."""
        for hook in self.after:
            await hook(event, {})

    async def report(
        self,
        event: Event[Any] | None,
        exc: Exception,
        where: str,
        answered: Callable[[], bool] | None = None,
    ) -> None:
        """On_error hooks, else log (rule 2). ``where`` names what failed in log lines
        (``handler app.index for GET /``). ``answered``: for a request, whether its hooks
        answered it; a hook's ``HTTPError`` then propagates (the request path sends it)."""
        hooks = [hook for kls, hook in self.errors if isinstance(exc, kls)] if event is not None else ()
        if hooks:
            assert event is not None
            event.error = exc
            for hook in hooks:
                try:
                    await hook(event, {})
                except Exception as hook_exc:
                    if answered is not None and isinstance(hook_exc, HTTPError):
                        raise  # the hook answers the request
                    error_log.error(
                        "on_error hook %r failed handling %r in %s", hook, exc, where, exc_info=hook_exc
                    )
            if answered is None or answered():
                return
        error_log.error("Exception in %s", where, exc_info=exc)
