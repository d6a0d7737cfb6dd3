"""Logging: stdlib only. Two loggers, as uvicorn has:

- ``hump_listener.error``: start/stop lines, tracebacks of failing handlers, protocol faults;
- ``hump_listener.access``: one line per response, ``127.0.0.1:52579 - "GET / HTTP/1.1" 200 OK``,
  with ``client``, ``method``, ``path``, ``status`` and ``duration`` also in the record's ``extra``.

Nothing is configured at import. ``App.run()`` (what ``tiny-listener module:app`` calls)
attaches a stderr handler only when the program has configured no logging itself.
"""

from __future__ import annotations

import logging
import os
import sys

__all__ = ["configure_default_logging"]

FORMAT = "%(levelname)-8s %(message)s"


def configure_default_logging(level: str | int | None = None) -> None:
    """Send ``hump_listener.*`` records to stderr unless logging is already set up.

    ``level`` defaults to env ``HUMP_LOG_LEVEL`` or ``info``.
    """
    if level is None:
        level = os.environ.get("HUMP_LOG_LEVEL", "info")
    if isinstance(level, str):
        level = level.upper()
    logger = logging.getLogger("hump_listener")
    logger.setLevel(level)
    if logging.getLogger().handlers or logger.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    logger.addHandler(handler)
