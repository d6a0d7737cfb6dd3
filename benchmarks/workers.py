"""Worker processes: ``HUMP_WORKERS=2 tiny-listener http_web:app`` against one worker.

For each configuration the script starts the demo app, warms it up, runs ``wrk`` on
``GET /`` and reports

- req/s (wrk), with p50/p99 latency;
- server CPU per request: utime+stime of the supervisor *and all its children* (the
  workers), read from ``/proc/<pid>/stat`` before and after the wrk run, divided by the
  requests wrk completed;
- wrk's own CPU per request (``getrusage`` of the reaped wrk process), to see how much of
  the machine the load generator took.

Pinning, and why it is a compromise. ``benchmarks/run.py`` pins the server to CPU 0 and
wrk to CPU 1 so that a server never competes with its load generator. That cannot be done
for two workers on a two-core machine: there is no third core for wrk. So two modes run:

``shared`` (default): nothing is pinned; the workers and wrk share both cores and the
    kernel schedules them. This is the question "does a second worker help on this box?":
    with 2 cores, 2 workers and a busy wrk, expect well under 2x, because wrk takes a good
    part of a core (its CPU/request is printed next to the server's).
``pinned``: every server process (supervisor and workers) is confined to CPU 0 and wrk to
    CPU 1, as in run.py. Two workers then share one core, so req/s cannot scale; what this
    mode measures fairly is the *overhead* of the worker model (kernel balancing across
    SO_REUSEPORT sockets, two event loops, the idle supervisor) as CPU per request.

On 4+ cores, ``--server-cpus 0,1 --wrk-cpus 2,3`` gives the honest scaling run: both
workers pinned to their own cores, wrk to others.

Bounded: every run is ``--duration`` seconds (+1 s warm-up) and processes are killed in a
``finally``. ``--quick`` is a ~30 s smoke run.

    python benchmarks/workers.py                      # ~1.5 min on 2 cores
    python benchmarks/workers.py --quick
    python benchmarks/workers.py --modes pinned --duration 20 --rounds 3
"""

from __future__ import annotations

import argparse
import contextlib
import os
import queue
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import CLK_TCK, HOST, REPO, cpu_seconds, free_port, hump_env, pinned, tiny_listener

START_TIMEOUT = 30.0
SERVING = re.compile(r"Serving on http://")


def parse_cpus(text: str) -> set[int]:
    return {int(c) for c in text.split(",") if c.strip()}


@dataclass
class Result:
    workers: int
    mode: str
    rps: float
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float
    server_us_per_req: float
    wrk_us_per_req: float


@contextlib.contextmanager
def serving(workers: int, cpus: set[int] | None) -> Iterator[tuple[int, int]]:
    """The demo app with ``workers`` workers on a free port; yields (port, supervisor pid)
    once every worker logged that it serves. Killed (whole session) afterwards."""
    port = free_port()
    env = {**os.environ, **hump_env(port, HUMP_WORKERS=str(workers))}
    proc = subprocess.Popen(
        [*tiny_listener(), "http_web:app"],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=pinned(cpus or None),  # inherited by the workers it spawns
        start_new_session=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    seen: list[str] = []

    def pump() -> None:  # keeps reading so the server never blocks on a full pipe
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    try:
        ready = 0
        while ready < workers:
            try:
                line = lines.get(timeout=START_TIMEOUT)
            except queue.Empty:
                raise RuntimeError(f"not serving after {START_TIMEOUT:.0f}s: {seen[-10:]}") from None
            if line is None:
                raise RuntimeError(f"server exited ({proc.wait()}): {''.join(seen[-20:])}")
            seen.append(line)
            ready += bool(SERVING.search(line))
        if workers > 1 and not any("worker" in s.lower() for s in seen):
            raise RuntimeError("HUMP_WORKERS was ignored: is hump_listener/workers.py in place?")
        yield port, proc.pid
    finally:
        for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=wait)
                break


def wrk(port: int, duration: float, connections: int, cpus: set[int] | None) -> tuple[str, float]:
    """Run wrk; return its output and the CPU seconds it used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency", f"http://{HOST}:{port}/"]
    if cpus:
        argv = ["taskset", "-c", ",".join(map(str, sorted(cpus))), *argv]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30, check=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return out, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _ms(text: str, label: str) -> float:
    m = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\b", text, re.MULTILINE)
    if not m:
        return float("nan")
    return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]


def measure(workers: int, mode: str, args: argparse.Namespace) -> Result:
    server_cpus = parse_cpus(args.server_cpus) if mode == "pinned" else None
    wrk_cpus = parse_cpus(args.wrk_cpus) if mode == "pinned" else None
    with serving(workers, server_cpus) as (port, pid):
        wrk(port, 1.0, args.connections, wrk_cpus)  # warm-up: imports, caches, allocator
        cpu0 = cpu_seconds(pid)
        out, wrk_cpu = wrk(port, args.duration, args.connections, wrk_cpus)
        server_cpu = cpu_seconds(pid) - cpu0
    m = re.search(r"(\d+) requests in", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not (m and rps):
        raise RuntimeError(f"could not parse wrk output:\n{out}")
    requests = int(m.group(1))
    errors = sum(int(x) for x in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    socket_errors = re.search(r"Socket errors: (.*)", out)
    if socket_errors:
        errors += sum(int(x) for x in re.findall(r"\d+", socket_errors.group(1)))
    return Result(
        workers,
        mode,
        float(rps.group(1)),
        requests,
        errors,
        _ms(out, "50%"),
        _ms(out, "99%"),
        server_cpu / requests * 1e6,
        wrk_cpu / requests * 1e6,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run [10]")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds [2]; medians shown")
    parser.add_argument("--connections", type=int, default=50, help="wrk connections [50]")
    parser.add_argument("--modes", default="shared,pinned", help="shared,pinned [both]")
    parser.add_argument("--server-cpus", default="0", help="CPUs for the server in pinned mode [0]")
    parser.add_argument("--wrk-cpus", default="1", help="CPUs for wrk in pinned mode [1]")
    parser.add_argument("--quick", action="store_true", help="1 round of 3 s")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.rounds = 3.0, 1
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    print(
        f"{os.cpu_count()} CPUs, CLK_TCK={CLK_TCK}, python {sys.version.split()[0]}, "
        f"{args.rounds} round(s) x {args.duration:g}s, wrk -t1 -c{args.connections} GET /"
    )
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"warning: load average {load:.2f} before the run: other processes share the CPUs, figures are noisy")
    results: list[Result] = []
    for round_no in range(args.rounds):
        for mode in modes:
            for workers in (1, 2):  # interleaved, so drift hits both alike
                r = measure(workers, mode, args)
                results.append(r)
                print(
                    f"  round {round_no + 1} {mode:7} workers={workers}: {r.rps:9.0f} req/s  "
                    f"server {r.server_us_per_req:6.1f} us/req  wrk {r.wrk_us_per_req:5.1f} us/req  "
                    f"errors {r.errors}",
                    flush=True,
                )
    print()
    print(
        f"{'mode':8}{'workers':>8}{'req/s':>10}{'x1':>7}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'server us/req':>15}{'wrk us/req':>12}{'errors':>8}"
    )
    for mode in modes:
        base = None
        for workers in (1, 2):
            rows = [r for r in results if r.mode == mode and r.workers == workers]
            rps = statistics.median(r.rps for r in rows)
            base = base or rps
            print(
                f"{mode:8}{workers:>8}{rps:>10.0f}{rps / base:>7.2f}"
                f"{statistics.median(r.p50_ms for r in rows):>9.2f}"
                f"{statistics.median(r.p99_ms for r in rows):>9.2f}"
                f"{statistics.median(r.server_us_per_req for r in rows):>15.1f}"
                f"{statistics.median(r.wrk_us_per_req for r in rows):>12.1f}"
                f"{sum(r.errors for r in rows):>8}"
            )
    print(f"load average after the run: {os.getloadavg()[0]:.2f}")
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
