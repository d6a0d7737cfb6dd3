"""Contexts: what a handler gets as ``ctx``, one tiny-listener ``Context`` each.

``EventContext``       a context whose lifetime is counted (rule 1); events run in it
  ``ConnectionContext``  one request or one WebSocket connection: its Request, route, Event
    ``HTTPContext``      one HTTP request: ``ctx.request``, the one reply, body reading
    (``websocket.WebSocket`` is the other ``ConnectionContext``: one WebSocket connection)

Rule 1: **a context lives while it is held.** ``hold()`` / ``release()`` count who still
needs it: the request (or a WebSocket connection) holds it while it runs, every event
triggered in it holds it until its task has finished (``background``). The context is in
``app.ctxs`` exactly while the count is above zero; at zero it is removed and its
``events`` lists are cleared, so nothing it collected is held any longer. (tiny-listener
never drops a context.)

Rule 2: **one reply per request.** Reply helpers only *record* the reply; the app sends
it after the handler and middleware have run, which is what lets middleware change a
response after the handler (``replies.reconcile`` is where a recorded reply meets a
returned one). Reading the body goes through the seam's ``Channel``; the context never
sees a socket or h11.

Readers and repliers have different names: ``await ctx.body()`` / ``read_text()`` /
``read_json()`` / ``form()`` / ``stream()`` read; ``ctx.text(body)`` / ``json(data)`` /
``html()`` / ``response()`` ... reply; one spelling each.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import os
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import parse_qsl

from tiny_listener import Context, Route

from .cookies import EPOCH, SameSite, build_set_cookie
from .errors import HTTPError, ResponseAlreadySent
from .events import Event
from .forms import DEFAULT_MAX_FIELD_SIZE, DEFAULT_MAX_FILES, DEFAULT_SPOOL_MAX_SIZE, FormData, parse_multipart
from .models import HTML, JSON, TEXT, MutableHeaders, Response, dump_json
from .responses import StreamingResponse, serve_file, sse_stream
from .seam import Channel

if TYPE_CHECKING:
    from tiny_listener import Listener

    from .endpoints import Endpoint
    from .models import Request


__all__ = ["DEFAULT_MAX_FORM_FIELDS", "ConnectionContext", "Contexts", "EventContext", "HTTPContext"]

error_log = logging.getLogger("hump_listener.error")

#: Most fields a urlencoded form may have (Werkzeug's max_form_parts is 1000; Django's
#: DATA_UPLOAD_MAX_NUMBER_FIELDS is 1000). More → 413.
DEFAULT_MAX_FORM_FIELDS = 1000


class _Trigger(Protocol):
    def trigger(
        self,
        path: str,
        ctx: EventContext | None = None,
        *,
        timeout: float | None = None,
        data: Mapping[str, Any] | None = None,
        key: str | None = None,
        delay: float | None = None,
    ) -> asyncio.Task[Any]: ...


class _Fires(Protocol):
    """What a context uses of its app (``App``: app.py imports this module, not the
    reverse): the background events, which run events fired by name."""

    background: _Trigger


class EventContext(Context):
    """A tiny-listener ``Context`` whose lifetime is counted (rule 1 above).

    ``HTTPContext`` is one (the request holds it); a per-connection context (WebSocket)
    can be one too: ``hold()`` when the connection opens, ``release()`` when it closes,
    and set ``keep_done_events = False`` so finished events do not pile up for as long as
    the connection lives.
    """

    # Class-level defaults: a request context pays nothing for them until used.
    _holds = 0
    #: Per-route callbacks told of each new event (``wait_event_done`` waiting for
    #: events not triggered yet); ``None`` until someone waits.
    _watchers: dict[Route, list[Callable[[Event], None]]] | None = None
    #: True: finished events stay in ``events`` until the context is dropped (what
    #: ``wait_event_done`` counts). False: each is removed as it finishes (long-lived
    #: contexts).
    keep_done_events = True
    #: Who fires events in a context that is not a request's (for log lines).
    origin = "app.trigger_event"

    # -- lifetime (rule 1) ---------------------------------------------------------------

    @property
    def holds(self) -> int:
        """How many holders (the request or connection, running events) it has."""
        return self._holds

    def hold(self) -> None:
        """Keep this context alive (and in ``app.ctxs``) until a matching ``release()``."""
        if self._holds:
            self._holds += 1
        else:
            self._holds = 1
            self.listener.ctxs[self.cid] = self

    def release(self) -> bool:
        """Undo one ``hold()``; the last one drops the context and clears its events.
        Returns True when the context was dropped."""
        holds = self._holds - 1
        if holds < 0:
            raise RuntimeError(f"{self!r}: release() without a matching hold()")
        self._holds = holds
        if holds:
            return False
        self.listener.ctxs.pop(self.cid, None)
        if self.events:
            self.events.clear()
        self._watchers = None
        return True

    def describe(self) -> str:
        """Who fired the events of this context, for log lines (``GET /signup``)."""
        return self.origin

    # -- events ------------------------------------------------------------------------

    def new_event(self, route: Route, data: dict[str, Any]) -> Event:
        """A new ``Event`` of ``route`` in this context, listed in ``events`` (and told to
        any ``wait_event_done`` waiting for one)."""
        event = Event(self, route, data)
        self.events[route].append(event)
        watchers = self._watchers
        if watchers is not None and route in watchers:
            for notify in list(watchers[route]):
                notify(event)
        return event

    def trigger_event(
        self,
        path: str,
        timeout: float | None = None,
        data: dict[str, Any] | None = None,
        *,
        key: str | None = None,
        delay: float | None = None,
    ) -> asyncio.Task[Any]:
        """Run the event ``path`` in the background, in this context (which stays alive
        until it has finished). Awaiting the task gives the handler's return value, or
        ``None`` if it failed (the error went to ``on_error`` hooks or the log).

        A durable event (``on_event(..., durable=True)``) is stored instead, to run in a
        fresh context on any worker: awaiting the task gives its id once stored;
        ``key=`` (idempotency) and ``delay=`` (seconds) are for those (durable.py)."""
        listener: _Fires = self.listener  # type: ignore[assignment]  # an App
        return listener.background.trigger(path, self, timeout=timeout, data=data, key=key, delay=delay)

    def prune_events(self) -> int:
        """Remove finished events from ``events`` (for long-lived contexts that keep
        them); returns how many were removed."""
        removed = 0
        for route in list(self.events):
            events = self.events[route]
            kept = [e for e in events if not e.is_done]
            removed += len(events) - len(kept)
            if kept:
                events[:] = kept
            else:
                del self.events[route]
        return removed

    def _forget(self, event: Event) -> None:
        events = self.events.get(event.route)
        if events is not None:
            if event in events:
                events.remove(event)
            if not events:
                del self.events[event.route]

    def _watch(self, route: Route, notify: Callable[[Event], None]) -> None:
        if self._watchers is None:
            self._watchers = {}
        self._watchers.setdefault(route, []).append(notify)

    def _unwatch(self, route: Route, notify: Callable[[Event], None]) -> None:
        watchers = self._watchers
        if watchers is None or route not in watchers:
            return
        if notify in watchers[route]:
            watchers[route].remove(notify)
        if not watchers[route]:
            del watchers[route]


class ConnectionContext(EventContext):
    """The context of one request (``HTTPContext``) or one WebSocket connection
    (``WebSocket``): the ``Request`` it came with, the route it matched (``endpoint``,
    ``params``) and the tiny-listener ``Event`` it fired, made on first use."""

    # Set by the app right after construction / routing.
    request: Request
    params: dict[str, Any]
    endpoint: Endpoint | None = None
    _event: Event | None = None

    @property
    def event(self) -> Event:
        """The tiny-listener ``Event`` this request or connection fired (created on first
        use: most handlers never ask for it)."""
        if self._event is None:
            if self.endpoint is None:
                raise RuntimeError("no event yet: the request has not been routed")
            self._event = self.new_event(self.endpoint, {})
        return self._event

    def describe(self) -> str:
        """``GET /signup``: the request that fired this context's events."""
        req = getattr(self, "request", None)
        return f"{req.method} {req.path}" if req is not None else self.origin



class HTTPContext(ConnectionContext):
    """The per-request context handlers receive as ``ctx: HTTPContext``.

    The request holds it while it runs (``EventContext``, rule 1), and so does every event
    triggered in it (``ctx.trigger_event(...)``): it stays alive, in ``app.ctxs``, until
    the request and all those events have finished. A context made for
    ``app.trigger_event`` outside any request has no ``request``.
    """

    # Per-request state, set by the app right after construction / routing (``request``,
    # ``params``, ``endpoint`` and ``event``: see ``ConnectionContext``).
    channel: Channel

    # Per-request state with class-level defaults (as ``EventContext``'s): a request
    # that never uses one pays nothing for it; the first write makes it the instance's.
    #: The reply recorded by ``ctx.response()`` and friends.
    reply: Response | None = None
    #: The route's body limit (set by routing), else the server's.
    max_body_size: int | None = None
    _body: bytes | None = None
    _streamed = False
    #: Callables run (last first) when the request ends, after the response is sent:
    #: closing uploaded files and the like. Errors are logged, never raised. ``()``
    #: until the first one (``_add_cleanup``).
    _cleanups: list[Callable[[], object]] | tuple[()] = ()
    #: Set-Cookie values, keyed by (name, path, domain): setting a cookie again replaces
    #: it. ``None`` until the first ``set_cookie``.
    _set_cookies: dict[tuple[str, str | None, str | None], str] | None = None
    _form: FormData | None = None

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

    def text(self, body: str, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
        """Reply ``text/plain; charset=utf-8``: ``ctx.text("hi")`` (``read_text()`` reads)."""
        return self.set_reply(Response(str(body), status, headers))

    def html(self, body: str, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
        """Reply with ``body`` as ``text/html; charset=utf-8``."""
        return self.set_reply(Response(body, status, headers, HTML))

    def json(self, data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
        """Reply ``application/json``: ``ctx.json({"ok": True}, status=201)`` (``read_json()``
        reads)."""
        return self.set_reply(Response(dump_json(data), status, headers, JSON))

    def render(self, template: str, /, **values: Any) -> Response:
        """Reply with the HTML of ``template`` rendered with ``values`` (Jinja2,
        autoescaped; the template also sees ``request``): ``ctx.render("page.html",
        user=user)``. The templates are ``app.templates`` (``hump_listener.templating``)."""
        from .templating import render

        return self.html(render(self, template, values))

    @property
    def session(self) -> dict[str, Any]:
        """This request's session, a dict kept in a signed cookie: set up with
        ``Sessions(app)`` (``hump_listener.sessions``); changes are sent with the reply."""
        from .sessions import session_of

        return session_of(self)

    def redirect(self, url: str, status: int = 307, headers: Mapping[str, str] | None = None) -> Response:
        """Reply with a redirect to ``url`` (``Location``): 307 by default, which keeps the
        method; 303 after a POST."""
        all_headers = {**(headers or {}), "Location": url}
        return self.set_reply(Response(b"", status, all_headers))

    def throw(self, status: int, detail: str | None = None, headers: Mapping[str, str] | None = None) -> None:
        """Stop the handler here and answer ``status`` (raises ``HTTPError``, like
        Flask's ``abort``); ``detail`` defaults to the reason phrase."""
        raise HTTPError(status, detail, headers)

    def throw_404(self, detail: str | None = None) -> None:
        """Raise ``HTTPError(404, detail)``: the handler stops, the client gets a 404."""
        raise HTTPError(404, detail)

    def throw_500(self, detail: str | None = None) -> None:
        """Raise ``HTTPError(500, detail)``: the handler stops, the client gets a 500."""
        raise HTTPError(500, detail)

    def stream_response(
        self,
        content: AsyncIterable[bytes | str],
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        content_type: str | None = TEXT,
    ) -> Response:
        """Reply with the chunks of ``content`` as they come (chunked encoding). If the
        client goes away the iterator is closed (``aclose``), so its ``finally`` runs. At a
        shutdown the stream drains like any request (it may be a finite download); an SSE
        stream (``sse``) is ended at once instead."""
        return self.set_reply(StreamingResponse(content, status, headers, content_type))

    def sse(
        self,
        events: AsyncIterable[str | bytes | Mapping[str, Any]],
        ping: float | None = 15.0,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Reply with Server-Sent Events. An event is a str (the data) or a dict with
        ``data`` / ``event`` / ``id`` / ``retry`` / ``comment``; while ``events`` is idle,
        a ``: ping`` comment goes out every ``ping`` seconds (``None``: never)."""
        all_headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **(headers or {})}
        return self.set_reply(
            StreamingResponse(
                sse_stream(events, ping), 200, all_headers, "text/event-stream; charset=utf-8", endless=True
            )
        )

    def file(
        self,
        path: str | os.PathLike[str],
        filename: str | None = None,
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Reply with a file, sent with ``sendfile``; ``filename`` makes it a download
        (``Content-Disposition: attachment``). Conditional and range requests are
        answered (304 / 206 / 416), so downloads can resume. A missing file is 404."""
        return self.set_reply(
            serve_file(path, self.request.headers, headers=headers, content_type=content_type, filename=filename)
        )

    # -- cookies -----------------------------------------------------------------------

    def set_cookie(
        self,
        name: str,
        value: str,
        max_age: int | None = None,
        expires: datetime | int | str | None = None,
        path: str | None = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: SameSite | None = "lax",
    ) -> None:
        """Send ``Set-Cookie`` with this request's response, whichever it ends up being
        (an ``HTTPError`` answer included, not a 5xx). Setting the same name, path and
        domain again replaces the earlier value. Invalid names raise ``ValueError``."""
        header = build_set_cookie(
            name, value, max_age=max_age, expires=expires, path=path, domain=domain,
            secure=secure, httponly=httponly, samesite=samesite,
        )
        if self._set_cookies is None:
            self._set_cookies = {}
        self._set_cookies[(name, path, domain)] = header

    def delete_cookie(
        self,
        name: str,
        path: str | None = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: SameSite | None = "lax",
    ) -> None:
        """Tell the browser to drop a cookie (same ``path`` and ``domain`` as it was set with)."""
        self.set_cookie(
            name, "", max_age=0, expires=EPOCH, path=path, domain=domain,
            secure=secure, httponly=httponly, samesite=samesite,
        )

    # -- the end of the request (called by the app) ---------------------------------------

    def _finish_response(self, response: Response) -> Response:
        """The response to send: ``response`` plus the cookies set on the context.

        A copy gets the ``Set-Cookie`` headers, because a handler may return the same
        ``Response`` object for many requests. 5xx answers get none: the request failed
        half-way, and a half-done login should not hand out its session cookie."""
        if not self._set_cookies or response.status >= 500:
            return response
        finished = copy.copy(response)
        finished.headers = MutableHeaders(list(response.headers.raw))
        for header in self._set_cookies.values():
            finished.headers.add("Set-Cookie", header)
        return finished

    def _add_cleanup(self, cleanup: Callable[[], object]) -> None:
        """Run ``cleanup`` when the request ends (``_run_cleanups``)."""
        if not self._cleanups:
            self._cleanups = []
        self._cleanups.append(cleanup)  # a list from here on

    def _run_cleanups(self) -> None:
        """Run the cleanups (last registered first); log, never raise."""
        cleanups, self._cleanups = self._cleanups, ()
        for cleanup in reversed(cleanups):
            try:
                cleanup()
            except Exception as exc:
                error_log.error("request cleanup %r failed", cleanup, exc_info=exc)

    # -- the request body --------------------------------------------------------------

    async def stream(self) -> AsyncIterator[bytes]:
        """Yield the body as it arrives (flow-controlled); each byte is read once."""
        if self._body is not None:
            if self._body:
                yield self._body
            return
        limit = self._start_reading()
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
            # The same loop as stream(), without an async generator per request.
            limit = self._start_reading()
            chunks: list[bytes] = []
            received = 0
            receive = self.channel.receive
            while chunk := await receive():
                received += len(chunk)
                if limit is not None and received > limit:
                    raise HTTPError(413, f"Request body larger than {limit} bytes")
                chunks.append(chunk)
            self._body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        return self._body

    def _start_reading(self) -> int | None:
        """Mark the body as being consumed; refuse (413) before reading a body whose
        declared Content-Length is over the limit. Returns the limit."""
        if self._streamed:
            raise RuntimeError("the request body has already been streamed")
        self._streamed = True
        limit = self.max_body_size
        if limit is not None:
            declared = self.request.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise HTTPError(413, f"Request body larger than {limit} bytes")
        return limit

    async def read_text(self) -> str:
        """The body as ``str``, decoded by the declared charset (UTF-8 by default); one
        that does not decode is 400."""
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

    async def read_json(self) -> Any:
        """The body parsed as JSON; invalid JSON is 400."""
        body = await self.body()
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise HTTPError(400, f"Invalid JSON body: {e}") from None

    async def form(
        self,
        max_fields: int = DEFAULT_MAX_FORM_FIELDS,
        *,
        max_files: int = DEFAULT_MAX_FILES,
        max_field_size: int = DEFAULT_MAX_FIELD_SIZE,
        max_file_size: int | None = None,
        spool_max_size: int = DEFAULT_SPOOL_MAX_SIZE,
    ) -> FormData:
        """Parse a form body (parsed once, then cached; the limits apply to that parse).

        ``application/x-www-form-urlencoded``: stdlib ``parse_qsl``, values are ``str``.
        ``multipart/form-data`` (needs ``pip install hump_listener[multipart]``): parsed as
        it streams in; files are ``UploadFile`` objects, spooled to disk above
        ``spool_max_size`` and closed when the request ends. Too many fields or files, or
        one too large: 413; a malformed body: 400; another content type: 415.
        """
        if self._form is not None:
            return self._form
        ctype = self.request.content_type.split(";")[0].strip().lower()
        if ctype == "multipart/form-data":
            self._form = await parse_multipart(
                self.stream(), self.request.content_type, max_fields=max_fields, max_files=max_files,
                max_field_size=max_field_size, max_file_size=max_file_size, spool_max_size=spool_max_size,
            )
            self._add_cleanup(self._form.close)
            return self._form
        if ctype not in ("application/x-www-form-urlencoded", ""):
            raise HTTPError(415, f"Expected a form (urlencoded or multipart), got {ctype!r}")
        body = await self.body()
        try:
            pairs = parse_qsl(
                body.decode("latin-1"), keep_blank_values=True, max_num_fields=max_fields,
                encoding="utf-8", errors="strict",
            )
        except ValueError as e:
            status = 413 if "Max number of fields" in str(e) else 400
            raise HTTPError(status, f"Invalid form: {e}") from None
        self._form = FormData(pairs)
        return self._form

    def __repr__(self) -> str:
        req = getattr(self, "request", None)
        where = f"{req.method} {req.path}" if req else "-"
        return f"{type(self).__name__}(cid={self.cid}, {where})"


C = TypeVar("C", bound=EventContext)


class Contexts:
    """Makes every context the app serves (server lifetime), numbered by the one counter
    of context ids: requests ``"1"``, ``"2"`` ..., WebSocket connections the same way,
    contexts of events fired outside any request ``"event-3"``.

    ``http_cls`` is the class of request contexts (``app.set_context_cls``)."""

    __slots__ = ("http_cls", "last_id", "listener")

    def __init__(self, listener: Listener[Any]) -> None:
        self.listener = listener
        self.http_cls: type[HTTPContext] = HTTPContext
        #: The last id given (0: none yet).
        self.last_id = 0

    def request(self) -> HTTPContext:
        """A new request context (not yet held: the request path holds it)."""
        self.last_id = cid = self.last_id + 1
        return self.http_cls(self.listener, str(cid))

    def make(self, kls: type[C], prefix: str = "") -> C:
        """A new context of class ``kls`` (a WebSocket connection's, ...)."""
        self.last_id = cid = self.last_id + 1
        return kls(self.listener, f"{prefix}{cid}")

    def for_event(self) -> HTTPContext:
        """A fresh context for an event fired outside any request (``event-N``)."""
        return self.make(self.http_cls, "event-")
