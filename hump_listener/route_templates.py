"""Route templates and event names: one parser, compiled once, at registration.

Pure functions and data, no I/O, no tiny-listener. ``parse_template`` is the one
template parser (every check happens there, for every segment); ``Template.compile``
compiles its result once; ``routing.Router`` files the compiled ``Template`` in its tree.
Bad templates fail at registration (``RouteDefinitionError``)::

    /user/{name}   /user/<name>   /user/:name   name: str, one segment (":name" is a
                                                whole segment; a ':' elsewhere is literal)
    /api/users/{id:int}   /api/users/<int:id>   id: int
    /files/{rest:path}                          rest: str, may contain "/"; segments
                                                after it may hold parameters too
    /img/{w:int}x{h:int}                        several params in one segment

Convertors: ``str`` (``string``), ``int``, ``float``, ``path``, ``uuid`` (``CONVERTORS``).
Literal text is written as URLs are: ``%XX`` is decoded once, here, because requests are
matched on their decoded path (``targets.decode_path``).

Event names, split by ``parse_event_name`` (the method is upper-cased)::

    "GET:/user/{name}"   "GET /user/{name}"    one method ("get:/x" too)
    "*:/ping"   "* /ping"   "/ping"            any HTTP method
    "WS:/chat/{room}"   "WS /chat/{room}"      a WebSocket route
    "user.created"  "tick"                     a plain tiny-listener event

A name that looks like a route but is not a valid one (``"GET:hello"``, ``"GET  /x"``,
``"POST /a b"``) is a ``RouteDefinitionError``, never a plain event (see
``parse_event_name`` for the exact rule).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .errors import HTTPError, RouteDefinitionError
from .targets import decode_path

__all__ = [
    "CONVERTORS",
    "KNOWN_METHODS",
    "WS",
    "Convertor",
    "ParamSegment",
    "Template",
    "check_method",
    "parse_event_name",
    "parse_template",
]

Params = dict[str, Any]


class Convertor(NamedTuple):
    """How a ``{name:conv}`` parameter matches (``regex``) and what it becomes
    (``to_python``, given the matched text)."""

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


class ParamSegment:
    """One path segment holding one or more parameters, e.g. ``{id:int}`` or
    ``{w:int}x{h:int}``. A lone ``str`` parameter needs no regex at all."""

    __slots__ = ("convertors", "digits", "key", "name", "regex", "whole")

    def __init__(self, parts: list[_Part]) -> None:
        # The key is canonical, so "{x}", "<x>", ":x" and "{x:string}" share a tree node.
        self.key = "".join(p if isinstance(p, str) else f"{{{p.name}:{p.convertor}}}" for p in parts)
        self.name: str | None = None
        self.regex: re.Pattern[str] | None = None
        self.convertors: dict[str, Convertor] = {}
        #: A lone parameter of another convertor than ``str`` (``{id:int}``): its
        #: ``to_python``, applied to the whole segment with no groups to collect.
        self.whole: Callable[[str], Any] | None = None
        #: ``int``'s regex ``[0-9]+`` is ``str.isdigit`` on ASCII: no regex at all.
        self.digits = False
        if len(parts) == 1 and isinstance(parts[0], _Param):
            self.name = parts[0].name
            if parts[0].convertor == "str":
                return
            self.whole = CONVERTORS[parts[0].convertor].to_python
            self.digits = parts[0].convertor == "int"
        self.convertors = {p.name: CONVERTORS[p.convertor] for p in parts if isinstance(p, _Param)}
        self.regex = re.compile(_segment_regex(parts))

    def match(self, segment: str) -> Params | None:
        """The converted parameters if ``segment`` (one decoded path segment) matches,
        else ``None``."""
        name = self.name
        if name is not None:  # a lone parameter: the most common segments, done without groups
            whole = self.whole
            if whole is None:
                return {name: segment} if segment else None
            if self.digits:
                return {name: int(segment)} if segment.isdigit() and segment.isascii() else None
            assert self.regex is not None
            return {name: whole(segment)} if self.regex.fullmatch(segment) is not None else None
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
    segments: list[str | ParamSegment]
    tail: re.Pattern[str] | None = None
    tail_convertors: dict[str, Convertor] = field(default_factory=dict)
    param_names: list[str] = field(default_factory=list)

    @property
    def is_static(self) -> bool:
        """True when the template has no parameter at all (the router's exact-path table)."""
        return self.tail is None and all(isinstance(s, str) for s in self.segments)

    @classmethod
    def compile(cls, path: str) -> Template:
        """Parse (``parse_template``) and compile ``path``; raises ``RouteDefinitionError``."""
        parsed = parse_template(path)
        names = [p.name for parts in parsed for p in parts if isinstance(p, _Param)]
        segments: list[str | ParamSegment] = []
        for index, parts in enumerate(parsed):
            if any(isinstance(p, _Param) and p.convertor == "path" for p in parts):
                rest = parsed[index:]
                tail = re.compile("/" + "/".join(_segment_regex(seg) for seg in rest))
                convs = {p.name: CONVERTORS[p.convertor] for seg in rest for p in seg if isinstance(p, _Param)}
                return cls(path, segments, tail, convs, names)
            if all(isinstance(p, str) for p in parts):
                segments.append("".join(p for p in parts if isinstance(p, str)))
            else:
                segments.append(ParamSegment(parts))
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
_TOKEN = re.compile(r"[A-Za-z]+\Z")


def check_method(method: str, route: str, custom: bool = False) -> None:
    """Refuse a route's method that is not an HTTP method we know (``"GTE:/x"`` would
    otherwise register and answer 405 with ``Allow: GTE``): ``*``, ``KNOWN_METHODS``, or
    a method declared with ``custom=True`` (``@app.on_event("PURGE:/cache",
    custom_method=True)``; WebDAV's PROPFIND, Varnish's PURGE). Raises
    ``RouteDefinitionError``."""
    if method == "*" or method in KNOWN_METHODS:
        return
    if not custom:
        close = [m for m in sorted(KNOWN_METHODS - {WS}) if sorted(m) == sorted(method)]
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise RouteDefinitionError(
            f"route {route!r}: unknown HTTP method {method!r}{hint}; known: "
            f"{', '.join(sorted(KNOWN_METHODS - {WS}))}. A custom method is declared "
            f"explicitly: on_event({route!r}, custom_method=True)"
        )
    if not _TOKEN.match(method):
        raise RouteDefinitionError(f"route {route!r}: a custom method is ASCII letters, got {method!r}")
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
