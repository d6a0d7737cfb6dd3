"""Routing: the route tree and matching. Pure functions and data, no I/O, no tiny-listener.

Contract: ``Router.match(method, path)`` returns ``(endpoint, params)`` or raises
``HTTPError`` 404 (no route has this path) / 405 (some do, not for this method; the
error carries ``Allow``). HEAD falls back to GET; a ``*`` method matches any HTTP method.
``WS`` is the WebSocket pseudo-method: ``match("WS", path)`` finds only ``WS`` routes
(never ``*`` or GET ones) and is a 404 when the path has none, so the caller can serve
the handshake request as plain HTTP; HTTP methods never match a ``WS`` route, and
``Allow`` never lists ``WS``.

Routes are filed by their compiled ``Template`` (``route_templates``: the template syntax, the
one parser, the event-name grammar); the request's path arrives decoded
(``targets``). Both are re-exported here, so ``from hump_listener.routing import
Router, Template, parse_event_name, split_target, decode_path`` is the one import.

Matching does not scan the route list: routes live in a segment tree. Each request
walks it once, trying at each level the literal child first (a dict lookup), then the
parametrised children in registration order, then "path" tails. So a static route wins
over a parametrised one whatever the registration order (``/user/me`` beats
``/user/{name}``), and 1000 routes cost about what one does::

    GET:/user/me  GET:/user/{name}  GET:/files/{rest:path}

    exact paths   {"/user/me": {"GET": ...}}          one dict lookup, tried first
    tree          root ─"user"─► node ─{name}─► node{GET}
                       └"files"─► node  tails: [/{rest:path}]
"""

from __future__ import annotations

from typing import Generic, TypeVar

from .errors import HTTPError, RouteConflict
from .route_templates import (
    CONVERTORS,
    KNOWN_METHODS,
    WS,
    Convertor,
    Params,
    ParamSegment,
    Template,
    parse_event_name,
    parse_template,
)
from .targets import decode_path, split_target

__all__ = [
    "CONVERTORS",
    "KNOWN_METHODS",
    "WS",
    "Convertor",
    "Router",
    "Template",
    "decode_path",
    "parse_event_name",
    "parse_template",
    "split_target",
]

E = TypeVar("E")


class _Node(Generic[E]):
    __slots__ = ("endpoints", "params", "static", "tails")

    def __init__(self) -> None:
        self.static: dict[str, _Node[E]] = {}
        self.params: list[tuple[ParamSegment, _Node[E]]] = []
        self.tails: list[tuple[Template, dict[str, E]]] = []
        self.endpoints: dict[str, E] = {}


class Router(Generic[E]):
    """Maps (method, path) to an endpoint of any type ``E``."""

    def __init__(self) -> None:
        self._root: _Node[E] = _Node()
        # Fast path: exact static paths straight to their endpoints.
        self._static: dict[str, dict[str, E]] = {}

    def add(self, method: str, path: str | Template, endpoint: E) -> Template:
        """Register ``endpoint`` for ``method`` (``*``: any HTTP method; ``WS``: WebSocket)
        at ``path``, a template string or an already compiled ``Template`` (so a caller
        that needs ``param_names`` first compiles once). Returns the ``Template``; raises
        ``RouteDefinitionError`` for a bad template, ``RouteConflict`` for a duplicate."""
        template = path if isinstance(path, Template) else Template.compile(path)
        path = template.source
        method = method if method == "*" else method.upper()
        if template.is_static:
            # keyed by the decoded path, as requests are looked up (segments are decoded)
            table = self._static.setdefault("/" + "/".join(map(str, template.segments)), {})
            if method in table:
                raise RouteConflict(f"route {method}:{path} is already registered")
            table[method] = endpoint
            return template
        node = self._root
        for seg in template.segments:
            if isinstance(seg, str):
                node = node.static.setdefault(seg, _Node())
            else:
                for existing, child in node.params:
                    if existing.key == seg.key:
                        node = child
                        break
                else:
                    child = _Node()
                    node.params.append((seg, child))
                    node = child
        if template.tail is not None:
            pattern = template.tail.pattern
            same = [t for existing, t in node.tails if existing.tail is not None and existing.tail.pattern == pattern]
            table = same[0] if same else {}
            if not same:
                node.tails.append((template, table))
        else:
            table = node.endpoints
        if method in table:
            raise RouteConflict(f"route {method}:{path} is already registered")
        table[method] = endpoint
        return template

    def match(self, method: str, path: str) -> tuple[E, Params]:
        """Return ``(endpoint, params)`` or raise HTTPError 404 / 405 (with ``Allow``).

        ``method`` ``"WS"`` looks up WebSocket routes only and is 404 when the path has
        none; the caller decides that a request is a WebSocket handshake (a plain request
        whose method is literally ``WS`` must not be passed as ``"WS"``)."""
        table = self._static.get(path)
        if table is not None:
            endpoint = _pick(table, method)
            if endpoint is not None:
                return endpoint, {}
        rooted = path[:1] == "/"
        if rooted:
            segs = path[1:].split("/")
            found = self._first_path(segs, method)
            if found is not None:
                return found
        allowed: set[str] = set() if table is None else set(table)
        if rooted:
            found = self._walk(self._root, segs, 0, method, {}, allowed)
            if found is not None:
                return found
        allowed.discard(WS)  # a WebSocket route is invisible to HTTP methods
        if allowed and method != WS:
            raise HTTPError(405, headers={"Allow": _allow_header(allowed)})
        raise HTTPError(404)

    def slash_alternative(self, method: str, path: str) -> str | None:
        """``path`` with its trailing slash removed (or one added) when a route answers
        ``method`` there, else ``None``: what a 404 redirects to (Starlette's
        ``redirect_slashes``; the caller decides whether to)."""
        if path == "/" or path[:1] != "/":
            return None
        other = path[:-1] if path.endswith("/") else path + "/"
        try:
            self.match(method, other)
        except HTTPError:
            return None
        return other

    def _first_path(self, segs: list[str], method: str) -> tuple[E, Params] | None:
        """The first path ``_walk`` tries, followed without recursion: at each node the
        static child, else the first parameter that matches. If it ends at an endpoint
        for ``method``, that is ``_walk``'s answer (its first success, in the same
        order); else None and ``_walk`` searches the whole tree (backtracking, tails, the
        methods allowed for a 405)."""
        node = self._root
        params: Params | None = None
        for seg in segs:
            child = node.static.get(seg)
            if child is None:
                for pseg, candidate in node.params:
                    got = pseg.match(seg)
                    if got is not None:
                        params = got if params is None else {**params, **got}
                        child = candidate
                        break
                else:
                    return None
            node = child
        if not node.endpoints:
            return None
        endpoint = _pick(node.endpoints, method)
        return None if endpoint is None else (endpoint, {} if params is None else params)

    def _walk(
        self, node: _Node[E], segs: list[str], i: int, method: str, params: Params, allowed: set[str]
    ) -> tuple[E, Params] | None:
        if i == len(segs):
            if node.endpoints:
                endpoint = _pick(node.endpoints, method)
                if endpoint is not None:
                    return endpoint, params
                allowed.update(node.endpoints)
        else:
            seg = segs[i]
            child = node.static.get(seg)
            if child is not None:
                found = self._walk(child, segs, i + 1, method, params, allowed)
                if found is not None:
                    return found
            for pseg, child in node.params:
                got = pseg.match(seg)
                if got is not None:
                    found = self._walk(child, segs, i + 1, method, {**params, **got} if params else got, allowed)
                    if found is not None:
                        return found
        if node.tails:
            rest = "/" + "/".join(segs[i:]) if i < len(segs) else ""
            for template, table in node.tails:
                assert template.tail is not None
                m = template.tail.fullmatch(rest)
                if m is None:
                    continue
                endpoint = _pick(table, method)
                if endpoint is None:
                    allowed.update(table)
                    continue
                got = {k: template.tail_convertors[k].to_python(v) for k, v in m.groupdict().items()}
                return endpoint, {**params, **got}
        return None


def _pick(table: dict[str, E], method: str) -> E | None:
    endpoint = table.get(method)
    if endpoint is None and method != WS:  # WS: its own routes only, never "*" or GET
        endpoint = table.get("*")
        if endpoint is None and method == "HEAD":
            endpoint = table.get("GET")
    return endpoint


def _allow_header(methods: set[str]) -> str:
    if "GET" in methods:
        methods = methods | {"HEAD"}
    return ", ".join(sorted(methods))
