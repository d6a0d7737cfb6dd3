"""ServerConfig: every limit and timeout of the built-in server, with its precedents (leaf).

Rule 1: this module imports only the standard library and ``flow_control``'s constants, so
the wiring (``App``, the CLI, the test client) can build a config without starting a server.

Rule 2: every default is a named ``DEFAULT_*`` constant, with the precedents it was chosen
from (uvicorn, hypercorn, nginx, Apache, Kestrel) in its comment.
"""

from __future__ import annotations

import ssl as ssl_module
from dataclasses import dataclass

from hump_listener.protocol.flow_control import DEFAULT_BODY_HIGH_WATER, DEFAULT_WRITE_HIGH_WATER

__all__ = ["ServerConfig"]

# ---------------------------------------------------------------------------------------
# Limits and timeouts (seconds / bytes). Precedents: uvicorn 0.3x, hypercorn 0.17, nginx 1.2x,
# Apache 2.4, ASP.NET Kestrel.

#: Listen backlog. uvicorn: 2048; hypercorn: 100; nginx: 511.
DEFAULT_BACKLOG = 2048
#: Open connections beyond which new ones get a 503 and are closed. uvicorn:
#: ``limit_concurrency`` None (unlimited); hypercorn: none; nginx: ``worker_connections`` 512.
#: Idle connections are cheap here (no per-connection task), so the limit is generous.
DEFAULT_MAX_CONNECTIONS = 4096
#: Longest request line (method, target, version) served; longer → 414. Apache
#: ``LimitRequestLine``: 8190; nginx: one ``large_client_header_buffers`` buffer, 8 KiB.
DEFAULT_MAX_REQUEST_LINE = 8190
#: Largest request head (request line + header fields); larger → 431. h11/uvicorn: 16 KiB;
#: nginx: 4 x 8 KiB; Node.js: 16 KiB. 32 KiB fits an 8 KiB request line plus an 8 KiB cookie.
DEFAULT_MAX_HEAD_SIZE = 32 * 1024
#: Most header fields in one request head; more → 431. Apache ``LimitRequestFields``: 100;
#: Kestrel ``MaxRequestHeaderCount``: 100; nginx and uvicorn: none (only the head size).
#: Without it, 6,400 tiny fields fit in ``max_head_size`` and cost ~200 GETs' worth of CPU.
DEFAULT_MAX_HEADER_COUNT = 100
#: A new connection that sends nothing for this long is closed quietly. uvicorn: none;
#: nginx: ``client_header_timeout`` 60 s also covers it; hypercorn: ``read_timeout`` none.
DEFAULT_FIRST_BYTE_TIMEOUT = 10.0
#: Time to receive a whole request head, counted from its first byte; then 408 and close.
#: nginx ``client_header_timeout``: 60 s; Kestrel ``RequestHeadersTimeout``: 30 s; uvicorn: none.
DEFAULT_HEAD_TIMEOUT = 10.0
#: Idle time between requests on a kept-alive connection; then a quiet close.
#: uvicorn ``timeout_keep_alive``: 5 s; hypercorn ``keep_alive_timeout``: 5 s; nginx: 75 s.
DEFAULT_KEEP_ALIVE_TIMEOUT = 5.0
#: Body deadline: the app may spend this long waiting on ``receive()`` plus one second per
#: ``body_min_rate`` bytes received, and never this long in one wait without a byte (a
#: stall); past either → 408 and close. Only time the app spends actually waiting counts
#: (never time when we paused reading). nginx
#: ``client_body_timeout``: 60 s between reads; Kestrel: a 5 s grace period; uvicorn: none.
DEFAULT_BODY_TIMEOUT = 10.0
#: Minimum request-body data rate (bytes/s) once the grace above is used up.
#: Kestrel ``MinRequestBodyDataRate``: 240 B/s. 0 disables the rate check (stall check only).
DEFAULT_BODY_MIN_RATE = 240.0
#: Lingering close: after answering a request we did not read to its end, discard what
#: the client still sends for at most this long before closing. nginx ``lingering_time``:
#: 30 s (``lingering_timeout`` 5 s between reads); uvicorn/hypercorn: none (a reset).
DEFAULT_LINGER_TIMEOUT = 5.0
#: Send timeout: output the client has not taken (the transport's buffer, a ``sendfile``
#: in progress, the rest of a response we are closing after) that makes no progress for
#: this long closes the connection; the app's waiting ``write()`` gets ``ClientDisconnect``.
#: nginx ``send_timeout``: 60 s; Apache ``Timeout``: 60 s; Kestrel ``MinResponseDataRate``:
#: 240 B/s after a 5 s grace; uvicorn/hypercorn: none (a reader of 1 byte/s holds its
#: connection, its open file and a ``max_connections`` slot for as long as it likes).
#: None disables it.
DEFAULT_SEND_TIMEOUT: float | None = 60.0
#: Per-request handler deadline; then 503 (or close if the response started). None = none.
#: uvicorn/hypercorn: none; gunicorn sync workers: 30 s.
DEFAULT_HANDLER_TIMEOUT: float | None = None
#: Default drain time for ``Server.shutdown()``. uvicorn ``timeout_graceful_shutdown``: None
#: (wait forever); hypercorn ``graceful_timeout``: 3 s; gunicorn ``graceful_timeout``: 30 s.
#: 10 s leaves room for shutdown callbacks inside the 30 s an orchestrator (Kubernetes'
#: terminationGracePeriodSeconds, systemd's TimeoutStopSec is 90 s) waits before SIGKILL.
DEFAULT_SHUTDOWN_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Settings for one ``Server``; see the ``DEFAULT_*`` constants for each precedent."""

    host: str = "127.0.0.1"
    port: int = 8000
    ssl: ssl_module.SSLContext | None = None
    backlog: int = DEFAULT_BACKLOG
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_request_line: int = DEFAULT_MAX_REQUEST_LINE
    max_head_size: int = DEFAULT_MAX_HEAD_SIZE
    max_header_count: int = DEFAULT_MAX_HEADER_COUNT
    body_high_water: int = DEFAULT_BODY_HIGH_WATER
    write_high_water: int = DEFAULT_WRITE_HIGH_WATER
    first_byte_timeout: float = DEFAULT_FIRST_BYTE_TIMEOUT
    head_timeout: float = DEFAULT_HEAD_TIMEOUT
    keep_alive_timeout: float = DEFAULT_KEEP_ALIVE_TIMEOUT
    body_timeout: float | None = DEFAULT_BODY_TIMEOUT
    body_min_rate: float = DEFAULT_BODY_MIN_RATE
    handler_timeout: float | None = DEFAULT_HANDLER_TIMEOUT
    linger_timeout: float = DEFAULT_LINGER_TIMEOUT
    send_timeout: float | None = DEFAULT_SEND_TIMEOUT
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT
    server_header: str | None = "hump_listener"
