"""GZip: compress complete response bodies the client accepts gzip for.

A response is compressed only when all of these hold; each rule says why:

- it is a plain ``Response`` (``type(resp) is Response``): a streamed body (or any
  subclass that sends itself differently) is not in ``body`` to compress;
- its status has a body and is not 206, and it has no ``Content-Range``: a range is a
  slice of the *identity* representation, compressing it would corrupt the slice;
- it has no ``Content-Encoding`` yet: never compress twice;
- ``Cache-Control`` does not say ``no-transform`` (RFC 9111 §5.2.2.6);
- its media type is compressible (text, JSON, XML, JavaScript, SVG ...): JPEG, PNG,
  zip ... are compressed already and would only grow;
- the body is at least ``minimum_size`` bytes: below ~500 bytes the gzip header and
  trailer (18 bytes) and a packet's worth of savings are not worth the CPU;
- the request's ``Accept-Encoding`` gives ``gzip`` (or ``x-gzip``, or ``*``) a q-value
  above 0 (RFC 9110 §12.5.3). No ``Accept-Encoding`` means "no preference": not
  compressed, as every mainstream server does.

Whenever the first five hold, the response says ``Vary: Accept-Encoding`` (compressed
or not), so a shared cache keeps the two variants apart. A strong ``ETag`` becomes weak
on the compressed variant: the bytes differ from the identity representation's. The
Content-Length follows the new body (``Response`` computes it when it is sent).
"""

from __future__ import annotations

import asyncio
import gzip
from typing import TYPE_CHECKING

from ..models import NO_BODY_STATUSES, Response
from ._headers import add_vary, split_tokens

if TYPE_CHECKING:
    from ..context import HTTPContext
    from ..endpoints import CallNext

__all__ = ["DEFAULT_COMPRESSLEVEL", "DEFAULT_MINIMUM_SIZE", "GZipMiddleware", "accepts_gzip", "is_compressible"]

#: Smallest body worth compressing. Starlette's default is 500 too; nginx's
#: gzip_min_length is 20, Cloudflare's ~48: below ~500 bytes the saving rarely
#: spares a packet.
DEFAULT_MINIMUM_SIZE = 500
#: zlib's own default and nginx's common setting: most of level 9's ratio at a
#: fraction of its CPU.
DEFAULT_COMPRESSLEVEL = 6
#: Bodies larger than this are compressed in a worker thread so the event loop keeps
#: serving other connections (level 6 runs at roughly 50-100 MB/s: ~10-20 ms per MiB).
THREAD_THRESHOLD = 1024 * 1024

_COMPRESSIBLE_APPLICATION = frozenset({
    "application/json", "application/javascript", "application/ecmascript", "application/xml",
    "application/xhtml+xml", "application/rss+xml", "application/atom+xml",
    "application/x-javascript", "application/x-www-form-urlencoded", "application/wasm",
    "application/graphql", "application/x-ndjson", "application/yaml", "application/toml",
    "application/manifest+json", "application/vnd.api+json", "application/ld+json",
    "application/geo+json", "application/problem+json", "application/problem+xml",
    "image/svg+xml", "image/x-icon", "image/bmp", "font/ttf", "font/otf",
})


def is_compressible(content_type: str | None) -> bool:
    """True for media types gzip shrinks: ``text/*``, JSON, XML, JavaScript, SVG ...
    (structured-syntax suffixes ``+json`` / ``+xml`` included)."""
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return (
        media.startswith("text/")
        or media in _COMPRESSIBLE_APPLICATION
        or media.endswith(("+json", "+xml"))
    )


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Does this ``Accept-Encoding`` allow gzip? An explicit ``gzip``/``x-gzip`` entry
    wins over ``*``; ``q=0`` means "not acceptable"; a malformed q counts as 0."""
    if not accept_encoding:
        return False
    explicit: float | None = None
    wildcard: float | None = None
    for item in split_tokens(accept_encoding):
        coding, *params = (part.strip() for part in item.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
        coding = coding.lower()
        if coding in ("gzip", "x-gzip"):
            explicit = q if explicit is None else max(explicit, q)
        elif coding == "*":
            wildcard = q
    if explicit is not None:
        return explicit > 0
    return wildcard is not None and wildcard > 0


class GZipMiddleware:
    """``app.middleware(GZipMiddleware(minimum_size=500, compresslevel=6))``."""

    def __init__(self, minimum_size: int = DEFAULT_MINIMUM_SIZE, compresslevel: int = DEFAULT_COMPRESSLEVEL) -> None:
        if minimum_size < 0:
            raise ValueError(f"minimum_size must be >= 0, got {minimum_size}")
        if not 0 <= compresslevel <= 9:
            raise ValueError(f"compresslevel must be 0..9, got {compresslevel}")
        self.minimum_size = minimum_size
        self.compresslevel = compresslevel

    async def __call__(self, ctx: HTTPContext, call_next: CallNext) -> Response:
        response: Response = await call_next()
        if not self.eligible(response):
            return response
        headers = response.headers
        add_vary(headers, "Accept-Encoding")
        if not accepts_gzip(ctx.request.headers.get("accept-encoding")):
            return response
        body = response.body
        if len(body) > THREAD_THRESHOLD:
            response.body = await asyncio.to_thread(self.compress, body)
        else:
            response.body = self.compress(body)
        headers["content-encoding"] = "gzip"
        etag = headers.get("etag")
        if etag is not None and not etag.startswith("W/"):
            headers["etag"] = f"W/{etag}"
        return response

    def eligible(self, response: Response) -> bool:
        """Everything but the client's preference: would this response be compressed?"""
        if type(response) is not Response:
            return False
        status = response.status
        if status in NO_BODY_STATUSES or status == 206 or len(response.body) < self.minimum_size:
            return False
        headers = response.headers
        if "content-encoding" in headers or "content-range" in headers:
            return False
        if any("no-transform" in v.lower() for v in headers.getlist("cache-control")):
            return False
        return is_compressible(headers.get("content-type") or response.content_type)

    def compress(self, body: bytes) -> bytes:
        # mtime=0: the same body always gives the same bytes (ETags, caches, tests).
        return gzip.compress(body, compresslevel=self.compresslevel, mtime=0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(minimum_size={self.minimum_size}, compresslevel={self.compresslevel})"
