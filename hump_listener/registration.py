"""Registration: the route table, where handlers get in and are found again.

Every decorator of ``App`` ends in ``RouteTable.add(fn, event_name)`` (through
tiny-listener's own entry, ``add_on_event_hook``, so ``Listener`` code keeps working):
the event name is split once (``route_templates``), the template compiled once, the
handler's injection planned once (``endpoints.Endpoint``), and the route filed in the
route tree (``routing.Router``); its middleware chain is composed once (``chain.compose``
around ``chain.call_handler``). Anything wrong fails here, at registration, as a
``RouteDefinitionError`` naming the route::

    @app.get("/user/{name}")              "GET:/user/{name}"  -> the tree, an Endpoint
    @app.route("/x", methods=["GET", "POST"])  one Endpoint per method
    @app.websocket("/ws/{room}")          "WS:/ws/{room}"     -> the tree, WS method
    @app.on_event()                       the not-found fallback (``fallback``)
    @app.on_event("user.created")         a plain tiny-listener event (``plain_routes``)

``by_name`` is tiny-listener's ``Listener.routes`` (event name -> route), kept complete;
``match_route`` finds a route by event name again (for ``trigger_event`` and
tiny-listener) through the tree instead of tiny-listener's linear scan.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Sequence
from typing import Any

from tiny_listener import EventNotFound, Route

from .chain import call_handler, compose
from .endpoints import Endpoint, Handler, Middleware, RunSync, check_middleware
from .errors import HTTPError, RouteDefinitionError
from .route_templates import Template, check_method, parse_event_name
from .routing import Router

__all__ = ["FALLBACK", "RouteTable"]

#: tiny-listener's default event name: ``@app.on_event()`` registers the catch-all, which
#: answers every request no route matches (the not-found fallback).
FALLBACK = "{_:path}"


class RouteTable:
    """Every registered route (server lifetime): by event name, in the route tree, the
    not-found fallback, plain events. Filled by ``add``, read by the request path
    (``match``, ``match_websocket``) and by events fired by name (``match_route``)."""

    def __init__(
        self, by_name: dict[str, Route], run_sync: RunSync, max_body_size: int | None, redirect_slashes: bool = True
    ) -> None:
        #: tiny-listener's ``Listener.routes``: every route by its event name.
        self.by_name = by_name
        #: Runs a plain ``def`` handler in the app's thread pool (``threads.SyncPool.run``).
        self.run_sync = run_sync
        #: The default ``max_body_size`` of a route (``App(max_body_size=...)``).
        self.max_body_size = max_body_size
        self.router: Router[Endpoint] = Router()
        #: The not-found fallback (``@app.on_event()``), or None.
        self.fallback: Endpoint | None = None
        #: Non-HTTP tiny-listener events, matched by tiny-listener's own ``Route``.
        self.plain_routes: list[Route] = []
        #: Some ``WS:`` route exists: only then does an upgrade request look for one.
        self.websocket_routes = False
        #: A 404 whose path answers with(out) a trailing slash is ``SlashRedirect`` (307).
        self.redirect_slashes = redirect_slashes

    # -- registering -----------------------------------------------------------------------

    def add(self, fn: Handler, path: str = FALLBACK, **opts: Any) -> None:
        """Register ``fn`` for the event ``path``: an HTTP route (``"GET:/x"``), a
        WebSocket route (``"WS:/x"``), a plain event, or (``FALLBACK``) the not-found
        fallback. ``middleware=[...]`` and ``max_body_size=`` apply to the route; a bad
        name, template, handler or a duplicate raise here."""
        middleware = _as_sequence(opts.pop("middleware", None) or ())
        custom_method = bool(opts.pop("custom_method", False))
        max_body_size = opts.pop("max_body_size", self.max_body_size)
        if path in self.by_name:
            raise RouteDefinitionError(f"event {path!r} is already registered")
        for mw in middleware:
            check_middleware(mw, f"route {path!r}")
        run_sync = None if asyncio.iscoroutinefunction(fn) else self.run_sync
        if path == FALLBACK:
            endpoint = Endpoint(path, "*", None, fn, middleware, max_body_size, opts, run_sync)
            self.fallback = endpoint
        else:
            parsed = parse_event_name(path)  # RouteDefinitionError for a route-like typo
            if parsed is None:
                # Not an HTTP route: keep tiny-listener's own behaviour for plain events.
                route = Route(path=path, fn=fn, opts=opts)
                self.plain_routes.append(route)
                self.by_name[path] = route
                return
            method, route_path = parsed
            check_method(method, path, custom_method)
            if method == "WS":
                self._check_websocket_route(path, fn, middleware)
            # Compiled once: the plan needs param_names, then the router takes the Template.
            template = Template.compile(route_path)
            endpoint = Endpoint(path, method, template, fn, middleware, max_body_size, opts, run_sync)
            self.router.add(method, template, endpoint)
        endpoint.chain = compose(endpoint.middleware, call_handler)
        self.by_name[path] = endpoint

    def remove(self, name: str | Any) -> bool:
        """Remove the routes registered as ``name`` (an event name or the handler);
        False when there were none."""
        keys = [k for k, r in self.by_name.items() if k == name or getattr(r, "fn", None) is name]
        if not keys:
            return False
        for key in keys:
            del self.by_name[key]
        # Re-index what is left: the same Endpoint objects, templates and plans; nothing
        # is parsed, compiled or planned again.
        self.router, self.fallback, self.plain_routes = Router(), None, []
        for route in self.by_name.values():
            if not isinstance(route, Endpoint):
                self.plain_routes.append(route)
            elif route.template is None:
                self.fallback = route
            else:
                self.router.add(route.method, route.template, route)
        return True

    def _check_websocket_route(self, path: str, fn: Handler, middleware: Sequence[Middleware]) -> None:
        if not asyncio.iscoroutinefunction(fn):
            raise RouteDefinitionError(
                f"route {path!r}: a WebSocket handler must be an `async def` function (it lives "
                "as long as the connection; a thread per connection would not scale)"
            )
        if importlib.util.find_spec("websockets") is None:
            raise RouteDefinitionError(
                f"route {path!r}: WebSocket routes need the websockets package: "
                "pip install websockets"
            )
        if middleware:
            raise RouteDefinitionError(
                f"route {path!r}: HTTP middleware (call_next returns a Response) cannot wrap a "
                "WebSocket; use a dependency (Depends) or check in the handler before accept()"
            )
        self.websocket_routes = True

    # -- finding -------------------------------------------------------------------------

    def match(self, method: str, path: str) -> tuple[Endpoint, dict[str, Any]]:
        """The endpoint answering ``method path`` and its path parameters; the fallback
        for a 404 when there is one; else ``HTTPError`` 404 or 405 (with ``Allow``)."""
        try:
            return self.router.match(method, path)
        except HTTPError as exc:
            if exc.status != 404:
                raise
            if self.redirect_slashes and self.router.slash_alternative(method, path) is not None:
                raise SlashRedirect() from None
            if self.fallback is None:
                raise
            return self.fallback, {"_": path}

    def not_found(self, path: str) -> tuple[Endpoint, dict[str, Any]]:
        """The fallback for ``path``, or ``HTTPError`` 404 (a ``SlashRedirect`` that could
        not be made, for a path whose slash was percent-encoded)."""
        if self.fallback is None:
            raise HTTPError(404)
        return self.fallback, {"_": path}

    def match_websocket(self, path: str) -> tuple[Endpoint, dict[str, Any]] | None:
        """The ``WS:`` route at ``path`` and its parameters, or None (the upgrade request
        is then answered as HTTP)."""
        if not self.websocket_routes:
            return None
        try:
            return self.router.match("WS", path)
        except HTTPError:
            return None

    def match_route(self, path: str) -> tuple[Route, dict[str, Any]]:
        """tiny-listener's lookup by event name (``"GET:/user/bob"`` or a plain event),
        through the route tree instead of a linear scan; ``EventNotFound`` if none."""
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


class SlashRedirect(Exception):
    """``RouteTable.match``: no route, but one with(out) the trailing slash; the request
    path redirects there (307), as Starlette's ``redirect_slashes``."""


def _as_sequence(middleware: Any) -> Sequence[Middleware]:
    """``middleware=`` as a sequence: one middleware (a callable) is a list of one."""
    if callable(middleware):
        return (middleware,)
    try:
        return tuple(middleware)
    except TypeError:
        raise TypeError(f"middleware= takes a middleware or a list of them, got {middleware!r}") from None
