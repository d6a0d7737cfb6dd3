"""App: the composition root, the one module that wires the framework to the server.

Request path, in order (each step is skipped when nothing is registered for it)::

    server ──(RequestHead, Channel)──► App.__call__
        target → (path, query)                         routing.split_target / decode_path
        HTTPContext(cid) into app.ctxs                 one context per request
        global middleware  ─► route lookup (404/405)   routing.Router
            before_event hooks ─► route middleware ─► handler (planned injection)
            after_event hooks
        the reply (or 500) sent through the Channel    exactly one response
        context dropped, access line logged

Errors: ``HTTPError`` anywhere becomes that response (middleware sees it as a response
from ``call_next``); any other exception runs tiny-listener's ``on_error`` hooks and,
unless one of them replied, becomes a logged 500 with a generic body.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import os
import signal
import warnings
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import cached_property
from time import perf_counter
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from tiny_listener import Listener, Route

from . import statuses
from .context import HTTPContext
from .endpoints import Endpoint, Handler, Middleware, PlannedHook, call_plan
from .errors import ClientDisconnect, HTTPError, NoResponse, RouteDefinitionError
from .models import Headers, Request, Response
from .proxy import TrustedProxies, effective_peer
from .routing import Router, Template, decode_path, parse_event_name, split_target
from .seam import Channel, RequestHead

if TYPE_CHECKING:
    import socket

    from .asgi import ASGIAdapter
    from .protocol import Server, ServerConfig

__all__ = ["DEFAULT_MAX_BODY_SIZE", "App"]

error_log = logging.getLogger("hump_listener.error")
access_log = logging.getLogger("hump_listener.access")

#: Largest request body a handler may read (413 beyond). aiohttp's client_max_size and
#: nginx's client_max_body_size are 1 MiB too; Starlette and Flask set none.
DEFAULT_MAX_BODY_SIZE = 1024 * 1024

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
T = TypeVar("T")
_FALLBACK = "{_:path}"  # tiny-listener's default path: `@app.on_event()` = the catch-all


def to_response(value: Any) -> Response:
    """Turn a handler's return value into a Response: str, bytes, dict/list (JSON),
    ``Response``, ``(body, status)`` or ``(body, status, headers)``."""
    if isinstance(value, Response):
        return value
    if isinstance(value, tuple):
        if len(value) == 2:
            return Response(value[0], value[1])
        if len(value) == 3:
            return Response(value[0], value[1], value[2])
        raise TypeError(f"a returned tuple must be (body, status[, headers]), got {len(value)} items")
    return Response(value)


def error_response(exc: HTTPError) -> Response:
    return Response(exc.detail, exc.status, exc.headers)


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


class App(Listener[HTTPContext]):
    """A hump_listener application: ``tiny-listener module:app`` runs it."""

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
            from .protocol.config import ServerConfig, code_settings

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
        ):
            if value is None:
                continue
            if name in self._code and self._code[name] != value:
                raise TypeError(f"App({name}=...) and App(config=ServerConfig({name}=...)) disagree: give it once")
            self._code[name] = value
        if self._code:
            # A bad value written in code fails here, where it is written (ConfigError).
            from .protocol.config import ServerConfig

            ServerConfig.from_env({}, **self._code)
        self._config: ServerConfig | None = None
        self._trusted: TrustedProxies | None = None
        self.max_body_size = max_body_size
        #: A bound listening socket to serve instead of binding host:port (set in workers).
        self.sock: socket.socket | None = None
        #: ``"module:attr"`` to re-import the app in worker processes (found when None).
        self.import_string: str | None = None
        self.server: Server | None = None
        # Routing state
        self.router: Router[Endpoint] = Router()
        self.fallback: Endpoint | None = None
        self.plain_routes: list[Route] = []  # non-HTTP tiny-listener events
        self._middleware: list[Middleware] = []
        self._entry: Callable[[HTTPContext], Awaitable[Response]] = self._routed
        self._ctx_cls: type[HTTPContext] = HTTPContext
        self._next_cid = 0
        # Tasks we start ourselves (signal handling); kept so they are not collected.
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False

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
            from .protocol.config import ServerConfig

            config = self.config = ServerConfig.from_env(os.environ, **self._code)
        return config

    @config.setter
    def config(self, config: ServerConfig) -> None:
        from .protocol.config import ServerConfig

        if not isinstance(config, ServerConfig):
            raise TypeError(f"config must be a ServerConfig, got {type(config).__name__}")
        self._trusted = TrustedProxies(config.forwarded_allow_ips)
        self._config = config

    def configure(self, **changes: Any) -> None:
        """Replace some fields of ``config`` (``app.configure(port=0, workers=2)``);
        unknown names are a ``ConfigError`` naming the valid ones."""
        from .protocol.config import ConfigError, field_names

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

    # -- registration ------------------------------------------------------------------

    def set_context_cls(self, kls: type[Any]) -> None:
        if not (isinstance(kls, type) and issubclass(kls, HTTPContext)):
            raise TypeError("an App's context class must subclass HTTPContext")
        super().set_context_cls(kls)
        self._ctx_cls = kls

    def add_on_event_hook(self, fn: Handler, path: str = _FALLBACK, **opts: Any) -> None:
        middleware: Sequence[Middleware] = opts.pop("middleware", None) or ()
        max_body_size = opts.pop("max_body_size", self.max_body_size)
        if path in self.routes:
            raise RouteDefinitionError(f"event {path!r} is already registered")
        if path == _FALLBACK:
            endpoint = Endpoint(path, "*", None, fn, middleware, max_body_size, opts)
            self.fallback = endpoint
        else:
            parsed = parse_event_name(path)  # RouteDefinitionError for a route-like typo
            if parsed is None:
                # Not an HTTP route: keep tiny-listener's own behaviour for plain events.
                route = Route(path=path, fn=fn, opts=opts)
                self.plain_routes.append(route)
                self.routes[path] = route
                return
            method, route_path = parsed
            # Compiled once: the plan needs param_names, then the router takes the Template.
            template = Template.compile(route_path)
            endpoint = Endpoint(path, method, template, fn, middleware, max_body_size, opts)
            self.router.add(method, template, endpoint)
        endpoint.chain = _compose(endpoint.middleware, self._invoke)
        self.routes[path] = endpoint

    # tiny-listener's hooks, with injection planned once (see endpoints.PlannedHook)
    def add_before_event_hook(self, fn: Handler) -> None:
        self._middleware_before_event.append(PlannedHook(fn, "before_event"))

    def add_after_event_hook(self, fn: Handler) -> None:
        self._middleware_after_event.append(PlannedHook(fn, "after_event"))

    def add_on_error_hook(self, fn: Handler, exc: type[Exception]) -> None:
        self._error_handlers.append((exc, PlannedHook(fn, "on_error")))

    def remove_on_event_hook(self, name: str | Callable[..., Any]) -> bool:
        keys = [k for k, r in self.routes.items() if k == name or getattr(r, "fn", None) is name]
        if not keys:
            return False
        for key in keys:
            del self.routes[key]
        self._rebuild_router()
        return True

    def _rebuild_router(self) -> None:
        """Re-index what is left in ``self.routes`` (after a removal): the same Endpoint
        objects, templates and plans; nothing is parsed, compiled or planned again."""
        self.router, self.fallback, self.plain_routes = Router(), None, []
        for route in self.routes.values():
            if not isinstance(route, Endpoint):
                self.plain_routes.append(route)
            elif route.template is None:
                self.fallback = route
            else:
                self.router.add(route.method, route.template, route)

    def on_event(self, path: str = _FALLBACK, **opts: Any) -> Callable[[F], F]:
        """``@app.on_event("GET:/user/{name}")``; ``middleware=[...]`` and
        ``max_body_size=`` per route; no path: the not-found fallback."""

        def decorator(fn: F) -> F:
            self.add_on_event_hook(fn, path, **opts)
            return fn

        return decorator

    def route(self, path: str, methods: Sequence[str] = ("GET",), **opts: Any) -> Callable[[F], F]:
        def decorator(fn: F) -> F:
            for method in methods:
                self.add_on_event_hook(fn, f"{method.upper()}:{path}", **opts)
            return fn

        return decorator

    def get(self, path: str, **opts: Any) -> Callable[[F], F]:
        return self.on_event(f"GET:{path}", **opts)

    def post(self, path: str, **opts: Any) -> Callable[[F], F]:
        return self.on_event(f"POST:{path}", **opts)

    def put(self, path: str, **opts: Any) -> Callable[[F], F]:
        return self.on_event(f"PUT:{path}", **opts)

    def patch(self, path: str, **opts: Any) -> Callable[[F], F]:
        return self.on_event(f"PATCH:{path}", **opts)

    def delete(self, path: str, **opts: Any) -> Callable[[F], F]:
        return self.on_event(f"DELETE:{path}", **opts)

    def static(self, prefix: str, directory: str | os.PathLike[str], **opts: Any) -> None:
        """Serve the files under ``directory`` at ``prefix`` (``app.static("/static",
        "public")``: ``GET /static/css/site.css`` sends ``public/css/site.css``).

        Options go to ``staticfiles.StaticFiles``: ``index="index.html"`` (``None``: no
        directory index), ``headers={"Cache-Control": ...}``, ``check_dir=True``; and
        ``middleware=[...]`` to the route. Anything outside ``directory`` is 404."""
        from .staticfiles import PATH_PARAM, StaticFiles, static_handler

        route_opts = {"middleware": opts.pop("middleware")} if "middleware" in opts else {}
        files = StaticFiles(directory, **opts)
        prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self.add_on_event_hook(
            static_handler(files), f"GET:{prefix}/{{{PATH_PARAM}:path}}", **route_opts
        )

    def middleware(self, mw: F) -> F:
        """Add a global wrapping middleware ``async def mw(ctx, call_next)``; the first
        added is the outermost."""
        self._middleware.append(mw)
        self._entry = _compose(self._middleware, self._routed)
        return mw

    def match_route(self, path: str) -> tuple[Route, dict[str, Any]]:
        """tiny-listener's lookup by event name (``"GET:/user/bob"`` or a plain event),
        through the route tree instead of a linear scan."""
        from tiny_listener import EventNotFound

        try:
            parsed = parse_event_name(path)
        except RouteDefinitionError as exc:
            raise EventNotFound(f"route `{path}` not found: {exc}") from None
        if parsed is not None:
            method, http_path = parsed
            try:
                return self.router.match(method, http_path)
            except HTTPError:
                if self.fallback is not None:
                    return self.fallback, {"_": http_path}
                raise EventNotFound(f"route `{path}` not found") from None
        for route in self.plain_routes:
            params = route.match(path)
            if params is not None:
                return route, params
        raise EventNotFound(f"route `{path}` not found")

    # -- the seam: one call per request ----------------------------------------------------

    async def __call__(self, head: RequestHead, channel: Channel) -> None:
        started = perf_counter() if self.access_log else 0.0
        method = head.method
        try:
            raw_path, query = split_target(head.target)
            path = decode_path(raw_path)
        except HTTPError as exc:
            response = error_response(exc)
            await response.send(channel, method == "HEAD")
            if self.access_log:
                self._log_access(head, head.target.decode("latin-1"), response.status, started)
            return
        self._next_cid += 1
        cid = str(self._next_cid)
        ctx = self._ctx_cls(self, cid)
        client, scheme = effective_peer(head.client, head.scheme, head.headers, self.forwarded_allow_ips)
        ctx.request = Request(
            method, path, raw_path, query, head.http_version, Headers(head.headers),
            client, scheme, head.server,
        )
        ctx.channel = channel
        self.ctxs[cid] = ctx
        status = 0
        try:
            try:
                response = await self._entry(ctx)
            except HTTPError as exc:
                response = error_response(exc)
            except (ClientDisconnect, asyncio.CancelledError):
                raise
            except Exception as exc:
                response = await self._unhandled(ctx, exc)
            if ctx._set_cookies:
                response = ctx._finish_response(response)
            status = response.status
            await response.send(channel, method == "HEAD")
        except ClientDisconnect:
            error_log.debug("client disconnected: %s %s", method, path)
        finally:
            del self.ctxs[cid]
            if ctx._cleanups:
                ctx._run_cleanups()
            event = ctx._event
            if event is not None and event.auto_done:
                event.done()
        if self.access_log and status:
            target = raw_path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
            self._log_access(head, target, status, started, ctx.request.client)

    async def _routed(self, ctx: HTTPContext) -> Response:
        """Route lookup, then the route's chain: hooks, route middleware, handler."""
        request = ctx.request
        try:
            endpoint, params = self.router.match(request.method, request.path)
        except HTTPError as exc:
            if exc.status != 404 or self.fallback is None:
                raise
            endpoint, params = self.fallback, {"_": request.path}
        ctx.endpoint = endpoint
        ctx.params = params
        ctx.max_body_size = endpoint.max_body_size
        if self._middleware_before_event:
            for hook in self._middleware_before_event:
                await hook(ctx.event, {})
        response = await endpoint.chain(ctx)
        if self._middleware_after_event:
            for hook in self._middleware_after_event:
                await hook(ctx.event, {})
        return ctx.reply or response

    async def _invoke(self, ctx: HTTPContext) -> Response:
        endpoint = ctx.endpoint
        assert endpoint is not None  # set by _routed
        result = await call_plan(endpoint.fn, endpoint.plan, ctx, ctx.params)
        if result is not None and result is not ctx.reply:
            ctx.set_reply(to_response(result))
        if ctx.reply is None:
            raise NoResponse(
                f"handler {endpoint.qualname} for {ctx.request.method} {ctx.request.path} "
                "returned None without replying"
            )
        return ctx.reply

    async def _unhandled(self, ctx: HTTPContext, exc: Exception) -> Response:
        """Run tiny-listener's on_error hooks; unless one replied, log and answer 500."""
        ctx.reply = None
        endpoint = ctx.endpoint
        hooks = [hook for kls, hook in self._error_handlers if isinstance(exc, kls)]
        if hooks and endpoint is not None:
            event = ctx.event
            event.error = exc
            try:
                for hook in hooks:
                    await hook(event, {})
            except HTTPError as http_exc:
                return error_response(http_exc)
            except Exception as hook_exc:
                error_log.error("on_error hook failed", exc_info=hook_exc)
                ctx.reply = None
            if ctx.reply is not None:
                return ctx.reply
        request = ctx.request
        where = endpoint.qualname if endpoint is not None else "middleware"
        error_log.error(
            "Exception in %s for %s %s", where, request.method, request.path, exc_info=exc
        )
        return Response("Internal Server Error", 500)

    def _log_access(
        self, head: RequestHead, target: str, status: int, started: float, peer: tuple[str, int] | None = None
    ) -> None:
        """One access line; ``peer`` is the client as the app sees it (after proxy headers)."""
        if not access_log.isEnabledFor(logging.INFO):
            return
        duration = perf_counter() - started
        peer = peer or head.client
        client = f"{peer[0]}:{peer[1]}" if peer else "-"
        access_log.info(
            '%s - "%s %s HTTP/%s" %d %s',
            client, head.method, target, head.http_version, status, statuses.reason(status),
            extra={
                "client": client, "method": head.method, "path": target, "status": status,
                "duration": duration, "http_version": head.http_version,
            },
        )

    # -- running -------------------------------------------------------------------------

    def server_config(self) -> ServerConfig:
        """``config`` as the server takes it: with the TLS context built from
        ``ssl_certfile``/``ssl_keyfile`` (once per call) unless ``ssl`` is given. A file
        that is missing or not a PEM certificate/key is a ``ConfigError``."""
        from .protocol.config import ConfigError

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
        from .protocol import Server
        from .protocol.config import bind_error, loop_name

        config = self.server_config()
        server = Server(self, config)
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

    @cached_property
    def asgi(self) -> ASGIAdapter:
        """This app as an ASGI 3 application (one adapter, made on first use):
        ``uvicorn module:app.asgi``, or ``asgi = app.asgi`` in the module and
        ``uvicorn module:asgi`` for servers that want a plain name."""
        from .asgi import ASGIAdapter

        return ASGIAdapter(self)

    @property
    def url(self) -> str:
        config = self.config
        port = self.server.port if self.server is not None else config.port
        host = f"[{config.host}]" if ":" in config.host else config.host
        tls = config.ssl is not None or bool(config.ssl_certfile)
        return f"{'https' if tls else 'http'}://{host}:{port}"

    def setup_event_loop(self) -> asyncio.AbstractEventLoop:  # type: ignore[override]
        """A fresh loop of the kind ``config.loop`` names (``auto``: uvloop when it is
        installed), set as current: tiny-listener's ``get_event_loop()`` call is
        deprecated when no loop is running."""
        from .protocol.config import loop_factory

        loop = loop_factory(self.config.loop)()
        asyncio.set_event_loop(loop)
        self._loop = loop
        return loop

    def install_signal_handlers(self) -> None:
        import threading

        if threading.current_thread() is not threading.main_thread():
            return
        loop = self._loop or asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: int) -> None:
        task = asyncio.ensure_future(self.graceful_shutdown(sig))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def graceful_shutdown(self, sig: int) -> None:
        """Stop accepting, drain in-flight requests (up to ``shutdown_timeout``), run the
        shutdown callbacks, then let ``run()`` return. A second signal skips the drain."""
        if self._stopping:
            if self.server is not None:
                await self.server.shutdown(0)
            return
        self._stopping = True
        error_log.info("Shutting down (signal %s)", sig)
        if self.server is not None:
            await self.server.shutdown(self.shutdown_timeout)
        for callback in self._shutdown:
            try:
                await callback()
            except Exception as exc:
                error_log.error("shutdown callback failed", exc_info=exc)
        self._Listener__exiting.set()  # type: ignore[attr-defined]

    def run(self) -> None:
        """Serve until SIGTERM/SIGINT (``config.workers > 1``: a supervisor and workers).

        A start-up error (a bad setting, a port in use, a TLS file that cannot be loaded,
        uvloop asked for but missing) is one line on the error log and ``SystemExit(1)``,
        as uvicorn does; errors in the app's own code keep their traceback."""
        from .logs import configure_default_logging, startup_failed
        from .protocol.config import ConfigError

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


def _compose(
    middleware: Sequence[Middleware], inner: Callable[[HTTPContext], Awaitable[Response]]
) -> Callable[[HTTPContext], Awaitable[Response]]:
    """Wrap ``inner`` in ``middleware``, the first one outermost (built once)."""
    chain = inner
    for mw in reversed(middleware):
        chain = _layer(mw, chain)
    return chain


def _layer(
    mw: Middleware, nxt: Callable[[HTTPContext], Awaitable[Response]]
) -> Callable[[HTTPContext], Awaitable[Response]]:
    async def run(ctx: HTTPContext) -> Response:
        async def call_next() -> Response:
            try:
                return await nxt(ctx)
            except HTTPError as exc:
                ctx.reply = error_response(exc)
                return ctx.reply

        result = await mw(ctx, call_next)
        if result is not None:
            ctx.reply = to_response(result)
        if ctx.reply is None:
            raise NoResponse(f"middleware {getattr(mw, '__qualname__', mw)} neither replied nor called call_next")
        return ctx.reply

    return run
