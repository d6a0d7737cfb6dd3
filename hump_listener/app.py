"""App: the composition root, the one module that wires the framework to the server.

``App`` is tiny-listener's ``Listener`` (its decorators, ``run()`` and the
``tiny-listener module:app`` runner need that) and composes one object per job, each
handed what it uses::

    App(Listener)                             app.py: configuration, wiring, serving
        route_table: RouteTable               registration.py: routes by name and in the tree
        hooks: Hooks                          hooks.py: the one hook runner, "on_error, else log"
        contexts: Contexts                    context.py: every context, the one id counter
        request_path: RequestPath             dispatch.py: handle(), a request to its reply
            (WebSocket connections)           websocket.py: serve(), handed the context and hooks
        background: BackgroundEvents          background.py: events fired by name, bounded
        lifecycle: Lifecycle                  lifecycle.py: startup, shutdown, signals, drain
    used by them: replies.py (one reply path), chain.py (the middleware chain),
    routing.py / route_templates.py / targets.py (the route tree, templates, request targets),
    endpoints.py (injection plans), events.py (the Event), logs.py (the access line)

Two entries: ``app.handle(head, channel)`` is the seam (``RequestPath.handle``: what the
built-in server, the test client and the ASGI adapter call per request);
``App.__call__(scope, receive, send)`` is ASGI 3, so ``uvicorn module:app`` serves the
app (lifespan included) through the adapter (``asgi.ASGIAdapter``).

Configuration is one typed ``ServerConfig`` (``config``), resolved with the environment
on first use. Serving with the built-in server is ``run()`` → ``main()`` →
``Lifecycle.serve``: startup (``lifecycle`` has the policy), ``listen()``, then wait for
the signal.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import gc
import logging
import os
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from tiny_listener import Listener, Route

from . import tiny_internals
from .asgi import ASGIAdapter
from .background import DEFAULT_MAX_BACKGROUND_EVENTS, BackgroundEvents
from .broadcast import Broadcast, BroadcastUnavailable
from .config import (
    ConfigError,
    ServerConfig,
    bind_error,
    code_settings,
    field_names,
    how_to_set,
    loop_factory,
    loop_name,
)
from .context import Contexts, HTTPContext
from .dispatch import RequestPath, Settings
from .durable import DurableEvents
from .endpoints import Handler, check_middleware
from .errors import RouteDefinitionError
from .hooks import Hooks
from .lifecycle import Callback, Lifecycle
from .logs import configure_default_logging, startup_failed
from .proxy import TrustedProxies
from .registration import FALLBACK, RouteTable
from .route_templates import parse_event_name
from .staticfiles import PATH_PARAM, StaticFiles, static_handler
from .templating import Templates
from .threads import DEFAULT_SYNC_WORKERS, SyncPool
from .tls import server_ssl_context
from .workers import Supervisor

if TYPE_CHECKING:
    import socket

    from .asgi import Receive, Scope, Send
    from .protocol import Server
    from .seam import SeamApp

__all__ = ["DEFAULT_MAX_BODY_SIZE", "App"]

error_log = logging.getLogger("hump_listener.error")

#: Largest request body a handler may read (413 beyond). aiohttp's client_max_size and
#: nginx's client_max_body_size are 1 MiB too; Starlette and Flask set none.
DEFAULT_MAX_BODY_SIZE = 1024 * 1024

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


class App(Listener[HTTPContext]):
    """A hump_listener application: ``tiny-listener module:app`` runs it.

    Registering (``@app.get``, ``@app.middleware``, ...) fills the route table and the
    hooks, serving a request is the request path's (``handle``), starting and stopping the
    lifecycle's; this class holds the configuration and wires them together."""

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
        max_background_events: int = DEFAULT_MAX_BACKGROUND_EVENTS,
        redirect_slashes: bool = True,
    ) -> None:
        """``config`` and the keyword arguments are the settings written in code; the
        environment (``HUMP_*``) applies to the others, and the command line wins over
        both (see ``config``). ``redirect_slashes``: a request for ``/docs`` that only
        ``/docs/`` answers (or the other way round) is redirected there (307), as
        Starlette does; ``False`` answers 404."""
        super().__init__()
        # Server-lifetime configuration: what the code says, resolved into ``config``
        # (with the environment) on first use, so that a bad HUMP_* variable is a
        # start-up error of the runner, not an import error of the app's module.
        self._code: dict[str, Any] = {}
        if config is not None:
            if not isinstance(config, ServerConfig):
                raise TypeError(f"config must be a ServerConfig, got {type(config).__name__}")
            self._code.update(code_settings(config))
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
            ServerConfig.from_env({}, **self._code)
        self._config: ServerConfig | None = None
        #: A bound listening socket to serve instead of binding host:port (set in workers).
        self.sock: socket.socket | None = None
        #: ``"module:attr"`` to re-import the app in worker processes (found when None).
        self.import_string: str | None = None
        #: The running built-in server (``listen`` sets it), or None.
        self.server: Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._asgi: ASGIAdapter | None = None

        # The collaborators (module docstring), each handed what it uses.
        #: Threads for plain ``def`` handlers (threads.py): started on first use, closed
        #: with the app (a service).
        self.sync_pool = SyncPool(sync_workers)
        self.route_table = RouteTable(self.routes, self.sync_pool.run, max_body_size, redirect_slashes)
        #: The HTML templates ``ctx.render`` uses (templating.py): ./templates unless set.
        self.templates = Templates()
        self.hooks = Hooks(
            tiny_internals.before_event_hooks(self),
            tiny_internals.after_event_hooks(self),
            tiny_internals.error_handlers(self),
        )
        self.contexts = Contexts(self)
        self.request_path = RequestPath(self.ctxs, self.route_table, self.hooks, self.contexts, self._settings)
        #: The seam entry (``seam.seam_entry`` finds it): one bound method, no hop.
        self.handle: SeamApp = self.request_path.handle
        #: Background events: their tasks, their loop, the limit, the drain (background.py).
        #: Durable events (durable.py): stored in Redis (or in-process), run on any worker.
        self.durable = DurableEvents(self.route_table, self.hooks, self.contexts, lambda: self.config.broadcast_url)
        self.background = BackgroundEvents(
            self.route_table, self.hooks, self.contexts, self.ctxs, max_background_events, self.durable
        )
        self.lifecycle = Lifecycle(
            tiny_internals.startup_callbacks(self),
            tiny_internals.shutdown_callbacks(self),
            self.background,
            lambda: self.config.shutdown_timeout,
            self.durable,
        )
        self._broadcast: Broadcast | None = None
        self.add_service(self._start_broadcast, self._stop_broadcast)
        self.add_service(self.durable.start, self.durable.stop)
        self.add_service(None, self.sync_pool.aclose)

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
            config = self.config = ServerConfig.from_env(os.environ, **self._code)
        return config

    @config.setter
    def config(self, config: ServerConfig) -> None:
        if not isinstance(config, ServerConfig):
            raise TypeError(f"config must be a ServerConfig, got {type(config).__name__}")
        self._config = config
        # What the request path reads per request, resolved once per config.
        self.request_path.settings = Settings(config.access_log, TrustedProxies(config.forwarded_allow_ips))

    def _settings(self) -> Settings:
        """The request path's settings on its first request (resolving ``config``)."""
        self.config  # noqa: B018 (resolving it sets the request path's settings)
        settings = self.request_path.settings
        assert settings is not None
        return settings

    def configure(self, **changes: Any) -> None:
        """Replace some fields of ``config`` (``app.configure(port=0, workers=2)``);
        unknown names are a ``ConfigError`` naming the valid ones."""
        unknown = sorted(set(changes) - field_names())
        if unknown:
            raise ConfigError(
                f"unknown setting {', '.join(map(repr, unknown))}: ServerConfig has {', '.join(sorted(field_names()))}"
            )
        self.config = dataclasses.replace(self.config, **changes)

    @property
    def broadcast(self) -> Broadcast:
        """Fan-out across workers and hosts (broadcast.py): in-process memory unless
        ``config.broadcast_url`` (``App(broadcast_url=...)``, $HUMP_BROADCAST_URL) names
        Redis; made on first use, started and stopped with the app (a service)."""
        if self._broadcast is None:
            self._broadcast = Broadcast(self.config.broadcast_url, events=self.trigger_event)
        return self._broadcast

    async def _start_broadcast(self) -> None:
        try:
            await self.broadcast.start()
            await self.broadcast.presence.listen()  # other instances' presence events, if handled here
        except (BroadcastUnavailable, ImportError) as exc:
            # Redis down, or the redis package missing: a start-up error, in one line.
            raise ConfigError(f"the broadcast cannot start: {exc} (check {how_to_set('broadcast_url')})") from None

    async def _stop_broadcast(self) -> None:
        if self._broadcast is not None:
            await self._broadcast.stop()

    # -- registering: tiny-listener's decorators and ours (the route table, the hooks) ----

    def set_context_cls(self, kls: type[Any]) -> None:
        """Use ``kls`` (an ``HTTPContext`` subclass) for every request's context."""
        if not (isinstance(kls, type) and issubclass(kls, HTTPContext)):
            raise TypeError("an App's context class must subclass HTTPContext")
        super().set_context_cls(kls)
        self.contexts.http_cls = kls

    def add_on_event_hook(self, fn: Handler, path: str = FALLBACK, **opts: Any) -> None:
        """Register ``fn`` for the event ``path`` (what every decorator calls): an HTTP
        route (``"GET:/x"``), a WebSocket route (``"WS:/x"``), a plain event, or (no
        path) the not-found fallback. ``middleware=[...]`` and ``max_body_size=`` apply
        to the route, ``durable=True`` (or a ``Durable``) to a plain event; a bad name,
        template, handler or a duplicate raise here."""
        durable = opts.pop("durable", None)  # durable.py: True or a Durable policy
        if durable and (path == FALLBACK or parse_event_name(path) is not None):
            raise RouteDefinitionError(f"route {path!r}: durable= is for named events fired with trigger_event")
        self.route_table.add(fn, path, **opts)
        if durable:
            try:
                self.durable.register(self.route_table.by_name[path], durable)
            except BaseException:
                self.route_table.remove(path)  # a refused durable event registers nothing
                raise

    def remove_on_event_hook(self, name: str | Callable[..., Any]) -> bool:
        """Remove the routes registered as ``name`` (an event name or the handler);
        False when there were none."""
        return self.route_table.remove(name)

    def match_route(self, path: str) -> tuple[Route, dict[str, Any]]:
        """tiny-listener's lookup by event name, through the route tree."""
        return self.route_table.match_route(path)

    # tiny-listener's hooks, with injection planned once (see endpoints.PlannedHook)
    def add_before_event_hook(self, fn: Handler) -> None:
        """``@app.before_event``: ``fn`` runs before every handler, request or event."""
        self.hooks.add_before(fn)

    def add_after_event_hook(self, fn: Handler) -> None:
        """``@app.after_event``: ``fn`` runs after every handler that returned."""
        self.hooks.add_after(fn)

    def add_on_error_hook(self, fn: Handler, exc: type[Exception]) -> None:
        """``@app.on_error(exc)``: ``fn`` runs when a handler raises an ``exc``; it may
        reply (``ctx.response(...)``), else the answer is a logged 500."""
        self.hooks.add_error(fn, exc)

    def on_event(self, path: str = FALLBACK, **opts: Any) -> Callable[[F], F]:
        """``@app.on_event("GET:/user/{name}")``; ``middleware=[...]`` and
        ``max_body_size=`` per route; no path: the not-found fallback."""

        def decorator(fn: F) -> F:
            self.add_on_event_hook(fn, path, **opts)
            return fn

        return decorator

    def websocket(self, path: str, **opts: Any) -> Callable[[F], F]:
        """``@app.websocket("/ws/chat/{room}")``: the same as ``@app.on_event("WS:/ws/chat/{room}")``.
        The handler gets the connection as ``ws: WebSocket`` (see ``hump_listener.websocket``)."""
        return self.on_event(f"WS:{path}", **opts)

    def route(self, path: str, methods: Sequence[str] = ("GET",), **opts: Any) -> Callable[[F], F]:
        """``@app.route("/x", methods=["GET", "POST"])``: one route per method
        (``methods="GET"``, one method, works too)."""

        def decorator(fn: F) -> F:
            for method in [methods] if isinstance(methods, str) else methods:
                self.add_on_event_hook(fn, f"{method.upper()}:{path}", **opts)
            return fn

        return decorator

    def get(self, path: str, **opts: Any) -> Callable[[F], F]:
        """``@app.get("/x")``: the same as ``@app.on_event("GET:/x")``."""
        return self.on_event(f"GET:{path}", **opts)

    def post(self, path: str, **opts: Any) -> Callable[[F], F]:
        """``@app.post("/x")``: the same as ``@app.on_event("POST:/x")``."""
        return self.on_event(f"POST:{path}", **opts)

    def put(self, path: str, **opts: Any) -> Callable[[F], F]:
        """``@app.put("/x")``: the same as ``@app.on_event("PUT:/x")``."""
        return self.on_event(f"PUT:{path}", **opts)

    def patch(self, path: str, **opts: Any) -> Callable[[F], F]:
        """``@app.patch("/x")``: the same as ``@app.on_event("PATCH:/x")``."""
        return self.on_event(f"PATCH:{path}", **opts)

    def delete(self, path: str, **opts: Any) -> Callable[[F], F]:
        """``@app.delete("/x")``: the same as ``@app.on_event("DELETE:/x")``."""
        return self.on_event(f"DELETE:{path}", **opts)

    def static(self, prefix: str, directory: str | os.PathLike[str], **opts: Any) -> None:
        """Serve the files under ``directory`` at ``prefix`` (``app.static("/static",
        "public")``: ``GET /static/css/site.css`` sends ``public/css/site.css``).

        Options go to ``staticfiles.StaticFiles``: ``index="index.html"`` (``None``: no
        directory index), ``headers={"Cache-Control": ...}``, ``check_dir=True``; and
        ``middleware=[...]`` to the route. Anything outside ``directory`` is 404."""
        route_opts = {"middleware": opts.pop("middleware")} if "middleware" in opts else {}
        files = StaticFiles(directory, **opts)
        prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self.add_on_event_hook(static_handler(files), f"GET:{prefix}/{{{PATH_PARAM}:path}}", **route_opts)

    def middleware(self, mw: F) -> F:
        """Add a global wrapping middleware ``async def mw(ctx, call_next)``; the first
        added is the outermost. It sees every answer as the ``Response`` ``call_next``
        returns: the handler's, an ``HTTPError``'s, 404/405, and the 500 of an unhandled
        exception (after the ``on_error`` hooks)."""
        check_middleware(mw, "app.middleware")
        self.request_path.add_middleware(mw)
        return mw

    # -- events fired by name (background.py) ---------------------------------------------

    def trigger_event(
        self,
        path: str,
        cid: str | None = None,
        timeout: float | None = None,
        data: dict[str, Any] | None = None,
        *,
        key: str | None = None,
        delay: float | None = None,
    ) -> asyncio.Task[Any]:
        """Run the (non-HTTP) event ``path`` in the background on the running loop.

        ``cid=None``: in a fresh context, dropped when the event is done (a startup
        callback, a timer). ``cid``: in that live context (``ContextNotFound`` if it has
        been dropped). Same guarantees as ``ctx.trigger_event`` (see background.py): the
        task is kept, errors go to ``on_error`` hooks or the log, shutdown drains it;
        awaiting it gives the handler's return value (``None`` if it failed). A durable
        event is stored instead (its id, once stored), with ``key=`` and ``delay=``
        (durable.py)."""
        ctx = None if cid is None else self.background.live_context(cid)
        return self.background.trigger(path, ctx, timeout=timeout, data=data, key=key, delay=delay)

    def trigger_event_threadsafe(
        self,
        path: str,
        *,
        timeout: float | None = None,
        data: Mapping[str, Any] | None = None,
        key: str | None = None,
        delay: float | None = None,
    ) -> concurrent.futures.Future[Any]:
        """``trigger_event`` from any thread, in a fresh context, on the app's loop. The
        future gets the handler's return value (``None`` if it failed; the error went to
        the hooks or the log), or the error that kept it from starting. ``RuntimeError``
        if the app is not running. A durable event: its id, once stored."""
        return self.background.trigger_threadsafe(path, timeout=timeout, data=data, key=key, delay=delay)

    # -- starting and stopping (lifecycle.py) ----------------------------------------------

    def add_service(self, start: Callback | None = None, stop: Callback | None = None) -> None:
        """Register a framework service (a broadcast backend, a pool): ``start`` runs
        before the ``@app.startup`` callbacks (so they can use it), ``stop`` after the
        shutdown callbacks and the background-event drain, in reverse order."""
        self.lifecycle.add_service(start, stop)

    async def run_startup(self) -> None:
        """Services, then the startup callbacks (every runner calls this once)."""
        await self.lifecycle.startup()

    async def run_shutdown(self, timeout: float | None = None) -> None:
        """Drain background events, the shutdown callbacks, stop the services; never raises."""
        await self.lifecycle.shutdown(timeout)

    async def graceful_shutdown(self, sig: int) -> None:
        """What SIGINT/SIGTERM start under the built-in server (``Lifecycle``)."""
        await self.lifecycle.graceful_shutdown(sig)

    def install_signal_handlers(self) -> None:
        """SIGINT and SIGTERM start ``graceful_shutdown`` (tiny-listener's ``run`` calls
        this once the loop is set up)."""
        self.lifecycle.install_signal_handlers(self._loop)

    # -- entries: ASGI 3 (the seam, ``handle``, is the request path's) ----------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI 3: ``uvicorn module:app`` (HTTP, WebSocket and lifespan scopes, through the
        adapter, made on first use). The built-in server does not come this way: it calls
        ``handle``."""
        adapter = self._asgi
        if adapter is None:
            adapter = self._asgi = ASGIAdapter(self)
        await adapter(scope, receive, send)

    # -- serving with the built-in server -------------------------------------------------

    def server_config(self) -> ServerConfig:
        """``config`` as the server takes it: with the TLS context built from
        ``ssl_certfile``/``ssl_keyfile`` (once per call) unless ``ssl`` is given. A file
        that is missing or not a PEM certificate/key is a ``ConfigError``."""
        config = self.config
        if config.ssl is not None or not (config.ssl_certfile or config.ssl_keyfile):
            return config
        if not config.ssl_certfile:
            raise ConfigError(
                "an SSL key file was given without a certificate file: "
                "set --ssl-certfile or HUMP_SSL_CERTFILE (or ssl_certfile) too"
            )
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
        """Start the HTTP server (tiny-listener's entry; ``main`` calls it after the startup
        callbacks). A bad setting or a failed bind raises a one-line ``ConfigError``."""
        await self._start_server()

    async def _start_server(self) -> Server:
        # The one import kept in a function: the protocol side (h11, the WebSocket
        # library) loads only when the built-in server starts, so ``import
        # hump_listener``, the ASGI adapter and the test client do not pay for it.
        from .protocol import Server
        from .protocol.parser import NAME as parser

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
        loop = loop_name(asyncio.get_running_loop())
        error_log.info("Serving on %s (parser: %s, loop: %s; press CTRL+C to quit)", self.url, parser, loop)
        return server

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
        loop = loop_factory(self.config.loop)()
        asyncio.set_event_loop(loop)
        self._loop = loop
        return loop

    async def main(self) -> None:
        """What ``run()`` runs on its loop: startup, listen, wait for the signal."""
        await self.lifecycle.serve(self._start_server)

    def run(self) -> None:
        """Serve until SIGTERM/SIGINT (``config.workers > 1``: a supervisor and workers).

        A start-up error (a bad setting, a port in use, a TLS file that cannot be loaded,
        uvloop asked for but missing) is one line on the error log and ``SystemExit(1)``,
        as uvicorn does; errors in the app's own code keep their traceback."""
        try:
            config = self.config
        except ConfigError as exc:
            startup_failed(str(exc))
        configure_default_logging(config.log_level)
        if config.workers > 1:
            try:
                status = Supervisor(self).run()
            except ConfigError as exc:
                startup_failed(str(exc))
            if status:
                raise SystemExit(status)
            return
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
        if self.lifecycle.exit_status:
            raise SystemExit(self.lifecycle.exit_status)
