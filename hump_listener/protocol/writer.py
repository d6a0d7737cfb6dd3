"""Responses on the wire: status lines, head serialisation, body framing. Pure: no I/O.

The writer half of the HTTP/1.1 protocol. h11 never sees our side: serialising here lets
``respond()`` cost one ``transport.write`` and no h11 event validation.

Rules:

1. Framing follows RFC 9112 §6.3: the app's Content-Length if given, else chunked to
   HTTP/1.1 and close-delimited to HTTP/1.0; HEAD, 204 and 304 never carry a body.
   Transfer-Encoding is ours to choose; an app that sets it is refused.
2. Header values containing CR or LF are refused (response splitting).
3. Every status line has a reason phrase (``seam.reason_phrase``: h11 would send none).
4. ``Connection`` from the app is dropped from the head and only read for ``close``; the
   writer adds ``connection: close`` (or ``keep-alive`` for an HTTP/1.0 client that asked)
   itself, from the keep-alive decision it is given.
"""

from __future__ import annotations

from collections.abc import Sequence

from hump_listener.seam import HeaderList, reason_phrase

__all__ = [
    "CHUNKED",
    "CONTINUE",
    "CRLF",
    "LAST_CHUNK",
    "LENGTH",
    "NO_BODY",
    "STATUS_LINES",
    "UNTIL_CLOSE",
    "chunk_size_line",
    "serialise_head",
    "simple_response",
]

#: Pre-encoded status lines, with a reason phrase for every code (rule 3).
STATUS_LINES: dict[int, bytes] = {
    status: b"HTTP/1.1 %d %s\r\n" % (status, reason_phrase(status).encode("ascii")) for status in range(100, 600)
}

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
CRLF = b"\r\n"
LAST_CHUNK = b"0\r\n\r\n"
_CLOSE_LINE = b"connection: close\r\n"
_CHUNKED_LINE = b"transfer-encoding: chunked\r\n"
_KEEP_ALIVE_LINE = b"connection: keep-alive\r\n"

# Response body framing (rule 1), chosen when the response starts.
NO_BODY = 0  # HEAD, 204, 304: data is dropped
LENGTH = 1  # Content-Length given by the app (or by respond()'s body)
CHUNKED = 2  # HTTP/1.1 without Content-Length
UNTIL_CLOSE = 3  # HTTP/1.0 without Content-Length: the close ends the body


def serialise_head(
    status: int,
    headers: HeaderList,
    body: bytes | None,
    method: str,
    http_version: str,
    keep_alive: bool,
    prefix: bytes,
    prefix_lines: int,
) -> tuple[bytes, int, int, bool]:
    """Serialise a status line and header section.

    ``body`` is the whole body for a complete response (its length becomes Content-Length
    unless the app gave one), ``None`` for a streamed one. ``keep_alive`` is whether the
    connection may continue as far as the request and the server are concerned; ``prefix``
    is the server's own header lines (``date``, ``server``), ``prefix_lines`` their count.

    Returns ``(head bytes, framing, Content-Length or 0, keep_alive)``, where keep-alive
    may have been turned off by the app's ``Connection: close`` or by close-delimiting.
    Raises ``ValueError`` for a status, header or Content-Length we must not send.
    """
    if status < 200 or status > 599:
        raise ValueError(f"invalid final status code: {status}")
    # HTTP/1.0 keeps the connection only when asked, and the response says so.
    keep_alive_10 = keep_alive and http_version == "1.0"
    parts = [STATUS_LINES[status], prefix]
    lines = 2 + prefix_lines  # status line + blank line + server lines
    length: bytes | None = None
    for name, value in headers:
        lname = name.lower()
        if lname == b"content-length":
            length = value
        elif lname == b"connection":
            if b"close" in value.lower():
                keep_alive = False
            continue
        elif lname == b"transfer-encoding":
            raise ValueError("Transfer-Encoding is chosen by the server")
        parts += (name, b": ", value, CRLF)
        lines += 1
    remaining = 0
    if status == 204 or status == 304 or method == "HEAD":
        framing = NO_BODY
    elif length is not None:
        if not length.isdigit():
            raise ValueError(f"invalid Content-Length: {length!r}")
        framing = LENGTH
        remaining = int(length)
    elif body is not None:
        parts.append(b"content-length: %d\r\n" % len(body))
        lines += 1
        framing = LENGTH
        remaining = len(body)
    elif http_version == "1.1":
        parts.append(_CHUNKED_LINE)
        lines += 1
        framing = CHUNKED
    else:
        framing = UNTIL_CLOSE
        keep_alive = False
    if not keep_alive:
        parts.append(_CLOSE_LINE)
        lines += 1
    elif keep_alive_10:
        parts.append(_KEEP_ALIVE_LINE)
        lines += 1
    parts.append(CRLF)
    out = b"".join(parts)
    if out.count(b"\n") != lines or out.count(b"\r") != lines:
        raise ValueError("CR or LF in a response header")  # rule 2
    return out, framing, remaining, keep_alive


def chunk_size_line(size: int) -> bytes:
    """The size line that opens a chunk of ``size`` bytes."""
    return b"%x\r\n" % size


def simple_response(status: int, prefix: bytes, extra: Sequence[tuple[bytes, bytes]] = ()) -> bytes:
    """A complete ``Connection: close`` response whose body is the reason phrase: what the
    server answers on its own (errors, limits). Never on the hot path."""
    phrase = reason_phrase(status).encode("ascii")
    return b"".join(
        [
            STATUS_LINES[status],
            prefix,
            b"content-type: text/plain; charset=utf-8\r\n",
            *(name + b": " + value + CRLF for name, value in extra),
            b"content-length: %d\r\n" % len(phrase),
            b"connection: close\r\n\r\n",
            phrase,
        ]
    )
