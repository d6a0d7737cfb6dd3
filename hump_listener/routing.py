"""Routing: pure functions and data, no I/O, no tiny-listener.

Contract: ``Router.match(method, path)`` returns ``(endpoint, params)`` or raises
``HTTPError`` 404 (no route has this path) / 405 (some do, not for this method; the
error carries ``Allow``). HEAD falls back to GET; a ``*`` method matches any HTTP method.
``WS`` is the WebSocket pseudo-method: ``match("WS", path)`` finds only ``WS`` routes
(never ``*`` or GET ones) and is a 404 when the path has none, so the caller can serve
the handshake request as plain HTTP; HTTP methods never match a ``WS`` route, and
``Allow`` never lists ``WS``.

Event names, split by ``parse_event_name`` (the method is upper-cased)::

    "GET:/user/{name}"   "GET /user/{name}"    one method ("get:/x" too)
    "*:/ping"   "* /ping"   "/ping"            any HTTP method
    "WS:/chat/{room}"   "WS /chat/{room}"      a WebSocket route
    "user.created"  "tick"                     a plain tiny-listener event

A name that looks like a route but is not a valid one (``"GET:hello"``, ``"GET  /x"``,
``"POST /a b"``) is a ``RouteDefinitionError``, never a plain event (see
``parse_event_name`` for the exact rule).

Templates are parsed by one parser (``parse_template``) and compiled once, at
registration; bad ones fail there::

    /user/{name}   /user/<name>   /user/:name   name: str, one segment (":name" is a
                                                whole segment; a ':' elsewhere is literal)
    /api/users/{id:int}   /api/users/<int:id>   id: int
    /files/{rest:path}                          rest: str, may contain "/"; segments
                                                after it may hold parameters too
    /img/{w:int}x{h:int}                        several params in one segment

Convertors: ``str`` (``string``), ``int``, ``float``, ``path``, ``uuid`` (``CONVERTORS``).

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
_UNSAFE = re.compile(r"[\s\x00-\x1f\x7f]")


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
# Templates: one parser (parse_template), one compiler (Template.compile)
# ---------------------------------------------------------------------------------------


class _Param(NamedTuple):
    """A parameter inside a template: its name and its (canonical) convertor name."""

    name: str
    convertor: str


#: A template segment is a list of parts: literal text or parameters.
_Part = str | _Param
#: Convertor names that mean the same convertor, so equal templates share a tree node.
_ALIASES = {"string": "str"}


def parse_template(path: str) -> list[list[_Part]]:
    """The one route-template parser: ``path`` -> its ``/``-separated segments, each a list
    of literal strings and ``_Param``. Every check happens here, for every segment (those
    after a ``path`` parameter included): the leading ``/``, names, convertors, duplicates,
    braces. Raises ``RouteDefinitionError``."""
    if not path.startswith("/"):
        raise RouteDefinitionError(f"route path must start with '/': {path!r}")
    if _UNSAFE.search(path):
        raise RouteDefinitionError(
            f"route {path!r} contains whitespace or a control character; write it percent-encoded "
            "(/a%20b matches the request /a%20b)"
        )
    seen: set[str] = set()
    segments: list[list[_Part]] = []
    for raw in _split_template(path[1:]):
        parts = _parse_segment(raw, path)
        for part in parts:
            if isinstance(part, _Param):
                if part.name in seen:
                    raise RouteDefinitionError(f"parameter {part.name!r} appears twice in route {path!r}")
                seen.add(part.name)
        segments.append(parts)
    return segments


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


def _parse_segment(raw: str, path: str) -> list[_Part]:
    if raw.startswith(":"):  # PyMicroHTTP/Express style: a whole segment ":name"
        name = raw[1:]
        if not _NAME.match(name):
            raise RouteDefinitionError(
                f"invalid placeholder {raw!r} in route {path!r}: a segment starting with ':' is a "
                "parameter and must be ':name' as a whole (use {name:conv} for convertors)"
            )
        return [_Param(name, "str")]
    parts: list[_Part] = []
    pos = 0
    for m in _PARAM.finditer(raw):
        if m.start() > pos:
            parts.append(raw[pos : m.start()])
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
        parts.append(_Param(name, _ALIASES.get(conv, conv)))
        pos = m.end()
    if pos < len(raw):
        parts.append(raw[pos:])
    if any(c in part for part in parts if isinstance(part, str) for c in "{}<>"):
        raise RouteDefinitionError(f"unbalanced braces in route {path!r}")
    return [_decode_literal(part, path) if isinstance(part, str) else part for part in parts]


def _decode_literal(text: str, path: str) -> str:
    """Templates are written as URLs are: ``%XX`` in literal text is decoded once, here,
    because requests are matched on their decoded path (``decode_path``)."""
    if "%" not in text:
        return text
    try:
        decoded = decode_path(text.encode("utf-8"))
    except HTTPError as exc:
        raise RouteDefinitionError(
            f"route {path!r}: bad percent-escape in {text!r} ({exc.detail}); write a literal '%' as %25"
        ) from None
    if "/" in decoded:
        raise RouteDefinitionError(f"route {path!r}: %2F cannot match, requests are split on '/' after decoding")
    return decoded


def _segment_regex(parts: list[_Part]) -> str:
    return "".join(
        re.escape(part) if isinstance(part, str) else f"(?P<{part.name}>{CONVERTORS[part.convertor].regex})"
        for part in parts
    )


class _ParamSegment:
    """One path segment holding one or more parameters, e.g. ``{id:int}`` or
    ``{w:int}x{h:int}``. A lone ``str`` parameter needs no regex at all."""

    __slots__ = ("convertors", "key", "name", "regex")

    def __init__(self, parts: list[_Part]) -> None:
        # The key is canonical, so "{x}", "<x>", ":x" and "{x:string}" share a tree node.
        self.key = "".join(p if isinstance(p, str) else f"{{{p.name}:{p.convertor}}}" for p in parts)
        self.name: str | None = None
        self.regex: re.Pattern[str] | None = None
        self.convertors: dict[str, Convertor] = {}
        if len(parts) == 1 and isinstance(parts[0], _Param) and parts[0].convertor == "str":
            self.name = parts[0].name
            return
        self.convertors = {p.name: CONVERTORS[p.convertor] for p in parts if isinstance(p, _Param)}
        self.regex = re.compile(_segment_regex(parts))

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
    tail that contains a ``path`` parameter (matched by a regex against the rest).
    ``param_names`` lists every parameter, in order, tail included."""

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
        """Parse (``parse_template``) and compile ``path``; raises ``RouteDefinitionError``."""
        parsed = parse_template(path)
        names = [p.name for parts in parsed for p in parts if isinstance(p, _Param)]
        segments: list[str | _ParamSegment] = []
        for index, parts in enumerate(parsed):
            if any(isinstance(p, _Param) and p.convertor == "path" for p in parts):
                rest = parsed[index:]
                tail = re.compile("/" + "/".join(_segment_regex(seg) for seg in rest))
                convs = {p.name: CONVERTORS[p.convertor] for seg in rest for p in seg if isinstance(p, _Param)}
                return cls(path, segments, tail, convs, names)
            if all(isinstance(p, str) for p in parts):
                segments.append("".join(p for p in parts if isinstance(p, str)))
            else:
                segments.append(_ParamSegment(parts))
        return cls(path, segments, None, {}, names)

    def match(self, path: str) -> Params | None:
        """This one template against ``path`` (the tree does the same for many at once):
        the converted parameters, or ``None``."""
        if path[:1] != "/":
            return None
        segs = path[1:].split("/")
        n = len(self.segments)
        if len(segs) < n or (self.tail is None and len(segs) != n):
            return None
        params: Params = {}
        for seg, pattern in zip(segs, self.segments, strict=False):  # segs may be longer (tail)
            if isinstance(pattern, str):
                if seg != pattern:
                    return None
            else:
                got = pattern.match(seg)
                if got is None:
                    return None
                params.update(got)
        if self.tail is not None:
            m = self.tail.fullmatch("/" + "/".join(segs[n:]) if n < len(segs) else "")
            if m is None:
                return None
            params.update((k, self.tail_convertors[k].to_python(v)) for k, v in m.groupdict().items())
        return params


# ---------------------------------------------------------------------------------------
# Event names
# ---------------------------------------------------------------------------------------

#: The WebSocket pseudo-method of ``"WS:/path"`` routes.
WS = "WS"
#: Upper-case names that make an event name route-like as soon as ':', whitespace or '/'
#: follows them (RFC 9110 §9 methods, PATCH from RFC 5789, and WS).
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", WS}
)
_KNOWN = "|".join(sorted(KNOWN_METHODS))
_ROUTE_LIKE = re.compile(rf"/|\*|[A-Za-z]+[:\s]\s*/|(?:{_KNOWN})(?:[:\s/]|\Z)")
# METHOD ":" PATH | METHOD SP PATH | PATH; PATH without whitespace or control characters
_ROUTE_NAME = re.compile(r"(?:(\*|[A-Za-z]+)[: ])?(/[^\s\x00-\x1f\x7f]*)\Z")


def parse_event_name(name: str) -> tuple[str, str] | None:
    """Split an event name into ``(method, path template)``, or ``None`` for a plain
    tiny-listener event; a name that looks like an HTTP route but is not a valid one
    raises ``RouteDefinitionError`` (it must never become a silent plain event).

    Valid route names (``METHOD`` is ``*`` or ASCII letters, upper-cased)::

        METHOD ":" PATH     "GET:/user/{name}"   "*:/ping"   "WS:/chat/{room}"
        METHOD " " PATH     "GET /hello/:name"   "* /ping"   (exactly one space)
        PATH                "/ping"              (method "*")

    where ``PATH`` starts with ``/`` and holds no whitespace or control characters (its
    placeholders are checked by ``parse_template``). A name *looks like* a route when,
    after any leading whitespace, it

    - starts with ``/`` or ``*``; or
    - starts with ASCII letters followed by ``:`` or whitespace and then, after any
      more whitespace, ``/`` (``"brew  /pot"``, ``"user: /x"``); or
    - starts with an upper-case name from ``KNOWN_METHODS`` followed by ``:``,
      whitespace, ``/`` or the end (``"GET:hello"``, ``"POST /a b"``, ``"GET/x"``,
      ``"GET"``).

    Anything else is a plain event: ``"user_created"``, ``"user.created"``, ``"tick"``,
    ``"get:user"`` (lower case, no ``/``), ``"hello world"``.
    """
    m = _ROUTE_NAME.match(name)
    if m is not None:
        method = m.group(1)
        return ("*" if method is None or method == "*" else method.upper()), m.group(2)
    stripped = name.lstrip()
    if not _ROUTE_LIKE.match(stripped):
        return None
    raise RouteDefinitionError(
        f"event name {name!r} looks like an HTTP route but is not valid: {_route_name_problem(name)}"
    )


_METHOD_SEP = re.compile(r"(\*|[A-Za-z]+)(\s*:\s*|\s*)(.*)\Z", re.DOTALL)


def _route_name_problem(name: str) -> str:
    """Say what is wrong with a route-like event name, for the error message."""
    if _ROUTE_NAME.match(name.strip()):
        return "remove the leading or trailing whitespace"
    stripped = name.strip()
    rest = stripped
    m = _METHOD_SEP.match(stripped)
    if m is not None and not stripped.startswith("/"):
        method, sep, rest = m.groups()
        if not rest:
            return f"a method needs a path: '{method}:/path' or '{method} /path'"
        if sep not in (":", " "):
            return f"put exactly one ':' or one space between {method!r} and the path"
    if not rest.startswith("/"):
        return f"the path must start with '/' (got {rest!r})"
    return f"the path {rest!r} must not contain whitespace or control characters"


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
        allowed.discard(WS)  # a WebSocket route is invisible to HTTP methods
        if allowed and method != WS:
            raise HTTPError(405, headers={"Allow": _allow_header(allowed)})
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
    if endpoint is None and method != WS:  # WS: its own routes only, never "*" or GET
        endpoint = table.get("*")
        if endpoint is None and method == "HEAD":
            endpoint = table.get("GET")
    return endpoint


def _allow_header(methods: set[str]) -> str:
    if "GET" in methods:
        methods = methods | {"HEAD"}
    return ", ".join(sorted(methods))
