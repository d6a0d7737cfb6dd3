"""PyMicroHTTP's API on hump_listener: a program written for PyMicroHTTP runs with its
import changed to ``from hump_listener.compat.pymicrohttp import Server``.

    s = Server()

    def log_middleware(next):
        def handler(request):
            print(request["verb"], request["path"])
            return next(request)
        return handler

    @s.register("GET /hello/:name", log_middleware)      # one middleware, or a list
    def hello(request):
        return {"message": f"Hello, {request['params']['name']}!"}

    s.start_server(port=8080)

A thin layer: ``Server`` holds one ``App`` (``s.app``); each route is registered on it as
a plain ``def`` handler, so it runs in the app's thread pool like any sync handler, with
the body read on the event loop first (a ``Depends``). The handler gets one request
dict::

    {"verb": "GET", "path": "/hello/bob", "body": "...", "headers": {...},
     "params": {"name": "bob"}, "query": {"n": "3"}}

``headers`` is case-insensitive (``"double" in request["headers"]`` whatever the case
the client sent); ``body`` is the body decoded as UTF-8; ``query`` keeps the first value
of a repeated parameter. Middleware is PyMicroHTTP's: ``mw(next)`` returns a handler; the
first of a list is the outermost, ``@s.beforeAll()`` ones wrap every route, outside its
own. Returns are PyMicroHTTP's: ``dict``/``list`` → JSON, ``str`` → text, ``(body,
status)`` or ``(body, status, headers)``.

What differs (docs/coming-from.md): the server speaks real HTTP/1.1 (keep-alive,
chunked bodies, 404/405, one response per request, a logged 500 when a handler raises);
a ``str`` is sent as ``text/plain`` (PyMicroHTTP labelled everything JSON).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from tiny_listener import Depends

from ..app import App
from ..context import HTTPContext
from ..models import Headers

__all__ = ["Server"]

RequestDict = dict[str, Any]
Handler = Callable[[RequestDict], Any]
#: ``def mw(next): def handler(request): ...; return next(request); return handler``
Middleware = Callable[[Handler], Handler]
F = TypeVar("F", bound=Handler)
M = TypeVar("M", bound=Middleware)

#: PyMicroHTTP's ``start_server`` defaults.
DEFAULT_HOST = "localhost"
DEFAULT_PORT = 9090


async def _read_body(ctx: HTTPContext) -> bytes:
    """The request body, read on the event loop before the handler's thread runs."""
    return await ctx.body()


_BODY = Depends(_read_body)


class Server:
    """PyMicroHTTP's server object: ``register``, ``beforeAll`` and ``start_server``."""

    def __init__(self) -> None:
        #: The real application: add hump_listener routes, middleware or settings to it.
        self.app = App()
        self.before_all_middlewares: list[Middleware] = []

    def register(self, path: str, middleware: Middleware | Sequence[Middleware] | None = None) -> Callable[[F], F]:
        """``@s.register("GET /users/:id")`` (``*`` for any verb), with one middleware or
        a list of them (the first is the outermost)."""
        chain: tuple[Middleware, ...]
        if middleware is None:
            chain = ()
        elif callable(middleware):
            chain = (middleware,)
        else:
            chain = tuple(middleware)

        def decorator(func: F) -> F:
            def endpoint(ctx: HTTPContext, body: Any = _BODY) -> Any:
                handler: Handler = func
                for mw in reversed((*self.before_all_middlewares, *chain)):
                    handler = mw(handler)
                return _result(handler(_request(ctx, body)))

            # Logs and errors name the user's handler, not this wrapper.
            endpoint.__module__, endpoint.__qualname__ = func.__module__, func.__qualname__
            endpoint.__name__ = func.__name__
            self.app.add_on_event_hook(endpoint, path)
            return func

        return decorator

    def register_handler(self, path: str, handler: Handler) -> None:
        """``s.register_handler("GET /ping", ping)``: ``register`` without a decorator."""
        self.register(path)(handler)

    def beforeAll(self) -> Callable[[M], M]:  # PyMicroHTTP spells it so
        """``@s.beforeAll()``: a middleware around every route, outside the route's own."""

        def decorator(mw: M) -> M:
            self.before_all_middlewares.append(mw)
            return mw

        return decorator

    before_all = beforeAll

    def start_server(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, listen_msg: bool = False) -> None:
        """Serve on ``host:port`` until SIGINT/SIGTERM (blocks). The server always logs
        the address it serves on; ``listen_msg`` is accepted for old calls."""
        self.app.configure(host=host, port=port)
        self.app.run()


def _request(ctx: HTTPContext, body: bytes) -> RequestDict:
    request = ctx.request
    headers: Headers = request.headers
    return {
        "verb": request.method,
        "path": request.path,
        "body": body.decode("utf-8", errors="replace"),
        "headers": headers,
        "params": dict(ctx.params),
        "query": dict(request.query),
    }


def _result(value: Any) -> Any:
    """PyMicroHTTP's returns as hump_listener's: ``None`` is an empty body and a value
    that is not a body (an int) is sent as its text, as PyMicroHTTP's ``str()`` did."""
    if value is None:
        return ""
    if isinstance(value, (str, bytes, dict, list, tuple)):
        return value
    return str(value)
