"""Optional middleware shipped with hump_listener.

Each one is a callable object ``mw(ctx, call_next)``, registered globally::

    from hump_listener.middleware import CORSMiddleware, GZipMiddleware

    app.middleware(CORSMiddleware(allow_origins=["https://example.com"]))
    app.middleware(GZipMiddleware(minimum_size=500))

or per route with ``app.on_event(path, middleware=[...])``. The first added is the
outermost. Nothing here knows about sockets or h11: they see ``Request`` and change the
``Response`` that ``await call_next()`` returns.
"""

from .cors import CORSMiddleware
from .gzip import GZipMiddleware

__all__ = ["CORSMiddleware", "GZipMiddleware"]
