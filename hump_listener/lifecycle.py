"""Lifecycle: one startup and one shutdown for every runner, and the signals that stop it.

One pair of methods, ``await app.run_startup()`` / ``await app.run_shutdown()``, used by
every runner (the built-in server in ``App.main()``, the ASGI lifespan, the test client,
the workers, which run ``main()``), with one policy:

1. Startup runs the services' starts (``add_service``), then the ``@app.startup``
   callbacks, in order. The first that raises stops startup: it is logged once on
   ``hump_listener.error`` ("Application startup failed: ..."), background events it
   started are cancelled, services already started are stopped, and the exception
   propagates: the server exits 1, the ASGI adapter sends ``lifespan.startup.failed``,
   the test client raises it. Shutdown callbacks do not run after a failed startup
   (as in Starlette and uvicorn: they may depend on what startup did not finish).
2. Shutdown drains the background events (up to the drain time: what is left of the one
   ``shutdown_timeout`` the server's request drain started), then runs every
   ``@app.shutdown`` callback (one that raises is logged, the next still runs), then
   cancels events those callbacks triggered if they outlive the deadline, then stops the
   services in reverse order (failures logged). It never raises.

Under the built-in server, SIGINT/SIGTERM start ``graceful_shutdown``: stop accepting,
drain requests and background events within one deadline, then policy 2; a second
signal cuts the drain short.

``Lifecycle`` is one part of ``App`` (``app.App`` composes the parts, sets the state
declared here, and starts the server in ``App.main()``); it is not used on its own. It
knows the server only as something with ``shutdown(timeout)``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from tiny_listener import Listener

from . import tiny_internals
from .context import HTTPContext

if TYPE_CHECKING:
    from .background import BackgroundEvents
    from .durable import DurableEvents

__all__ = ["Callback", "Lifecycle", "Stoppable"]

error_log = logging.getLogger("hump_listener.error")

#: A startup/shutdown callback or a service's start/stop: ``async def fn() -> Any``.
Callback = Callable[[], Awaitable[Any]]


class Stoppable(Protocol):
    """What a signal needs of the running server (``protocol.Server``): a drain."""

    async def shutdown(self, timeout: float | None = None) -> None:
        """Stop accepting, give in-flight requests up to ``timeout`` s, then stop."""


class Lifecycle(Listener[HTTPContext]):
    """The part of ``App`` that starts and stops it: services, the startup/shutdown
    callbacks (one policy, in the module docstring), signals and the graceful drain."""

    # Set by App.__init__ (app.py); declared here, where the lifecycle uses them.
    #: Background events: their tasks, their loop, the shutdown drain (background.py).
    background: BackgroundEvents
    #: Durable events: their workers, drained with the background events (durable.py).
    durable: DurableEvents
    #: ``add_service`` pairs, in order; the stops of those started, for the shutdown.
    _services: list[tuple[Callback | None, Callback | None]]
    _started_services: list[Callback | None]
    #: The running server (``App.listen`` sets it), or None.
    server: Stoppable | None
    # Tasks we start ourselves (signal handling); kept so they are not collected.
    _tasks: set[asyncio.Task[Any]]
    _loop: asyncio.AbstractEventLoop | None
    _stopping: bool
    _stopped: asyncio.Event | None  # set when run()'s main() may return
    _starting: bool

    if TYPE_CHECKING:  # App's configuration (app.py)

        @property
        def drain_timeout(self) -> float: ...

    # -- one startup / shutdown for every runner (policy: module docstring) ---------------

    def add_service(self, start: Callback | None = None, stop: Callback | None = None) -> None:
        """Register a framework service (a broadcast backend, a pool): ``start`` runs
        before the ``@app.startup`` callbacks (so they can use it), ``stop`` after the
        shutdown callbacks and the background-event drain, in reverse order."""
        self._services.append((start, stop))

    async def run_startup(self) -> None:
        """Start the app on the running loop: services, then the startup callbacks.

        The first failure is logged once and re-raised (policy 1 in the module docstring)."""
        self.background.started(asyncio.get_running_loop())
        self._started_services = []
        step = "service"
        callback: Any = None
        try:
            for start, stop in self._services:
                callback = start
                if start is not None:
                    await start()
                self._started_services.append(stop)
            step = "startup callback"
            for callback in list(tiny_internals.startup_callbacks(self)):
                await callback()
        except Exception as exc:
            error_log.error(
                "Application startup failed: %s %s raised %s: %s",
                step, _callable_name(callback), type(exc).__name__, exc, exc_info=exc,
            )
            await self.background.drain(0, "startup failed")
            await self._stop_services()
            raise

    async def run_shutdown(self, timeout: float | None = None) -> None:
        """Drain background events (up to ``timeout``, default ``drain_timeout``), run the
        shutdown callbacks, stop the services. Never raises (policy 2)."""
        loop = asyncio.get_running_loop()
        timeout = self.drain_timeout if timeout is None else timeout
        deadline = loop.time() + timeout
        await self.durable.drain(timeout)  # durable.py: hands back (or, in-process, runs) its events
        await self.background.drain(max(deadline - loop.time(), 0.0))
        for callback in list(tiny_internals.shutdown_callbacks(self)):
            try:
                await callback()
            except Exception as exc:
                error_log.error(
                    "shutdown callback %s failed (the others still run)", _callable_name(callback), exc_info=exc
                )
        if self.background.tasks:  # triggered by a shutdown callback
            await self.background.drain(max(deadline - loop.time(), 0.0))
        await self._stop_services()

    async def _stop_services(self) -> None:
        stops, self._started_services = self._started_services, []
        for stop in reversed(stops):
            if stop is None:
                continue
            try:
                await stop()
            except Exception as exc:
                error_log.error("stopping service %s failed", _callable_name(stop), exc_info=exc)

    # -- signals (the built-in server) ---------------------------------------------------

    def install_signal_handlers(self) -> None:
        """SIGINT and SIGTERM start ``graceful_shutdown`` (main thread only: a server
        run in another thread is stopped by its owner)."""
        import threading

        if threading.current_thread() is not threading.main_thread():
            return
        loop = self._loop or asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: int) -> None:
        task = asyncio.ensure_future(self.graceful_shutdown(sig))
        self._tasks.add(task)
        task.add_done_callback(self._signal_task_done)

    def _signal_task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            error_log.error("graceful shutdown failed", exc_info=exc)
            if self._stopped is not None:
                self._stopped.set()

    async def graceful_shutdown(self, sig: int) -> None:
        """Stop accepting, drain in-flight requests and background events (one deadline:
        ``shutdown_timeout``), run the shutdown callbacks, then let ``run()`` return.

        A second signal skips what is left of the drain: background events are cancelled
        at once (with the log line saying how many) and the server is told to cut its
        request drain short (``server.shutdown(0)``)."""
        if self._stopping:
            error_log.info("Second signal (%s): skipping the rest of the drain", sig)
            self.background.cut()
            self.durable.cut()
            if self.server is not None:
                await self.server.shutdown(0)
            return
        self._stopping = True
        if self._starting:
            error_log.info("Signal %s during startup: shutting down once it has finished", sig)
            return  # main() sees _stopping after run_startup and shuts down instead of serving
        error_log.info("Shutting down (signal %s)", sig)
        self.durable.stop_taking()  # durable.py: no new durable events from now on
        loop = asyncio.get_running_loop()
        timeout = self.drain_timeout
        deadline = loop.time() + timeout
        try:
            if self.server is not None:
                await self.server.shutdown(timeout)
            await self.run_shutdown(max(deadline - loop.time(), 0.0))
        finally:
            if self._stopped is not None:
                self._stopped.set()


def _callable_name(fn: Any) -> str:
    """``module.qualname`` of a callback, for log lines."""
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
