"""Registration: how handlers, hooks and middleware get into an ``App``, and are found again.

Every decorator ends in ``add_on_event_hook(fn, event_name)`` (tiny-listener's own entry,
so ``Listener`` code keeps working): the event name is split once (``route_templates``), the
template compiled once, the handler's injection planned once (``endpoints.Endpoint``),
and the route filed in the route tree (``routing.Router``); its middleware chain is
composed once (``chain.compose``). Anything wrong fails here, at registration, as a
``RouteDefinitionError`` naming the route::

    @app.get("/user/{name}")              "GET:/user/{name}"  -> router, an Endpoint
    @app.route("/x", methods=["GET", "POST"])  one Endpoint per method
    @app.websocket("/ws/{room}")          "WS:/ws/{room}"     -> router, WS method
    @app.on_event()                       the not-found fallback (``app.fallback``)
    @app.on_event("user.created")         a plain tiny-listener event (``plain_routes``)

``match_route`` finds a route by event name again (for ``trigger_event`` and
tiny-listener), through the tree instead of tiny-listener's linear scan.

``Registration`` is one part of ``App`` (``app.App`` composes the parts and sets the
state declared here); it is not used on its own.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from tiny_listener import Route

from .chain import compose
from .context import HTTPContext
from .dispatch import RequestPath
from .endpoints import Endpoint, Handler, Middleware, PlannedHook, check_middleware
from .errors import HTTPError, RouteDefinitionError
from .route_templates import Template, parse_event_name
from .routing import Router

if TYPE_CHECKING:
    from .durable import DurableEvents
    from .threads import SyncPool

__all__ = ["FALLBACK", "Registration"]

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
#: tiny-listener's default event name: ``@app.on_event()`` registers the catch-all, which
#: answers every request no route matches (the not-found fallback).
FALLBACK = "{_:path}"


class Registration(RequestPath):
    """The part of ``App`` that registers routes, hooks and middleware (tiny-listener's
    decorators included) and looks routes up by event name."""

    # Set by App.__init__ (app.py); declared here, where registration fills them.
    #: Non-HTTP tiny-listener events, matched by tiny-listener's own ``Route``.
    plain_routes: list[Route]
    _middleware: list[Middleware]
    #: The default ``max_body_size`` of a route (``App(max_body_size=...)``).
    max_body_size: int | None
    #: Threads for plain ``def`` handlers.
    sync_pool: SyncPool
    #: Durable events (durable.py): ``on_event(..., durable=True)`` registers there.
    durable: DurableEvents

    # -- registration ------------------------------------------------------------------

    def set_context_cls(self, kls: type[Any]) -> None:
        """Use ``kls`` (an ``HTTPContext`` subclass) for every request's context."""
        if not (isinstance(kls, type) and issubclass(kls, HTTPContext)):
            raise TypeError("an App's context class must subclass HTTPContext")
        super().set_context_cls(kls)
        self._ctx_cls = kls

    def add_on_event_hook(self, fn: Handler, path: str = FALLBACK, **opts: Any) -> None:
        """Register ``fn`` for the event ``path`` (what every decorator calls): an HTTP
        route (``"GET:/x"``), a WebSocket route (``"WS:/x"``), a plain event, or (no
        path) the not-found fallback. ``middleware=[...]`` and ``max_body_size=`` apply
        to the route, ``durable=True`` (or a ``Durable``) to a plain event; a bad name,
        template, handler or a duplicate raise here."""
        middleware: Sequence[Middleware] = opts.pop("middleware", None) or ()
        max_body_size = opts.pop("max_body_size", self.max_body_size)
        durable = opts.pop("durable", None)  # durable.py: True or a Durable policy
        if path in self.routes:
            raise RouteDefinitionError(f"event {path!r} is already registered")
        for mw in middleware:
            check_middleware(mw, f"route {path!r}")
        if durable and (path == FALLBACK or parse_event_name(path) is not None):
            raise RouteDefinitionError(f"route {path!r}: durable= is for named events fired with trigger_event")
        run_sync = self._sync_runner(fn)
        if path == FALLBACK:
            endpoint = Endpoint(path, "*", None, fn, middleware, max_body_size, opts, run_sync)
            self.fallback = endpoint
        else:
            parsed = parse_event_name(path)  # RouteDefinitionError for a route-like typo
            if parsed is None:
                # Not an HTTP route: keep tiny-listener's own behaviour for plain events.
                route = Route(path=path, fn=fn, opts=opts)
                if durable:
                    self.durable.register(route, durable)
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
        endpoint.chain = compose(endpoint.middleware, self._invoke)
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
        """``@app.before_event``: ``fn`` runs before every handler, request or event."""
        self._before_hooks.append(PlannedHook(fn, "before_event"))

    def add_after_event_hook(self, fn: Handler) -> None:
        """``@app.after_event``: ``fn`` runs after every handler that returned."""
        self._after_hooks.append(PlannedHook(fn, "after_event"))

    def add_on_error_hook(self, fn: Handler, exc: type[Exception]) -> None:
        """``@app.on_error(exc)``: ``fn`` runs when a handler raises an ``exc``; it may
        reply (``ctx.response(...)``), else the answer is a logged 500."""
        self._error_hooks.append((exc, PlannedHook(fn, "on_error")))

    def remove_on_event_hook(self, name: str | Callable[..., Any]) -> bool:
        """Remove the routes registered as ``name`` (an event name or the handler);
        False when there were none."""
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

    def on_event(self, path: str = FALLBACK, **opts: Any) -> Callable[[F], F]:
        """``@app.on_event("GET:/user/{name}")``; ``middleware=[...]`` and
        ``max_body_size=`` per route; no path: the not-found fallback."""

        def decorator(fn: F) -> F:
            self.add_on_event_hook(fn, path, **opts)
            return fn

        return decorator

    def route(self, path: str, methods: Sequence[str] = ("GET",), **opts: Any) -> Callable[[F], F]:
        """``@app.route("/x", methods=["GET", "POST"])``: one route per method."""
        def decorator(fn: F) -> F:
            for method in methods:
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
        self._entry = compose(self._middleware, self._routed, self._unhandled)
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
