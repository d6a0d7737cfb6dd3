"""ServerConfig: every setting a runner needs, with its precedents (leaf).

One typed object holds what the built-in server, the workers, the command line and the
test client need: host and port, limits and timeouts, TLS, workers, logging, the event
loop, the trusted proxies. ``App(config=ServerConfig(...))`` (or the ``App`` keyword
arguments) give it in code; ``app.config`` is the one the runners use.

Rule 1: this module imports only the standard library. It sits on the framework side and
the protocol side receives it (``protocol/`` may import it, as it imports ``seam``), so
``from hump_listener import ServerConfig`` configures a server without importing h11.

Rule 2: every default is a named ``DEFAULT_*`` constant, with the precedents it was chosen
from (uvicorn, hypercorn, nginx, Apache, Kestrel) in its comment.

Rule 3: the environment is read in one place, ``ServerConfig.from_env``; the variables are
listed once, in ``ENVIRONMENT``. Every bad value is a ``ConfigError`` whose one-line
message names the variable (or the field), what it must be and what it got:
``HUMP_PORT must be an integer 0-65535, got 'abc'``.

Rule 4: precedence, strongest first: a command-line flag, a value written in code, the
environment, the default. ``from_env(environ, **code)`` applies the last three; the
command line replaces fields of the result (``dataclasses.replace``).
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import os
import socket
import ssl as ssl_module
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

__all__ = [
    "DEFAULT_BODY_HIGH_WATER",
    "DEFAULT_WRITE_HIGH_WATER",
    "ENVIRONMENT",
    "LOG_LEVELS",
    "LOOPS",
    "ConfigError",
    "ServerConfig",
    "bind_error",
    "code_settings",
    "command_line_flags",
    "how_to_set",
    "loop_factory",
    "loop_name",
]


#: Unconsumed request-body bytes buffered before we stop reading the socket.
#: Precedent: uvicorn's ``HIGH_WATER_LIMIT = 65536``; asyncio streams use 64 KiB too.
DEFAULT_BODY_HIGH_WATER = 64 * 1024

#: Transport write-buffer high-water mark (the low-water mark is a quarter of it).
#: Precedent: asyncio's own default for selector transports is 64 KiB.
DEFAULT_WRITE_HIGH_WATER = 64 * 1024


class ConfigError(ValueError):
    """A setting that cannot work: a bad value (in code, a flag or the environment), a
    TLS file that cannot be loaded, an address that cannot be bound, a service it names
    that cannot be reached at start-up (Redis). The message is one line saying what is
    wrong and how to fix it; the runners print it, without a traceback, and exit 1."""


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
# WebSocket (RFC 6455) limits; see protocol/websocket.py for where each applies.

#: Largest message after reassembly; larger → close 1009. websockets ``max_size``: 1 MiB;
#: aiohttp ``max_msg_size``: 4 MiB; uvicorn ``ws_max_size``: 16 MiB.
DEFAULT_WS_MAX_MESSAGE_SIZE = 1024 * 1024
#: Messages received and not yet taken by the handler before reading pauses. websockets
#: ``max_queue``: 16; uvicorn pauses after every message until the app takes it.
DEFAULT_WS_MAX_QUEUE = 16
#: Inbound silence before a keep-alive ping. websockets and uvicorn: 20 s; aiohttp
#: ``heartbeat``: off. Ping interval + ping timeout (40 s) stay below nginx's default 60 s
#: ``proxy_read_timeout`` (deploy/nginx.conf sets 75 s), so a proxy never cuts a live connection.
DEFAULT_WS_PING_INTERVAL: float | None = 20.0
#: No inbound byte this long after a ping → close 1011. websockets and uvicorn: 20 s.
DEFAULT_WS_PING_TIMEOUT = 20.0
#: Frames one fragmented message may take; more → close 1009 ("too many fragments"). Each
#: frame costs the parser a few microseconds whatever its size, so this bounds a message's
#: CPU (a 1 MiB message of 1-byte fragments took ~4 s). websockets' asyncio layer:
#: ``MAX_FRAGMENTS`` = 4096 (env ``WEBSOCKETS_MAX_FRAGMENTS``), 1009 "too many fragments".
DEFAULT_WS_MAX_FRAGMENTS = 4096
#: After a close frame, the peer gets this long to close the TCP connection. websockets
#: ``close_timeout``: 10 s.
DEFAULT_WS_CLOSE_TIMEOUT = 10.0
#: permessage-deflate (RFC 7692): off by default (CPU, and memory per connection). When on,
#: windows of 2**12 bytes and zlib memLevel 5, uvicorn's tuning: about 64 KiB of zlib
#: state per connection instead of ~320 KiB with zlib's defaults.
DEFAULT_WS_DEFLATE_WINDOW_BITS = 12
DEFAULT_WS_DEFLATE_MEM_LEVEL = 5



# ---------------------------------------------------------------------------------------
# Runner settings: the process around the server.

#: uvicorn's defaults too: only this machine can connect until you say otherwise.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
#: One process. uvicorn/hypercorn: 1; gunicorn: 1 (it suggests 2 x cores + 1).
DEFAULT_WORKERS = 1
#: uvicorn ``--loop auto``: uvloop when it is installed, else asyncio.
DEFAULT_LOOP = "auto"
LOOPS = ("auto", "asyncio", "uvloop")
#: uvicorn ``--log-level``: info; the names are the ``logging`` levels, lower-case.
DEFAULT_LOG_LEVEL = "info"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
#: Only a proxy on this host is trusted, as uvicorn and gunicorn default to
#: (``hump_listener.proxy.DEFAULT_FORWARDED_ALLOW_IPS`` says the same for the framework).
DEFAULT_FORWARDED_ALLOW_IPS = "127.0.0.1"
#: What the uvloop extra is called, for the messages that need it.
UVLOOP_HINT = "pip install uvloop"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Settings for one server and the process that runs it; see the ``DEFAULT_*``
    constants for each precedent. Values are checked here, so a bad one fails where it is
    written (``ConfigError`` naming the field)."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    #: A ready TLS context; when None, one is built from ``ssl_certfile``/``ssl_keyfile``.
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
    ws_max_message_size: int = DEFAULT_WS_MAX_MESSAGE_SIZE
    ws_max_queue: int = DEFAULT_WS_MAX_QUEUE
    ws_max_fragments: int = DEFAULT_WS_MAX_FRAGMENTS
    ws_ping_interval: float | None = DEFAULT_WS_PING_INTERVAL
    ws_ping_timeout: float = DEFAULT_WS_PING_TIMEOUT
    ws_close_timeout: float = DEFAULT_WS_CLOSE_TIMEOUT
    ws_per_message_deflate: bool = False
    ws_deflate_window_bits: int = DEFAULT_WS_DEFLATE_WINDOW_BITS
    ws_deflate_mem_level: int = DEFAULT_WS_DEFLATE_MEM_LEVEL
    # -- the process around the server (runner settings) --------------------------------
    #: TLS certificate (PEM) and its key (None: the key is in the certificate file).
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    #: Worker processes sharing the port (``hump_listener.workers``).
    workers: int = DEFAULT_WORKERS
    #: One ``hump_listener.access`` line per response.
    access_log: bool = True
    #: Level of the ``hump_listener`` loggers when the program configured no logging.
    log_level: str = DEFAULT_LOG_LEVEL
    #: ``auto`` (uvloop when installed), ``asyncio`` or ``uvloop``.
    loop: str = DEFAULT_LOOP
    #: Peers whose X-Forwarded-* / Forwarded headers are believed: comma-separated IPs,
    #: CIDR networks or ``*`` (``hump_listener.proxy.TrustedProxies``); "" trusts nobody.
    forwarded_allow_ips: str = DEFAULT_FORWARDED_ALLOW_IPS
    #: Where ``app.broadcast`` fans out: None (in-process memory) or ``redis://host:port/db``
    #: (``rediss://`` for TLS); see ``hump_listener.broadcast``.
    broadcast_url: str | None = None
    #: Development mode: templates are re-read when they change and ``Sessions`` may run
    #: without ``secret_key`` (a throw-away one per process). ``--reload`` turns it on.
    #: Off, the app is in production mode, where a missing secret stops the start-up.
    debug: bool = False
    #: The key that signs session cookies (``hump_listener.sessions``): long and random,
    #: kept out of the code (``HUMP_SECRET_KEY``). Never shown in ``repr``.
    secret_key: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        _check(self.port, "port", _is_port, PORT_RULE)
        _check(self.workers, "workers", _is_workers, WORKERS_RULE)
        _check(self.access_log, "access_log", lambda v: isinstance(v, bool), BOOL_RULE)
        _check(self.debug, "debug", lambda v: isinstance(v, bool), BOOL_RULE)
        _check(self.host, "host", lambda v: isinstance(v, str) and bool(v.strip()), HOST_RULE)
        _check(self.loop, "loop", lambda v: v in LOOPS, LOOP_RULE)
        level = self.log_level.lower() if isinstance(self.log_level, str) else self.log_level
        _check(level, "log_level", lambda v: v in LOG_LEVELS, LOG_LEVEL_RULE)
        object.__setattr__(self, "log_level", level)
        for name in ("ssl_certfile", "ssl_keyfile"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, os.fspath(value))
        object.__setattr__(self, "forwarded_allow_ips", _proxies(self.forwarded_allow_ips, "forwarded_allow_ips"))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, /, **overrides: Any) -> ServerConfig:
        """The config from the environment (``os.environ`` by default), with
        ``overrides`` (the values written in code) winning over it (rule 4).

        An empty variable counts as unset, except ``HUMP_FORWARDED_ALLOW_IPS=""`` (trust
        nobody). An override that is not a field is a ``ConfigError`` naming the fields."""
        if environ is None:
            environ = os.environ
        valid = field_names()
        unknown = sorted(set(overrides) - valid)
        if unknown:
            raise ConfigError(
                f"unknown setting {', '.join(map(repr, unknown))}: ServerConfig has {', '.join(sorted(valid))}"
            )
        values: dict[str, Any] = {}
        for name, (variable, parse, rule) in ENVIRONMENT.items():
            if name in overrides:
                continue
            raw = environ.get(variable)
            if raw is None or (not raw.strip() and name != "forwarded_allow_ips"):
                continue
            try:
                values[name] = parse(raw)
            except _BadEntry as exc:
                raise ConfigError(f"{variable} must be {rule}, got {exc}") from None
            except ValueError:
                raise ConfigError(f"{variable} must be {rule}, got {raw!r}") from None
        values.update(overrides)
        return cls(**values)


def field_names() -> set[str]:
    return {f.name for f in fields(ServerConfig)}


def code_settings(config: ServerConfig) -> dict[str, Any]:
    """The fields of ``config`` that differ from their defaults: what a
    ``ServerConfig(...)`` written in code sets, so that the environment still applies to
    the others (``App(config=ServerConfig(keep_alive_timeout=30))`` keeps ``HUMP_PORT``)."""
    changed: dict[str, Any] = {}
    for f in fields(config):
        value = getattr(config, f.name)
        default = f.default if f.default_factory is MISSING else f.default_factory()
        if value != default:
            changed[f.name] = value
    return changed


# ---------------------------------------------------------------------------------------
# Checking and parsing values (rule 3). Each rule is the "must be ..." of the messages.

PORT_RULE = "an integer 0-65535"
WORKERS_RULE = "an integer of at least 1"
BOOL_RULE = "1 or 0 (or true/false, yes/no, on/off)"
HOST_RULE = "a host name or an IP address"
LOOP_RULE = f"one of {', '.join(LOOPS)}"
LOG_LEVEL_RULE = f"one of {', '.join(LOG_LEVELS)}"
PROXIES_RULE = "comma-separated IP addresses, CIDR networks or '*'"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _check(value: Any, label: str, ok: Callable[[Any], bool], rule: str) -> None:
    if not ok(value):
        raise ConfigError(f"{label} must be {rule}, got {value!r}")


def _is_port(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 65535


def _is_workers(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _integer(ok: Callable[[Any], bool]) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text.strip(), 10)  # ValueError for "abc", "8.5", "0x10"
        if not ok(value):
            raise ValueError(text)
        return value

    return parse


def _flag(text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError(text)


def _choice(choices: Iterable[str]) -> Callable[[str], str]:
    allowed = tuple(choices)

    def parse(text: str) -> str:
        word = text.strip().lower()
        if word not in allowed:
            raise ValueError(text)
        return word

    return parse


def _host(text: str) -> str:
    host = text.strip()
    if not host:
        raise ValueError(text)
    return host


def _proxies(spec: Any, label: str) -> str:
    """``spec`` (a comma-separated string or a list) as a normalised comma-separated
    string, every entry checked; ``proxy.TrustedProxies`` parses the same syntax."""
    if isinstance(spec, str):
        items = spec.split(",")
    elif isinstance(spec, Iterable) and all(isinstance(item, str) for item in spec):
        items = list(spec)
    else:
        raise ConfigError(f"{label} must be {PROXIES_RULE}, got {spec!r}")
    entries = [item.strip() for item in items if item.strip()]
    for entry in entries:
        if not _is_proxy(entry):
            raise ConfigError(f"{label} must be {PROXIES_RULE}, got {entry!r}")
    return ",".join(entries)


def _is_proxy(entry: str) -> bool:
    if entry == "*":
        return True
    try:
        if "/" in entry:
            ipaddress.ip_network(entry, strict=False)
        else:
            ipaddress.ip_address(entry)
    except ValueError:
        return False
    return True


BROADCAST_RULE = "memory:// or a redis:// (rediss://) URL such as redis://127.0.0.1:6379/0"


def _broadcast_url(text: str) -> str:
    url = text.strip()
    if not url.startswith(("memory://", "redis://", "rediss://")):
        raise ValueError(text)
    return url


class _BadEntry(ValueError):
    """One bad entry of a list-valued variable: the message quotes it, not the whole list."""


def _proxies_from_env(text: str) -> str:
    entries = [item.strip() for item in text.split(",") if item.strip()]
    for entry in entries:
        if not _is_proxy(entry):
            raise _BadEntry(repr(entry))
    return ",".join(entries)


#: field → (environment variable, parser, rule): every variable the server reads.
#: ``HUMP_PARSER`` (which h11 build parses) is read by ``protocol.parser`` at import.
ENVIRONMENT: dict[str, tuple[str, Callable[[str], Any], str]] = {
    "host": ("HUMP_HOST", _host, HOST_RULE),
    "port": ("HUMP_PORT", _integer(_is_port), PORT_RULE),
    "workers": ("HUMP_WORKERS", _integer(_is_workers), WORKERS_RULE),
    "access_log": ("HUMP_ACCESS_LOG", _flag, BOOL_RULE),
    "log_level": ("HUMP_LOG_LEVEL", _choice(LOG_LEVELS), LOG_LEVEL_RULE),
    "loop": ("HUMP_LOOP", _choice(LOOPS), LOOP_RULE),
    "ssl_certfile": ("HUMP_SSL_CERTFILE", str, "a path"),
    "ssl_keyfile": ("HUMP_SSL_KEYFILE", str, "a path"),
    "forwarded_allow_ips": ("HUMP_FORWARDED_ALLOW_IPS", _proxies_from_env, PROXIES_RULE),
    "broadcast_url": ("HUMP_BROADCAST_URL", _broadcast_url, BROADCAST_RULE),
    "debug": ("HUMP_DEBUG", _flag, BOOL_RULE),
    "secret_key": ("HUMP_SECRET_KEY", str, "a secret string"),
}


# ---------------------------------------------------------------------------------------
# The event loop (``loop``) and bind errors, as the runners need them.


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """The event-loop constructor for ``loop``, as uvicorn chooses it: ``uvloop`` is
    ``uvloop.new_event_loop`` (a ``ConfigError`` naming the extra when it is missing),
    ``asyncio`` is the stdlib selector loop whatever policy is installed, ``auto`` the
    first of the two that is installed."""
    if name not in LOOPS:
        raise ConfigError(f"loop must be {LOOP_RULE}, got {name!r}")
    if name != "asyncio":
        try:
            import uvloop
        except ImportError:
            if name == "uvloop":
                raise ConfigError(
                    f"loop 'uvloop' (--loop, HUMP_LOOP) needs uvloop: {UVLOOP_HINT}, or use --loop asyncio"
                ) from None
        else:
            factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
            return factory
    return asyncio.SelectorEventLoop


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop`` or ``asyncio``, for the start-up line."""
    return "uvloop" if type(loop).__module__.split(".")[0] == "uvloop" else "asyncio"


def command_line_flags() -> bool:
    """True when this process was started by hump_listener's command line
    (``hump-listener``, ``python -m hump_listener``, and the workers and reloaded
    processes it starts, which keep its ``sys.argv``), whose flags a message may name;
    ``tiny-listener module:app`` and a program calling ``app.run()`` take none."""
    argv0 = sys.argv[0] if sys.argv else ""
    name = os.path.basename(argv0)
    return name.removesuffix(".exe") == "hump-listener" or argv0.endswith(os.path.join("hump_listener", "__main__.py"))


def how_to_set(name: str) -> str:
    """Where a user changes the setting ``name``: ``--port or HUMP_PORT`` under our
    command line, ``HUMP_PORT`` elsewhere (``tiny-listener`` takes no options)."""
    variable = ENVIRONMENT[name][0]
    if command_line_flags():
        return f"--{name.replace('_', '-')} or {variable}"
    return variable


#: What to do about the bind errors people meet, by errno ({port}, {host}: ``how_to_set``).
_BIND_HINTS = {
    errno.EADDRINUSE: "another process is listening there: stop it, or choose another port "
    "with {port} (0 picks a free one)",
    errno.EACCES: "ports below 1024 need privileges: choose a port of 1024 or more with {port}",
    errno.EADDRNOTAVAIL: "this machine has no such address: use 127.0.0.1, 0.0.0.0 or one of its own "
    "addresses with {host}",
}


def bind_error(exc: OSError, host: str, port: int) -> ConfigError:
    """A one-line ``ConfigError`` for a failed bind of ``host:port``: the errno, what it
    means and what to change (uvicorn prints ``[Errno 98] ... address already in use``)."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    names = {"host": how_to_set("host"), "port": how_to_set("port")}
    if isinstance(exc, socket.gaierror):
        return ConfigError(
            f"cannot listen on {where}: cannot resolve host {host!r} ({exc.strerror}): check {names['host']}"
        )
    code = exc.errno
    reason = os.strerror(code) if code else (str(exc) or type(exc).__name__)
    hint = _BIND_HINTS.get(code or 0, "check {host}, and {port}").format(**names)
    return ConfigError(f"cannot listen on {where}: [Errno {code}] {reason}; {hint}")
