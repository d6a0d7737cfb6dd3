"""Request / Response value types and the multi-valued mappings they use.

Standard library only: nothing here knows about sockets, h11 or tiny-listener.
Header names are lower-case byte strings on the wire side (the server lower-cases them
once); the mappings here decode lazily, so a handler that never looks at a header pays
nothing for it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any
from urllib.parse import parse_qsl, unquote

from .seam import Channel, HeaderList

__all__ = [
    "Headers",
    "MultiDict",
    "MutableHeaders",
    "Request",
    "Response",
    "bytes_type",
    "parse_cookies",
]

# ---------------------------------------------------------------------------------------
# Multi-valued mappings
# ---------------------------------------------------------------------------------------


class MultiDict(Mapping[str, str]):
    """An immutable multi-valued mapping: ``d[key]`` / ``d.get(key)`` give the first
    value (like Flask's ``request.args``), ``d.getlist(key)`` all of them in order."""

    __slots__ = ("_dict", "_list")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._list: list[tuple[str, str]] = list(items)
        d: dict[str, str] = {}
        for k, v in self._list:
            d.setdefault(k, v)
        self._dict = d

    def __getitem__(self, key: str) -> str:
        return self._dict[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict)

    def __len__(self) -> int:
        return len(self._dict)

    def getlist(self, key: str) -> list[str]:
        """Every value of ``key``, in order (``[]`` when absent)."""
        return [v for k, v in self._list if k == key]

    def multi_items(self) -> list[tuple[str, str]]:
        """Every ``(key, value)`` pair, repeated keys included, in order."""
        return list(self._list)

    def to_dict(self) -> dict[str, str | list[str]]:
        """Single values as strings, repeated keys as lists (handy for JSON)."""
        out: dict[str, str | list[str]] = {}
        for k in self._dict:
            values = self.getlist(k)
            out[k] = values[0] if len(values) == 1 else values
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._list!r})"


class Headers(Mapping[str, str]):
    """Case-insensitive, multi-valued, read-only view of a header list.

    ``headers["content-type"]`` is the first value; ``headers.getlist("accept")`` all of
    them. Values are decoded as latin-1 (RFC 9110 §5.5: octets, not text).
    """

    __slots__ = ("raw",)

    def __init__(self, raw: HeaderList | None = None) -> None:
        self.raw: HeaderList = raw if raw is not None else []

    def __getitem__(self, key: str) -> str:
        k = key.lower().encode("latin-1")
        for name, value in self.raw:
            if name == k:
                return value.decode("latin-1")
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        """The first value of the header ``key`` (any case), or ``default``."""
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        k = key.lower().encode("latin-1")
        return any(name == k for name, _ in self.raw)

    def __iter__(self) -> Iterator[str]:
        seen: dict[str, None] = {}
        for name, _ in self.raw:
            seen.setdefault(name.decode("latin-1"), None)
        return iter(seen)

    def __len__(self) -> int:
        return len({name for name, _ in self.raw})

    def getlist(self, key: str) -> list[str]:
        """Every value of the header ``key`` (any case), in order (``[]`` when absent)."""
        k = key.lower().encode("latin-1")
        return [value.decode("latin-1") for name, value in self.raw if name == k]

    def multi_items(self) -> list[tuple[str, str]]:
        """Every ``(name, value)`` pair, names lower-case, repeated ones included, in order."""
        return [(n.decode("latin-1"), v.decode("latin-1")) for n, v in self.raw]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.multi_items()!r})"


class MutableHeaders(Headers, MutableMapping[str, str]):
    """Headers a handler or middleware may change. ``h[k] = v`` replaces every ``k``;
    ``h.add(k, v)`` appends another (``Set-Cookie``)."""

    __slots__ = ()

    def __setitem__(self, key: str, value: str) -> None:
        k = key.lower().encode("latin-1")
        self.raw[:] = [(n, v) for n, v in self.raw if n != k]
        self.raw.append((k, _header_value(value)))

    def __delitem__(self, key: str) -> None:
        k = key.lower().encode("latin-1")
        before = len(self.raw)
        self.raw[:] = [(n, v) for n, v in self.raw if n != k]
        if len(self.raw) == before:
            raise KeyError(key)

    def add(self, key: str, value: str) -> None:
        """Append a ``key: value`` header, keeping the others of that name (``Set-Cookie``)."""
        self.raw.append((key.lower().encode("latin-1"), _header_value(value)))

    def setdefault(self, key: str, default: str = "") -> str:
        """The first value of ``key``; when there is none, add ``key: default`` and return it."""
        if key not in self:
            self.add(key, default)
            return default
        return self[key]


def _header_value(value: str) -> bytes:
    if "\r" in value or "\n" in value or "\0" in value:
        # Header injection guard: a value may never end the header line early.
        raise ValueError(f"invalid character in header value: {value!r}")
    return value.encode("latin-1")


def parse_cookies(header: str) -> dict[str, str]:
    """Parse a ``Cookie`` header leniently: a malformed pair is skipped, never the rest.

    ``http.cookies.SimpleCookie`` drops *every* cookie after one it cannot parse, which
    browsers happily send; like Starlette, split on ``;`` and ``=`` ourselves.
    """
    cookies: dict[str, str] = {}
    for chunk in header.split(";"):
        key, sep, value = chunk.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            continue
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        cookies.setdefault(key, unquote(value))
    return cookies


# ---------------------------------------------------------------------------------------
# Request
# ---------------------------------------------------------------------------------------


@dataclass(eq=False)
class Request:
    """What a handler knows about the request head. The body is read through the
    context (``await ctx.body()``), because reading it is I/O."""

    method: str
    path: str
    """Percent-decoded path, without the query string: what routes match against."""
    raw_path: bytes
    """The path as sent, still percent-encoded."""
    query_string: bytes
    http_version: str
    headers: Headers
    client: tuple[str, int] | None = None
    scheme: str = "http"
    server: tuple[str, int] | None = None
    _query: MultiDict | None = field(default=None, repr=False)
    _cookies: dict[str, str] | None = field(default=None, repr=False)

    @property
    def query(self) -> MultiDict:
        """Query parameters (multi-valued: ``.get``, ``.getlist``), parsed on first use."""
        if self._query is None:
            self._query = MultiDict(
                parse_qsl(self.query_string.decode("latin-1"), keep_blank_values=True)
            )
        return self._query

    @property
    def cookies(self) -> dict[str, str]:
        """The ``Cookie`` header(s) as a dict, parsed leniently (one bad cookie drops no
        others); parsed once."""
        if self._cookies is None:
            self._cookies = parse_cookies(";".join(self.headers.getlist("cookie")))
        return self._cookies

    @property
    def content_type(self) -> str:
        """The ``Content-Type`` header's value, ``""`` when absent."""
        return str(self.headers.get("content-type", ""))

    @property
    def url(self) -> str:
        """The full URL as the client asked for it: scheme, ``Host`` (else the server address),
        raw path and query."""
        host = self.headers.get("host") or (f"{self.server[0]}:{self.server[1]}" if self.server else "")
        qs = f"?{self.query_string.decode('latin-1')}" if self.query_string else ""
        return f"{self.scheme}://{host}{self.raw_path.decode('latin-1')}{qs}"


# ---------------------------------------------------------------------------------------
# Response
# ---------------------------------------------------------------------------------------

TEXT = "text/plain; charset=utf-8"
HTML = "text/html; charset=utf-8"
JSON = "application/json"
OCTETS = "application/octet-stream"

#: Statuses whose responses never carry a body (RFC 9110 §6.4.1 and §15.3.5/§15.4.5).
NO_BODY_STATUSES = frozenset({204, 304}) | frozenset(range(100, 200))


#: Built once: ``json.dumps`` with non-default options builds a new encoder every call.
_JSON_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _not_serialisable(o: object) -> Any:
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


#: json's C encoder with ``_JSON_ENCODER``'s options, made once (``JSONEncoder.encode``
#: makes one per call: ~1 µs of a JSON reply). Without circular-reference markers (one
#: shared dict would be unsafe across sync handlers' threads): a cycle recurses until
#: ``RecursionError``, turned into json's own ``ValueError`` below. ``None`` where json
#: has no C accelerator.
_C_ENCODE: Callable[[Any, int], Sequence[str]] | None = (
    None if c_make_encoder is None
    else c_make_encoder(None, _not_serialisable, encode_basestring, None, ":", ",", False, False, False)
)


def dump_json(data: Any) -> bytes:
    """Compact UTF-8 JSON; NaN and infinities are refused (they are not JSON)."""
    if _C_ENCODE is None:
        return _JSON_ENCODER.encode(data).encode("utf-8")
    try:
        return "".join(_C_ENCODE(data, 0)).encode("utf-8")
    except RecursionError:
        raise ValueError("Circular reference detected") from None


def with_charset(content_type: str) -> str:
    """``text/*`` without a charset gets ``; charset=utf-8`` (what we encode str with)."""
    if content_type.startswith("text/") and "charset" not in content_type:
        return f"{content_type}; charset=utf-8"
    return content_type


#: Bytes that make a body binary for a browser: the WHATWG MIME Sniffing standard's
#: "binary data bytes" (C0 controls but TAB, LF, FF, CR and ESC).
_BINARY_BYTES = re.compile(rb"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f]")


def bytes_type(body: bytes) -> str:
    """The media type of a ``bytes`` body the handler gave none for: ``text/plain;
    charset=utf-8`` when it is UTF-8 text (valid UTF-8 without the bytes the WHATWG
    sniffing standard calls binary), else ``application/octet-stream``.

    So tiny-listener's own example, ``ctx.response(200, f"Hello, {name}!".encode())``,
    shows as text in a browser instead of downloading a file; ``b"\\x00\\x01"`` or a PNG
    stays octets. A ``content_type=`` (or a Content-Type header) always wins."""
    if _BINARY_BYTES.search(body) is not None:
        return OCTETS
    if not body.isascii():
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            return OCTETS
    return TEXT


class Response:
    """A complete response: ``Response(data, status, headers)``.

    ``data`` may be ``str`` (text/plain), ``bytes`` (text/plain when it is UTF-8 text,
    else application/octet-stream: ``bytes_type``),
    a ``dict``/``list`` (JSON) or ``None`` (empty). ``content_type`` overrides the guess.
    Content-Length and Content-Type are added when the response is sent, so middleware
    may still change ``body`` and ``headers`` after the handler.
    """

    def __init__(
        self,
        data: Any = b"",
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        content_type: str | None = None,
    ) -> None:
        if not 100 <= status <= 599:  # statuses.is_valid, inlined: one per response
            raise ValueError(f"invalid HTTP status code: {status!r}")
        self.status = status
        self.headers = MutableHeaders([])
        if headers:
            for k, v in headers.items():
                self.headers.add(k, v)
        # The two commonest bodies first, without render()'s call (the same result).
        guessed: str | None
        if type(data) is str:
            body, guessed = data.encode("utf-8"), TEXT
        elif type(data) is bytes:
            # Sniffing reads the whole body: only when no content_type was given.
            body, guessed = data, (bytes_type(data) if data and not content_type else None)
        else:
            body, guessed = self.render(data)
        self.body: bytes = body
        self.content_type: str | None = with_charset(content_type) if content_type else guessed

    @staticmethod
    def render(data: Any) -> tuple[bytes, str | None]:
        """Encode ``data`` and guess its media type (``bytes``: see ``bytes_type``)."""
        if isinstance(data, bytes):
            return data, (bytes_type(data) if data else None)
        if isinstance(data, str):
            return data.encode("utf-8"), TEXT
        if data is None:
            return b"", None
        if isinstance(data, (dict, list)):
            return dump_json(data), JSON
        if isinstance(data, (bytearray, memoryview)):
            return bytes(data), OCTETS
        raise TypeError(f"cannot turn {type(data).__name__} into a response body")

    def content_length(self) -> int | None:
        """The Content-Length this response declares; ``None``: none is added (a
        body-less status here, a stream, which keeps whatever its headers say)."""
        return None if self.status in NO_BODY_STATUSES else len(self.body)

    def header_list(self) -> HeaderList:
        """The headers to put on the wire: Content-Type (unless the headers set one),
        then Content-Length from ``content_length()`` (replacing any in the headers),
        then the headers. The one recipe for every response kind; subclasses change
        ``content_length()``, not this."""
        raw = self.headers.raw
        out: HeaderList = []
        # (`not raw` first: most responses have no headers of their own, and then no
        # generator is built for the scan.)
        if self.content_type is not None and (not raw or b"content-type" not in (n for n, _ in raw)):
            out.append((b"content-type", self.content_type.encode("latin-1")))
        length = self.content_length()
        if length is None:
            out.extend(raw)
        else:
            out.append((b"content-length", str(length).encode("ascii")))
            if raw:
                out.extend(kv for kv in raw if kv[0] != b"content-length")
        return out

    async def send(self, channel: Channel, head_only: bool) -> None:
        """Put the response on ``channel``. ``head_only``: a HEAD request, body dropped
        but Content-Length kept (RFC 9110 §9.3.2). Subclasses that stream override this."""
        self.send_now(channel, head_only)

    def send_now(self, channel: Channel, head_only: bool) -> None:
        """``send`` of a complete response, which needs no awaiting: the request path calls
        it directly when a class keeps ``Response.send`` (no coroutine per request)."""
        body = b"" if head_only or self.status in NO_BODY_STATUSES else self.body
        channel.respond(self.status, self.header_list(), body)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, body={self.body[:40]!r})"
