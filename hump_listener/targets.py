"""Request targets: the bytes of a request line's target into the path a route matches.

Pure functions, no I/O. ``split_target`` takes the target apart (origin-, absolute- and
asterisk-form, RFC 9112 §3.2); ``decode_path`` percent-decodes the path strictly, so a
malformed request is the client's 400 and never a 5xx. Route templates are decoded the
same way (``route_templates``), so a template and a request meet as decoded text::

    b"/caf%C3%A9?x=1"  --split_target-->  (b"/caf%C3%A9", b"x=1")
    b"/caf%C3%A9"      --decode_path--->  "/café"
"""

from __future__ import annotations

from .errors import HTTPError

__all__ = ["decode_path", "parse_target", "split_target"]


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


def parse_target(target: bytes) -> tuple[bytes, bytes, str]:
    """``(raw_path, query_string, path)``: ``split_target`` then ``decode_path``, in one
    call (the request path's). The commonest target, a plain ASCII origin-form path
    without query or escapes, is its own raw and decoded path."""
    if target[:1] == b"/" and b"?" not in target and b"%" not in target and target.isascii():
        return target, b"", target.decode("ascii")
    raw_path, query = split_target(target)
    return raw_path, query, decode_path(raw_path)
