"""Instructions per request, counted by valgrind's callgrind: the deterministic cost measure.

Timings on a shared VM move by 10-15 % from one run to the next, more than most single
optimisations are worth. The number of instructions the CPU executes does not: this tool
runs ``benchmarks/inproc.py``'s in-memory server (the real ``H11Protocol`` and the demo
app, no sockets) under callgrind twice, for ``--small`` and ``--large`` requests, and
divides the difference by the extra requests, so start-up cancels out. Two runs of the
same code agree within ~0.2 %. It is a proxy (cache misses and branch mispredictions are
not counted), so a change it likes is confirmed with ``run.py`` before it is quoted.

    apt-get install -y valgrind
    python benchmarks/icount.py                  # all three requests, pure h11
    HUMP_PARSER=h11_mypyc python benchmarks/icount.py --only "GET /"
    python benchmarks/icount.py --routes         # S5's apps: 1 route vs 1000, the last one hit
    python benchmarks/icount.py --ws             # WebSocket echo messages (inproc.py's WS rows)
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import inproc
from common import BENCH_DIR

_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


_SERVE = """
import asyncio, sys
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/apps"]
import inproc
raw = sys.argv[2].encode("latin-1")
if sys.argv[4].startswith("ws:"):  # WebSocket messages, this many per read
    asyncio.run(inproc.run_ws(int(sys.argv[4][3:]), int(sys.argv[3])))
    sys.exit()
if sys.argv[4]:  # an app of benchmarks/apps instead of the demo
    inproc.http_web.app = __import__(sys.argv[4]).app
asyncio.run(inproc.run(raw, int(sys.argv[3])))
"""


def instructions(raw: bytes, count: int, app: str = "", env: dict[str, str] | None = None) -> int:
    """Instructions executed by a Python process serving ``count`` requests ``raw``."""
    argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    argv += [sys.executable, "-c", _SERVE, str(BENCH_DIR), raw.decode("latin-1"), str(count), app]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, env={**os.environ, **(env or {})})
    match = _COLLECTED.search(out.stderr)
    if match is None:
        raise RuntimeError(f"no instruction count in valgrind's output: {out.stderr[-500:]}")
    return int(match.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default="", help=f"one of {', '.join(inproc.REQUESTS)}")
    parser.add_argument("--small", type=int, default=500, help="requests in the first run (default 500)")
    parser.add_argument("--large", type=int, default=2500, help="requests in the second run (default 2500)")
    parser.add_argument("--routes", action="store_true", help="S5's apps: 1 route vs 1000 (apps/hump_routes.py)")
    parser.add_argument("--ws", action="store_true", help="WebSocket echo messages (apps/hump_ws.py)")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (apt-get install -y valgrind)")
    if args.large <= args.small:
        parser.error("--large must exceed --small")
    cases: list[tuple[str, bytes, str, dict[str, str]]] = []
    if args.ws:
        for name, per_read in inproc.WS_RUNS.items():
            cases.append((name, b"", f"ws:{per_read}", {}))
    elif args.routes:
        for routes, path in ((1, "/r0/bob"), (1000, "/r999/bob")):
            raw = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n".encode()
            cases.append((f"{routes} route(s), GET {path}", raw, "hump_routes", {"BENCH_ROUTES": str(routes)}))
    else:
        for name in [args.only] if args.only else list(inproc.REQUESTS):
            if name not in inproc.REQUESTS:
                parser.error(f"unknown request {name!r}")
            cases.append((name, inproc.REQUESTS[name], "", {}))
    for label, raw, app, env in cases:
        extra = instructions(raw, args.large, app, env) - instructions(raw, args.small, app, env)
        unit = "message" if args.ws else "request"
        print(f"{label:<30} {extra / (args.large - args.small) / 1000:7.1f}k instructions/{unit}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
