"""Logging: stdlib only. Two loggers, as uvicorn has:

- ``hump_listener.error``: start/stop lines, tracebacks of failing handlers, protocol faults;
- ``hump_listener.access``: one line per response, ``127.0.0.1:52579 - "GET / HTTP/1.1" 200 OK``,
  with ``client``, ``method``, ``path``, ``status`` and ``duration`` also in the record's ``extra``.

Nothing is configured at import. ``App.run()`` (what ``tiny-listener module:app`` calls)
attaches a stderr handler only when the program has configured no logging itself, at the
level of ``app.config.log_level`` (``--log-level``, ``HUMP_LOG_LEVEL``).

A start-up error is one line, ``ERROR    cannot listen on 127.0.0.1:8000: [Errno 98] ...``,
and exit status 1 (``startup_failed``), whichever command started the app.
"""

from __future__ import annotations

import logging
import sys
from time import perf_counter
from typing import TYPE_CHECKING, NoReturn

from .seam import reason_phrase

if TYPE_CHECKING:
    from .seam import RequestHead

__all__ = ["configure_default_logging", "log_access", "log_startup_error", "startup_failed"]

FORMAT = "%(levelname)-8s %(message)s"

access_log = logging.getLogger("hump_listener.access")


def log_access(
    head: RequestHead, target: str, status: int, started: float, peer: tuple[str, int] | None = None
) -> None:
    """One access line for the response with ``status`` just sent (``started``: the
    ``perf_counter()`` the request arrived at); ``peer`` is the client as the app sees it
    (after trusted proxy headers), else the connection's."""
    if not access_log.isEnabledFor(logging.INFO):
        return
    duration = perf_counter() - started
    peer = peer or head.client
    client = f"{peer[0]}:{peer[1]}" if peer else "-"
    access_log.info(
        '%s - "%s %s HTTP/%s" %d %s',
        client, head.method, target, head.http_version, status, reason_phrase(status),
        extra={
            "client": client, "method": head.method, "path": target, "status": status,
            "duration": duration, "http_version": head.http_version,
        },
    )


def configure_default_logging(level: str | int = "info") -> None:
    """Send ``hump_listener.*`` records to stderr unless logging is already set up."""
    if isinstance(level, str):
        level = level.upper()
    logger = logging.getLogger("hump_listener")
    logger.setLevel(level)
    if logging.getLogger().handlers or logger.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    logger.addHandler(handler)


def log_startup_error(message: str) -> None:
    """Report a start-up error in one line on ``hump_listener.error``: on stderr unless
    the program configured logging, and straight to stderr when that logger is silenced."""
    logger = logging.getLogger("hump_listener.error")
    if not logging.getLogger("hump_listener").handlers and not logging.getLogger().handlers:
        configure_default_logging()
    if logger.isEnabledFor(logging.ERROR):
        logger.error("%s", message)
    else:
        print(f"ERROR    {message}", file=sys.stderr)


def startup_failed(message: str) -> NoReturn:
    """``log_startup_error``, then exit with status 1, as uvicorn does."""
    log_startup_error(message)
    raise SystemExit(1)
