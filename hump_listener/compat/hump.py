"""Hump's API on hump_listener: a program written for Hump runs with its import changed.

    import asyncio
    from hump_listener.compat.hump import Hump, Request, Response, statuses

    app = Hump("", 8342)

    @app.get("/")
    async def index(request: Request):
        return Response("Howdy!", statuses.IM_A_TEAPOT)

    asyncio.run(app.serve())

A thin layer: ``Hump`` holds one ``App`` (``app.app``) and registers each handler on it
as ``"GET:/"``, wrapped to call it as Hump does, with the request as its one argument.
``Request``, ``Response`` and ``statuses`` are hump_listener's own (a ``Request``
dataclass, ``Response(data, status)``, named codes), so they work in native handlers too.

What Hump did and this layer keeps: a returned ``dict``, ``list`` or ``tuple`` is JSON,
anything else not a ``Response`` is text; ``""`` as the host listens on every interface.
What differs (docs/coming-from.md): the socket is bound when ``serve()`` starts, not in
the constructor; ``request.url`` is the full URL (the path is ``request.path``); routes
take hump_listener's templates, so ``/user/{name}`` works; a second handler for the same
method and URL is an error instead of replacing the first.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .. import statuses
from ..app import App
from ..config import DEFAULT_BACKLOG, ConfigError, ServerConfig
from ..context import HTTPContext
from ..logs import configure_default_logging, startup_failed
from ..models import Request, Response

__all__ = ["Hump", "Request", "Response", "statuses"]

Handler = Callable[[Request], Awaitable[Any]]
H = TypeVar("H", bound=Handler)

#: Hump's ``host=""``: the socket's "any address", as ``socket.bind(("", port))`` reads it.
ANY_ADDRESS = "0.0.0.0"


class Hump:
    """Hump's server object: ``Hump(host, port)``, the method decorators and ``serve()``.

    ``backlog`` is the listen backlog (Hump's default, 1024); ``buffer`` (Hump's
    ``recv`` size) has no meaning here: requests are parsed as they arrive, whatever
    their size, up to the server's limits."""

    def __init__(self, host: str, port: int, backlog: int = 1024, buffer: int = 4096) -> None:
        config = ServerConfig(host=host or ANY_ADDRESS, port=port, backlog=backlog or DEFAULT_BACKLOG)
        #: The real application: add hump_listener routes, middleware or settings to it.
        self.app = App(config=config)
        self.buffer = buffer

    def route(self, method: str, url: str) -> Callable[[H], H]:
        """Register an ``async def handler(request)`` for ``method`` and ``url``."""

        def decorator(fn: H) -> H:
            async def endpoint(ctx: HTTPContext) -> Response:
                return _to_response(await fn(ctx.request))

            # Logs and errors name the user's handler, not this wrapper.
            endpoint.__module__, endpoint.__qualname__ = fn.__module__, fn.__qualname__
            endpoint.__name__ = fn.__name__
            self.app.add_on_event_hook(endpoint, f"{method}:{url}")
            return fn

        return decorator

    def get(self, url: str) -> Callable[[H], H]:
        """``@app.get("/")``: a GET handler (HEAD is answered by it too)."""
        return self.route("GET", url)

    def head(self, url: str) -> Callable[[H], H]:
        """``@app.head("/")``: a HEAD handler."""
        return self.route("HEAD", url)

    def options(self, url: str) -> Callable[[H], H]:
        """``@app.options("/")``: an OPTIONS handler."""
        return self.route("OPTIONS", url)

    def post(self, url: str) -> Callable[[H], H]:
        """``@app.post("/")``: a POST handler."""
        return self.route("POST", url)

    def put(self, url: str) -> Callable[[H], H]:
        """``@app.put("/")``: a PUT handler."""
        return self.route("PUT", url)

    def patch(self, url: str) -> Callable[[H], H]:
        """``@app.patch("/")``: a PATCH handler."""
        return self.route("PATCH", url)

    def delete(self, url: str) -> Callable[[H], H]:
        """``@app.delete("/")``: a DELETE handler."""
        return self.route("DELETE", url)

    async def serve(self) -> None:
        """Serve on the running loop until SIGINT/SIGTERM (``asyncio.run(app.serve())``),
        with the app's startup, graceful drain and shutdown. A start-up error (a busy
        port) is one line on stderr and ``SystemExit(1)``."""
        app = self.app
        try:
            config = app.config
        except ConfigError as exc:
            startup_failed(str(exc))
        configure_default_logging(config.log_level)
        app.install_signal_handlers()
        await app.main()
        if app.server is None:  # startup or listen failed: main() logged why
            raise SystemExit(1)


def _to_response(value: Any) -> Response:
    """Hump's rule: a ``Response`` as it is; ``dict``, ``list`` and ``tuple`` as JSON;
    anything else as text (``None`` is an empty body)."""
    if isinstance(value, Response):
        return value
    if isinstance(value, (dict, list)):
        return Response(value)
    if isinstance(value, tuple):
        return Response(list(value))
    return Response("" if value is None else value if isinstance(value, (str, bytes)) else str(value))
