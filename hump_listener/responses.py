"""Response kinds beyond the complete-body ``models.Response``: files and streams.

Each is a ``Response`` subclass that overrides ``send()`` (the app calls it once, after
middleware) and ``content_length()``; ``Response.header_list()`` builds every head.
Like the rest of the framework side they talk to the server only through
``seam.Channel``: ``start`` / ``write`` / ``sendfile`` / ``end``.

Rule 1: a HEAD request (``head_only``) or a body-less status never gets a body; a
stream's iterator is then closed without being iterated.

Rule 2: a file is opened when the response is *sent*, never when it is built, so a
``FileResponse`` that middleware replaces leaks no descriptor.

Rule 3: conditional requests and ranges are decided by ``serve_file()`` before a
``FileResponse`` exists: it returns a 200, 206, 304 or 416 response.
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import os
import stat as stat_module
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from email.utils import formatdate, parsedate_to_datetime
from typing import Any
from urllib.parse import quote

from .errors import ClientDisconnect, HTTPError
from .models import NO_BODY_STATUSES, OCTETS, TEXT, Headers, Response, dump_json, with_charset
from .seam import Channel

__all__ = [
    "DEFAULT_SSE_PING",
    "FileResponse",
    "StreamingResponse",
    "content_disposition",
    "encode_sse",
    "guess_type",
    "serve_file",
    "sse_stream",
]

error_log = logging.getLogger("hump_listener.error")


def guess_type(path: str | os.PathLike[str]) -> str:
    """Media type from the file name (stdlib ``mimetypes``); ``text/*`` gets a charset,
    unknown types are ``application/octet-stream``."""
    media_type, encoding = mimetypes.guess_type(os.fspath(path))
    if media_type is None or encoding is not None:
        # ``x.tar.gz`` is guessed as (application/x-tar, gzip): sending it as x-tar with
        # no Content-Encoding would be wrong, so a compressed file is just octets.
        return OCTETS
    return with_charset(media_type)


def content_disposition(filename: str, disposition: str = "attachment") -> str:
    """``attachment; filename="ascii"; filename*=UTF-8''percent-encoded`` (RFC 6266 §4.3:
    old clients read the ASCII fallback, current ones the RFC 8187 form)."""
    fallback = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\%' else "_" for c in filename)
    quoted = quote(filename, safe="")
    if fallback == filename:
        return f'{disposition}; filename="{filename}"'
    return f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{quoted}"


# ---------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------


def _etag(st: os.stat_result) -> str:
    # nginx's recipe (mtime-size in hex): cheap, no hashing of the content, and it
    # changes whenever a deploy rewrites the file.
    return f'"{st.st_mtime_ns:x}-{st.st_size:x}"'


class FileResponse(Response):
    """Send a file (or one byte range of it) with ``channel.sendfile``: zero-copy where
    the server's transport allows it.

    ``path`` is opened when the response is sent. ``range`` is an inclusive
    ``(first, last)`` byte pair and makes a 206 with ``Content-Range``. ``filename``
    adds ``Content-Disposition: attachment``. Prefer ``serve_file()``, which also answers
    conditional and range requests.
    """

    #: Bytes handed to ``channel.sendfile`` per call. Bounded so the server can apply
    #: backpressure between calls; large enough that the per-call cost vanishes.
    chunk_size = 1024 * 1024

    def __init__(
        self,
        path: str | os.PathLike[str],
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        content_type: str | None = None,
        filename: str | None = None,
        *,
        stat_result: os.stat_result | None = None,
        range: tuple[int, int] | None = None,
    ) -> None:
        super().__init__(b"", status, headers, content_type or guess_type(path))
        self.path = os.fspath(path)
        st = stat_result if stat_result is not None else os.stat(self.path)
        self.stat_result = st
        size = st.st_size
        if range is None:
            self.offset, self.count = 0, size
        else:
            first, last = range
            if not 0 <= first <= last < size:
                raise ValueError(f"range {range!r} outside a file of {size} bytes")
            self.offset, self.count = first, last - first + 1
            if status == 200:
                self.status = 206
            self.headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        self.headers.setdefault("Accept-Ranges", "bytes")
        self.headers.setdefault("Last-Modified", formatdate(st.st_mtime, usegmt=True))
        self.headers.setdefault("ETag", _etag(st))
        if filename is not None:
            self.headers["Content-Disposition"] = content_disposition(filename)

    def content_length(self) -> int:
        """The bytes sent: the whole file or the range (declared for HEAD and 304 too,
        as for a GET)."""
        return self.count

    async def send(self, channel: Channel, head_only: bool) -> None:
        """Send the file through ``channel`` in ``chunk_size`` pieces (``channel.sendfile``:
        zero-copy where the transport allows); ``head_only``: the head alone. Called by the app."""
        if head_only or self.status in NO_BODY_STATUSES:
            channel.respond(self.status, self.header_list(), b"")
            return
        try:
            file = open(self.path, "rb")  # noqa: SIM115 (closed below, after the await)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            # Removed between stat and send: nothing has been sent yet, so say so.
            missing = Response("Not Found", 404)
            channel.respond(404, missing.header_list(), missing.body)
            return
        try:
            await channel.start(self.status, self.header_list())
            offset, remaining = self.offset, self.count
            while remaining > 0:
                count = min(remaining, self.chunk_size)
                await channel.sendfile(file, offset, count)
                offset += count
                remaining -= count
            await channel.end()
        finally:
            file.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, path={self.path!r})"


def _parse_range(header: str, size: int) -> tuple[int, int] | bool | None:
    """Parse a ``Range`` header against a file of ``size`` bytes.

    Returns ``(first, last)`` for one satisfiable range, ``None`` to ignore the header
    (not bytes, malformed, or several ranges: RFC 9110 §14.2 lets a server ignore Range,
    and answering multipart/byteranges is rarely worth it), ``False`` when the range is
    unsatisfiable (416).
    """
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_s, dash, last_s = spec.strip().partition("-")
    first_s, last_s = first_s.strip(), last_s.strip()
    if not dash or (first_s and not first_s.isdigit()) or (last_s and not last_s.isdigit()):
        return None
    if not first_s:
        if not last_s:
            return None
        suffix = int(last_s)  # bytes=-N: the last N bytes
        if suffix == 0 or size == 0:
            return False
        return max(0, size - suffix), size - 1
    first = int(first_s)
    if last_s and int(last_s) < first:
        return None  # syntactically invalid (RFC 9110 §14.1.1): ignore
    if first >= size:
        return False
    return first, min(int(last_s), size - 1) if last_s else size - 1


def _etag_matches(header: str, etag: str) -> bool:
    """If-None-Match uses the weak comparison (RFC 9110 §13.1.2)."""
    if header.strip() == "*":
        return True
    ours = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == ours for tag in header.split(","))


def _not_modified_since(header: str, st: os.stat_result) -> bool:
    try:
        since = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return False  # an invalid date is ignored (RFC 9110 §13.1.3)
    return int(st.st_mtime) <= since.timestamp()


def serve_file(
    path: str | os.PathLike[str],
    request_headers: Headers,
    *,
    stat_result: os.stat_result | None = None,
    headers: Mapping[str, str] | None = None,
    content_type: str | None = None,
    filename: str | None = None,
) -> Response:
    """The response for a GET/HEAD of a regular file, conditional and range requests
    included: 304 (If-None-Match, else If-Modified-Since), 206 for one satisfiable range
    (honouring If-Range), 416 with ``Content-Range: bytes */size`` for an unsatisfiable
    one, else 200. Raises ``HTTPError(404)`` if ``path`` is not a regular file."""
    if stat_result is None:
        try:
            stat_result = os.stat(path)
        except (OSError, ValueError):
            raise HTTPError(404) from None
    st = stat_result
    if not stat_module.S_ISREG(st.st_mode):
        raise HTTPError(404)
    etag, last_modified = _etag(st), formatdate(st.st_mtime, usegmt=True)

    if_none_match = request_headers.get("if-none-match")
    if if_none_match is not None:
        not_modified = _etag_matches(if_none_match, etag)
    else:
        ims = request_headers.get("if-modified-since")
        not_modified = ims is not None and _not_modified_since(ims, st)
    if not_modified:
        kept = {k: v for k, v in (headers or {}).items() if k.lower() in ("cache-control", "vary", "expires")}
        return Response(b"", 304, {**kept, "ETag": etag, "Last-Modified": last_modified})

    byte_range: tuple[int, int] | None = None
    range_header = request_headers.get("range")
    if range_header is not None and _if_range_holds(request_headers.get("if-range"), etag, last_modified):
        parsed = _parse_range(range_header, st.st_size)
        if parsed is False:
            return Response(
                b"", 416, {**(headers or {}), "Content-Range": f"bytes */{st.st_size}"}, TEXT
            )
        if isinstance(parsed, tuple):
            byte_range = parsed
    return FileResponse(
        path, 200, headers, content_type, filename, stat_result=st, range=byte_range
    )


def _if_range_holds(if_range: str | None, etag: str, last_modified: str) -> bool:
    """If-Range: serve the range only if the validator still matches (strong comparison
    for an ETag, exact match for a date: RFC 9110 §13.1.5)."""
    if if_range is None:
        return True
    if_range = if_range.strip()
    if if_range.startswith(('"', "W/")):
        return if_range == etag
    return if_range == last_modified


# ---------------------------------------------------------------------------------------
# Streams
# ---------------------------------------------------------------------------------------


class StreamingResponse(Response):
    """Send the chunks of an async iterable as they come (chunked transfer encoding,
    unless the headers carry a Content-Length). ``str`` chunks are UTF-8 encoded.

    The iterator is drained by a task of its own, raced against ``channel.wait_closed()``
    (issue 18 items 6 and 7): when the client leaves (a FIN or reset, an ASGI
    ``http.disconnect``), a generator waiting for its next item is cancelled there at once,
    not after its next failed write, and the request ends as a ``ClientDisconnect`` (the
    app logs it at debug level). A failed ``write`` is a ``ClientDisconnect`` too.

    At a graceful shutdown, an ``endless`` stream (``ctx.sse`` sets it: an event stream
    has no end of its own) is ended at once with the body's clean end, so an
    ``EventSource`` reconnects to the next process. Any other stream may be a finite
    download, which a clean early end would truncate silently: it goes on within the
    drain like any request in flight (``shutdown_timeout``), and is cut only at its end.
    The iterator is closed on every path, so a generator's ``finally`` always runs.
    """

    def __init__(
        self,
        content: AsyncIterable[bytes | str],
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        content_type: str | None = TEXT,
        endless: bool = False,
    ) -> None:
        super().__init__(b"", status, headers, content_type)
        self.content = content
        #: End at once, cleanly, when the server shuts down (an event stream).
        self.endless = endless

    def content_length(self) -> None:
        """None: the length is unknown (chunked), unless the headers give one."""
        return None

    async def send(self, channel: Channel, head_only: bool) -> None:
        """Send the chunks through ``channel`` as they come (chunked encoding), closing the
        iterator if the client leaves; ``head_only``: the head alone. Called by the app."""
        iterator: AsyncIterator[bytes | str] = aiter(self.content)
        try:
            if head_only or self.status in NO_BODY_STATUSES:
                channel.respond(self.status, self.header_list(), b"")
                return
            await channel.start(self.status, self.header_list())
            pump = asyncio.ensure_future(_pump(iterator, channel))
            closed = asyncio.ensure_future(channel.wait_closed())
            try:
                await asyncio.wait((pump, closed), return_when=asyncio.FIRST_COMPLETED)
                if not pump.done() and closed.exception() is not None:
                    # The channel cannot tell (its server's receive failed): stream on.
                    error_log.debug("wait_closed() failed; streaming on", exc_info=closed.exception())
                    await asyncio.wait((pump,))
                elif not pump.done() and not channel.disconnected and not self.endless:
                    # A shutdown, and this stream may be finite: it drains like any request.
                    await asyncio.wait((pump,))
            finally:  # also when the request itself is cancelled: stop both
                closed.cancel()
                if not pump.done():
                    pump.cancel()  # the producer is cancelled where it waits
                    await asyncio.wait((pump,))
            if not pump.cancelled():
                pump.result()  # the producer's error, or a failed write (ClientDisconnect)
            elif channel.disconnected:
                raise ClientDisconnect()
            await channel.end()
        except ClientDisconnect:
            error_log.debug("client went away during a streamed response")
            raise
        finally:
            await _aclose(iterator)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, content={self.content!r})"


async def _pump(iterator: AsyncIterator[bytes | str], channel: Channel) -> None:
    """Write every chunk of ``iterator`` (``str`` as UTF-8), skipping empty ones."""
    write = channel.write
    async for chunk in iterator:
        if isinstance(chunk, str):
            chunk = chunk.encode("utf-8")
        if chunk:
            await write(chunk)


async def _aclose(iterator: Any) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()


# ---------------------------------------------------------------------------------------
# Server-Sent Events
# ---------------------------------------------------------------------------------------

#: Seconds of silence before a ``: ping`` comment. Proxies commonly drop idle
#: connections after 30-60 s (nginx's proxy_read_timeout is 60 s); the WHATWG spec
#: suggests a comment every 15 s or so.
DEFAULT_SSE_PING = 15.0

_SSE_FIELDS = ("event", "data", "id", "retry", "comment")

SSEvent = str | bytes | Mapping[str, Any]


def encode_sse(event: SSEvent) -> bytes:
    """One event in ``text/event-stream`` form, blank line included.

    A ``str`` (or ``bytes``) is the data; a mapping may have ``data``, ``event``, ``id``,
    ``retry`` (milliseconds) and ``comment``. Data that is neither str nor bytes is sent
    as JSON. Multi-line data becomes one ``data:`` line per line, as the format requires.
    """
    if isinstance(event, (str, bytes)):
        event = {"data": event}
    unknown = set(event) - set(_SSE_FIELDS)
    if unknown:
        raise ValueError(f"unknown SSE field(s) {sorted(unknown)}; allowed: {', '.join(_SSE_FIELDS)}")
    lines: list[str] = []
    comment = event.get("comment")
    if comment is not None:
        lines.extend(f": {line}" for line in str(comment).splitlines() or [""])
    for key in ("event", "id"):
        value = event.get(key)
        if value is not None:
            text = str(value)
            if "\n" in text or "\r" in text or (key == "id" and "\0" in text):
                raise ValueError(f"SSE {key} may not contain a line break: {text!r}")
            lines.append(f"{key}: {text}")
    retry = event.get("retry")
    if retry is not None:
        lines.append(f"retry: {int(retry)}")
    if "data" in event:
        data = event["data"]
        if isinstance(data, bytes):
            data = data.decode("utf-8")
        elif not isinstance(data, str):
            data = dump_json(data).decode("utf-8")
        lines.extend(f"data: {line}" for line in data.splitlines() or [""])
    if not lines:
        raise ValueError("an SSE event needs at least one of data, event, id, retry, comment")
    return ("\n".join(lines) + "\n\n").encode("utf-8")


async def sse_stream(source: AsyncIterable[SSEvent], ping: float | None = DEFAULT_SSE_PING) -> AsyncIterator[bytes]:
    """Encode ``source``'s events; while it is idle for ``ping`` seconds, yield a
    ``: ping`` comment instead (keeps proxies from closing the connection and makes a
    gone client show up as a failed write). ``source`` is closed however this ends."""
    iterator = aiter(source)
    if ping is None or ping <= 0:
        try:
            async for event in iterator:
                yield encode_sse(event)
        finally:
            await _aclose(iterator)
        return
    pending: asyncio.Future[SSEvent] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(iterator))
            done, _ = await asyncio.wait((pending,), timeout=ping)
            if not done:
                yield b": ping\n\n"
                continue
            try:
                event = pending.result()
            except StopAsyncIteration:
                return
            finally:
                pending = None
            yield encode_sse(event)
    finally:
        if pending is not None:
            # The source is mid-``__anext__``: cancel that step and let it unwind
            # before closing, or ``aclose`` would find the generator still running.
            pending.cancel()
            await asyncio.wait((pending,))
            if not pending.cancelled() and pending.exception() is not None:
                exc = pending.exception()
                if not isinstance(exc, StopAsyncIteration):
                    error_log.debug("SSE source failed while closing", exc_info=exc)
        await _aclose(iterator)
