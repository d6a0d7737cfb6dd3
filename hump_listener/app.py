"""App: the composition root, the one module that wires the framework to the server.

Two entries: ``App.handle(head, channel)`` is the seam (what the built-in server, the
test client and the ASGI adapter call per request); ``App.__call__(scope, receive,
send)`` is ASGI 3, so ``uvicorn module:app`` serves the app (lifespan included) through
``app.asgi``, the adapter, which calls ``handle`` in turn.

Request path, in order (each step is skipped when nothing is registered for it)::

    server ──(RequestHead, Channel)──► App.handle
        target → (path, query)                         routing.split_target / decode_path
        HTTPContext(cid) into app.ctxs                 one context per request
        global middleware  ─► route lookup (404/405)   routing.Router
            before_event hooks ─► route middleware ─► handler (planned injection)
            after_event hooks
        the reply (or 500) sent through the Channel    exactly one response
        context released, access line logged           dropped once its events are done

Errors: ``HTTPError`` anywhere becomes that response (middleware sees it as a response
from ``call_next``); any other exception runs tiny-listener's ``on_error`` hooks and,
unless one of them replied, becomes a logged 500 with a generic body. Global middleware
sees that 500 as a response from ``call_next`` too (so CORS headers are on it); route
middleware sees the exception itself, and may catch it.

Replies: a handler or middleware replies by recording (``ctx.json(...)``) or by
returning a value; ``reconcile()`` is the one place the two meet (its docstring has the
rule).

Lifecycle: one pair of methods, ``await app.run_startup()`` / ``await app.run_shutdown()``,
used by every runner (the built-in server in ``main()``, the ASGI lifespan, the test
client, the workers, which run ``main()``), with one policy:

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
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import gc
import importlib.util
import logging
import os
import signal
import warnings
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import cached_property
from time import perf_counter
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from tiny_listener import ContextNotFound, Listener, Route

from . import statuses, tiny_internals
from .broadcast import Broadcast
from .context import HTTPContext
from .endpoints import Endpoint, Handler, Middleware, PlannedHook, call_plan, check_middleware
from .errors import ClientDisconnect, HTTPError, NoResponse, ResponseAlreadySent, RouteDefinitionError
from .events import DEFAULT_DRAIN_TIMEOUT, BackgroundEvents, ConnectionContext
from .models import Headers, Request, Response
from .proxy import TrustedProxies, effective_peer
from .routing import Router, Template, decode_path, parse_event_name, split_target
from .seam import Channel, RequestHead, WebSocketChannel
from .threads import DEFAULT_SYNC_WORKERS, SyncPool

if TYPE_CHECKING:
    import socket

    from .asgi import ASGIAdapter, Receive, Scope, Send
    from .protocol import Server, ServerConfig

__all__ = ["DEFAULT_MAX_BODY_SIZE", "App"]

error_log = logging.getLogger("hump_listener.error")
access_log = logging.getLogger("hump_listener.access")

#: Largest request body a handler may read (413 beyond). aiohttp's client_max_size and
#: nginx's client_max_body_size are 1 MiB too; Starlette and Flask set none.
DEFAULT_MAX_BODY_SIZE = 1024 * 1024

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
Callback = Callable[[], Awaitable[Any]]
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
    """The answer an ``HTTPError`` stands for: its status, detail and headers."""
    return Response(exc.detail, exc.status, exc.headers)


def reconcile(ctx: HTTPContext, returned: Any, where: str, replaces: bool) -> Response:
    """The one place a recorded reply meets a returned one; returns the answer.

    A handler or middleware replies either by *recording* (``ctx.response()``,
    ``ctx.json(data)``, ``ctx.redirect()``...: ``ctx.reply``, at most one, a second
    raises ``ResponseAlreadySent``) or by *returning* a value. When it has returned:

    1. ``None``, or the recorded reply itself (``return ctx.json(...)``): the recorded
       reply is the answer.
    2. Anything else: ``to_response(value)`` is the answer, and is recorded in place of
       the earlier one. For a handler (``replaces=False``) an earlier recorded reply
       makes it a second reply: ``ResponseAlreadySent``, a logged 500 like any error.
       For middleware and ``HTTPError`` answers (``replaces=True``) replacing is the
       point: a middleware returns a new response instead of the one ``call_next``
       gave it, and an ``HTTPError`` raised after a reply was recorded answers instead.
    3. Neither: ``NoResponse`` naming ``where`` (a logged 500).

    An exception other than ``HTTPError`` discards the recorded reply (the request
    failed half-way, see ``App._unhandled``): tiny-listener's ``on_error`` hooks may
    record a new one, else the answer is 500.
    """
    recorded = ctx.reply
    if returned is None or returned is recorded:
        if recorded is None:
            raise NoResponse(f"{where} for {ctx.request.method} {ctx.request.path} returned None without replying")
        return recorded
    response = to_response(returned)
    if recorded is not None and not replaces:
        raise ResponseAlreadySent(
            f"{where} for {ctx.request.method} {ctx.request.path} returned a response after "
            f"replying ({recorded.status}); a request gets exactly one"
        )
    ctx.reply = response
    return response


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
            ("broadcast_url", broadcast_url),
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
        #: Some ``WS:`` route exists: only then does an upgrade request look for one.
        self._websocket_routes = False
        # tiny-listener's hook lists (live: its decorators append to them)
        self._before_hooks = tiny_internals.before_event_hooks(self)
        self._after_hooks = tiny_internals.after_event_hooks(self)
        self._error_hooks = tiny_internals.error_handlers(self)
        # Lifecycle state (server lifetime)
        #: Background events: their tasks, their loop, the shutdown drain (events.py).
        self.background = BackgroundEvents(self)
        self._services: list[tuple[Callback | None, Callback | None]] = []
        self._started_services: list[Callback | None] = []
        self._broadcast: Broadcast | None = None
        self.add_service(self._start_broadcast, self._stop_broadcast)
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
        for mw in middleware:
            check_middleware(mw, f"route {path!r}")
        run_sync = self._sync_runner(fn)
        if path == _FALLBACK:
            endpoint = Endpoint(path, "*", None, fn, middleware, max_body_size, opts, run_sync)
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
            if method == "WS":
                self._check_websocket_route(path, fn, middleware)
            # Compiled once: the plan needs param_names, then the router takes the Template.
            template = Template.compile(route_path)
            endpoint = Endpoint(path, method, template, fn, middleware, max_body_size, opts, run_sync)
            self.router.add(method, template, endpoint)
        endpoint.chain = _compose(endpoint.middleware, self._invoke)
        self.routes[path] = endpoint

    def _sync_runner(self, fn: Handler) -> Any:
        """The thread pool's ``run`` for a plain ``def`` handler (``None`` for an async
        one). The pool is a service (``add_service``), so every runner (server, ASGI
        lifespan, test client) stops its threads."""
        if asyncio.iscoroutinefunction(fn):
            return None
        return self.sync_pool.run

    # tiny-listener's hooks, with injection planned once (see endpoints.PlannedHook)
    def add_before_event_hook(self, fn: Handler) -> None:
        self._before_hooks.append(PlannedHook(fn, "before_event"))

    def add_after_event_hook(self, fn: Handler) -> None:
        self._after_hooks.append(PlannedHook(fn, "after_event"))

    def add_on_error_hook(self, fn: Handler, exc: type[Exception]) -> None:
        self._error_hooks.append((exc, PlannedHook(fn, "on_error")))

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

    def _check_websocket_route(self, path: str, fn: Handler, middleware: Sequence[Middleware]) -> None:
        if not asyncio.iscoroutinefunction(fn):
            raise RouteDefinitionError(
                f"route {path!r}: a WebSocket handler must be an `async def` function (it lives "
                "as long as the connection; a thread per connection would not scale)"
            )
        if importlib.util.find_spec("websockets") is None:
            raise RouteDefinitionError(
                f"route {path!r}: WebSocket routes need the websockets package: "
                'pip install "hump_listener[websockets]"'
            )
        if middleware:
            raise RouteDefinitionError(
                f"route {path!r}: HTTP middleware (call_next returns a Response) cannot wrap a "
                "WebSocket; use a dependency (Depends) or check in the handler before accept()"
            )
        self._websocket_routes = True

    def websocket(self, path: str, **opts: Any) -> Callable[[F], F]:
        """``@app.websocket("/ws/chat/{room}")``: the same as ``@app.on_event("WS:/ws/chat/{room}")``.
        The handler gets the connection as ``ws: WebSocket`` (see ``hump_listener.websocket``)."""
        return self.on_event(f"WS:{path}", **opts)

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
        added is the outermost. It sees every answer as the ``Response`` ``call_next``
        returns: the handler's, an ``HTTPError``'s, 404/405, and the 500 of an unhandled
        exception (after the ``on_error`` hooks)."""
        check_middleware(mw, "app.middleware")
        self._middleware.append(mw)
        self._entry = _compose(self._middleware, self._routed, self._unhandled)
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

    # -- ASGI 3 and the seam ------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI 3: ``uvicorn module:app`` (HTTP and lifespan scopes, through ``app.asgi``).
        The built-in server does not come this way: it calls ``handle``."""
        await self.asgi(scope, receive, send)

    async def handle(self, head: RequestHead, channel: Channel) -> None:
        """The seam entry, one call per request: the built-in server, the test client and
        the ASGI adapter call it (``seam.seam_entry(app)`` finds it)."""
        # The settings as locals: one attribute read each (properties cost ~1% per request).
        config = self._config or self.config
        access = config.access_log
        started = perf_counter() if access else 0.0
        method = head.method
        try:
            raw_path, query = split_target(head.target)
            path = decode_path(raw_path)
        except HTTPError as exc:
            response = error_response(exc)
            await response.send(channel, method == "HEAD")
            if access:
                self._log_access(head, head.target.decode("latin-1"), response.status, started)
            return
        websocket = channel.websocket
        if websocket is not None and self._websocket_routes:
            try:
                endpoint, params = self.router.match("WS", path)
            except HTTPError:
                pass  # no WS route at this path: the upgrade request is answered as HTTP
            else:
                await self._serve_websocket(head, channel, websocket, endpoint, params, path, raw_path, query, started)
                return
        self._next_cid += 1
        cid = str(self._next_cid)
        ctx = self._ctx_cls(self, cid)
        client, scheme = effective_peer(head.client, head.scheme, head.headers, self._trusted)  # type: ignore[arg-type]  # set with config
        ctx.request = Request(
            method, path, raw_path, query, head.http_version, Headers(head.headers),
            client, scheme, head.server,
        )
        ctx.channel = channel
        # ctx.hold(), inlined (hot path): the request holds its context; events
        # triggered in it hold it too (events.EventContext).
        ctx._holds = 1
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
            if ctx._cleanups:
                ctx._run_cleanups()
            event = ctx._event
            if event is not None and event.auto_done:
                event.done()
            if ctx._holds == 1 and not ctx.events:
                ctx._holds = 0  # ctx.release() when nothing else holds it (hot path)
                self.ctxs.pop(cid, None)  # (ctx.drop() may have removed it)
            else:
                ctx.release()  # background events still hold it, or events to clear
        if access and status:
            target = raw_path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
            self._log_access(head, target, status, started, ctx.request.client)

    # -- WebSockets (see websocket.py) ----------------------------------------------------

    async def _serve_websocket(
        self,
        head: RequestHead,
        channel: Channel,
        websocket: WebSocketChannel,
        endpoint: Endpoint,
        params: dict[str, Any],
        path: str,
        raw_path: bytes,
        query: bytes,
        started: float,
    ) -> None:
        from .websocket import serve

        client, scheme = effective_peer(head.client, head.scheme, head.headers, self.forwarded_allow_ips)
        request = Request(
            head.method, path, raw_path, query, head.http_version, Headers(head.headers),
            client, "wss" if scheme == "https" else "ws", head.server,
        )
        await serve(self, head, channel, websocket, endpoint, params, request, started)

    def next_cid(self) -> str:
        """A fresh context id (requests, WebSocket connections)."""
        self._next_cid += 1
        return str(self._next_cid)

    async def run_hooks(self, ctx: ConnectionContext, before: bool) -> None:
        """tiny-listener's ``before_event`` (or ``after_event``) hooks for ``ctx``'s event."""
        hooks = self._before_hooks if before else self._after_hooks
        for hook in hooks:
            await hook(ctx.event, {})

    def log_websocket(self, head: RequestHead, request: Request, status: int, started: float) -> None:
        """The access line of a WebSocket handshake: 101 when accepted, else the refusal."""
        if self.access_log:
            target = request.raw_path.decode("latin-1")
            if request.query_string:
                target += "?" + request.query_string.decode("latin-1")
            self._log_access(head, target, status, started, request.client)

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
        if self._before_hooks:
            for hook in self._before_hooks:
                await hook(ctx.event, {})
        response = await endpoint.chain(ctx)
        if self._after_hooks:
            for hook in self._after_hooks:
                await hook(ctx.event, {})
        return response

    async def _invoke(self, ctx: HTTPContext) -> Response:
        endpoint = ctx.endpoint
        assert endpoint is not None  # set by _routed
        result = await call_plan(endpoint.call, endpoint.plan, ctx, ctx.params)
        return reconcile(ctx, result, endpoint.role, False)

    async def _unhandled(self, ctx: HTTPContext, exc: Exception) -> Response:
        """Run tiny-listener's on_error hooks; unless one replied, log and answer 500.
        The reply recorded before the exception is discarded (``reconcile``'s rule)."""
        ctx.reply = None
        endpoint = ctx.endpoint
        hooks = [hook for kls, hook in self._error_hooks if isinstance(exc, kls)]
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

    @cached_property
    def asgi(self) -> ASGIAdapter:
        """The ASGI 3 adapter serving this app (one, made on first use); the app itself
        is ASGI too (``uvicorn module:app``), by delegating to it. ``asgi = app.asgi`` in
        the module and ``uvicorn module:asgi`` still works."""
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
            if self.server is not None:
                await self.server.shutdown(0)
            return
        self._stopping = True
        if self._starting:
            error_log.info("Signal %s during startup: shutting down once it has finished", sig)
            return  # main() sees _stopping after run_startup and shuts down instead of serving
        error_log.info("Shutting down (signal %s)", sig)
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

    # -- lifecycle: one startup / shutdown for every runner (policy: module docstring) ------

    @property
    def drain_timeout(self) -> float:
        """Seconds a shutdown waits for requests and background events together:
        ``App(shutdown_timeout=...)``, else the server config's ``shutdown_timeout``."""
        if self.shutdown_timeout is not None:
            return self.shutdown_timeout
        if self.server is not None:
            return self.server.config.shutdown_timeout
        configured = self.server_options.get("shutdown_timeout")
        return float(configured) if configured is not None else DEFAULT_DRAIN_TIMEOUT

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
        await self.background.drain(timeout)
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
        from .protocol.config import ConfigError

        try:
            await self.listen()
        except (ConfigError, OSError) as exc:  # a busy port, a bad certificate: one line
            from .logs import log_startup_error

            log_startup_error(str(exc))
            self._exit_status = 1
            await self.run_shutdown(0)  # startup ran, so shutdown does too
            return
        await self._stopped.wait()

    # -- events outside any request ------------------------------------------------------

    def trigger_event(
        self,
        path: str,
        cid: str | None = None,
        timeout: float | None = None,
        data: dict[str, Any] | None = None,
    ) -> asyncio.Task[Any]:
        """Run the (non-HTTP) event ``path`` in the background on the running loop.

        ``cid=None``: in a fresh context, dropped when the event is done (a startup
        callback, a timer). ``cid``: in that live context (``ContextNotFound`` if it has
        been dropped). Same guarantees as ``ctx.trigger_event`` (see events.py): the task
        is kept, errors go to ``on_error`` hooks or the log, shutdown drains it; awaiting
        it gives the handler's return value (``None`` if it failed)."""
        if cid is None:
            ctx = self._event_context()
        else:
            found = self.ctxs.get(cid)
            if found is None:
                raise ContextNotFound(f"context {cid!r} is not alive (its request and events have finished)")
            ctx = found
        return self.background.trigger(ctx, path, timeout=timeout, data=data)

    def trigger_event_threadsafe(
        self, path: str, *, timeout: float | None = None, data: dict[str, Any] | None = None
    ) -> concurrent.futures.Future[Any]:
        """``trigger_event`` from any thread, in a fresh context, on the app's loop. The
        future gets the handler's return value (``None`` if it failed; the error went to
        the hooks or the log), or the error that kept it from starting. ``RuntimeError``
        if the app is not running."""
        return self.background.trigger_threadsafe(self._event_context, path, timeout=timeout, data=data)

    def _event_context(self) -> HTTPContext:
        self._next_cid += 1
        return self._ctx_cls(self, f"event-{self._next_cid}")

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


def _callable_name(fn: Any) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


Step = Callable[[HTTPContext], Awaitable[Response]]
OnError = Callable[[HTTPContext, Exception], Awaitable[Response]]


def _compose(middleware: Sequence[Middleware], inner: Step, on_error: OnError | None = None) -> Step:
    """Wrap ``inner`` in ``middleware``, the first one outermost (built once).

    ``on_error`` (global middleware: ``App._unhandled``) turns an exception raised
    below a layer into the response its ``call_next`` returns; without it (route
    middleware) the exception goes through ``call_next`` to the middleware."""
    chain = inner
    for mw in reversed(middleware):
        chain = _layer(mw, chain, on_error)
    return chain


def _layer(mw: Middleware, nxt: Step, on_error: OnError | None) -> Step:
    where = f"middleware {getattr(mw, '__qualname__', mw)}"

    async def run(ctx: HTTPContext) -> Response:
        async def call_next() -> Response:
            try:
                return await nxt(ctx)
            except HTTPError as exc:
                answer = error_response(exc)
            except ClientDisconnect:
                raise
            except Exception as exc:
                if on_error is None:
                    raise
                answer = await on_error(ctx, exc)
            return reconcile(ctx, answer, where, replaces=True)

        return reconcile(ctx, await mw(ctx, call_next), where, replaces=True)

    return run
