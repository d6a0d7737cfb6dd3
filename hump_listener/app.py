"""App: the composition root, the one module that wires the framework to the server.

``App`` is composed of parts, one job each, and adds what ties them to the built-in
server (``protocol``), which no other framework module imports::

    App(Registration, Lifecycle)                  app.py: state, configuration, serving
        Registration(RequestPath)                 registration.py: routes, hooks, middleware
            RequestPath                           dispatch.py: handle(), the request path
        Lifecycle                                 lifecycle.py: startup, shutdown, signals
    used by them: replies.py (one reply path), chain.py (the middleware chain),
    routing.py / route_templates.py / targets.py (the route tree, templates, request targets),
    endpoints.py (injection plans), background.py / events.py (background events)

Two entries: ``App.handle(head, channel)`` is the seam (what the built-in server, the
test client and the ASGI adapter call per request; ``dispatch`` has the request path in
order); ``App.__call__(scope, receive, send)`` is ASGI 3, so ``uvicorn module:app`` serves
the app (lifespan included) through ``app.asgi``, the adapter, which calls ``handle`` in
turn.

Every part's state is set here, in ``App.__init__`` (each part declares what it uses).
Configuration is one typed ``ServerConfig`` (``config``), resolved with the environment
on first use. Serving with the built-in server is ``run()`` → ``main()``: the lifecycle's
startup (``lifecycle`` has the policy), ``listen()``, then wait for the signal.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from . import tiny_internals
from .background import BackgroundEvents
from .broadcast import Broadcast
from .context import HTTPContext
from .durable import DurableEvents
from .endpoints import Endpoint, Middleware
from .lifecycle import Callback, Lifecycle
from .proxy import TrustedProxies
from .registration import Registration
from .replies import error_response as error_response  # re-exported: app.reconcile & co.
from .replies import reconcile as reconcile
from .replies import to_response as to_response
from .routing import Router
from .threads import DEFAULT_SYNC_WORKERS, SyncPool

if TYPE_CHECKING:
    import socket

    from tiny_listener import Route

    from .asgi import ASGIAdapter, Receive, Scope, Send
    from .config import ServerConfig
    from .protocol import Server

__all__ = ["DEFAULT_MAX_BODY_SIZE", "App"]

error_log = logging.getLogger("hump_listener.error")

#: Largest request body a handler may read (413 beyond). aiohttp's client_max_size and
#: nginx's client_max_body_size are 1 MiB too; Starlette and Flask set none.
DEFAULT_MAX_BODY_SIZE = 1024 * 1024

T = TypeVar("T")


class _Setting(Generic[T]):
    """``app.port`` and the like: reads ``app.config.port``; ``app.port = 0`` is
    ``app.configure(port=0)``."""

    name = ""

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self.name = name

    @overload
    def __get__(self, app: None, owner: type[Any]) -> _Setting[T]: ...
    @overload
    def __get__(self, app: App, owner: type[Any]) -> T: ...
    def __get__(self, app: App | None, owner: type[Any]) -> T | _Setting[T]:
        if app is None:
            return self
        value: T = getattr(app.config, self.name)
        return value

    def __set__(self, app: App, value: T) -> None:
        app.configure(**{self.name: value})


class App(Registration, Lifecycle):
    """A hump_listener application: ``tiny-listener module:app`` runs it.

    Registering (``@app.get``, ``@app.middleware``, ...) is ``Registration``'s, serving a
    request ``RequestPath``'s (``handle``), starting and stopping ``Lifecycle``'s; this
    class holds their state, the configuration and the built-in server's wiring."""

    def __init__(
        self,
        host: str | None = None,
        port: int | None = None,
        *,
        config: ServerConfig | None = None,
        max_body_size: int | None = DEFAULT_MAX_BODY_SIZE,
        access_log: bool | None = None,
        shutdown_timeout: float | None = None,
        forwarded_allow_ips: str | Sequence[str] | None = None,
        broadcast_url: str | None = None,
        sync_workers: int = DEFAULT_SYNC_WORKERS,
        server_options: Mapping[str, Any] | None = None,
    ) -> None:
        """``config`` and the keyword arguments are the settings written in code; the
        environment (``HUMP_*``) applies to the others, and the command line wins over
        both (see ``config``). ``server_options`` is the deprecated spelling of
        ``config=ServerConfig(...)``."""
        super().__init__()
        # Server-lifetime configuration: what the code says, resolved into ``config``
        # (with the environment) on first use, so that a bad HUMP_* variable is a
        # start-up error of the runner, not an import error of the app's module.
        self._code: dict[str, Any] = {}
        if config is not None:
            from .config import ServerConfig, code_settings

            if not isinstance(config, ServerConfig):
                raise TypeError(f"config must be a ServerConfig, got {type(config).__name__}")
            self._code.update(code_settings(config))
        if server_options is not None:
            warnings.warn(
                "App(server_options={...}) is deprecated: use App(config=ServerConfig(...))",
                DeprecationWarning, stacklevel=2,
            )
            self._code.update(server_options)  # unknown keys: a ConfigError naming the fields
        for name, value in (
            ("host", host), ("port", port), ("access_log", access_log),
            ("shutdown_timeout", shutdown_timeout), ("forwarded_allow_ips", forwarded_allow_ips),
            ("broadcast_url", broadcast_url),
        ):
            if value is None:
                continue
            if name in self._code and self._code[name] != value:
                raise TypeError(f"App({name}=...) and App(config=ServerConfig({name}=...)) disagree: give it once")
            self._code[name] = value
        if self._code:
            # A bad value written in code fails here, where it is written (ConfigError).
            from .config import ServerConfig

            ServerConfig.from_env({}, **self._code)
        self._config: ServerConfig | None = None
        self._trusted: TrustedProxies | None = None
        self.max_body_size = max_body_size
        #: A bound listening socket to serve instead of binding host:port (set in workers).
        self.sock: socket.socket | None = None
        #: ``"module:attr"`` to re-import the app in worker processes (found when None).
        self.import_string: str | None = None
        self.server: Server | None = None
        # Routing state (registration.py fills it, dispatch.py reads it)
        self.router: Router[Endpoint] = Router()
        self.fallback: Endpoint | None = None
        self.plain_routes: list[Route] = []  # non-HTTP tiny-listener events
        self._middleware: list[Middleware] = []
        self._entry = self._routed  # the global middleware chain (chain.compose) around it
        self._ctx_cls: type[HTTPContext] = HTTPContext
        self._next_cid = 0
        #: Some ``WS:`` route exists: only then does an upgrade request look for one.
        self._websocket_routes = False
        # tiny-listener's hook lists (live: its decorators append to them)
        self._before_hooks = tiny_internals.before_event_hooks(self)
        self._after_hooks = tiny_internals.after_event_hooks(self)
        self._error_hooks = tiny_internals.error_handlers(self)
        # Lifecycle state (server lifetime)
        #: Background events: their tasks, their loop, the shutdown drain (background.py).
        self.background = BackgroundEvents(self)
        self._services: list[tuple[Callback | None, Callback | None]] = []
        self._started_services: list[Callback | None] = []
        self._broadcast: Broadcast | None = None
        self.add_service(self._start_broadcast, self._stop_broadcast)
        #: Durable events (durable.py): stored in Redis (or in-process), run on any worker.
        self.durable = DurableEvents(self)
        self.add_service(self.durable.start, self.durable.stop)
        #: Threads for plain ``def`` handlers (threads.py): started on first use, closed
        #: with the app (a service).
        self.sync_pool = SyncPool(sync_workers)
        self.add_service(None, self.sync_pool.aclose)
        # Tasks we start ourselves (signal handling); kept so they are not collected.
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._stopped: asyncio.Event | None = None  # set when run()'s main() may return
        self._starting = False
        self._exit_status = 0

    # -- configuration -------------------------------------------------------------------

    @property
    def config(self) -> ServerConfig:
        """The settings every runner uses (the built-in server, workers, the CLI, the test
        client): the defaults, then the environment, then what the code gave ``App()``.
        Read in one place (``ServerConfig.from_env``) on first use; a bad variable raises
        ``ConfigError`` naming it. Assigning a ``ServerConfig`` replaces it whole;
        ``configure(**fields)`` changes some fields (the command line does)."""
        config = self._config
        if config is None:
            from .config import ServerConfig

            config = self.config = ServerConfig.from_env(os.environ, **self._code)
        return config

    @config.setter
    def config(self, config: ServerConfig) -> None:
        from .config import ServerConfig

        if not isinstance(config, ServerConfig):
            raise TypeError(f"config must be a ServerConfig, got {type(config).__name__}")
        self._trusted = TrustedProxies(config.forwarded_allow_ips)
        self._config = config

    @property
    def broadcast(self) -> Broadcast:
        """Fan-out across workers and hosts (broadcast.py): in-process memory unless
        ``config.broadcast_url`` (``App(broadcast_url=...)``, $HUMP_BROADCAST_URL) names
        Redis; made on first use, started and stopped with the app (a service)."""
        if self._broadcast is None:
            self._broadcast = Broadcast(self.config.broadcast_url)
        return self._broadcast

    async def _start_broadcast(self) -> None:
        await self.broadcast.start()

    async def _stop_broadcast(self) -> None:
        if self._broadcast is not None:
            await self._broadcast.stop()

    def configure(self, **changes: Any) -> None:
        """Replace some fields of ``config`` (``app.configure(port=0, workers=2)``);
        unknown names are a ``ConfigError`` naming the valid ones."""
        from .config import ConfigError, field_names

        unknown = sorted(set(changes) - field_names())
        if unknown:
            raise ConfigError(
                f"unknown setting {', '.join(map(repr, unknown))}: ServerConfig has {', '.join(sorted(field_names()))}"
            )
        self.config = dataclasses.replace(self.config, **changes)

    # The settings as attributes, for code written before ``config``: each reads
    # ``config``; assigning one is ``configure(name=value)``.
    host: _Setting[str] = _Setting()
    port: _Setting[int] = _Setting()
    workers: _Setting[int] = _Setting()
    shutdown_timeout: _Setting[float] = _Setting()  # drain time on SIGTERM/SIGINT
    ssl_certfile: _Setting[str | None] = _Setting()
    ssl_keyfile: _Setting[str | None] = _Setting()

    # Read on every request: properties with one attribute read less.
    @property
    def access_log(self) -> bool:
        """One ``hump_listener.access`` line per response (``config.access_log``)."""
        return (self._config or self.config).access_log

    @access_log.setter
    def access_log(self, value: bool) -> None:
        self.configure(access_log=value)

    @property
    def forwarded_allow_ips(self) -> TrustedProxies:
        """The trusted proxies (``config.forwarded_allow_ips``, parsed once)."""
        trusted = self._trusted
        if trusted is None:
            self.config  # noqa: B018 (resolving it sets _trusted)
            assert self._trusted is not None
            trusted = self._trusted
        return trusted

    @forwarded_allow_ips.setter
    def forwarded_allow_ips(self, value: str | Sequence[str]) -> None:
        self.configure(forwarded_allow_ips=value)

    @property
    def drain_timeout(self) -> float:
        """Seconds a shutdown waits for requests and background events together:
        ``config.shutdown_timeout`` (``App(shutdown_timeout=...)``, the environment, the
        command line), which is also the server's."""
        return self.config.shutdown_timeout

    # -- entries: ASGI 3 (the seam, ``handle``, is dispatch.py's) --------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI 3: ``uvicorn module:app`` (HTTP and lifespan scopes, through ``app.asgi``).
        The built-in server does not come this way: it calls ``handle``."""
        await self.asgi(scope, receive, send)

    @cached_property
    def asgi(self) -> ASGIAdapter:
        """The ASGI 3 adapter serving this app (one, made on first use); the app itself
        is ASGI too (``uvicorn module:app``), by delegating to it. ``asgi = app.asgi`` in
        the module and ``uvicorn module:asgi`` still works."""
        from .asgi import ASGIAdapter

        return ASGIAdapter(self)

    # -- serving with the built-in server -------------------------------------------------

    def server_config(self) -> ServerConfig:
        """``config`` as the server takes it: with the TLS context built from
        ``ssl_certfile``/``ssl_keyfile`` (once per call) unless ``ssl`` is given. A file
        that is missing or not a PEM certificate/key is a ``ConfigError``."""
        from .config import ConfigError

        config = self.config
        if config.ssl is not None or not (config.ssl_certfile or config.ssl_keyfile):
            return config
        if not config.ssl_certfile:
            raise ConfigError(
                "an SSL key file was given without a certificate file: "
                "set --ssl-certfile or HUMP_SSL_CERTFILE (or ssl_certfile) too"
            )
        import ssl

        from .tls import server_ssl_context

        try:
            context = server_ssl_context(config.ssl_certfile, config.ssl_keyfile)
        except FileNotFoundError as exc:
            raise ConfigError(
                f"{exc}: check --ssl-certfile/--ssl-keyfile or HUMP_SSL_CERTFILE/HUMP_SSL_KEYFILE"
            ) from None
        except (ssl.SSLError, OSError) as exc:
            files = ", ".join(f for f in (config.ssl_certfile, config.ssl_keyfile) if f)
            raise ConfigError(
                f"cannot load the TLS certificate and key from {files} ({exc}): they must be PEM "
                "files of one certificate and its private key"
            ) from None
        return dataclasses.replace(config, ssl=context)

    async def listen(self) -> None:
        """Start the HTTP server (tiny-listener calls this after the startup callbacks).
        A bad setting or a failed bind raises a one-line ``ConfigError``."""
        from .config import bind_error, loop_name
        from .protocol import Server

        config = self.server_config()
        server = Server(self.handle, config)
        try:
            await server.start(self.sock)
        except OSError as exc:
            raise bind_error(exc, config.host, config.port) from None
        self.server = server
        # Routes, handlers and modules live as long as the process: move them out of the
        # cyclic GC's generations so collections stop re-scanning them (a large app's
        # GC cost would otherwise grow with its route count).
        gc.freeze()
        from .protocol.parser import NAME as parser

        loop = loop_name(asyncio.get_running_loop())
        error_log.info("Serving on %s (parser: %s, loop: %s; press CTRL+C to quit)", self.url, parser, loop)

    @property
    def url(self) -> str:
        """Where the server listens (``http://127.0.0.1:8000``; its real port once bound)."""
        config = self.config
        port = self.server.port if self.server is not None else config.port
        host = f"[{config.host}]" if ":" in config.host else config.host
        tls = config.ssl is not None or bool(config.ssl_certfile)
        return f"{'https' if tls else 'http'}://{host}:{port}"

    def setup_event_loop(self) -> asyncio.AbstractEventLoop:  # type: ignore[override]
        """A fresh loop of the kind ``config.loop`` names (``auto``: uvloop when it is
        installed), set as current: tiny-listener's ``get_event_loop()`` call is
        deprecated when no loop is running."""
        from .config import loop_factory

        loop = loop_factory(self.config.loop)()
        asyncio.set_event_loop(loop)
        self._loop = loop
        return loop

    async def main(self) -> None:
        """What ``run()`` runs on its loop: startup, listen, wait for the signal."""
        self._stopped = asyncio.Event()
        self._starting = True
        try:
            await self.run_startup()
        except Exception:
            self._exit_status = 1  # logged by run_startup
            return
        finally:
            self._starting = False
        if self._stopping:  # a signal came during startup
            await self.run_shutdown()
            return
        from .config import ConfigError

        try:
            await self.listen()
        except (ConfigError, OSError) as exc:  # a busy port, a bad certificate: one line
            from .logs import log_startup_error

            log_startup_error(str(exc))
            self._exit_status = 1
            await self.run_shutdown(0)  # startup ran, so shutdown does too
            return
        await self._stopped.wait()

    def run(self) -> None:
        """Serve until SIGTERM/SIGINT (``config.workers > 1``: a supervisor and workers).

        A start-up error (a bad setting, a port in use, a TLS file that cannot be loaded,
        uvloop asked for but missing) is one line on the error log and ``SystemExit(1)``,
        as uvicorn does; errors in the app's own code keep their traceback."""
        from .config import ConfigError
        from .logs import configure_default_logging, startup_failed

        try:
            config = self.config
        except ConfigError as exc:
            startup_failed(str(exc))
        configure_default_logging(config.log_level)
        if config.workers > 1:
            from .workers import Supervisor

            try:
                status = Supervisor(self).run()
            except ConfigError as exc:
                startup_failed(str(exc))
            if status:
                raise SystemExit(status)
            return
        self._stopping = False
        self._exit_status = 0
        try:
            super().run()
        except ConfigError as exc:
            startup_failed(str(exc))
        finally:
            loop, self._loop = self._loop, None
            if loop is not None and not loop.is_closed():
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()
                asyncio.set_event_loop(None)
        if self._exit_status:
            raise SystemExit(self._exit_status)
