"""The command line: ``python -m hump_listener http_web:app --port 8080`` (or the
``hump-listener`` script).

Every option is also an environment variable, read by ``ServerConfig.from_env`` when
the app is configured for running, so ``tiny-listener http_web:app`` (which only calls
``app.run()``) honours the same settings. The command line sets those variables for the
processes it starts, then also sets the matching fields of the imported app's
``config``, so a flag wins over a value written in the code (``App(port=8000)``), which
wins over the environment, which wins over the default.

    option                  environment               default
    --host                  HUMP_HOST                 127.0.0.1
    --port                  HUMP_PORT                 8000 (0: any free port)
    --workers               HUMP_WORKERS              1 (see ``workers``)
    --loop                  HUMP_LOOP                 auto (uvloop if installed, else asyncio)
    --log-level             HUMP_LOG_LEVEL            info
    --no-access-log         HUMP_ACCESS_LOG=0         access log on
    --ssl-certfile          HUMP_SSL_CERTFILE         (plain HTTP)
    --ssl-keyfile           HUMP_SSL_KEYFILE          (the key is in the certificate file)
    --forwarded-allow-ips   HUMP_FORWARDED_ALLOW_IPS  127.0.0.1
    --broadcast-url         HUMP_BROADCAST_URL        (in-process memory)
                            HUMP_SECRET_KEY           (none; no flag: a command line shows in ps)
    --reload                HUMP_DEBUG=1 (implied)    off (needs the ``reload`` extra)
    --app-dir                                         . (put first on sys.path)

Exit status: 0 after a clean shutdown; 1 for a start-up error (a bad setting, a port in
use, a TLS file that cannot be loaded, the app cannot be imported), reported in one line;
2 for a bad command line (argparse's usage error).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tiny_listener import import_from_string

from . import __version__
from .app import App
from .config import (
    DEFAULT_FORWARDED_ALLOW_IPS,
    DEFAULT_HOST,
    DEFAULT_LOG_LEVEL,
    DEFAULT_LOOP,
    DEFAULT_PORT,
    DEFAULT_WORKERS,
    ENVIRONMENT,
    LOG_LEVELS,
    LOOPS,
    ConfigError,
    ServerConfig,
)
from .logs import log_startup_error

__all__ = ["build_parser", "main", "serve"]

RELOAD_EXTRA_HINT = "--reload needs the watchfiles package: pip install watchfiles"
#: The flags that set a ``ServerConfig`` field (argparse dest = field name).
CONFIG_FLAGS = (
    "host", "port", "workers", "loop", "log_level", "access_log", "ssl_certfile", "ssl_keyfile",
    "forwarded_allow_ips", "broadcast_url",
)


def _env(name: str) -> str:
    return ENVIRONMENT[name][0]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hump-listener",
        description="Run a hump_listener App.",
        epilog="Every option can also be set by the environment variable named in its help.",
    )
    parser.add_argument("app", metavar="MODULE:APP", help="the app to run, e.g. http_web:app")
    parser.add_argument(
        "--host", type=_checked("host"), help=f"address to bind [{_env('host')}; default {DEFAULT_HOST}]"
    )
    parser.add_argument(
        "--port", type=_checked("port"),
        help=f"port to bind, 0 for any free one [{_env('port')}; default {DEFAULT_PORT}]",
    )
    parser.add_argument(
        "--workers", type=_checked("workers"), metavar="N",
        help=f"worker processes sharing the port [{_env('workers')}; default {DEFAULT_WORKERS}]",
    )
    parser.add_argument(
        "--loop", choices=LOOPS, type=str.lower,
        help=f"event loop; auto: uvloop if installed [{_env('loop')}; default {DEFAULT_LOOP}]",
    )
    parser.add_argument(
        "--log-level", choices=LOG_LEVELS, type=str.lower,
        help=f"hump_listener's log level [{_env('log_level')}; default {DEFAULT_LOG_LEVEL}]",
    )
    parser.add_argument(
        "--no-access-log", dest="access_log", action="store_false", default=None,
        help=f"do not log one line per response [{_env('access_log')}=0]",
    )
    parser.add_argument(
        "--ssl-certfile", metavar="PATH", help=f"serve HTTPS with this certificate (PEM) [{_env('ssl_certfile')}]"
    )
    parser.add_argument(
        "--ssl-keyfile", metavar="PATH", help=f"the certificate's private key (PEM) [{_env('ssl_keyfile')}]"
    )
    parser.add_argument(
        "--forwarded-allow-ips", metavar="LIST", type=_checked("forwarded_allow_ips"),
        help="proxies whose X-Forwarded-*/Forwarded headers are believed: IPs, networks or * "
        f"[{_env('forwarded_allow_ips')}; default {DEFAULT_FORWARDED_ALLOW_IPS}]",
    )
    parser.add_argument(
        "--broadcast-url", metavar="URL", type=_checked("broadcast_url"),
        help=f"where app.broadcast fans out: redis://host:port/db [{_env('broadcast_url')}; default in-process memory]",
    )
    parser.add_argument("--reload", action="store_true", help="restart when a .py file changes (development only)")
    parser.add_argument(
        "--reload-dir", action="append", metavar="DIR", dest="reload_dirs",
        help="directory to watch with --reload (repeatable; default: the app dir)",
    )
    parser.add_argument("--app-dir", default=".", metavar="DIR", help="directory to import the app from (default: .)")
    parser.add_argument("--version", action="version", version=f"hump_listener {__version__}")
    return parser


def _checked(name: str) -> Callable[[str], Any]:
    """An argparse type parsing a flag as its environment variable is parsed, so the two
    accept the same values; argparse prefixes the message with the flag."""
    _, parse, rule = ENVIRONMENT[name]

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text!r}") from None

    return convert


def _to_env(value: Any) -> str:
    return ("1" if value else "0") if isinstance(value, bool) else str(value)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.reload and (args.workers or 1) > 1:
        parser.error("--reload and --workers are mutually exclusive")
    if args.ssl_keyfile and not (args.ssl_certfile or os.environ.get("HUMP_SSL_CERTFILE")):
        parser.error("--ssl-keyfile needs --ssl-certfile")

    # Explicit flags become the environment of every process we start (reloaded children,
    # workers) and fields set on the app's config after it is imported.
    overrides: dict[str, Any] = {}
    for name in CONFIG_FLAGS:
        value = getattr(args, name)
        if value is not None:
            overrides[name] = value
            os.environ[_env(name)] = _to_env(value)
    try:
        ServerConfig.from_env(os.environ)  # a bad HUMP_* variable: one line, before any import
    except ConfigError as exc:
        return _failed(str(exc))
    app_dir = os.path.abspath(args.app_dir)
    sys.path.insert(0, app_dir)

    if args.reload:
        # --reload is development mode: templates re-read, sessions without a secret.
        overrides["debug"] = True
        os.environ[_env("debug")] = "1"
        return reload(args.app, overrides, args.reload_dirs or [app_dir])
    return serve(args.app, overrides)


def serve(import_string: str, overrides: Mapping[str, Any]) -> int:
    """Import the app, apply the command line's settings, run it (blocks)."""
    try:
        app = import_from_string(import_string)
    except ConfigError as e:  # App(config=...) with a bad value: the message says which
        return _failed(f"{import_string}: {e}")
    except Exception as e:
        # The app's own import error: say which app and why, the traceback adds nothing
        # for "No module named ..." and is printed below for anything else.
        print(f"hump-listener: cannot import {import_string!r}: {e}", file=sys.stderr)
        if not isinstance(e, ImportError):
            traceback.print_exc()
        return 1
    if not isinstance(app, App):
        print(f"hump-listener: {import_string!r} is a {type(app).__name__}, not a hump_listener App", file=sys.stderr)
        return 1
    try:
        app.configure(**overrides)
    except ConfigError as e:
        return _failed(str(e))
    app.import_string = import_string  # workers re-import it by this name
    app.run()  # a start-up error: one line and SystemExit(1)
    return 0


def _failed(message: str) -> int:
    """A start-up error in the format ``App.run`` uses; exit status 1."""
    log_startup_error(message)
    return 1


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
