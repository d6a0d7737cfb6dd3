"""Worker processes: ``--workers N`` / ``HUMP_WORKERS=N`` / ``ServerConfig(workers=N)``.

``App.run()`` with ``workers > 1`` runs a ``Supervisor`` instead of a server. The rules:

1. Each worker is a normal ``app.run()`` in a process of its own, started with
   multiprocessing's "spawn" method: the worker imports the app afresh from its import
   string (``http_web:app``), so it behaves the same whether ``tiny-listener`` or
   ``python -m hump_listener`` started the supervisor, and no event loop, thread or lock
   of the supervisor is ever copied half-way, as ``fork`` would. It then takes the
   supervisor's ``app.config`` whole (``WorkerSpec``), flags included.
2. Sharing the port. On Linux (``SO_REUSEPORT`` with load balancing) every worker
   listens on a socket of its own bound to the same port, and the kernel spreads new
   connections evenly; the supervisor holds one more socket, bound but not listening, so
   the port (resolved once if it was 0) stays reserved while workers come and go.
   Elsewhere (macOS and the BSDs reuse ports without balancing) the supervisor binds and
   listens once and every worker accepts on that inherited socket.
3. Signals. SIGTERM or SIGINT to the supervisor becomes SIGTERM to every worker, each of
   which drains (``App.graceful_shutdown``); the supervisor exits 0 once all exited 0.
   Workers ignore SIGINT: Ctrl+C signals the whole process group, and a worker that saw it
   twice (from the terminal and from the supervisor) would skip its drain. A second
   signal to the supervisor is forwarded too, which makes workers stop without draining.
4. Restarts. A worker that exits while the supervisor is not stopping is restarted, at
   most ``max_restarts`` times per ``restart_window`` seconds per worker slot; beyond that
   the fault is not transient (an import error, a port taken), so the supervisor stops
   the other workers and ``run()`` raises ``SystemExit(1)``.
5. No orphans. Every worker watches a pipe whose write end only the supervisor holds; if
   the supervisor dies without stopping them (SIGKILL), the pipe reports end-of-file and
   the worker drains and exits instead of keeping the port forever.

POSIX only, like the rest of the server's signal handling.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from types import FrameType
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from tiny_listener import Listener, import_from_string

from . import tiny_internals
from .config import ServerConfig, bind_error, loop_factory

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

__all__ = [
    "DEFAULT_MAX_RESTARTS",
    "DEFAULT_RESTART_WINDOW",
    "Servable",
    "Supervisor",
    "WorkerSpec",
    "find_import_string",
]

logger = logging.getLogger("hump_listener.error")

#: A worker slot may be restarted this many times per ``DEFAULT_RESTART_WINDOW`` seconds
#: before the supervisor gives up. systemd's default StartLimitBurst / IntervalSec is 5
#: per 10 s; supervisord's startretries is 3.
DEFAULT_MAX_RESTARTS = 5
DEFAULT_RESTART_WINDOW = 10.0
#: Extra time the supervisor grants workers beyond their drain (the app's or the server
#: config's ``shutdown_timeout``) for shutdown callbacks and process exit; then it kills them.
STOP_GRACE = 5.0

#: Linux balances connections across SO_REUSEPORT listeners (since 3.9); macOS and the
#: BSDs accept the option but hand every connection to one socket.
BALANCED_REUSEPORT = sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def find_import_string(app: Servable) -> str:
    """``app.import_string``, or the ``"module:attr"`` of the module global bound to
    ``app`` (a module other than ``__main__`` preferred)."""
    if app.import_string:
        return app.import_string
    found: list[str] = []
    for name, module in list(sys.modules.items()):
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        for attr, value in list(namespace.items()):
            if value is app:
                found.append(f"{name}:{attr}")
    # __mp_main__ is an alias multiprocessing gives __main__; "__main__:app" re-imports
    # the same script in a spawned worker.
    found = [f for f in found if not f.startswith("__mp_main__:")]
    found.sort(key=lambda f: f.startswith("__main__:"))
    if not found:
        raise RuntimeError(
            "workers > 1 needs to re-import the app in each worker, but no module global "
            "refers to it: set app.import_string = 'module:attr', or run "
            "`python -m hump_listener module:app --workers N`"
        )
    return found[0]


def bind_socket(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    """A bound (not yet listening) TCP socket for ``host:port``."""
    family, type_, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, type_, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker process needs to become a copy of the supervisor's app (picklable).

    ``config`` is the supervisor's resolved ``app.config``, so command-line choices made
    after the import (``--host`` over ``App(host=...)``) reach the workers too; without
    its ``ssl`` context (not picklable: the worker builds its own from the files, or
    keeps the one its own import of the app made)."""

    import_string: str
    port: int
    config: ServerConfig


@runtime_checkable
class Servable(Protocol):
    """What the workers use of an ``App`` (app.py imports this module, not the reverse)."""

    #: ``"module:attr"`` to re-import the app in each worker (found when None).
    import_string: str | None
    #: A bound listening socket to serve instead of binding host:port.
    sock: socket.socket | None
    #: The resolved settings; a worker replaces them with the supervisor's.
    config: ServerConfig

    def server_config(self) -> ServerConfig:
        """``config`` with its TLS context built (a bad certificate fails here)."""

    def run(self) -> None:
        """Serve until SIGTERM/SIGINT."""


def worker_main(spec: WorkerSpec, shared: socket.socket | None, supervisor: Connection) -> None:
    """A worker process's entry point (module level: "spawn" pickles it by name)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # rule 3; the app would reinstall it
    app = import_from_string(spec.import_string)
    if not (isinstance(app, Listener) and isinstance(app, Servable)):
        raise TypeError(f"{spec.import_string} is {type(app).__name__}, not a hump_listener App")
    app.config = dataclasses.replace(spec.config, ssl=app.config.ssl, port=spec.port, workers=1)
    if shared is None:  # rule 2: a socket of our own in the SO_REUSEPORT group
        sock = bind_socket(app.config.host, spec.port, reuse_port=True)
        sock.listen(spec.config.backlog)
        app.sock = sock
    else:
        app.sock = shared

    async def worker_started() -> None:
        loop = asyncio.get_running_loop()
        # App.install_signal_handlers took SIGINT back: give it up again (rule 3).
        loop.remove_signal_handler(signal.SIGINT)
        signal.signal(signal.SIGINT, signal.SIG_IGN)

        def supervisor_gone() -> None:  # rule 5: EOF on the pipe
            loop.remove_reader(supervisor.fileno())
            logger.warning("worker %d: supervisor is gone, shutting down", os.getpid())
            os.kill(os.getpid(), signal.SIGTERM)

        loop.add_reader(supervisor.fileno(), supervisor_gone)

    tiny_internals.startup_callbacks(app).insert(0, worker_started)  # before the app's own
    app.run()


class Supervisor:
    """Start ``app.config.workers`` workers, restart the ones that die, stop them all on
    SIGTERM/SIGINT. ``run()`` returns the exit status: 0 when every worker stopped cleanly."""

    def __init__(
        self,
        app: Servable,
        *,
        max_restarts: int = DEFAULT_MAX_RESTARTS,
        restart_window: float = DEFAULT_RESTART_WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.clock = clock
        self.count = app.config.workers
        self.max_restarts = max_restarts
        self.restart_window = restart_window
        self._context = multiprocessing.get_context("spawn")
        # Supervisor-lifetime state
        self.processes: list[BaseProcess] = []
        self._restarts: list[deque[float]] = []
        self._signals = 0
        self._failed = False
        self._drain = 0.0  # a worker's drain time (run())
        self._wake_r = self._wake_w = -1  # the signal handler's way to wake _wait (run())

    # -- signals -----------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        with contextlib.suppress(BlockingIOError):  # full: already awake
            os.write(self._wake_w, b"\0")

    def _wait(self, timeout: float | None) -> None:
        """Sleep until a worker exits, a signal arrives or ``timeout`` passes."""
        wait([*(p.sentinel for p in self.processes), self._wake_r], timeout)
        with contextlib.suppress(BlockingIOError):
            os.read(self._wake_r, 512)

    # -- running -------------------------------------------------------------------------

    def run(self) -> int:
        """Raises ``ConfigError`` (one line; ``App.run`` prints it and exits 1) for a bad
        setting, a TLS file that cannot be loaded, uvloop missing or a failed bind,
        before any worker starts."""
        app = self.app
        import_string = find_import_string(app)
        config = app.server_config()  # builds the TLS context: a bad cert fails here, once
        loop_factory(config.loop)  # uvloop asked for but missing: fail here, once
        self._drain = config.shutdown_timeout
        try:
            holder = bind_socket(config.host, config.port, reuse_port=BALANCED_REUSEPORT)
        except OSError as exc:
            raise bind_error(exc, config.host, config.port) from None
        shared: socket.socket | None = None
        if not BALANCED_REUSEPORT:
            try:
                holder.listen(config.backlog)
            except OSError as exc:
                holder.close()
                raise bind_error(exc, config.host, config.port) from None
            shared = holder
        port = int(holder.getsockname()[1])
        spec = WorkerSpec(import_string, port, dataclasses.replace(config, ssl=None))
        # Rule 5: workers get the read end; only this process holds the write end.
        watch_r, watch_w = self._context.Pipe(duplex=False)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        handled = (signal.SIGTERM, signal.SIGINT)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in handled}
        scheme = "https" if config.ssl is not None else "http"
        host = f"[{config.host}]" if ":" in config.host else config.host
        logger.info(
            "Supervisor %d: %d workers (%s) for %s on %s://%s:%d",
            os.getpid(), self.count, "SO_REUSEPORT" if shared is None else "shared socket",
            import_string, scheme, host, port,
        )
        try:
            for slot in range(self.count):
                self._restarts.append(deque())
                self.processes.append(self._start(slot, spec, shared, watch_r))
            self._supervise(spec, shared, watch_r)
            return self._stop()
        finally:
            for p in self.processes:  # only reached with live workers on an exception
                if p.exitcode is None:
                    p.kill()
                    p.join()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            holder.close()
            watch_r.close()
            watch_w.close()
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _start(self, slot: int, spec: WorkerSpec, shared: socket.socket | None, pipe: Connection) -> BaseProcess:
        process = self._context.Process(
            target=worker_main, args=(spec, shared, pipe), name=f"hump_listener-worker-{slot}"
        )
        process.start()
        logger.info("Started worker %d (pid %s)", slot, process.pid)
        return process

    def _supervise(self, spec: WorkerSpec, shared: socket.socket | None, pipe: Connection) -> None:
        while not self._signals:
            self._wait(None)
            if self._signals:
                return
            for slot, process in enumerate(self.processes):
                if process.exitcode is None:
                    continue
                process.join()
                logger.warning("Worker %d (pid %s) exited with %s", slot, process.pid, _describe(process.exitcode))
                if not self._may_restart(slot):
                    logger.error(
                        "Worker %d exited %d times within %.0f s: giving up",
                        slot, self.max_restarts + 1, self.restart_window,
                    )
                    self._failed = True
                    return
                self.processes[slot] = self._start(slot, spec, shared, pipe)

    def _may_restart(self, slot: int) -> bool:
        now = self.clock()
        history = self._restarts[slot]
        while history and now - history[0] > self.restart_window:
            history.popleft()
        if len(history) >= self.max_restarts:
            return False
        history.append(now)
        return True

    def _stop(self) -> int:
        """SIGTERM every worker (again on every further signal), wait for them, kill the
        ones still running after their drain time."""
        deadline = time.monotonic() + self._drain + STOP_GRACE
        forwarded = 0
        while True:
            alive = [p for p in self.processes if p.exitcode is None]
            if not alive:
                break
            if forwarded < max(self._signals, 1):
                forwarded = max(self._signals, 1)
                logger.info("Stopping %d worker(s)", len(alive))
                for p in alive:
                    if p.pid is not None:
                        os.kill(p.pid, signal.SIGTERM)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                for p in alive:
                    logger.error("Worker pid %s did not stop in time: killing it", p.pid)
                    p.kill()
                    p.join()
                break
            self._wait(remaining)
        clean = True
        for slot, p in enumerate(self.processes):
            p.join()
            if p.exitcode != 0:
                clean = False
                logger.warning("Worker %d (pid %s) stopped with %s", slot, p.pid, _describe(p.exitcode))
        logger.info("Supervisor %d: all workers stopped", os.getpid())
        return 0 if clean and not self._failed else 1


def _describe(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"signal {-exitcode}"
    return f"status {exitcode}"
