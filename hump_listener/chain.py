"""The middleware chain: wrapping middleware around a step, composed once.

``compose(middleware, inner)`` is built at registration (``app.middleware(mw)`` for the
global chain, each route's ``middleware=[...]`` for its own), never per request. Each
layer gives its middleware a ``call_next`` that runs the rest of the chain and returns a
``Response``; what the middleware returns is ``reconcile``d (``replies``) with what was
recorded, so a layer may keep, replace or record its answer::

    app.middleware(a); app.middleware(b)     a( b( routed ) )   a is outermost
    route middleware=[c]                     c( call_handler )  per route

``call_handler`` is the innermost step of every route's chain: the handler, injected by
its plan, its answer ``reconcile``d.

Errors below a layer: an ``HTTPError`` becomes its response (``call_next`` returns it);
``ClientDisconnect`` passes through; anything else goes to ``on_error`` when the chain
has one (the global chain: ``RequestPath.unhandled``, the logged 500 after the
``on_error`` hooks), else (route middleware) it is raised through ``call_next`` to the middleware,
which may catch it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from .endpoints import call_plan
from .errors import ClientDisconnect, HTTPError
from .replies import error_response, reconcile

if TYPE_CHECKING:
    from .context import HTTPContext
    from .endpoints import Middleware
    from .models import Response

__all__ = ["OnError", "Step", "call_handler", "compose"]

#: One step of the request path: the context in, its ``Response`` out.
Step = Callable[["HTTPContext"], Awaitable["Response"]]
#: What the global chain does with an exception raised below a layer.
OnError = Callable[["HTTPContext", Exception], Awaitable["Response"]]


def compose(middleware: Sequence[Middleware], inner: Step, on_error: OnError | None = None) -> Step:
    """Wrap ``inner`` in ``middleware``, the first one outermost (built once).

    ``on_error`` (global middleware: ``RequestPath.unhandled``) turns an exception raised
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


async def call_handler(ctx: HTTPContext) -> Response:
    """The innermost step: the routed handler (``ctx.endpoint``) called with what its plan
    injects; a returned value and a recorded reply meet in ``reconcile``."""
    endpoint = ctx.endpoint
    assert endpoint is not None  # set by the routing step
    result = await call_plan(endpoint.call, endpoint.plan, ctx, ctx.params)
    return reconcile(ctx, result, endpoint.role, False)
