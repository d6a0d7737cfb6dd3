"""HTTPContext: one per request, a tiny-listener ``Context``.

It holds the ``Request`` and the one reply. Reply helpers only *record* the reply; the
app sends it after the handler and middleware have run, which is what lets middleware
change a response after the handler. Reading the body goes through the seam's
``Channel``; the context never sees a socket or h11.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, overload
from urllib.parse import parse_qsl

from tiny_listener import Context, Event

from .errors import HTTPError, ResponseAlreadySent
from .models import HTML, JSON, MultiDict, Request, Response
from .seam import Channel

if TYPE_CHECKING:
    from tiny_listener import Listener

    from .endpoints import Endpoint

__all__ = ["DEFAULT_MAX_FORM_FIELDS", "HTTPContext"]

#: Most fields a urlencoded form may have (Werkzeug's max_form_parts is 1000; Django's
#: DATA_UPLOAD_MAX_NUMBER_FIELDS is 1000). More → 413.
DEFAULT_MAX_FORM_FIELDS = 1000


class _Missing:
    pass


_MISSING: Any = _Missing()


class HTTPContext(Context):
    """The per-request context handlers receive as ``ctx: HTTPContext``."""

    # Per-request state, set by the app right after construction / routing.
    request: Request
    channel: Channel
    params: dict[str, Any]

    def __init__(self, listener: Listener[Any], cid: str, scope: dict[str, Any] | None = None) -> None:
        super().__init__(listener, cid, scope)
        self.reply: Response | None = None
        self.endpoint: Endpoint | None = None
        self.max_body_size: int | None = None
        self._event: Event[Any] | None = None
        self._body: bytes | None = None
        self._streamed = False

    @property
    def event(self) -> Event[Any]:
        """The tiny-listener ``Event`` this request fired (created on first use: most
        handlers never ask for it)."""
        if self._event is None:
            if self.endpoint is None:
                raise RuntimeError("no event yet: the request has not been routed")
            self._event = self.new_event(self.endpoint, {})
        return self._event

    # -- replies ---------------------------------------------------------------------

    def set_reply(self, response: Response) -> Response:
        """Record ``response`` as this request's one reply (``ResponseAlreadySent`` if one
        was already recorded)."""
        if self.reply is not None:
            raise ResponseAlreadySent(
                f"{self.request.method} {self.request.path}: a response was already set "
                f"({self.reply.status}); a request gets exactly one"
            )
        self.reply = response
        return response

    def response(
        self,
        status: int = 200,
        body: str | bytes = b"",
        headers: Mapping[str, str] | None = None,
        content_type: str | None = None,
    ) -> Response:
        """Reply with ``status`` and ``body`` (str → text/plain; charset=utf-8)."""
        return self.set_reply(Response(body, status, headers, content_type))

    @overload
    def text(self) -> Any: ...  # awaitable: the body as str
    @overload
    def text(self, body: str, status: int = 200, headers: Mapping[str, str] | None = None) -> Response: ...
    def text(self, body: Any = _MISSING, status: int = 200, headers: Mapping[str, str] | None = None) -> Any:
        """``await ctx.text()`` reads the body as text; ``ctx.text("hi")`` replies text/plain."""
        if body is _MISSING:
            return self._read_text()
        return self.set_reply(Response(str(body), status, headers))

    def html(self, body: str, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
        return self.set_reply(Response(body, status, headers, HTML))

    @overload
    def json(self) -> Any: ...  # awaitable: the parsed body
    @overload
    def json(self, data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response: ...
    def json(self, data: Any = _MISSING, status: int = 200, headers: Mapping[str, str] | None = None) -> Any:
        """``await ctx.json()`` parses the body (invalid → 400); ``ctx.json(obj)`` replies JSON."""
        if data is _MISSING:
            return self._read_json()
        from .models import dump_json

        return self.set_reply(Response(dump_json(data), status, headers, JSON))

    def redirect(self, url: str, status: int = 307, headers: Mapping[str, str] | None = None) -> Response:
        all_headers = {**(headers or {}), "Location": url}
        return self.set_reply(Response(b"", status, all_headers))

    def throw(self, status: int, detail: str | None = None, headers: Mapping[str, str] | None = None) -> None:
        """Stop the handler here and answer ``status`` (raises ``HTTPError``, like
        Flask's ``abort``); ``detail`` defaults to the reason phrase."""
        raise HTTPError(status, detail, headers)

    def throw_404(self, detail: str | None = None) -> None:
        raise HTTPError(404, detail)

    def throw_500(self, detail: str | None = None) -> None:
        raise HTTPError(500, detail)

    # -- the request body --------------------------------------------------------------

    async def stream(self) -> AsyncIterator[bytes]:
        """Yield the body as it arrives (flow-controlled); each byte is read once."""
        if self._body is not None:
            if self._body:
                yield self._body
            return
        if self._streamed:
            raise RuntimeError("the request body has already been streamed")
        self._streamed = True
        limit = self.max_body_size
        if limit is not None:
            declared = self.request.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise HTTPError(413, f"Request body larger than {limit} bytes")
        received = 0
        receive = self.channel.receive
        while True:
            chunk = await receive()
            if not chunk:
                return
            received += len(chunk)
            if limit is not None and received > limit:
                raise HTTPError(413, f"Request body larger than {limit} bytes")
            yield chunk

    async def body(self) -> bytes:
        """The whole body (read once, then cached)."""
        if self._body is None:
            chunks = [chunk async for chunk in self.stream()]
            self._body = b"".join(chunks)
        return self._body

    async def _read_text(self) -> str:
        body = await self.body()
        charset = "utf-8"
        for part in self.request.content_type.split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "charset" and value:
                charset = value.strip('"')
        try:
            return body.decode(charset)
        except (LookupError, UnicodeDecodeError):
            raise HTTPError(400, f"Request body is not valid {charset}") from None

    async def _read_json(self) -> Any:
        body = await self.body()
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise HTTPError(400, f"Invalid JSON body: {e}") from None

    async def form(self, max_fields: int = DEFAULT_MAX_FORM_FIELDS) -> MultiDict:
        """Parse an ``application/x-www-form-urlencoded`` body (stdlib ``parse_qsl``)."""
        ctype = self.request.content_type.split(";")[0].strip().lower()
        if ctype not in ("application/x-www-form-urlencoded", ""):
            raise HTTPError(415, f"Expected a urlencoded form, got {ctype!r}")
        body = await self.body()
        try:
            pairs = parse_qsl(
                body.decode("latin-1"), keep_blank_values=True, max_num_fields=max_fields,
                encoding="utf-8", errors="strict",
            )
        except ValueError as e:
            status = 413 if "Max number of fields" in str(e) else 400
            raise HTTPError(status, f"Invalid form: {e}") from None
        return MultiDict(pairs)

    def __repr__(self) -> str:
        req = getattr(self, "request", None)
        where = f"{req.method} {req.path}" if req else "-"
        return f"{type(self).__name__}(cid={self.cid}, {where})"
