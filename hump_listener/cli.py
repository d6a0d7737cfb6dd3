"""The command line: ``python -m hump_listener http_web:app --port 8080`` (or the
``hump-listener`` script).

Every option is also an environment variable, and it is the ``App`` that reads them, so
``tiny-listener http_web:app`` (which only calls ``app.run()``) honours the same
settings. The command line sets those variables for the processes it starts, then
also sets the matching attributes on the imported app, so a flag wins over a value
written in the code (``App(port=8000)``), which wins over the environment.

    option            environment           default
    --host            HUMP_HOST             127.0.0.1
    --port            HUMP_PORT             8000 (0: any free port)
    --log-level       HUMP_LOG_LEVEL        info
    --no-access-log   HUMP_ACCESS_LOG=0     access log on
    --ssl-certfile    HUMP_SSL_CERTFILE     (plain HTTP)
    --ssl-keyfile     HUMP_SSL_KEYFILE      (the key is in the certificate file)
    --workers         HUMP_WORKERS          1 (see ``workers``)
    --reload                                off (needs the ``reload`` extra)
    --app-dir                               . (put first on sys.path)
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["build_parser", "main", "serve"]

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
RELOAD_EXTRA_HINT = "--reload needs the watchfiles package: pip install 'hump_listener[reload]'"


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="hump-listener",
        description="Run a hump_listener App.",
        epilog="Every option can also be set by the environment variable named in its help.",
    )
    parser.add_argument("app", metavar="MODULE:APP", help="the app to run, e.g. http_web:app")
    parser.add_argument("--host", help="address to bind [HUMP_HOST; default 127.0.0.1]")
    parser.add_argument("--port", type=_port, help="port to bind, 0 for any free one [HUMP_PORT; default 8000]")
    parser.add_argument(
        "--log-level", choices=LOG_LEVELS, type=str.lower,
        help="hump_listener's log level [HUMP_LOG_LEVEL; default info]",
    )
    parser.add_argument(
        "--no-access-log", dest="access_log", action="store_false", default=None,
        help="do not log one line per response [HUMP_ACCESS_LOG=0]",
    )
    parser.add_argument(
        "--ssl-certfile", metavar="PATH", help="serve HTTPS with this certificate (PEM) [HUMP_SSL_CERTFILE]"
    )
    parser.add_argument("--ssl-keyfile", metavar="PATH", help="the certificate's private key (PEM) [HUMP_SSL_KEYFILE]")
    parser.add_argument(
        "--workers", type=_positive, metavar="N", help="worker processes sharing the port [HUMP_WORKERS; default 1]"
    )
    parser.add_argument("--reload", action="store_true", help="restart when a .py file changes (development only)")
    parser.add_argument(
        "--reload-dir", action="append", metavar="DIR", dest="reload_dirs",
        help="directory to watch with --reload (repeatable; default: the app dir)",
    )
    parser.add_argument("--app-dir", default=".", metavar="DIR", help="directory to import the app from (default: .)")
    parser.add_argument("--version", action="version", version=f"hump_listener {__version__}")
    return parser


def _port(value: str) -> int:
    port = int(value)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0..65535, got {port}")
    return port


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.reload and (args.workers or 1) > 1:
        parser.error("--reload and --workers are mutually exclusive")
    if args.ssl_keyfile and not (args.ssl_certfile or os.environ.get("HUMP_SSL_CERTFILE")):
        parser.error("--ssl-keyfile needs --ssl-certfile")

    # Explicit flags become the environment of every process we start (reloaded children,
    # workers) and attributes set on the app after it is imported.
    overrides: dict[str, Any] = {}
    for attr, env, value in (
        ("host", "HUMP_HOST", args.host),
        ("port", "HUMP_PORT", args.port),
        ("access_log", "HUMP_ACCESS_LOG", args.access_log),
        ("ssl_certfile", "HUMP_SSL_CERTFILE", args.ssl_certfile),
        ("ssl_keyfile", "HUMP_SSL_KEYFILE", args.ssl_keyfile),
        ("workers", "HUMP_WORKERS", args.workers),
    ):
        if value is not None:
            overrides[attr] = value
            os.environ[env] = ("1" if value else "0") if isinstance(value, bool) else str(value)
    if args.log_level:
        os.environ["HUMP_LOG_LEVEL"] = args.log_level
    app_dir = os.path.abspath(args.app_dir)
    sys.path.insert(0, app_dir)

    if args.reload:
        return reload(args.app, overrides, args.reload_dirs or [app_dir])
    return serve(args.app, overrides)


def serve(import_string: str, overrides: Mapping[str, Any]) -> int:
    """Import the app, apply the command line's settings, run it (blocks)."""
    from tiny_listener import import_from_string

    from .app import App

    try:
        app = import_from_string(import_string)
    except Exception as e:
        # The app's own import error: say which app and why, the traceback adds nothing
        # for "No module named ..." and is printed below for anything else.
        print(f"hump-listener: cannot import {import_string!r}: {e}", file=sys.stderr)
        if not isinstance(e, ImportError):
            import traceback

            traceback.print_exc()
        return 1
    if not isinstance(app, App):
        print(f"hump-listener: {import_string!r} is a {type(app).__name__}, not a hump_listener App", file=sys.stderr)
        return 1
    for name, value in overrides.items():
        setattr(app, name, value)
    app.import_string = import_string  # workers re-import it by this name
    app.run()
    return 0


def _serve_child(import_string: str, overrides: Mapping[str, Any]) -> None:
    """The reloaded process (module level: "spawn" pickles it by name)."""
    status = serve(import_string, overrides)
    if status:
        raise SystemExit(status)


def reload(import_string: str, overrides: Mapping[str, Any], dirs: Sequence[str]) -> int:
    """Run the app in a child process and start a fresh one whenever a ``.py`` file
    under ``dirs`` changes. The app is imported only in the child, so an error in the
    code waits for the next save instead of stopping the reloader."""
    try:
        from watchfiles import PythonFilter, run_process
    except ImportError:
        print(f"hump-listener: {RELOAD_EXTRA_HINT}", file=sys.stderr)
        return 1
    from .protocol import ServerConfig

    drain = ServerConfig().shutdown_timeout
    print(f"hump-listener: watching {', '.join(dirs)} for .py changes", file=sys.stderr)
    run_process(
        *dirs,
        target=_serve_child,
        args=(import_string, dict(overrides)),
        target_type="function",
        watch_filter=PythonFilter(),
        # The child drains like any graceful shutdown before it is killed.
        sigint_timeout=int(drain) + 1,
    )
    return 0
