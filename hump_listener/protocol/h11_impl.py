"""HTTP/1.1 over an asyncio transport: one ``H11Protocol`` per connection, one
``RequestCycle`` (our ``seam.Channel``) per request.

h11 parses requests; we write responses. Policy choices, in the order a request meets them
(RFC 9110 / RFC 9112):

1. Head pre-scan. Until a request head is complete its bytes stay in our buffer, not h11's.
   We skip empty lines before the request line (RFC 9112 §2.2), reject a first byte that
   cannot start a method at once (TLS handshakes, binary garbage), reject obs-fold (§5.2;
   h11 would silently unfold it), and enforce ``max_request_line`` (414) and
   ``max_head_size`` (431). h11 is then fed exactly one head.
2. h11 checks the rest of the syntax: method token, target octets (no CTL, space or
   non-ASCII), field names and values (NUL, whitespace before the colon), Content-Length
   forms and conflicts, missing or repeated Host, and Transfer-Encoding other than a single
   final ``chunked`` (501). We add what h11 lets through: Content-Length together with
   Transfer-Encoding (400: request smuggling, §6.1), an invalid Host value, a target in
   none of the four forms (§3.2), and an HTTP major version other than 1 (505).
3. Every error the protocol answers itself carries ``Connection: close`` and closes.
4. Responses are serialised here, not by ``h11.Connection.send``: ``respond()`` costs one
   ``transport.write`` and no h11 event validation. h11 never sees our side, so after each
   request a fresh ``h11.Connection`` takes over h11's unparsed bytes (as cheap as
   ``start_next_cycle`` and h11 is never left in a state we did not drive). Framing follows
   §6.3: the app's Content-Length if given, else chunked to HTTP/1.1 and close-delimited to
   HTTP/1.0; HEAD, 204 and 304 never carry a body. Header values containing CR or LF are
   refused (response splitting).
5. Keep-alive only when h11 reports the client side ``DONE`` (request complete, HTTP/1.1, no
   ``Connection: close``), the app did not send ``Connection: close``, the client has not
   half-closed and the server is not shutting down; otherwise the response says
   ``Connection: close`` and we close after it. HTTP/1.0 always closes (h11's policy;
   ``Connection: keep-alive`` from 1.0 clients is not honoured). A response started before
   the request body was fully received therefore closes the connection.
6. Pipelining: a request is parsed only once its predecessor's response is complete; bytes
   that arrive meanwhile are held and reading is paused (read-ahead: one socket read).
7. ``Expect: 100-continue`` (HTTP/1.1 only) is answered when the app first waits in
   ``receive()`` for body bytes, never after a final response started.
8. Timeouts are ``loop.call_later`` handles: first byte (quiet close), head (408), keep-alive
   (quiet close), body (408; counts only time the app spends waiting, see
   ``ServerConfig.body_timeout``), handler (503, or close once started).
9. No exception escapes an ``asyncio.Protocol`` callback: each one logs and aborts. App
   errors get a 500 if no response started, a close otherwise (``hump_listener.error``).
10. h11 parses every request head (and validates its framing headers) and decodes chunked
   bodies; a request without Content-Length or Transfer-Encoding has no body (§6.3), and a
   Content-Length body is framed by counting its bytes. h11's body events would cost as
   much again as the head (~10 µs for a GET's EndOfMessage alone), and since each request
   gets a fresh ``h11.Connection`` its state after the head is never consulted: whether
   the connection continues is decided from the head, as h11 would (policy 5).
11. Lingering close (nginx's ``lingering_close``): when we close a connection whose client
   may still be sending (an error answered mid-request, a body left unread), we half-close
   and discard its bytes until it closes or ``linger_timeout`` passes. Closing with unread
   bytes in the kernel's buffer sends a reset, and the reset can destroy the response we
   just wrote (the 413 a client uploading too much should see).
"""

from __future__ import annotations

import asyncio
import logging
import re
from http import HTTPStatus
from typing import IO, TYPE_CHECKING

from hump_listener.protocol.flow_control import FlowControl
from hump_listener.seam import ClientDisconnect, HeaderList, RequestHead, SeamApp

if TYPE_CHECKING:
    import h11  # the same API as the compiled build; typed against the pure one

    from hump_listener.protocol.server import ServerState
else:
    from hump_listener.protocol.parser import h11

__all__ = ["STATUS_LINES", "H11Protocol", "RequestCycle"]

logger = logging.getLogger("hump_listener.error")

_CLASS_PHRASES = {1: "Informational", 2: "Success", 3: "Redirection", 4: "Client Error", 5: "Server Error"}


def _status_line(status: int) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = _CLASS_PHRASES[status // 100]
    return b"HTTP/1.1 %d %s\r\n" % (status, phrase.encode("ascii"))


#: Pre-encoded status lines, with a reason phrase for every code (h11 would send none).
STATUS_LINES: dict[int, bytes] = {status: _status_line(status) for status in range(100, 600)}

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_CRLF = b"\r\n"
_LAST_CHUNK = b"0\r\n\r\n"
_CLOSE_LINE = b"connection: close\r\n"
_CHUNKED_LINE = b"transfer-encoding: chunked\r\n"
_KEEP_ALIVE_LINE = b"connection: keep-alive\r\n"


def _can_write_eof(transport: asyncio.BaseTransport) -> bool:
    try:
        return isinstance(transport, asyncio.WriteTransport) and transport.can_write_eof()
    except NotImplementedError:
        return False


#: End of a head, as h11 finds it (bare LF line endings are tolerated, RFC 9112 §2.2).
_HEAD_END = re.compile(rb"\n\r?\n")
#: Octets that may start a request line: tchar (RFC 9110 §5.6.2), the first octet of a method.
_METHOD_START = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
#: First octets of a TLS (0x16) or SSLv2 (0x80) ClientHello: logged as such.
_TLS_START = frozenset((0x16, 0x80))
#: Host = uri-host [ ":" port ] (RFC 9110 §7.2, RFC 3986 §3.2.2); empty is allowed.
_HOST = re.compile(rb"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]*)?")
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

# Response body framing (RFC 9112 §6.3), chosen when the response starts.
_NO_BODY = 0  # HEAD, 204, 304: data is dropped
_LENGTH = 1  # Content-Length given by the app
_CHUNKED = 2  # HTTP/1.1 without Content-Length
_UNTIL_CLOSE = 3  # HTTP/1.0 without Content-Length: the close ends the body


def _peer(address: object) -> tuple[str, int] | None:
    if isinstance(address, tuple) and len(address) >= 2:
        return (str(address[0]), int(address[1]))
    return None


class H11Protocol(asyncio.Protocol):
    """One HTTP/1.1 connection (connection lifetime)."""

    def __init__(self, state: ServerState) -> None:
        # Shared server state
        self.state = state
        self.config = config = state.config
        self.loop = state.loop
        self.app: SeamApp = state.app

        # Per-connection state
        self.transport: asyncio.Transport
        self.flow: FlowControl
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=config.max_head_size)
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int] | None = None
        self.scheme = "http"
        self.sendfile_native = False
        #: Received bytes not yet handed to h11: a partial head, or pipelined requests.
        self._buf = bytearray()
        #: The one connection-level timer: first-byte, head or keep-alive.
        self._timer: asyncio.TimerHandle | None = None
        #: The keep-alive timer, armed once and re-armed only when it fires early (a
        #: ``call_later`` + ``cancel`` per request would cost ~2 µs); ``_idle_since`` is
        #: when the connection last became idle, ``None`` while a request is under way.
        self._idle_timer: asyncio.TimerHandle | None = None
        self._idle_since: float | None = None
        #: A head's first byte arrived and ``_timer`` is the head timer.
        self._head_started = False
        #: The client half-closed (no more requests will come).
        self._eof = False
        #: We closed the transport, or lost it.
        self._closed = False
        #: Closed on our side, still reading (and discarding) what the client sends.
        self._lingering = False

        # Per-request state
        self.cycle: RequestCycle | None = None

    # asyncio.Protocol callbacks: each one catches everything (policy 9).

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        try:
            assert isinstance(transport, asyncio.Transport)
            self.transport = transport
            self.flow = FlowControl(transport, self.loop)
            config, state = self.config, self.state
            self.client = _peer(transport.get_extra_info("peername"))
            self.server = _peer(transport.get_extra_info("sockname"))
            if transport.get_extra_info("sslcontext") is not None:
                self.scheme = "https"
            else:
                self.sendfile_native = transport.get_extra_info("socket") is not None
            transport.set_write_buffer_limits(high=config.write_high_water)
            if state.shutting_down or len(state.connections) >= config.max_connections:
                if not state.shutting_down:
                    logger.warning("connection limit (%d) reached: 503", config.max_connections)
                transport.write(state.simple_response(503))
                self._closed = True
                transport.close()
                return
            state.connections.add(self)
            self._timer = self.loop.call_later(config.first_byte_timeout, self._on_idle_timeout)
        except Exception:
            self._crash("connection_made")

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            self._closed = True
            self.state.connection_closed(self)
            self._cancel_timers()
            if self.cycle is not None:
                self.cycle._lost()
            self.flow.resume_writing()  # wake any writer waiting to drain
        except Exception:
            logger.exception("error in connection_lost")

    def eof_received(self) -> bool:
        if self._lingering:
            return False  # the client has finished sending: close now
        try:
            self._eof = True
            if self.cycle is None and self._buf and not self._closed:
                self._process_head(self._buf)  # complete pipelined requests are still answered
            cycle = self.cycle
            if cycle is not None and not cycle.complete:
                if cycle.body_done:
                    return True  # half-close after a complete request: still answer it
                cycle._lost()  # mid-body: the request can never complete
        except Exception:
            self._crash("eof_received")
        return False

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # the rest of a request we answered without reading: discard it
        try:
            cycle = self.cycle
            if cycle is None:
                self._receive_head(data)
            elif not cycle.body_done:
                if cycle.length_left >= 0:
                    self._feed_length(cycle, data)
                else:
                    self.conn.receive_data(data)
                    self._read_body(cycle)
            else:
                # A pipelined request: it waits, and so does the socket (policy 6).
                self._buf += data
                self.flow.pause_reading()
        except Exception:
            self._crash("data_received")

    def pause_writing(self) -> None:
        self.flow.pause_writing()

    def resume_writing(self) -> None:
        self.flow.resume_writing()

    # Request heads

    def _receive_head(self, data: bytes) -> None:
        self._idle_since = None  # busy: a pending keep-alive check finds nothing to do
        if self._timer is not None and not self._head_started:
            self._timer.cancel()  # the first-byte timer: the client is active
            self._timer = None
        buf = self._buf
        if buf:
            buf += data
            self._process_head(buf)
        else:
            self._process_head(data)

    def _process_head(self, data: bytes | bytearray) -> None:
        """Validate the raw head at the start of ``data`` and hand it to h11 (policy 1)."""
        config = self.config
        if data[0] in (13, 10):  # CR, LF: empty lines before a request line are ignored
            data = data.lstrip(b"\r\n")
            if not data:
                self._buf = bytearray()
                self._start_head_timer()
                return
        if data[0] not in _METHOD_START:
            if data[0] in _TLS_START:
                logger.info("%s - TLS handshake on a plain-HTTP port: closing", self._who())
                self._close()
            else:
                self._reject(400, "invalid request line")
            return
        match = _HEAD_END.search(data)
        if match is None:
            if len(data) > config.max_request_line and data.find(b"\n", 0, config.max_request_line) == -1:
                self._reject(414, "request line too long")
            elif len(data) > config.max_head_size:
                self._reject(431, "request head too large")
            elif self._eof:
                self._close()  # the head can never complete
            else:
                self._buf = data if isinstance(data, bytearray) else bytearray(data)
                self._start_head_timer()
            return
        end = match.end()
        line_end = data.find(b"\n", 0, end)
        if line_end > config.max_request_line:
            self._reject(414, "request line too long")
            return
        if end > config.max_head_size:
            self._reject(431, "request head too large")
            return
        if data.find(b"\n ", line_end, end) != -1 or data.find(b"\n\t", line_end, end) != -1:
            self._reject(400, "obsolete line folding")
            return
        if self._head_started:
            self._head_started = False
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        self._buf = bytearray(data[end:]) if len(data) > end else bytearray()
        conn = self.conn
        conn.receive_data(bytes(data[:end]))  # no copy when data is bytes of exactly one head
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            self._reject(exc.error_status_hint, str(exc))
            return
        if type(event) is not h11.Request:  # h11 was fed a complete head: cannot happen
            self._reject(400, "incomplete request head")
            return
        self._start_request(event)

    def _start_head_timer(self) -> None:
        if not self._head_started:
            self._head_started = True
            self._timer = self.loop.call_later(self.config.head_timeout, self._on_head_timeout)

    def _start_request(self, event: h11.Request) -> None:
        """Check what h11 lets through (policy 2), then run the app in a task of its own."""
        version = event.http_version
        if version == b"1.1":
            http_version = "1.1"
        elif version == b"1.0":
            http_version = "1.0"
        elif version[:2] == b"1.":
            http_version = "1.1"  # a later 1.x minor version is served as 1.1 (RFC 9110 §2.5)
        else:
            self._reject(505, "unsupported HTTP version")
            return
        # Names lower-cased by h11.
        if _FULL_ITEMS:
            headers: HeaderList = [(name, value) for _, name, value in event.headers._full_items]
        else:
            headers = list(event.headers)
        host: bytes | None = None
        framing = 0
        length: bytes | None = None  # h11 has validated it: digits, one value
        close = False
        upgrade = False
        ask_keep_alive = False
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
                upgrade = True
        if framing > 1:
            self._reject(400, "both Content-Length and Transfer-Encoding")
            return
        if host is not None and _HOST.fullmatch(host) is None:
            self._reject(400, "invalid Host")
            return
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
                self._reject(400, "invalid request-target")
                return

        head = RequestHead(
            method.decode("ascii"), target, http_version, headers, self.client, self.server, self.scheme
        )
        conn = self.conn
        cycle = self.cycle = RequestCycle(self, head, conn.they_are_waiting_for_100_continue)
        # Policy 5: keep-alive as h11 would decide it (1.1 unless "close"; 1.0 only when
        # asked; never after an Upgrade or CONNECT we do not perform).
        cycle.client_keep_alive = (
            not close and not upgrade and method != b"CONNECT"
            and (http_version == "1.1" or ask_keep_alive)
        )
        if framing == 0:
            # No Content-Length or Transfer-Encoding: no body (RFC 9112 §6.3). Policy 10:
            # h11's EndOfMessage would cost as much as parsing the head did.
            cycle._feed_end()
        elif length is not None:
            # A Content-Length body is framed by counting (policy 10); h11 checked the value.
            cycle.length_left = int(length)
            rest, self._buf = self._buf, bytearray()
            self._feed_length(cycle, rest)
        else:  # chunked: h11 decodes it
            if not self._read_body(cycle):
                return
            rest = self._buf
            if rest and not cycle.body_done:
                self._buf = bytearray()
                conn.receive_data(bytes(rest))
                if not self._read_body(cycle):
                    return
        if self._buf:
            self.flow.pause_reading()  # pipelined bytes already here: read no further

        state = self.state
        task = self.loop.create_task(cycle.run(self.app))
        cycle.task = task
        state.tasks.add(task)  # run() removes it as its last step (no done-callback round trip)
        if self.config.handler_timeout is not None:
            cycle.handler_timer = self.loop.call_later(self.config.handler_timeout, cycle._on_handler_timeout)

    # Request bodies

    def _feed_length(self, cycle: RequestCycle, data: bytes | bytearray) -> None:
        """Hand up to ``cycle.length_left`` bytes of a Content-Length body to the cycle;
        bytes beyond it belong to the next request and wait in ``_buf`` (policy 6)."""
        left = cycle.length_left
        if len(data) > left:
            self._buf += data[left:]
            data = data[:left]
            self.flow.pause_reading()
        if data:
            cycle.length_left = left - len(data)
            cycle._feed(bytes(data))
        if cycle.length_left == 0:
            cycle._feed_end()
        elif cycle._buffered > self.config.body_high_water:
            self.flow.pause_reading()

    def _read_body(self, cycle: RequestCycle) -> bool:
        """Move h11's body events into the cycle; False if the body was malformed."""
        conn = self.conn
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                logger.info("%s - invalid request body: %s", self._who(), exc)
                cycle._abort(exc.error_status_hint)
                return False
            if event is h11.NEED_DATA or event is h11.PAUSED:
                break
            if type(event) is h11.Data:
                cycle._feed(bytes(event.data))
            elif type(event) is h11.EndOfMessage:
                cycle._feed_end()
                break
            else:  # ConnectionClosed: never fed to h11, so unreachable
                break
        if cycle._buffered > self.config.body_high_water:
            self.flow.pause_reading()
        return True

    # End of a request cycle

    def _cycle_done(self, cycle: RequestCycle, keep_alive: bool) -> None:
        if self.cycle is not cycle:
            return
        self.cycle = None
        if self._closed:
            return
        conn = self.conn
        if not keep_alive or not cycle.body_done or self.state.shutting_down:
            self._close(linger=not cycle.body_done)
            return
        trailing = conn.trailing_data[0]
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.config.max_head_size)
        if trailing:
            self._buf[:0] = trailing
        self.flow.resume_reading()
        if self._buf:
            # Parse the next pipelined request from the loop, not from inside the app's call.
            self.loop.call_soon(self._resume_pipeline)
        elif self._eof:
            self._close()
        else:
            self._idle_since = self.loop.time()
            if self._idle_timer is None:
                self._idle_timer = self.loop.call_later(self.config.keep_alive_timeout, self._on_keep_alive_check)

    def _resume_pipeline(self) -> None:
        try:
            if self.cycle is None and self._buf and not self._closed:
                self._process_head(self._buf)
        except Exception:
            self._crash("pipelined request")

    # Server-driven endings

    def shutdown(self) -> None:
        """Graceful shutdown: close now if idle, else after the current response."""
        if self.cycle is None:
            self._close()

    def cancel_request(self) -> None:
        """Shutdown deadline passed: 503 if no response started, else close."""
        if self.cycle is not None:
            self.cycle._abort(503)

    def abort(self) -> None:
        self._closed = True
        self.transport.abort()

    # Timers

    def _cancel_timers(self) -> None:
        """Stop the connection-level timers (first-byte/head and keep-alive)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _on_idle_timeout(self) -> None:
        self._timer = None
        self._close()

    def _on_keep_alive_check(self) -> None:
        """Close if idle for ``keep_alive_timeout``; if the connection has been busy since
        the timer was armed, wait out the rest of the new idle period."""
        self._idle_timer = None
        since = self._idle_since
        if self._closed or since is None:
            return  # closed, or serving a request: the request's end arms it again
        remaining = since + self.config.keep_alive_timeout - self.loop.time()
        if remaining > 0:
            self._idle_timer = self.loop.call_later(remaining, self._on_keep_alive_check)
        else:
            self._close()

    def _on_head_timeout(self) -> None:
        self._timer = None
        self._head_started = False
        if self._buf:
            self._reject(408, "request head timeout")
        else:
            self._close()

    # Helpers

    def _who(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else "client"

    def _reject(self, status: int, reason: str) -> None:
        """Answer a request we could not parse, and close (policy 3)."""
        logger.info("%s - %d %s", self._who(), status, reason)
        if not self._closed:
            self.transport.write(self.state.simple_response(status))
        self._close(linger=True)

    def _close(self, linger: bool = False) -> None:
        """Close the connection. ``linger``: the client may still be sending (a request
        we did not read to its end), so half-close and discard its bytes for a while
        first (policy 11)."""
        if not self._closed:
            self._closed = True
            self._cancel_timers()
            transport = self.transport
            if linger and not self._eof and _can_write_eof(transport):
                self._lingering = True
                transport.write_eof()  # our FIN follows the response
                self._timer = self.loop.call_later(self.config.linger_timeout, transport.close)
            else:
                transport.close()
            self.flow.resume_reading()
            self.flow.resume_writing()
        if self.cycle is not None:
            self.cycle._lost()

    def _crash(self, where: str) -> None:
        logger.exception("internal error in %s; closing the connection", where)
        try:
            self._closed = True
            self.transport.abort()
            if self.cycle is not None:
                self.cycle._lost()
        except Exception:
            logger.exception("error while aborting the connection")


class RequestCycle:
    """One request and its response (request lifetime); implements ``seam.Channel``."""

    __slots__ = (
        "_buffered",
        "_chunks",
        "_expect_100",
        "_framing",
        "_keep_alive",
        "_proto",
        "_received",
        "_remaining",
        "_waited",
        "_waiter",
        "body_done",
        "client_keep_alive",
        "complete",
        "disconnected",
        "handler_timer",
        "head",
        "length_left",
        "started",
        "task",
    )

    def __init__(self, proto: H11Protocol, head: RequestHead, expect_100: bool) -> None:
        self._proto = proto
        self.head = head
        self.task: asyncio.Task[None] | None = None
        self.handler_timer: asyncio.TimerHandle | None = None
        # Request body
        self._chunks: list[bytes] = []
        self._buffered = 0  # bytes in _chunks
        self._received = 0  # body bytes received so far
        self._waited = 0.0  # seconds the app spent waiting for body bytes
        self._waiter: asyncio.Future[None] | None = None  # only while the app waits
        self._expect_100 = expect_100
        self.body_done = False
        self.disconnected = False
        # Response
        self.started = False
        self.complete = False
        self._framing = _NO_BODY
        self._remaining = 0  # Content-Length bytes still to write
        self._keep_alive = False
        # Request framing (set by the protocol): -1 unless a Content-Length body is
        # being counted; whether the client allows another request after this one.
        self.length_left = -1
        self.client_keep_alive = False

    # Running the app (policy 9)

    async def run(self, app: SeamApp) -> None:
        try:
            await app(self.head, self)
        except asyncio.CancelledError:
            self._abort(503)
            raise
        except ClientDisconnect:
            if not self.disconnected:
                logger.error("app raised ClientDisconnect on a live connection")
            self._abort(500)
        except Exception:
            logger.exception("Exception in app for %s %r", self.head.method, self.head.target)
            self._abort(500)
        else:
            if not self.started:
                if not self.disconnected:
                    logger.error("app returned without responding to %s %r", self.head.method, self.head.target)
                self._abort(500)
            elif not self.complete:
                logger.error("app returned without ending the response")
                self._abort(500)
        finally:
            if self.handler_timer is not None:
                self.handler_timer.cancel()
            if self.task is not None:
                self._proto.state.tasks.discard(self.task)

    def _abort(self, status: int) -> None:
        """End the cycle abnormally: ``status`` if no response started, then close.

        A no-op once the response is complete: the connection may be serving the next
        request by then."""
        if self.complete:
            return
        proto = self._proto
        if not self.started and not self.disconnected and not proto._closed:
            proto.transport.write(proto.state.simple_response(status))
        self.started = self.complete = True
        self._lost()  # the app's further calls become no-ops / ClientDisconnect
        proto._cycle_done(self, keep_alive=False)

    def _on_handler_timeout(self) -> None:
        self.handler_timer = None
        if not self.complete:
            logger.warning("handler timeout for %s %r", self.head.method, self.head.target)
            self._abort(503)
            if self.task is not None:
                self.task.cancel()

    # Request body (seam.Channel)

    async def receive(self) -> bytes:
        while True:
            chunks = self._chunks
            if chunks:
                data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                chunks.clear()
                self._buffered = 0
                if not self.body_done:
                    self._proto.flow.resume_reading()
                return data
            if self.body_done:
                return b""
            if self.disconnected:
                raise ClientDisconnect()
            if self._expect_100:
                self._expect_100 = False
                if not self.started:
                    self._proto.transport.write(_CONTINUE)
            await self._wait_for_body()

    async def _wait_for_body(self) -> None:
        proto = self._proto
        loop = proto.loop
        config = proto.config
        timer = None
        if config.body_timeout is not None:
            allowance = config.body_timeout
            if config.body_min_rate > 0:
                allowance += self._received / config.body_min_rate - self._waited
            timer = loop.call_later(max(allowance, 0.0), self._on_body_timeout)
        waiter = self._waiter = loop.create_future()
        started = loop.time()
        try:
            await waiter
        finally:
            self._waiter = None
            if config.body_min_rate > 0:
                self._waited += loop.time() - started
            if timer is not None:
                timer.cancel()

    def _on_body_timeout(self) -> None:
        logger.info("%s - request body too slow: 408", self._proto._who())
        self._abort(408)

    def _feed(self, data: bytes) -> None:
        self._chunks.append(data)
        n = len(data)
        self._buffered += n
        self._received += n
        self._wake()

    def _feed_end(self) -> None:
        self.body_done = True
        self._wake()

    def _lost(self) -> None:
        self.disconnected = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # Response (seam.Channel)

    def _head(self, status: int, headers: HeaderList, body: bytes | None) -> bytes:
        """Serialise the status line and header section; choose framing (policy 4, 5)."""
        if status < 200 or status > 599:
            raise ValueError(f"invalid final status code: {status}")
        proto = self._proto
        state = proto.state
        # Keep-alive needs the whole request received, the client willing, and (after a
        # half-close) a request already buffered to follow this one.
        keep_alive = (
            self.body_done and self.client_keep_alive and not state.shutting_down
            and (not proto._eof or bool(proto._buf))
        )
        # HTTP/1.0 keeps the connection only when asked (RFC 9112 Appendix C.2.2), and
        # the response says so.
        keep_alive_10 = keep_alive and self.head.http_version == "1.0"
        parts = [STATUS_LINES[status], state.server_headers]
        lines = 2 + state.server_header_lines  # status line + blank line + server lines
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
            parts += (name, b": ", value, _CRLF)
            lines += 1
        if status == 204 or status == 304 or self.head.method == "HEAD":
            self._framing = _NO_BODY
        elif length is not None:
            if not length.isdigit():
                raise ValueError(f"invalid Content-Length: {length!r}")
            self._framing = _LENGTH
            self._remaining = int(length)
        elif body is not None:
            parts.append(b"content-length: %d\r\n" % len(body))
            lines += 1
            self._framing = _LENGTH
            self._remaining = len(body)
        elif self.head.http_version == "1.1":
            parts.append(_CHUNKED_LINE)
            lines += 1
            self._framing = _CHUNKED
        else:
            self._framing = _UNTIL_CLOSE
            keep_alive = False
        if not keep_alive:
            parts.append(_CLOSE_LINE)
            lines += 1
        elif keep_alive_10:
            parts.append(_KEEP_ALIVE_LINE)
            lines += 1
        parts.append(_CRLF)
        out = b"".join(parts)
        if out.count(b"\n") != lines or out.count(b"\r") != lines:
            raise ValueError("CR or LF in a response header")
        self._keep_alive = keep_alive
        return out

    def respond(self, status: int, headers: HeaderList, body: bytes) -> None:
        if self.disconnected:  # silent: the client is gone (or the server already answered)
            self.started = self.complete = True
            return
        if self.started:
            raise RuntimeError("response already started")
        out = self._head(status, headers, body)
        if self._framing == _LENGTH:
            if self._remaining != len(body):
                raise ValueError(f"Content-Length {self._remaining} does not match a {len(body)}-byte body")
            out += body
        self.started = True
        self._proto.transport.write(out)
        self._finish(self._keep_alive)

    async def start(self, status: int, headers: HeaderList) -> None:
        if self.disconnected:
            self.started = True
            return
        if self.started:
            raise RuntimeError("response already started")
        out = self._head(status, headers, None)
        self.started = True
        self._proto.transport.write(out)

    async def write(self, data: bytes) -> None:
        if self.disconnected:
            raise ClientDisconnect()
        if not self.started or self.complete:
            raise RuntimeError("write() needs a started, unfinished response")
        if not data or self._framing == _NO_BODY:
            return
        flow = self._proto.flow
        if flow.write_paused:
            await flow.drain()
            if self.disconnected:
                raise ClientDisconnect()
        transport = self._proto.transport
        framing = self._framing
        if framing == _CHUNKED:
            transport.writelines((b"%x\r\n" % len(data), data, _CRLF))
        else:
            if framing == _LENGTH:
                if len(data) > self._remaining:
                    raise RuntimeError("more data than the declared Content-Length")
                self._remaining -= len(data)
            transport.write(data)

    async def end(self) -> None:
        if self.complete:
            return
        if self.disconnected:
            self.started = self.complete = True
            return
        if not self.started:
            raise RuntimeError("end() before start()")
        keep_alive = self._keep_alive
        if self._framing == _CHUNKED:
            self._proto.transport.write(_LAST_CHUNK)
        elif self._framing == _LENGTH and self._remaining:
            logger.error("response ended %d bytes short of its Content-Length", self._remaining)
            keep_alive = False  # the client cannot frame what follows: close
        self._finish(keep_alive)

    async def sendfile(self, file: IO[bytes], offset: int, count: int) -> None:
        if self.disconnected:
            raise ClientDisconnect()
        if not self.started or self.complete:
            raise RuntimeError("sendfile() needs a started, unfinished response")
        if count <= 0 or self._framing == _NO_BODY:
            return
        proto = self._proto
        framing = self._framing
        if framing == _LENGTH:
            if count > self._remaining:
                raise RuntimeError("more data than the declared Content-Length")
            self._remaining -= count
        transport = proto.transport
        if framing == _CHUNKED:
            # One chunk around the whole range keeps the file bytes zero-copy.
            transport.write(b"%x\r\n" % count)
        if proto.flow.write_paused:
            await proto.flow.drain()
        if self.disconnected:
            raise ClientDisconnect()
        if proto.sendfile_native:
            try:
                sent = await proto.loop.sendfile(transport, file, offset, count)
            except (ConnectionError, RuntimeError) as exc:
                if self.disconnected or transport.is_closing():
                    raise ClientDisconnect() from exc
                raise
            if sent != count:
                raise RuntimeError(f"file ended after {sent} of {count} bytes")
        else:
            await self._copy_file(file, offset, count)
        if framing == _CHUNKED:
            transport.write(_CRLF)

    async def _copy_file(self, file: IO[bytes], offset: int, count: int) -> None:
        """sendfile fallback: read and write in chunks, honouring write backpressure."""
        proto = self._proto
        flow = proto.flow
        file.seek(offset)
        left = count
        while left:
            chunk = file.read(min(left, 64 * 1024))
            if not chunk:
                raise RuntimeError(f"file ended after {count - left} of {count} bytes")
            proto.transport.write(chunk)
            left -= len(chunk)
            if flow.write_paused:
                await flow.drain()
            if self.disconnected:
                raise ClientDisconnect()

    def _finish(self, keep_alive: bool) -> None:
        self.complete = True
        if self.handler_timer is not None:
            self.handler_timer.cancel()
            self.handler_timer = None
        self._proto._cycle_done(self, keep_alive)
