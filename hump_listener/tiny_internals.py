"""tiny-listener internals, in one place (routing side): checked against tiny-listener 1.2.1.

``Route.__init__`` compiles its ``path`` with tiny-listener's own regex compiler
(``compile_path``), which knows neither our convertors (``string``, the escaped
``float``) nor ``<int:id>`` / ``:name`` placeholders, and raises on some of our valid
templates. An ``Endpoint`` matches with our ``routing.Template`` instead, so it sets the
attributes ``Route.__init__`` sets in 1.2.1 (``name``, ``path``, ``opts``, ``hook``)
without compiling anything. ``path_regex`` and ``convertors`` are left unset: only
``Route.match`` reads them, and ``Endpoint`` overrides it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tiny_listener import Hook, Route

__all__ = ["init_route_without_regex"]


def init_route_without_regex(
    route: Route, path: str, fn: Callable[..., Any], opts: dict[str, Any] | None
) -> None:
    """Do what tiny-listener 1.2.1's ``Route.__init__(path, fn, opts)`` does, minus
    ``compile_path``; ``Hook(fn)`` still checks that ``fn`` is a coroutine function."""
    route.name = getattr(fn, "__name__", type(fn).__name__)
    route.path = path
    route.opts = opts or {}
    route.hook = Hook(fn)
