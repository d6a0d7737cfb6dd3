"""Dispatch: the request path, a request from the seam to its handler and back.

``RequestPath.handle(head, channel)`` is the seam entry (``App.handle`` is this bound
method): the built-in server, the test client and the ASGI adapter call it once per
request. It is handed what it uses, nothing more: the route table, the hooks, the
context factory and its settings (``Settings``: the access log, the trusted proxies).
In order (each step is skipped when nothing is registered for it)::

    server ──(RequestHead, Channel)──► RequestPath.handle
        target → (path, query)                         targets.parse_target
        a WS route for an upgrade request? ─► websocket.serve (a WebSocket context)
        HTTPContext from the factory into app.ctxs     one context per request
        global middleware  ─► routing (404/405)        chain.compose / RouteTable.match
            before_event hooks ─► route middleware ─► handler (chain.call_handler)
            after_event hooks
        the reply (or 500) sent through the Channel    exactly one response
        context released, access line logged           dropped once its events are done

Errors: ``HTTPError`` anywhere becomes that response (middleware sees it as a response
from ``call_next``); any other exception goes to the hooks' one error path
(``Hooks.report``: ``on_error`` hooks, else log) and, unless a hook answered, becomes a
500 with a generic body (``unhandled``). Global middleware sees that 500 as a response
from ``call_next`` too (so CORS headers are on it); route middleware sees the exception
itself, and may catch it. A recorded reply and a returned one meet in
``replies.reconcile``.

The access line is written here, where each status is decided and sent: after the
response of a request; for a WebSocket handshake by the connection's context as it sends
the 101 or the refusal (``WebSocket.on_answer``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from time import perf_counter
from typing import TYPE_CHECKING, Any

from .chain import call_handler, compose
from .endpoints import call_plan
from .errors import ClientDisconnect, HTTPError
from .logs import log_access
from .models import Headers, Request, Response
from .proxy import TrustedProxies, effective_peer
from .registration import SlashRedirect
from .replies import error_response, reconcile
from .targets import parse_target
from .websocket import WebSocket, serve

if TYPE_CHECKING:
    from .context import Contexts, HTTPContext
    from .endpoints import Endpoint, Middleware
    from .hooks import Hooks
    from .registration import RouteTable
    from .seam import Channel, RequestHead, WebSocketChannel

__all__ = ["RequestPath", "Settings"]

error_log = logging.getLogger("hump_listener.error")

#: ``Response.send``: a response class that keeps it is sent with ``send_now``.
_SEND_NOW = Response.send


@dataclass(frozen=True, slots=True)
class Settings:
    """What the request path reads of the app's configuration, resolved once per
    ``ServerConfig`` (``App.config``)."""

    #: One ``hump_listener.access`` line per response.
    access_log: bool
    #: Who may set X-Forwarded-* / Forwarded.
    trusted: TrustedProxies


class RequestPath:
    """Serves requests (server lifetime): the seam entry ``handle``, the steps it composes
    (``routed``, ``unhandled``), the global middleware, the WebSocket dispatch and the
    access log of both."""

    def __init__(
        self,
        ctxs: dict[str, Any],
        routes: RouteTable,
        hooks: Hooks,
        contexts: Contexts,
        resolve: Callable[[], Settings],
    ) -> None:
        #: The live contexts (tiny-listener's ``Listener.ctxs``): a request's is in it
        #: while the request or an event triggered in it runs.
        self.ctxs = ctxs
        self.routes = routes
        self.hooks = hooks
        self.contexts = contexts
        #: Set whenever the app's configuration is (``App.config``); ``None`` until then,
        #: and the first request resolves it (``resolve``).
        self.settings: Settings | None = None
        self._resolve = resolve
        self.middleware: list[Middleware] = []
        #: The global middleware chain around ``routed`` (chain.compose).
        self._entry: Callable[[HTTPContext], Awaitable[Response]] = self.routed

    def add_middleware(self, mw: Middleware) -> None:
        """Add a global middleware (outermost first): the chain is composed again, once."""
        self.middleware.append(mw)
        self._entry = compose(self.middleware, self.routed, self.unhandled)

    # -- the seam --------------------------------------------------------------------------

    async def handle(self, head: RequestHead, channel: Channel) -> None:
        """The seam entry, one call per request (``seam.seam_entry(app)`` finds it)."""
        settings = self.settings or self._resolve()
        access = settings.access_log
        started = perf_counter() if access else 0.0
        method = head.method
        try:
            raw_path, query, path = parse_target(head.target)
        except HTTPError as exc:
            response = error_response(exc)
            await response.send(channel, method == "HEAD")
            if access:
                log_access(head, head.target.decode("latin-1"), response.status, started)
            return
        websocket = channel.websocket
        if websocket is not None:
            found = self.routes.match_websocket(path)
            if found is not None:  # else the upgrade request is answered as HTTP
                await self._websocket(head, channel, websocket, found, path, raw_path, query, started)
                return
        ctx = self.contexts.request()
        cid = ctx.cid
        client, scheme = effective_peer(head.client, head.scheme, head.headers, settings.trusted)
        ctx.request = Request(
            method, path, raw_path, query, head.http_version, Headers(head.headers),
            client, scheme, head.server,
        )
        ctx.channel = channel
        # ctx.hold(), inlined (hot path): the request holds its context; events
        # triggered in it hold it too (context.EventContext).
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
                response = await self.unhandled(ctx, exc)
            if ctx._set_cookies:
                response = ctx._finish_response(response)
            status = response.status
            if type(response).send is _SEND_NOW:  # a complete response: no coroutine
                response.send_now(channel, method == "HEAD")
            else:
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
            log_access(head, _target(raw_path, query), status, started, client)

    # -- the steps (composed with the global middleware) ------------------------------------

    async def routed(self, ctx: HTTPContext) -> Response:
        """Routing (404/405, the fallback), then the route's chain: hooks, route
        middleware, handler."""
        request = ctx.request
        try:
            endpoint, params = self.routes.match(request.method, request.path)
        except SlashRedirect:
            location = _slash_redirect(request)
            if location is not None:
                return ctx.redirect(location)  # 307: the method and body are kept
            endpoint, params = self.routes.not_found(request.path)
        ctx.endpoint = endpoint
        ctx.params = params
        ctx.max_body_size = endpoint.max_body_size
        hooks = self.hooks
        if hooks.before:
            await hooks.run_before(ctx.event)
        chain = endpoint.chain
        if chain is call_handler:  # no route middleware: call_handler inlined (hot path)
            returned = await call_plan(endpoint.call, endpoint.plan, ctx, params)
            response = reconcile(ctx, returned, endpoint.role, False)
        else:
            response = await chain(ctx)
        if hooks.after:
            await hooks.run_after(ctx.event)
        return response

    async def unhandled(self, ctx: HTTPContext, exc: Exception) -> Response:
        """The hooks' error path (``on_error`` hooks, else log); unless a hook answered,
        500. The reply recorded before the exception is discarded (``reconcile``'s rule)."""
        ctx.reply = None
        endpoint = ctx.endpoint
        request = ctx.request
        where = f"{endpoint.role if endpoint is not None else 'middleware'} for {request.method} {request.path}"
        try:
            await self.hooks.report(
                ctx._event if endpoint is None else ctx.event, exc, where, lambda: ctx.reply is not None
            )
        except HTTPError as answer:  # raised by an on_error hook: its answer
            return error_response(answer)
        return ctx.reply if ctx.reply is not None else Response("Internal Server Error", 500)

    # -- WebSockets (websocket.py) ----------------------------------------------------------

    async def _websocket(
        self,
        head: RequestHead,
        channel: Channel,
        websocket: WebSocketChannel,
        found: tuple[Endpoint, dict[str, Any]],
        path: str,
        raw_path: bytes,
        query: bytes,
        started: float,
    ) -> None:
        """One WebSocket connection: its context from the factory, handed the hooks and
        the access log to tell the handshake's status to."""
        settings = self.settings or self._resolve()
        client, scheme = effective_peer(head.client, head.scheme, head.headers, settings.trusted)
        ctx = self.contexts.make(WebSocket)
        ctx.request = Request(
            head.method, path, raw_path, query, head.http_version, Headers(head.headers),
            client, "wss" if scheme == "https" else "ws", head.server,
        )
        ctx.channel = websocket
        ctx.http = channel
        ctx.endpoint, ctx.params = found
        if settings.access_log:
            ctx.on_answer = partial(_log_handshake, head, _target(raw_path, query), started, client)
        await serve(ctx, self.hooks)


def _target(raw_path: bytes, query: bytes) -> str:
    """The request-target as the access line shows it."""
    return raw_path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")


def _log_handshake(
    head: RequestHead, target: str, started: float, client: tuple[str, int] | None, status: int
) -> None:
    log_access(head, target, status, started, client)


def _slash_redirect(request: Request) -> str | None:
    """Where a ``SlashRedirect`` goes: the request's own target (percent-encoding and
    query kept) with the trailing slash toggled; None when the slash was percent-encoded."""
    raw = request.raw_path.decode("latin-1")
    if request.path.endswith("/"):
        if not raw.endswith("/"):
            return None
        raw = raw[:-1]
    else:
        raw += "/"
    return raw + ("?" + request.query_string.decode("latin-1") if request.query_string else "")
