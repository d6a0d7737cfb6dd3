"""Lifecycle: one startup and one shutdown for every runner, and the signals that stop it.

``Lifecycle.startup()`` / ``Lifecycle.shutdown()`` (``app.run_startup()`` /
``app.run_shutdown()``) are used by every runner (the built-in server in ``serve``, the
ASGI lifespan, the test client, the workers, which run ``App.main()``), with one policy:

1. Startup runs the services' starts (``add_service``), then the ``@app.startup``
   callbacks, in order. The first that raises stops startup: it is logged once on
   ``hump_listener.error`` ("Application startup failed: ..." with the traceback, or
   only its one-line message for a ``ConfigError``, such as Redis unreachable), background events it
   started are cancelled, services already started are stopped, and the exception
   propagates: the server exits 1, the ASGI adapter sends ``lifespan.startup.failed``,
   the test client raises it. Shutdown callbacks do not run after a failed startup
   (as in Starlette and uvicorn: they may depend on what startup did not finish).
2. Shutdown drains the background events (up to the drain time: what is left of the one
   ``shutdown_timeout`` the server's request drain started), then runs every
   ``@app.shutdown`` callback (one that raises is logged, the next still runs), then
   cancels events those callbacks triggered if they outlive the deadline, then stops the
   services in reverse order (failures logged). It never raises.
3. Under the built-in server (``serve``), SIGINT/SIGTERM start ``graceful_shutdown``:
   stop accepting, drain requests and background events within one deadline
   (``shutdown_timeout``), then policy 2. A second signal skips what is left of the
   drain; the drain's log line says so.

It knows the server only as something with ``shutdown(timeout)`` (``Stoppable``), the
callbacks only as tiny-listener's lists, and the background events by their drain.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from .config import ConfigError
from .logs import log_startup_error

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


class Lifecycle:
    """Starts and stops the app (server lifetime): services, the startup/shutdown
    callbacks (one policy, in the module docstring), signals and the graceful drain."""

    def __init__(
        self,
        startup_callbacks: list[Callback],
        shutdown_callbacks: list[Callback],
        background: BackgroundEvents,
        drain_timeout: Callable[[], float],
        durable: DurableEvents | None = None,
    ) -> None:
        #: tiny-listener's lists (``@app.startup`` / ``@app.shutdown`` append to them).
        self.startup_callbacks = startup_callbacks
        self.shutdown_callbacks = shutdown_callbacks
        self.background = background
        #: Durable events: drained first, their running events handed back (durable.py).
        self.durable = durable
        #: Seconds a shutdown waits for requests and background events together
        #: (``config.shutdown_timeout``, read when a shutdown starts).
        self.drain_timeout = drain_timeout
        #: ``add_service`` pairs, in order; the stops of those started, for the shutdown.
        self._services: list[tuple[Callback | None, Callback | None]] = []
        self._started_services: list[Callback | None] = []
        #: The running server (``serve`` sets it), or None.
        self.server: Stoppable | None = None
        # Per run of ``serve`` (the built-in server):
        self._tasks: set[asyncio.Task[Any]] = set()  # signal handling, kept until done
        self._stopping = False  # a signal came: shutting down
        self._starting = False  # startup is running (a signal waits for it to finish)
        self._stopped: asyncio.Event | None = None  # set when serve() may return
        #: What the process exits with once ``serve`` returned: 1 after a start-up error.
        self.exit_status = 0

    @property
    def stopping(self) -> bool:
        """A signal has started the shutdown."""
        return self._stopping

    # -- one startup / shutdown for every runner (policies 1 and 2) ------------------------

    def add_service(self, start: Callback | None = None, stop: Callback | None = None) -> None:
        """Register a framework service (a broadcast backend, a pool): ``start`` runs
        before the ``@app.startup`` callbacks (so they can use it), ``stop`` after the
        shutdown callbacks and the background-event drain, in reverse order."""
        self._services.append((start, stop))

    async def startup(self) -> None:
        """Start the app on the running loop: services, then the startup callbacks. The
        first failure is logged once and re-raised (policy 1)."""
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
            for callback in list(self.startup_callbacks):
                await callback()
        except Exception as exc:
            from .config import ConfigError

            if isinstance(exc, ConfigError):  # its message says what to fix: one line
                error_log.error("%s", exc)
            else:
                error_log.error(
                    "Application startup failed: %s %s raised %s: %s",
                    step, _callable_name(callback), type(exc).__name__, exc, exc_info=exc,
                )
            await self.background.drain(0, "startup failed")
            await self._stop_services()
            raise

    async def shutdown(self, timeout: float | None = None) -> None:
        """Drain background events (up to ``timeout``, default the drain time), run the
        shutdown callbacks, stop the services. Never raises (policy 2)."""
        loop = asyncio.get_running_loop()
        timeout = self.drain_timeout() if timeout is None else timeout
        deadline = loop.time() + timeout
        if self.durable is not None:
            await self.durable.drain(timeout)  # hands back (or, in-process, runs) its events
        await self.background.drain(max(deadline - loop.time(), 0.0))
        for callback in list(self.shutdown_callbacks):
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

    # -- the built-in server (policy 3) ------------------------------------------------------

    async def serve(self, listen: Callable[[], Awaitable[Stoppable]]) -> None:
        """Startup, ``listen()`` (which starts the server and returns it), then wait for
        the signal whose ``graceful_shutdown`` ends the run. A start-up error sets
        ``exit_status`` to 1 (logged: by ``startup``, or as one line for a bad setting
        or a busy port)."""
        self._stopping = False
        self.exit_status = 0
        self._stopped = asyncio.Event()
        self._starting = True
        try:
            await self.startup()
        except Exception:
            self.exit_status = 1  # logged by startup()
            return
        finally:
            self._starting = False
        if self._stopping:  # a signal came during startup
            await self.shutdown()
            return
        try:
            self.server = await listen()
        except (ConfigError, OSError) as exc:  # a busy port, a bad certificate: one line
            log_startup_error(str(exc))
            self.exit_status = 1
            await self.shutdown(0)  # startup ran, so shutdown does too
            return
        await self._stopped.wait()

    def install_signal_handlers(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """SIGINT and SIGTERM start ``graceful_shutdown`` on ``loop`` (default: the
        current one); main thread only: a server run in another thread is stopped by its
        owner."""
        if threading.current_thread() is not threading.main_thread():
            return
        if loop is None:
            loop = asyncio.get_event_loop()
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
        the drain time), run the shutdown callbacks, then let ``serve`` return.

        A second signal skips what is left of the drain: background events are cancelled
        at once (with the log line saying how many) and the server is told to cut its
        request drain short (``server.shutdown(0)``)."""
        if self._stopping:
            error_log.info("Second signal (%s): skipping the rest of the drain", sig)
            self.background.cut()
            if self.durable is not None:
                self.durable.cut()
            if self.server is not None:
                await self.server.shutdown(0)
            return
        self._stopping = True
        if self._starting:
            error_log.info("Signal %s during startup: shutting down once it has finished", sig)
            return  # serve() sees _stopping after startup and shuts down instead of serving
        if self.durable is not None:
            self.durable.stop_taking()  # no new durable events from now on
        loop = asyncio.get_running_loop()
        timeout = self.drain_timeout()
        error_log.info(
            "Shutting down (signal %s): draining for up to %.3g s; a second signal skips the drain", sig, timeout
        )
        deadline = loop.time() + timeout
        try:
            if self.server is not None:
                await self.server.shutdown(timeout)
            await self.shutdown(max(deadline - loop.time(), 0.0))
        finally:
            if self._stopped is not None:
                self._stopped.set()


def _callable_name(fn: Any) -> str:
    """``module.qualname`` of a callback, for log lines."""
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
