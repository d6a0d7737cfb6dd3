"""Request heads: bytes in, a ``ParsedHead`` or a ``Rejection`` out. Pure: no I/O, no timers.

``read_head()`` is the reader half of the HTTP/1.1 protocol for everything up to the body.
Its policy, in the order a head meets it (RFC 9110 / RFC 9112):

1. Pre-scan. Until a head is complete its bytes stay with the caller, not h11. Empty lines
   before the request line are skipped (RFC 9112 §2.2); a first byte that cannot start a
   method is refused at once (TLS handshakes and binary garbage: close, or 400); obs-fold is
   refused (§5.2; h11 would silently unfold it); ``max_request_line`` (414),
   ``max_head_size`` (431) and ``max_header_count`` (431) are enforced. h11 is then fed
   exactly one head.
2. h11 checks the rest of the syntax: method token, target octets, field names and values
   (NUL, whitespace before the colon), Content-Length forms and conflicts, missing or
   repeated Host, and Transfer-Encoding other than a single final ``chunked`` (501). We add
   what h11 lets through: Content-Length together with Transfer-Encoding (400: request
   smuggling, §6.1), an invalid Host value, a target in none of the four forms (§3.2), and
   an HTTP major version other than 1 (505).
3. Framing (§6.3): no Content-Length or Transfer-Encoding means no body; a Content-Length
   body is framed by counting its bytes (``ParsedHead.length``); a chunked body is decoded
   by an h11 connection that parsed the head (``ParsedHead.decoder``, one per request).
   h11's own body events for the first two would cost as much as the head (~10 µs for a
   GET's EndOfMessage alone).
5. h11 reads the head with its own reader (``maybe_read_from_IDLE_client``, what
   ``Connection.next_event`` calls in the IDLE state), without a ``Connection`` around
   it: the connection's state machine, which we do not use (a fresh one per request;
   the body is framed as in policy 3), was 45 % of h11's cost per head (callgrind:
   131k -> 72k instructions for a ``GET /``). The head is validated by exactly the same
   h11 code; only a chunked request still gets a ``Connection`` (its decoder), which
   parses its head again. The reader is private to h11, so ``_head_reader`` checks it
   at import against ``Connection`` and we fall back to ``Connection`` if it is absent
   or behaves differently (tests/test_protocol_head.py runs both on the same heads).
4. Keep-alive as h11 would decide it: HTTP/1.1 unless ``Connection: close``; HTTP/1.0
   only when asked with ``Connection: keep-alive`` (RFC 9112 Appendix C.2.2); never after
   an Upgrade or CONNECT we do not perform. Whether the connection really continues is
   the protocol's decision (the response, a half-close, a shutdown).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from hump_listener.seam import HeaderList, RequestHead

if TYPE_CHECKING:
    import h11  # the same API as the compiled build; typed against the pure one

    from hump_listener.config import ServerConfig
else:
    from hump_listener.protocol.parser import h11

__all__ = ["Incomplete", "ParsedHead", "Rejection", "read_head"]

#: End of a head, as h11 finds it (bare LF line endings are tolerated, RFC 9112 §2.2).
_HEAD_END = re.compile(rb"\n\r?\n")
#: Octets that may start a request line: tchar (RFC 9110 §5.6.2), the first octet of a method.
_METHOD_START = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
#: First octets of a TLS (0x16) or SSLv2 (0x80) ClientHello: logged as such.
_TLS_START = frozenset((0x16, 0x80))
#: Host = uri-host [ ":" port ] (RFC 9110 §7.2, RFC 3986 §3.2.2); empty is allowed.
_HOST = re.compile(rb"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]*)?")
#: Host values ``_HOST`` has accepted: a server sees the same few on every request, and a
#: set lookup is a fraction of the regex. The first ``_VALID_HOSTS_KEPT`` distinct ones are
#: kept (a bounded set: clients choose the values).
_VALID_HOSTS: set[bytes] = set()
_VALID_HOSTS_KEPT = 64
#: absolute-form starts with a scheme (RFC 9112 §3.2.2).
_ABSOLUTE_FORM = re.compile(rb"[A-Za-z][A-Za-z0-9+.\-]*://")


def _has_full_items() -> bool:
    """h11's ``Headers`` is a Sequence whose ``__iter__`` (from the ABC) calls
    ``__getitem__`` once per header; its ``_full_items`` list of (raw name, lower-cased
    name, value) is the same data at a fraction of the cost. Used only if this h11 has it."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    event = conn.next_event()
    if not isinstance(event, h11.Request):
        return False
    items = getattr(event.headers, "_full_items", None)
    return isinstance(items, list) and items == [(b"Host", b"host", b"a")]


_FULL_ITEMS = _has_full_items()

#: What ``_head_reader`` checks h11's reader with against a ``Connection``.
_PROBE = b"POST /p?q HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n"


def _connection_read(head: bytes) -> Any:
    """The public way: a fresh ``Connection`` fed exactly one complete head."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(head)
    return conn.next_event()


def _head_reader() -> Callable[[bytes], Any]:
    """``read(head bytes)``: the ``Request`` that ``Connection.next_event`` returns for
    one complete head, read by h11's own IDLE-state reader without the ``Connection``
    (policy 5). ``_connection_read`` itself when this h11 (or h11_mypyc) lacks the
    reader or it disagrees with ``Connection`` on the probe."""
    try:
        reader = importlib.import_module(h11.__name__ + "._readers").maybe_read_from_IDLE_client
        buffer_type = importlib.import_module(h11.__name__ + "._receivebuffer").ReceiveBuffer
    except (ImportError, AttributeError):
        return _connection_read

    def read(head: bytes) -> Any:
        buf = buffer_type()
        buf += head
        return reader(buf)

    try:
        same = read(_PROBE) == _connection_read(_PROBE)
    except Exception:
        same = False
    return read if same else _connection_read


_read_request = _head_reader()

_new_tuple = tuple.__new__


class Incomplete(NamedTuple):
    """No complete head yet: keep ``data`` (leading empty lines dropped) and wait."""

    data: bytes | bytearray


class Rejection(NamedTuple):
    """A head we refuse. ``status`` is the answer (then close), or ``None`` to close without
    one (TLS on a plain port, a head cut short by the client's half-close); ``reason`` is
    for the log ("" for nothing worth logging)."""

    status: int | None
    reason: str


class ParsedHead:
    """A valid request head and how its body is framed (one request's lifetime)."""

    __slots__ = ("decoder", "end", "expect_100", "head", "keep_alive", "length", "upgrade")

    def __init__(
        self,
        head: RequestHead,
        end: int,
        length: int,
        decoder: h11.Connection | None,
        keep_alive: bool,
        expect_100: bool,
        upgrade: bytes | None,
    ) -> None:
        self.head = head
        #: Bytes of the input the head took (empty lines before it included); what follows
        #: is body or the next request.
        self.end = end
        #: Body bytes to count (0: no body), or -1 for a chunked body ``decoder`` decodes.
        self.length = length
        #: The h11 connection that parsed this head, for a chunked body; else None.
        self.decoder = decoder
        #: The client allows another request on this connection after this one (policy 4).
        self.keep_alive = keep_alive
        #: ``Expect: 100-continue`` on HTTP/1.1.
        self.expect_100 = expect_100
        #: The ``Upgrade`` header's value, lower-cased, if the client sent one.
        self.upgrade = upgrade


def read_head(
    data: bytes | bytearray,
    config: ServerConfig,
    eof: bool,
    client: tuple[str, int] | None,
    server: tuple[str, int] | None,
    scheme: str,
) -> ParsedHead | Incomplete | Rejection:
    """Parse the request head at the start of ``data`` (policy 1-4).

    ``eof``: the client has half-closed, so an incomplete head can never complete.
    """
    skipped = 0
    if data[0] in (13, 10):  # CR, LF: empty lines before a request line are ignored
        stripped = data.lstrip(b"\r\n")
        if not stripped:
            return Incomplete(b"")
        skipped = len(data) - len(stripped)
        data = stripped
    if data[0] not in _METHOD_START:
        if data[0] in _TLS_START:
            return Rejection(None, "TLS handshake on a plain-HTTP port")
        return Rejection(400, "invalid request line")
    match = _HEAD_END.search(data)
    if match is None:
        if len(data) > config.max_request_line and data.find(b"\n", 0, config.max_request_line) == -1:
            return Rejection(414, "request line too long")
        if len(data) > config.max_head_size:
            return Rejection(431, "request head too large")
        if data.count(b"\n") > config.max_header_count + 1:
            return Rejection(431, "too many header fields")
        if eof:
            return Rejection(None, "")  # the head can never complete
        return Incomplete(data)
    end = match.end()
    line_end = data.find(b"\n", 0, end)
    if line_end > config.max_request_line:
        return Rejection(414, "request line too long")
    if end > config.max_head_size:
        return Rejection(431, "request head too large")
    if data.find(b"\n ", line_end, end) != -1 or data.find(b"\n\t", line_end, end) != -1:
        return Rejection(400, "obsolete line folding")
    # A header line takes at least 3 bytes ("a:\n"): short heads need no count.
    most = config.max_header_count
    if end - line_end > 3 * most and data.count(b"\n", line_end + 1, end) > most + 1:
        return Rejection(431, "too many header fields")
    head = bytes(data[:end])  # no copy when data is bytes of exactly one head
    try:
        # h11 parses and validates the head (policy 5); its LocalProtocolError is the
        # client's fault here, as Connection.next_event would re-raise it.
        event = _read_request(head)
    except (h11.LocalProtocolError, h11.RemoteProtocolError) as exc:
        return Rejection(exc.error_status_hint, str(exc))
    if type(event) is not h11.Request:  # h11 was fed a complete head: cannot happen
        return Rejection(400, "incomplete request head")
    result = _check(event, skipped + end, client, server, scheme)
    if type(result) is ParsedHead and result.length < 0:
        # Chunked: an h11 connection that has read the head decodes the body.
        decoder = result.decoder = h11.Connection(h11.SERVER, max_incomplete_event_size=config.max_head_size)
        decoder.receive_data(head)
        decoder.next_event()
    return result


def _check(
    event: h11.Request,
    end: int,
    client: tuple[str, int] | None,
    server: tuple[str, int] | None,
    scheme: str,
) -> ParsedHead | Rejection:
    """What h11 lets through (policy 2), framing (3: the decoder of a chunked body is
    left to the caller) and keep-alive (4)."""
    version = event.http_version
    if version == b"1.1":
        http_version = "1.1"
    elif version == b"1.0":
        http_version = "1.0"
    elif version[:2] == b"1.":
        http_version = "1.1"  # a later 1.x minor version is served as 1.1 (RFC 9110 §2.5)
    else:
        return Rejection(505, "unsupported HTTP version")
    # Names lower-cased by h11.
    if _FULL_ITEMS:
        headers: HeaderList = [(name, value) for _, name, value in event.headers._full_items]
    else:
        headers = list(event.headers)
    host: bytes | None = None
    framing = 0
    length: bytes | None = None  # h11 has validated it: digits, one value
    close = False
    upgrade: bytes | None = None
    ask_keep_alive = False
    expect_100 = False
    for name, value in headers:
        if name == b"host":
            host = value
        elif name == b"content-length":
            framing += 1
            length = value
        elif name == b"transfer-encoding":
            framing += 1
        elif name == b"connection":
            tokens = {token.strip() for token in value.lower().split(b",")}
            close = close or b"close" in tokens
            ask_keep_alive = ask_keep_alive or b"keep-alive" in tokens
        elif name == b"upgrade":
            upgrade = value.lower()
        elif name == b"expect":
            expect_100 = expect_100 or b"100-continue" in {token.strip() for token in value.lower().split(b",")}
    if framing > 1:
        return Rejection(400, "both Content-Length and Transfer-Encoding")
    if host is not None and host not in _VALID_HOSTS:
        if _HOST.fullmatch(host) is None:
            return Rejection(400, "invalid Host")
        if len(_VALID_HOSTS) < _VALID_HOSTS_KEPT:
            _VALID_HOSTS.add(host)
    target = event.target
    method = event.method
    if target[0] != 47:  # not origin-form ("/...")
        if target == b"*":
            valid = method == b"OPTIONS"
        elif method == b"CONNECT":
            valid = _HOST.fullmatch(target) is not None
        else:
            valid = _ABSOLUTE_FORM.match(target) is not None
        if not valid:
            return Rejection(400, "invalid request-target")
    # (tuple.__new__: without the named tuple's Python-level __new__, ~0.1 us per request)
    head = _new_tuple(RequestHead, (method.decode("ascii"), target, http_version, headers, client, server, scheme))
    keep_alive = (
        not close and upgrade is None and method != b"CONNECT" and (http_version == "1.1" or ask_keep_alive)
    )
    body_length = 0 if framing == 0 else int(length) if length is not None else -1  # -1: chunked
    # h11's rule (has_expect_100_continue): a 100-continue token, ignored before HTTP/1.1.
    expect_100 = expect_100 and http_version == "1.1"
    return ParsedHead(head, end, body_length, None, keep_alive, expect_100, upgrade)
