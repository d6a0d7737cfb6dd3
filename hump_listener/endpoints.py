"""Endpoints: a handler, its route and its injection plan, computed once.

tiny-listener injects handler arguments by annotation (``ctx: HTTPContext``,
``event: Event``, ``name: Param``, ``x: Data``, ``dep=Depends(fn)``; and here also
``request: Request``, the context's request, as Hump's handlers take it) but re-reads the
signature on every call (~10 µs) and, under ``from __future__ import annotations``,
silently passes ``None`` for everything. Here the signature is read once, with string
annotations evaluated, and anything we cannot inject is a ``RouteDefinitionError`` at
registration: a handler never silently receives ``None``.

A route handler may also be a plain ``def`` function: its arguments are injected on the
event loop as for an ``async def`` one, then it runs in the app's thread pool
(``threads.SyncPool``) behind an ``async`` wrapper, which is what tiny-listener's
``Hook`` (it refuses non-coroutine functions) and the request path see. Middleware,
dependencies and hooks must stay ``async def``: they are refused at registration.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tiny_listener import Context, Data, Depends, Event, Param, Route

from . import tiny_internals
from .context import HTTPContext
from .errors import RouteDefinitionError
from .models import Request
from .route_templates import WS, Template, parse_event_name
from .tiny_internals import init_route_without_regex

if TYPE_CHECKING:
    from .context import ConnectionContext
    from .models import Response

__all__ = [
    "Endpoint",
    "Middleware",
    "Plan",
    "PlannedHook",
    "RunSync",
    "build_plan",
    "call_plan",
    "check_middleware",
    "is_sync_handler",
]

Handler = Callable[..., Awaitable[Any]]
CallNext = Callable[[], Awaitable[Any]]
#: Wrapping middleware: ``async def mw(ctx, call_next)``; ``await call_next()`` runs the
#: rest of the chain and returns the ``Response``; returning a ``Response`` replaces it.
Middleware = Callable[["HTTPContext", CallNext], Awaitable[Any]]
#: Runs ``fn(*args, **kwargs)`` off the loop: ``threads.SyncPool.run``.
RunSync = Callable[[Callable[..., Any], Sequence[Any], Mapping[str, Any]], Awaitable[Any]]

# Plan step kinds (small ints: the plan is a tuple walked on every request)
_CTX, _EVENT, _PARAM, _DATA, _DEPENDS, _REQUEST, _VALUE = range(7)
Step = tuple[int, Any, str | None]  # (kind, key, keyword name or None for positional)
#: A handler's injection steps. A ``Depends`` step's key is ``(dependency, its fn, its
#: plan)``: plans nest, so no registry outlives the routes that use them. ``_VALUE``
#: steps (the key is the value) exist only while a call is made: a ``Depends`` resolved.
Plan = tuple[Step, ...]



def is_sync_handler(fn: Any) -> bool:
    """True for a plain (``def``) callable, which a route runs in the thread pool."""
    return not asyncio.iscoroutinefunction(fn)


def build_plan(
    fn: Callable[..., Any],
    param_names: Sequence[str] | None,
    where: str,
    context: type[Context] | None = None,
    *,
    sync_ok: bool = False,
) -> Plan:
    """Read ``fn``'s signature once and turn it into a tuple of injection steps.

    ``param_names``: the path parameters the route provides (``None``: unknown, e.g. a
    dependency, whose ``Param`` lookups are checked at call time). ``sync_ok``: ``fn``
    may be a plain ``def`` (a route handler, run in the thread pool); anything else must
    be a coroutine function. ``context``: the kind
    of context the route's handler gets (``HTTPContext`` or ``WebSocket``); a parameter
    annotated with an unrelated context class (``ctx: HTTPContext`` on a WebSocket
    route) is refused, here and in its dependencies.
    """
    if is_sync_handler(fn) and asyncio.iscoroutinefunction(inspect.getattr_static(type(fn), "__call__", None)):
        raise RouteDefinitionError(
            f"{where}: {_name(fn)} is an object with an `async def __call__`; register a "
            "function (`async def handler(...)`) instead"
        )
    if not sync_ok and is_sync_handler(fn):
        raise RouteDefinitionError(
            f"{where}: {_name(fn)} must be an `async def` function (it runs on the event "
            "loop; only route handlers may be plain `def`, they run in the thread pool). "
            "Make it `async def`, and move blocking work into `await asyncio.to_thread(...)`"
        )
    try:
        sig = inspect.signature(fn, eval_str=True)
    except Exception as e:  # NameError and friends from string annotations
        raise RouteDefinitionError(
            f"{where}: cannot resolve the annotations of {_name(fn)} ({e}). With "
            "`from __future__ import annotations`, every annotated name (HTTPContext, Param, "
            "Event, ...) must be importable at module level, not only under TYPE_CHECKING."
        ) from e
    steps: list[Step] = []
    for name, p in sig.parameters.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        keyword = name if p.kind is p.KEYWORD_ONLY else None
        anno, default = p.annotation, p.default
        if isinstance(anno, str):  # a quoted annotation inside a postponed one
            raise RouteDefinitionError(
                f"{where}: cannot resolve the annotations of {_name(fn)}: {name!r} is "
                f"annotated with the string {anno!r}; use the name itself"
            )
        if isinstance(default, Depends):
            dep_fn = tiny_internals.hook_fn(default)
            steps.append((_DEPENDS, (default, dep_fn, build_plan(dep_fn, None, where, context)), keyword))
        elif inspect.isclass(anno) and issubclass(anno, Context):
            if context is not None and not (issubclass(context, anno) or issubclass(anno, context)):
                raise RouteDefinitionError(
                    f"{where}: {_name(fn)} asks for {name}: {anno.__name__}, but this route's "
                    f"handler gets a {context.__name__}"
                )
            steps.append((_CTX, None, keyword))
        elif inspect.isclass(anno) and issubclass(anno, Event):
            steps.append((_EVENT, None, keyword))
        elif anno is Request:
            steps.append((_REQUEST, None, keyword))
        elif anno is Param:
            if param_names is not None and name not in param_names:
                raise RouteDefinitionError(
                    f"{where}: {_name(fn)} asks for path parameter {name!r}, but the route has "
                    f"{list(param_names) or 'none'}"
                )
            steps.append((_PARAM, name, keyword))
        elif anno is Data:
            steps.append((_DATA, name, keyword))
        elif default is not inspect.Parameter.empty:
            continue  # not injectable, but has a default: leave it to Python
        else:
            raise RouteDefinitionError(
                f"{where}: cannot inject parameter {name!r} of {_name(fn)}: annotate it with a "
                "Context subclass (HTTPContext), Request, Event, Param or Data, or give it Depends(...)"
            )
    return tuple(steps)


def call_plan(
    fn: Handler, plan: Plan, ctx: ConnectionContext, params: dict[str, Any], event: Event[Any] | None = None
) -> Awaitable[Any]:
    """Call ``fn`` with the arguments ``plan`` says to inject; returns what ``fn``
    returned, to await. ``event``: the event being handled (a background event);
    ``None``: the request's own ``ctx.event``, created only if something asks for it.

    A plain function, not a coroutine: the arguments are computed here and ``fn``'s own
    coroutine is what the caller awaits (one coroutine less per request, ~3k
    instructions). A plan with a ``Depends`` step has something to await first: then
    the whole plan runs in ``_call_resolving``. Errors (a missing parameter) are raised
    here, at the call, which every caller makes inside the ``try`` that awaits it."""
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for kind, key, keyword in plan:
        if kind == _CTX:
            value: Any = ctx
        elif kind == _PARAM:
            value = _param(params, key)
        elif kind == _REQUEST:
            value = ctx.request
        elif kind == _EVENT:
            value = ctx.event if event is None else event
        elif kind == _DATA:
            value = _data(ctx.event if event is None else event, key)
        elif kind == _VALUE:
            value = key
        else:
            return _call_resolving(fn, plan, ctx, params, event)
        if keyword is None:
            args.append(value)
        else:
            kwargs[keyword] = value
    return fn(*args, **kwargs)


def _param(params: dict[str, Any], key: str) -> Any:
    try:
        return params[key]
    except KeyError:
        from tiny_listener import PathParamsError

        raise PathParamsError(f"path param `{key}` is missing, allowed: {list(params)}") from None


def _data(event: Event[Any], key: str) -> Any:
    data = event.data
    try:
        return data[key]
    except KeyError:
        from tiny_listener import EventDataError

        raise EventDataError(f"event data `{key}` is missing, allowed: {list(data)}") from None


async def _call_resolving(
    fn: Handler, plan: Plan, ctx: ConnectionContext, params: dict[str, Any], event: Event[Any] | None
) -> Any:
    """``call_plan`` for a plan with ``Depends`` steps: they are resolved first, in
    order (awaited), then ``call_plan`` injects their values with the other steps."""
    ready: Plan = tuple(
        [
            (_VALUE, await _resolve(key, ctx, params, event), keyword) if kind == _DEPENDS else (kind, key, keyword)
            for kind, key, keyword in plan
        ]
    )
    return await call_plan(fn, ready, ctx, params, event)


async def _resolve(
    step: tuple[Depends, Handler, Plan], ctx: ConnectionContext, params: dict[str, Any], event: Event[Any] | None
) -> Any:
    """tiny-listener's Depends semantics (per-context cache, optional timeout), planned."""
    dep, fn, plan = step
    if dep.use_cache and dep in ctx.cache:
        return ctx.cache[dep]
    call = call_plan(fn, plan, ctx, params, event)
    value = await (asyncio.wait_for(call, dep.timeout) if dep.timeout is not None else call)
    ctx.cache[dep] = value
    return value


def run_in_pool(fn: Callable[..., Any], run_sync: RunSync, where: str) -> Handler:
    """An ``async def`` stand-in for the sync handler ``fn``: it takes the injected
    arguments and runs ``fn`` with them through ``run_sync`` (the app's thread pool).

    ``functools.wraps`` keeps ``fn``'s name and (through ``__wrapped__``) its signature,
    so tiny-listener's ``Hook`` accepts it and injects as for ``fn`` when the route is
    fired with ``trigger_event``."""

    @functools.wraps(fn)
    async def call_in_thread(*args: Any, **kwargs: Any) -> Any:
        result = await run_sync(fn, args, kwargs)
        if inspect.isawaitable(result):
            close = getattr(result, "close", None)
            if close is not None:
                close()  # no "never awaited" warning on top of this error
            raise TypeError(
                f"{where}: the sync handler {_name(fn)} returned an awaitable; declare it "
                "`async def` (a decorator may have hidden it: see inspect.markcoroutinefunction)"
            )
        return result

    return call_in_thread


def check_middleware(mw: Any, where: str) -> None:
    """Refuse at registration what cannot be middleware, instead of a 500 on every
    request: something not callable, a plain ``def`` function (middleware runs on the
    event loop), and a signature that cannot take ``(ctx, call_next)`` (``async def
    mw(next)``, a PyMicroHTTP habit). Raises ``TypeError``."""
    usage = "`async def mw(ctx, call_next): return await call_next()`"
    if not callable(mw):
        raise TypeError(f"{where}: middleware must be callable, got {mw!r}: {usage}")
    if (inspect.isfunction(mw) or inspect.ismethod(mw)) and not asyncio.iscoroutinefunction(mw):
        raise TypeError(
            f"{where}: middleware {_name(mw)} must be an `async def` function: "
            f"{usage} (sync middleware is not supported: it would block the event loop)"
        )
    try:
        signature = inspect.signature(mw)
    except (TypeError, ValueError):  # a builtin or C callable: nothing to read
        return
    try:
        signature.bind(None, None)
    except TypeError:
        raise TypeError(
            f"{where}: middleware {_name(mw)}{signature} cannot be called as mw(ctx, call_next): {usage}"
        ) from None


class PlannedHook:
    """A tiny-listener hook (``before_event``, ``after_event``, ``on_error``) with its
    injection planned once, so it also works under postponed annotations."""

    def __init__(self, fn: Handler, kind: str) -> None:
        self.fn = fn
        self.plan = build_plan(fn, None, f"{kind} hook")

    async def __call__(self, event: Event[Any], params: dict[str, Any]) -> Any:
        return await call_plan(self.fn, self.plan, event.ctx, params, event)

    def __repr__(self) -> str:
        return f"PlannedHook({_name(self.fn)})"


def _name(fn: Any) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', fn)!s}"


#: ``route_path`` of the not-found fallback (``@app.on_event()``), which has no template.
_FALLBACK_PATH = "/{_:path}"


def _context_kind(method: str) -> type[Context]:
    """The context a route's handler gets: a ``WebSocket`` for ``WS``, else an ``HTTPContext``."""
    if method == "WS":
        # websocket.py imports this module (call_plan): the one import kept in a function,
        # run once per WS route at registration.
        from .websocket import WebSocket

        return WebSocket
    return HTTPContext


class Endpoint(Route):
    """A tiny-listener ``Route`` (so ``Event.route`` stays meaningful) that also carries
    the HTTP method, our compiled template and the plan, per-route middleware and limits.

    ``path`` (tiny-listener's name for it) is the event name as registered. The route is
    matched with our ``Template`` (``template is None``: the not-found fallback, which
    answers every HTTP event); tiny-listener's own path regex is never compiled."""

    #: The route's middleware around the handler, composed once by the app.
    chain: Callable[[HTTPContext], Awaitable[Response]]

    def __init__(
        self,
        event_name: str,
        method: str,
        template: Template | None,
        fn: Handler,
        middleware: Sequence[Middleware] = (),
        max_body_size: int | None = None,
        opts: dict[str, Any] | None = None,
        run_sync: RunSync | None = None,
    ) -> None:
        where = f"route {event_name!r}"
        self.template = template
        self.param_names: tuple[str, ...] = tuple(template.param_names) if template is not None else ("_",)
        self.plan: Plan = build_plan(fn, self.param_names, where, _context_kind(method), sync_ok=run_sync is not None)
        #: True for a plain ``def`` handler, run in the thread pool through ``call``.
        self.sync = is_sync_handler(fn)
        #: What the request path awaits: ``fn`` itself, or its thread-pool stand-in.
        self.call: Handler = run_in_pool(fn, run_sync, where) if self.sync and run_sync else fn
        init_route_without_regex(self, event_name, self.call, opts)
        self.event_name = event_name
        self.method = method
        self.route_path = template.source if template is not None else _FALLBACK_PATH
        self.fn = fn
        self.middleware: tuple[Middleware, ...] = tuple(middleware)
        self.max_body_size = max_body_size
        self.qualname = _name(fn)
        #: How errors name it (built once: the request path passes it along).
        self.role = f"handler {self.qualname}"

    def match(self, path: str) -> dict[str, Any] | None:
        """tiny-listener's ``Route.match``, by event name (``"GET:/user/bob"``): the path
        parameters if this endpoint answers that event, as ``Router.match`` would (``*``
        any HTTP method, HEAD served by GET, WS only by WS), else ``None``."""
        try:
            parsed = parse_event_name(path)
        except RouteDefinitionError:
            return None
        if parsed is None:
            return None
        method, http_path = parsed
        if self.template is None:
            return {"_": http_path}
        own = self.method
        if not (own == method or (own == "*" and method != WS) or (own == "GET" and method == "HEAD")):
            return None
        return self.template.match(http_path)

    def __repr__(self) -> str:
        return f"Endpoint({self.event_name!r} -> {self.qualname})"
