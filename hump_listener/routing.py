"""Routing: pure functions and data, no I/O, no tiny-listener.

Contract: ``Router.match(method, path)`` returns ``(endpoint, params)`` or raises
``HTTPError`` 404 (no route has this path) / 405 (some do, not for this method; the
error carries ``Allow``). HEAD falls back to GET; a ``*`` method matches any method.

Templates are compiled once, at registration, and bad ones fail there::

    /user/{name}            name: str, one segment
    /api/users/{id:int}     id: int           (Flask style: /api/users/<int:id>)
    /files/{rest:path}      rest: str, may contain "/"
    /img/{w:int}x{h:int}    several params in one segment

Matching does not scan the route list: routes live in a segment tree. Each request
walks it once, trying at each level the literal child first (a dict lookup), then the
parametrised children in registration order, then "path" tails. So a static route wins
over a parametrised one whatever the registration order (``/user/me`` beats
``/user/{name}``), and 1000 routes cost about what one does.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, NamedTuple, TypeVar

from .errors import HTTPError, RouteConflict, RouteDefinitionError

__all__ = ["CONVERTORS", "Convertor", "Router", "Template", "decode_path", "split_target"]

E = TypeVar("E")
Params = dict[str, Any]


class Convertor(NamedTuple):
    regex: str
    to_python: Callable[[str], Any]


#: Convertors are data: name -> (regex, to_python). The float regex escapes its dot,
#: unlike tiny-listener's, so "1x5" is not a float.
CONVERTORS: dict[str, Convertor] = {
    "str": Convertor(r"[^/]+", str),
    "string": Convertor(r"[^/]+", str),
    "int": Convertor(r"[0-9]+", int),
    "float": Convertor(r"[0-9]+(?:\.[0-9]+)?", float),
    "path": Convertor(r".*", str),
    "uuid": Convertor(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", uuid.UUID),
}

# {name} {name:conv} <name> <conv:name>
_PARAM = re.compile(r"\{([^{}:]*)(?::([^{}]*))?\}|<(?:([^<>:]*):)?([^<>:]*)>")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_METHOD = re.compile(r"[A-Za-z]+\Z|\*\Z")


# ---------------------------------------------------------------------------------------
# Targets and paths
# ---------------------------------------------------------------------------------------


def split_target(target: bytes) -> tuple[bytes, bytes]:
    """Split a request-target into ``(raw_path, query_string)``.

    Origin-form (``/a?b``) is the common case; absolute-form (``http://host/a?b``, RFC
    9112 §3.2.2) is routed by its path; asterisk-form (``*``) is kept as ``*``.
    """
    if target[:1] != b"/" and target != b"*":
        scheme_end = target.find(b"://")
        if scheme_end <= 0:
            raise HTTPError(400, "Invalid request target")
        path_start = target.find(b"/", scheme_end + 3)
        query_start = target.find(b"?", scheme_end + 3)
        if path_start < 0 or (0 <= query_start < path_start):
            target = b"/" + (target[query_start:] if query_start >= 0 else b"")
        else:
            target = target[path_start:]
    raw_path, _, query = target.partition(b"?")
    fragment = query.find(b"#")  # never sent by a correct client; tolerate it
    if fragment >= 0:
        query = query[:fragment]
    return raw_path, query


_HEX = frozenset(b"0123456789abcdefABCDEF")


def decode_path(raw_path: bytes) -> str:
    """Percent-decode a path as UTF-8, strictly: a malformed escape or invalid UTF-8
    is the client's error (400), never a 5xx and never silently replaced."""
    if b"%" not in raw_path:
        try:
            return raw_path.decode("ascii")
        except UnicodeDecodeError:
            raise HTTPError(400, "Invalid character in request target") from None
    out = bytearray()
    i, n = 0, len(raw_path)
    while i < n:
        c = raw_path[i]
        if c == 0x25:  # '%'
            h1, h2 = raw_path[i + 1 : i + 2], raw_path[i + 2 : i + 3]
            if not h1 or not h2 or h1[0] not in _HEX or h2[0] not in _HEX:
                raise HTTPError(400, "Invalid percent-encoding in request target")
            out.append(int(raw_path[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(c)
            i += 1
    try:
        path = out.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPError(400, "Request target is not valid UTF-8") from None
    if "\x00" in path:
        raise HTTPError(400, "NUL in request target")
    return path


# ---------------------------------------------------------------------------------------
# Templates
# ---------------------------------------------------------------------------------------


class _ParamSegment:
    """One path segment holding one or more parameters, e.g. ``{id:int}`` or
    ``{w:int}x{h:int}``. A lone ``str`` parameter needs no regex at all."""

    __slots__ = ("convertors", "key", "name", "regex")

    def __init__(self, segment: str, parts: list[tuple[str, str | None]]) -> None:
        # parts: (literal, None) or (name, convertor-name)
        self.key = segment
        self.name: str | None = None
        self.regex: re.Pattern[str] | None = None
        self.convertors: dict[str, Convertor] = {}
        if len(parts) == 1 and parts[0][1] == "str":
            self.name = parts[0][0]
            return
        pattern = ""
        for text, conv in parts:
            if conv is None:
                pattern += re.escape(text)
            else:
                pattern += f"(?P<{text}>{CONVERTORS[conv].regex})"
                self.convertors[text] = CONVERTORS[conv]
        self.regex = re.compile(pattern)

    def match(self, segment: str) -> Params | None:
        if self.name is not None:
            return {self.name: segment} if segment else None
        assert self.regex is not None
        m = self.regex.fullmatch(segment)
        if m is None:
            return None
        return {k: self.convertors[k].to_python(v) for k, v in m.groupdict().items()}


@dataclass
class Template:
    """A compiled path template: literal segments, parameter segments and an optional
    tail that contains a ``path`` parameter (matched by a regex against the rest)."""

    source: str
    segments: list[str | _ParamSegment]
    tail: re.Pattern[str] | None = None
    tail_convertors: dict[str, Convertor] = field(default_factory=dict)
    param_names: list[str] = field(default_factory=list)

    @property
    def is_static(self) -> bool:
        return self.tail is None and all(isinstance(s, str) for s in self.segments)

    @classmethod
    def compile(cls, path: str) -> Template:
        if not path.startswith("/"):
            raise RouteDefinitionError(f"route path must start with '/': {path!r}")
        names: list[str] = []
        segments: list[str | _ParamSegment] = []
        raw_segments = _split_template(path[1:])
        for index, raw in enumerate(raw_segments):
            parts = _parse_segment(raw, path, names)
            if any(conv == "path" for _, conv in parts):
                tail_src = "/".join(raw_segments[index:])
                tail, convs = _compile_tail("/" + tail_src, path)
                return cls(path, segments, tail, convs, names)
            if all(conv is None for _, conv in parts):
                segments.append(raw)
            else:
                segments.append(_ParamSegment(raw, parts))
        return cls(path, segments, None, {}, names)


def _split_template(rest: str) -> list[str]:
    """Split on '/' outside of {...} and <...> (a regex-free template never has '/' inside)."""
    out, depth, cur = [], 0, ""
    for ch in rest:
        if ch in "{<":
            depth += 1
        elif ch in "}>":
            depth -= 1
        if ch == "/" and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return out


def _parse_segment(raw: str, path: str, names: list[str]) -> list[tuple[str, str | None]]:
    parts: list[tuple[str, str | None]] = []
    pos = 0
    for m in _PARAM.finditer(raw):
        if m.start() > pos:
            parts.append((raw[pos : m.start()], None))
        if m.group(0).startswith("{"):
            name, conv = m.group(1), m.group(2) or "str"
        else:
            conv, name = m.group(3) or "str", m.group(4)
        name, conv = name.strip(), conv.strip()
        if not _NAME.match(name):
            raise RouteDefinitionError(f"invalid parameter name {name!r} in route {path!r}")
        if conv not in CONVERTORS:
            raise RouteDefinitionError(
                f"unknown convertor {conv!r} in route {path!r} (known: {', '.join(CONVERTORS)})"
            )
        if name in names:
            raise RouteDefinitionError(f"parameter {name!r} appears twice in route {path!r}")
        names.append(name)
        parts.append((name, conv))
        pos = m.end()
    if pos < len(raw):
        parts.append((raw[pos:], None))
    literal = "".join(text for text, conv in parts if conv is None)
    if any(c in literal for c in "{}<>"):
        raise RouteDefinitionError(f"unbalanced braces in route {path!r}")
    return parts


def _compile_tail(tail: str, path: str) -> tuple[re.Pattern[str], dict[str, Convertor]]:
    pattern, convs, pos = "", {}, 0
    for m in _PARAM.finditer(tail):
        pattern += re.escape(tail[pos : m.start()])
        if m.group(0).startswith("{"):
            name, conv = m.group(1), m.group(2) or "str"
        else:
            conv, name = m.group(3) or "str", m.group(4)
        name, conv = name.strip(), conv.strip()
        pattern += f"(?P<{name}>{CONVERTORS[conv].regex})"
        convs[name] = CONVERTORS[conv]
        pos = m.end()
    pattern += re.escape(tail[pos:])
    return re.compile(pattern), convs


def parse_event_name(name: str) -> tuple[str, str] | None:
    """``"GET:/user/{name}"`` -> ``("GET", "/user/{name}")``; ``"/x"`` -> ``("*", "/x")``;
    anything that is not an HTTP route (a plain tiny-listener event) -> ``None``."""
    if name.startswith("/"):
        return "*", name
    method, sep, path = name.partition(":")
    if sep and path.startswith("/") and _METHOD.match(method):
        return (method if method == "*" else method.upper()), path
    return None


# ---------------------------------------------------------------------------------------
# The route tree
# ---------------------------------------------------------------------------------------


class _Node(Generic[E]):
    __slots__ = ("endpoints", "params", "static", "tails")

    def __init__(self) -> None:
        self.static: dict[str, _Node[E]] = {}
        self.params: list[tuple[_ParamSegment, _Node[E]]] = []
        self.tails: list[tuple[Template, dict[str, E]]] = []
        self.endpoints: dict[str, E] = {}


class Router(Generic[E]):
    """Maps (method, path) to an endpoint of any type ``E``."""

    def __init__(self) -> None:
        self._root: _Node[E] = _Node()
        # Fast path: exact static paths straight to their endpoints.
        self._static: dict[str, dict[str, E]] = {}

    def add(self, method: str, path: str, endpoint: E) -> Template:
        """Register ``endpoint``; raises ``RouteConflict`` for a duplicate method+path."""
        template = Template.compile(path)
        method = method if method == "*" else method.upper()
        if template.is_static:
            table = self._static.setdefault(path, {})
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
        """Return ``(endpoint, params)`` or raise HTTPError 404 / 405 (with ``Allow``)."""
        allowed: set[str] = set()
        table = self._static.get(path)
        if table is not None:
            endpoint = _pick(table, method)
            if endpoint is not None:
                return endpoint, {}
            allowed.update(table)
        if path[:1] == "/":
            found = self._walk(self._root, path[1:].split("/"), 0, method, {}, allowed)
            if found is not None:
                return found
        if allowed:
            allow = _allow_header(allowed)
            raise HTTPError(405, headers={"Allow": allow})
        raise HTTPError(404)

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
                    found = self._walk(child, segs, i + 1, method, {**params, **got}, allowed)
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
    if endpoint is None:
        endpoint = table.get("*")
        if endpoint is None and method == "HEAD":
            endpoint = table.get("GET")
    return endpoint


def _allow_header(methods: set[str]) -> str:
    if "GET" in methods:
        methods = methods | {"HEAD"}
    return ", ".join(sorted(methods))
