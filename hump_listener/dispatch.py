"""Dispatch: a request from the seam to its handler and back, and events fired by name.

``App.handle(head, channel)`` is the seam entry (``seam.seam_entry``): the built-in
server, the test client and the ASGI adapter call it once per request. The request path,
in order (each step is skipped when nothing is registered for it)::

    server ──(RequestHead, Channel)──► App.handle
        target → (path, query)                         targets.split_target / decode_path
        HTTPContext(cid) into app.ctxs                 one context per request
        global middleware  ─► route lookup (404/405)   chain.compose / routing.Router
            before_event hooks ─► route middleware ─► handler (planned injection)
            after_event hooks
        the reply (or 500) sent through the Channel    exactly one response
        context released, access line logged           dropped once its events are done

Errors: ``HTTPError`` anywhere becomes that response (middleware sees it as a response
from ``call_next``); any other exception runs tiny-listener's ``on_error`` hooks and,
unless one of them replied, becomes a logged 500 with a generic body (``_unhandled``).
Global middleware sees that 500 as a response from ``call_next`` too (so CORS headers are
on it); route middleware sees the exception itself, and may catch it. A recorded reply
and a returned one meet in ``replies.reconcile``.

A WebSocket handshake whose path has a ``WS:`` route goes to ``websocket.serve`` instead
(with the helpers it calls back: ``next_cid``, ``run_hooks``, ``log_websocket``).
``trigger_event`` fires a (non-HTTP) event outside any request (``background``).

``RequestPath`` is one part of ``App`` (``app.App`` composes the parts and sets the state
declared here); it is not used on its own.
"""

from __future__ import annotations

import asyncio
import logging
from time import perf_counter
from typing import TYPE_CHECKING, Any, Protocol, cast

from tiny_listener import ContextNotFound, Listener

from . import statuses
from .context import HTTPContext
from .endpoints import call_plan
from .errors import ClientDisconnect, HTTPError
from .models import Headers, Request, Response
from .proxy import effective_peer
from .replies import error_response, reconcile
from .targets import decode_path, split_target

if TYPE_CHECKING:
    import concurrent.futures
    from collections.abc import Awaitable, Callable

    from .app import App
    from .background import BackgroundEvents
    from .endpoints import Endpoint
    from .events import ConnectionContext
    from .proxy import TrustedProxies
    from .routing import Router
    from .seam import Channel, RequestHead, WebSocketChannel

__all__ = ["RequestPath", "Settings"]

error_log = logging.getLogger("hump_listener.error")
access_log = logging.getLogger("hump_listener.access")


class Settings(Protocol):
    """What the request path reads of ``App.config`` (a ``protocol.ServerConfig``, which
    this side of the package does not import)."""

    @property
    def access_log(self) -> bool:
        """One access line per response."""


class RequestPath(Listener[HTTPContext]):
    """The part of ``App`` that serves requests: the seam entry ``handle``, the steps
    it composes (``_routed``, ``_invoke``, ``_unhandled``), the WebSocket dispatch, the
    access log, and ``trigger_event`` for events outside any request."""

    # Set by App.__init__ (app.py) and kept up to date by registration.Registration;
    # declared here, where the request path reads them.
    router: Router[Endpoint]
    #: The not-found fallback (``@app.on_event()``), or None.
    fallback: Endpoint | None
    #: The global middleware chain around ``_routed`` (chain.compose).
    _entry: Callable[[HTTPContext], Awaitable[Response]]
    _ctx_cls: type[HTTPContext]
    _next_cid: int
    #: Some ``WS:`` route exists: only then does an upgrade request look for one.
    _websocket_routes: bool
    # tiny-listener's hook lists (live: its decorators append to them)
    _before_hooks: list[Any]
    _after_hooks: list[Any]
    _error_hooks: list[tuple[type[Exception], Any]]
    #: ``App.config`` once resolved (None until first used).
    _config: Settings | None
    #: The trusted proxies, parsed with ``config`` (None until it is resolved).
    _trusted: TrustedProxies | None
    background: BackgroundEvents

    if TYPE_CHECKING:  # App's configuration properties (app.py)

        @property
        def config(self) -> Settings: ...
        @property
        def access_log(self) -> bool: ...
        @property
        def forwarded_allow_ips(self) -> TrustedProxies: ...

    # -- the seam ------------------------------------------------------------------------

    async def handle(self, head: RequestHead, channel: Channel) -> None:
        """The seam entry, one call per request: the built-in server, the test client and
        the ASGI adapter call it (``seam.seam_entry(app)`` finds it)."""
        # The setting as a local, read without a property call (~1% per request on 3.11);
        # resolving ``config`` also sets ``_trusted``.
        access = (self._config or self.config).access_log
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
        client, scheme = effective_peer(head.client, head.scheme, head.headers, self._trusted)  # type: ignore[arg-type]  # set with config, above
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
        app = cast("App", self)  # a RequestPath is always the App's (module docstring)
        await serve(app, head, channel, websocket, endpoint, params, request, started)

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

    # -- events outside any request ------------------------------------------------------

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
        been dropped). Same guarantees as ``ctx.trigger_event`` (see background.py): the task
        is kept, errors go to ``on_error`` hooks or the log, shutdown drains it; awaiting
        it gives the handler's return value (``None`` if it failed). A durable event is
        stored instead (its id, once stored), with ``key=`` and ``delay=`` (durable.py)."""
        if cid is None:
            ctx = self._event_context()
        else:
            found = self.ctxs.get(cid)
            if found is None:
                raise ContextNotFound(f"context {cid!r} is not alive (its request and events have finished)")
            ctx = found
        return self.background.trigger(ctx, path, timeout=timeout, data=data, key=key, delay=delay)

    def trigger_event_threadsafe(
        self, path: str, *, timeout: float | None = None, data: dict[str, Any] | None = None,
        key: str | None = None, delay: float | None = None,
    ) -> concurrent.futures.Future[Any]:
        """``trigger_event`` from any thread, in a fresh context, on the app's loop. The
        future gets the handler's return value (``None`` if it failed; the error went to
        the hooks or the log), or the error that kept it from starting. ``RuntimeError``
        if the app is not running. A durable event: its id, once stored."""
        return self.background.trigger_threadsafe(
            self._event_context, path, timeout=timeout, data=data, key=key, delay=delay
        )

    def _event_context(self) -> HTTPContext:
        self._next_cid += 1
        return self._ctx_cls(self, f"event-{self._next_cid}")
