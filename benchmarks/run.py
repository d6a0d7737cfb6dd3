"""hump_listener benchmark harness: one command, all scenarios, interleaved rounds.

Every server runs pinned to CPU 0, ``wrk`` (and this harness) on CPU 1. For each
measurement the harness records wrk's req/s and p50/p99 latency and the server's CPU time
per request (utime+stime of the server's process tree from /proc, before/after the wrk
run, divided by completed requests). Rounds are interleaved (A B C, A B C, ...) and the
table shows medians with min/max and ratios to uvicorn-h11 (and, for CPU/req, to the
bare asyncio+h11 floor).

    python benchmarks/run.py                 # full run (~20 min on 2 cores)
    python benchmarks/run.py --quick         # smoke run (~2 min)
    python benchmarks/run.py --only S1,S5 --rounds 5 --duration 10

See benchmarks/README.md for what each scenario means.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import http.client
import importlib.metadata
import importlib.util
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # the helpers every benchmark script shares
    BENCH_DIR,
    CLIENT_CPU,
    CLK_TCK,
    HOST,
    REPO,
    SERVER_CPU,
    cpu_seconds,
    free_port,
    from_checkout,
    hump_env,
    pinned,
    proc_tree,
    pythonpath,
    rss_kib,
    tiny_listener,
)

PEERS = BENCH_DIR / "peers"
APPS = BENCH_DIR / "apps"
RESULTS = BENCH_DIR / "results"
PY = sys.executable
REFERENCE = "uvicorn-h11"
FLOOR = "bare-h11"
START_TIMEOUT = 20.0


# --------------------------------------------------------------------------- servers


@dataclass(frozen=True)
class ServerSpec:
    """How to launch one server; ``command(port)`` returns (argv, extra env)."""

    name: str
    command: Callable[[int], tuple[list[str], dict[str, str]]]
    requires: tuple[str, ...]
    path_override: str | None = None  # S5 servers answer their own route
    needs_files: tuple[Path, ...] = ()


def _hump(
    app: str, app_dir: Path, loop: str, routes: int | None = None, parser: str = "h11"
) -> Callable[[int], tuple[list[str], dict[str, str]]]:
    """``parser``: ``h11`` (pure Python, the default) or ``h11_mypyc`` (the compiled
    experiment); see hump_listener/protocol/parser.py. ``loop``: HUMP_LOOP."""

    def command(port: int) -> tuple[list[str], dict[str, str]]:
        env = hump_env(port, loop, HUMP_PARSER=parser)
        if routes is not None:
            env["BENCH_ROUTES"] = str(routes)
        return [*tiny_listener(), "--app-dir", str(app_dir), app], env

    return command


def _uvicorn(
    app: str, app_dir: Path, http: str, loop: str, routes: int | None = None
) -> Callable[[int], tuple[list[str], dict[str, str]]]:
    def command(port: int) -> tuple[list[str], dict[str, str]]:
        argv = [PY, "-m", "uvicorn", "--app-dir", str(app_dir), app, "--host", HOST, "--port", str(port)]
        argv += ["--http", http, "--loop", loop, "--no-access-log", "--log-level", "warning"]
        argv += ["--timeout-keep-alive", "600"]  # S6 holds idle connections; default is 5 s
        # HUMP_ACCESS_LOG: our App logs its own access lines unless told not to (uvicorn's are off).
        env = {"HUMP_ACCESS_LOG": "0", "PYTHONPATH": pythonpath()}
        return argv, ({**env, "BENCH_ROUTES": str(routes)} if routes is not None else env)

    return command


def _granian(app: str, app_dir: Path, loop: str) -> Callable[[int], tuple[list[str], dict[str, str]]]:
    """granian (Rust HTTP, one worker process) serving ``app`` over ASGI on ``loop``; its
    Rust runtime on one thread, like the other servers' one event loop."""

    def command(port: int) -> tuple[list[str], dict[str, str]]:
        argv = [PY, "-m", "granian", "--interface", "asgi", "--host", HOST, "--port", str(port)]
        argv += ["--workers", "1", "--runtime-threads", "1", "--loop", loop, "--no-access-log"]
        argv += ["--log-level", "warning", app]
        path = os.pathsep.join((str(app_dir), pythonpath()))
        return argv, {"PYTHONPATH": path, "HUMP_ACCESS_LOG": "0"}

    return command


def _bare(port: int) -> tuple[list[str], dict[str, str]]:
    return [PY, str(PEERS / "bare_h11.py"), "--host", HOST, "--port", str(port)], {}


#: S5's apps: route count, and the path its last route answers.
S5_ROUTES = ((1000, "/r999/bob"), (1, "/r0/bob"))


def baseline_specs(base: Path, loop: str) -> list[ServerSpec]:
    """The built-in server and the App on uvicorn-httptools and granian, run from another
    checkout ``base`` of this repository (``git worktree add /tmp/base <commit>``): rows
    ``hump@base`` ... (and S5's ``hump-1r@base``, ``hump-1000r@base``) beside the working
    tree's, so that a change shows its before and after in one run."""

    demo = (base / "http_web.py",)
    req = ("hump_listener", "tiny_listener", "h11", *(("uvloop",) if loop == "uvloop" else ()))
    routes = [
        ServerSpec(f"hump-{n}r@base", from_checkout(base, _hump("hump_routes:app", APPS, loop, n)), req, path)
        for n, path in S5_ROUTES
    ]
    return [
        *routes,
        ServerSpec("hump@base", from_checkout(base, _hump("http_web:app", base, loop)), req, needs_files=demo),
        ServerSpec(
            "hump-asgi-httptools@base",
            from_checkout(base, _uvicorn("http_web:app", base, "httptools", loop)),
            (*req, "uvicorn", "httptools"),
            needs_files=demo,
        ),
        ServerSpec(
            "hump-granian@base",
            from_checkout(base, _granian("http_web:app", base, loop)),
            (*req, "granian"),
            needs_files=demo,
        ),
    ]


def server_specs(loop: str, baseline: Path | None = None) -> dict[str, ServerSpec]:
    """Every server on ``loop`` (asyncio or uvloop), but the bare floor: asyncio always;
    with ``baseline``, also ``baseline_specs``."""
    loop_req = ("uvloop",) if loop == "uvloop" else ()
    uv, st = ("uvicorn", "h11", *loop_req), ("uvicorn", "starlette", "h11", *loop_req)
    hump_req = ("hump_listener", "tiny_listener", "h11", *loop_req)
    specs = [
        ServerSpec("hump", _hump("http_web:app", REPO, loop), hump_req, needs_files=(REPO / "http_web.py",)),
        ServerSpec(
            "hump-mypyc",
            _hump("http_web:app", REPO, loop, parser="h11_mypyc"),
            (*hump_req, "h11_mypyc"),
            needs_files=(REPO / "http_web.py",),
        ),
        ServerSpec("uvicorn-h11", _uvicorn("asgi_raw:app", PEERS, "h11", loop), uv),
        ServerSpec(
            "uvicorn-httptools",
            _uvicorn("asgi_raw:app", PEERS, "httptools", loop),
            (*uv, "httptools"),
        ),
        ServerSpec("starlette-h11", _uvicorn("starlette_app:app", PEERS, "h11", loop), st),
        ServerSpec(
            "starlette-httptools",
            _uvicorn("starlette_app:app", PEERS, "httptools", loop),
            (*st, "httptools"),
        ),
        ServerSpec(FLOOR, _bare, ("h11",)),
        # The same App under ASGI servers, beside Starlette on the same server (issue 23 item 2).
        ServerSpec(
            "hump-asgi-httptools",
            _uvicorn("http_web:app", REPO, "httptools", loop),
            (*hump_req, "uvicorn", "httptools"),
            needs_files=(REPO / "http_web.py",),
        ),
        ServerSpec(
            "hump-granian",
            _granian("http_web:app", REPO, loop),
            (*hump_req, "granian"),
            needs_files=(REPO / "http_web.py",),
        ),
        ServerSpec(
            "starlette-granian", _granian("starlette_app:app", PEERS, loop), ("granian", "starlette", *loop_req)
        ),
        ServerSpec("asgi-raw-granian", _granian("asgi_raw:app", PEERS, loop), ("granian", *loop_req)),
    ]
    for n, path in S5_ROUTES:
        specs.append(ServerSpec(f"hump-{n}r", _hump("hump_routes:app", APPS, loop, n), hump_req, path))
        specs.append(
            ServerSpec(f"starlette-{n}r", _uvicorn("starlette_routes:app", APPS, "h11", loop, n), st, path)
        )
    if baseline is not None:
        specs += baseline_specs(baseline, loop)
    return {s.name: s for s in specs}


def missing_requirement(spec: ServerSpec) -> str | None:
    """Why ``spec`` can't run here, or None."""
    for module in spec.requires:
        if not (REPO / module).is_dir() and importlib.util.find_spec(module) is None:
            hint = "pip install -e ." if module == "hump_listener" else "pip install -e '.[bench]'"
            return f"python package '{module}' is not importable by {PY} ({hint})"
    for path in spec.needs_files:
        if not path.exists():
            return f"{path.relative_to(REPO)} does not exist yet"
    return None


class ServerStartError(RuntimeError):
    pass


def _log_tail(log: Any, limit: int = 1500) -> str:
    log.flush()
    log.seek(0)
    text: str = log.read().decode(errors="replace")
    return text[-limit:].strip() or "(no output)"


def _start_error(what: str, log: Any) -> ServerStartError:
    tail = _log_tail(log)
    return ServerStartError(f"{what}: {tail.splitlines()[-1]}\n--- server output (tail) ---\n{tail}")


def _wait_ready(proc: subprocess.Popen[bytes], port: int, log: Any) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise _start_error(f"exited with code {proc.returncode}", log)
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise _start_error(f"not accepting connections after {START_TIMEOUT:.0f}s", log)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=wait)
            return


@contextlib.contextmanager
def running(spec: ServerSpec) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """Start ``spec`` on a free port pinned to SERVER_CPU; always kill it afterwards."""
    port = free_port()
    argv, extra_env = spec.command(port)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **extra_env}
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            argv,
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=pinned(SERVER_CPU),
            start_new_session=True,
        )
        try:
            _wait_ready(proc, port, log)
            yield proc, port
        finally:
            _stop(proc)


# --------------------------------------------------------------------------- /proc


def cpu_busy_seconds(cpu: int) -> float:
    """Busy (non-idle, non-iowait) time of one CPU since boot, from /proc/stat."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{cpu} "):
            ticks = [int(x) for x in line.split()[1:]]
            return (sum(ticks[:8]) - ticks[3] - ticks[4]) / CLK_TCK
    return 0.0


def _children_cpu() -> float:
    """CPU seconds of this harness's reaped children (wrk) plus the harness itself."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


# --------------------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class Request:
    method: str = "GET"
    path: str = "/"
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    expect_body: bytes | None = None


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    kind: str  # "wrk" | "routes" | "idle"
    servers: tuple[str, ...]
    request: Request = field(default_factory=Request)
    connections: int = 50
    #: Measured in a phase of its own, all servers up and one running at a time
    #: (``run_phase``): the scenarios whose figure compares rows closely (S2's p99, S5's ratio).
    phase: bool = False
    #: Keep wrk's whole latency histogram, so the p99 over all requests can be computed.
    latency: bool = False


MAIN = ("hump", "hump-mypyc", "uvicorn-h11", "uvicorn-httptools", "starlette-h11", "starlette-httptools", FLOOR)
#: The same ASGI app on the same ASGI server: hump_listener's App beside Starlette.
ASGI = ("hump-asgi-httptools", "hump-granian", "starlette-granian", "asgi-raw-granian")
ECHO = Request("POST", "/echo", b"x" * 1024, (("Content-Type", "application/octet-stream"),), b"x" * 1024)
SCENARIOS = (
    Scenario("S1", "GET / x 50 keep-alive connections", "wrk", (*MAIN, *ASGI), Request(expect_body=b"Hello, world!")),
    Scenario(
        "S2",
        "GET / x 1 keep-alive connection",
        "wrk",
        MAIN,
        Request(expect_body=b"Hello, world!"),
        connections=1,
        phase=True,
        latency=True,
    ),
    Scenario(
        "S3",
        "GET / with Connection: close x 50",
        "wrk",
        MAIN,
        Request(headers=(("Connection", "close"),), expect_body=b"Hello, world!"),
    ),
    Scenario("S4", "POST /echo 1 KiB body x 50", "wrk", (*MAIN, *ASGI), ECHO),
    Scenario("S7", "GET /api/users/42 (JSON, path param) x 50", "wrk", (*MAIN, *ASGI), Request(path="/api/users/42")),
    Scenario(
        "S5",
        "1000 parametrised routes, hit the last vs 1 route, x 50",
        "routes",
        ("hump-1000r", "hump-1r", "starlette-1000r", "starlette-1r"),
        Request(expect_body=b"Hello, bob!"),
        phase=True,
    ),
    Scenario("S6", "RSS holding idle keep-alive connections", "idle", MAIN),
)
BY_KEY = {s.key: s for s in SCENARIOS}


# --------------------------------------------------------------------------- wrk

LUA_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d, "p50_us": %.1f, "p99_us": %.1f, "max_us": %.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
  if wrk_histogram then
    -- latency(i): the i-th distinct latency (us) and its count, ascending; value 0 past the end
    local parts, i = {}, 1
    while i <= summary.requests do
      local value, count = latency(i)
      if value == 0 then break end
      parts[#parts + 1] = string.format("[%d,%d]", value, count)
      i = i + 1
    end
    io.write("WRK_HIST [" .. table.concat(parts, ",") .. "]\n")
  end
end
"""


def lua_script(request: Request, histogram: bool = False) -> str:
    lines = [f'wrk.method = "{request.method}"', f"wrk_histogram = {'true' if histogram else 'false'}"]
    if request.body:
        lines.append(f'wrk.body = string.rep("x", {len(request.body)})')
        assert request.body == b"x" * len(request.body), "lua body must be all 'x'"
    lines += [f'wrk.headers["{name}"] = "{value}"' for name, value in request.headers]
    return "\n".join(lines) + "\n" + LUA_DONE


def run_wrk(port: int, path: str, scenario: Scenario, duration: int, script: Path) -> dict[str, Any]:
    argv = ["wrk", "-t1", f"-c{scenario.connections}", f"-d{duration}s", "--timeout", "5s"]
    argv += ["-s", str(script), f"http://{HOST}:{port}{path}"]
    out = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=duration + 30,
        preexec_fn=pinned(CLIENT_CPU),
        check=False,
    )
    result: dict[str, Any] | None = None
    for line in out.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            result = json.loads(line[len("WRK_JSON ") :])
        elif line.startswith("WRK_HIST ") and result is not None:
            result["hist"] = json.loads(line[len("WRK_HIST ") :])
    if result is not None:
        return result
    raise RuntimeError(f"wrk gave no result (rc={out.returncode}): {out.stderr.strip() or out.stdout[-500:]}")


def probe(port: int, request: Request, path: str) -> str | None:
    """Send one request; return None if it was answered 200 (with the expected body), else why not."""
    conn = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        conn.request(request.method, path, body=request.body or None, headers=dict(request.headers))
        response = conn.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as exc:
        return f"probe {request.method} {path} failed: {exc!r}"
    finally:
        conn.close()
    if response.status != 200:
        return f"probe {request.method} {path} -> {response.status} {body[:200]!r}"
    if request.expect_body is not None and body != request.expect_body:
        return f"probe {request.method} {path} -> unexpected body {body[:200]!r}"
    return None


def measure_wrk(
    proc: subprocess.Popen[bytes], port: int, spec: ServerSpec, scenario: Scenario, args: argparse.Namespace
) -> dict[str, Any]:
    path = spec.path_override or scenario.request.path
    problem = probe(port, scenario.request, path)
    if problem:
        return {"error": problem}
    script = Path(args.tmpdir) / f"{scenario.key}.lua"
    if args.warmup > 0:
        run_wrk(port, path, scenario, args.warmup, script)
    cpu_before, busy_before = cpu_seconds(proc.pid), cpu_busy_seconds(SERVER_CPU)
    client_before, wrk_before = cpu_busy_seconds(CLIENT_CPU), _children_cpu()
    result = run_wrk(port, path, scenario, args.duration, script)
    cpu_used = cpu_seconds(proc.pid) - cpu_before
    other = cpu_busy_seconds(SERVER_CPU) - busy_before - cpu_used
    other_client = cpu_busy_seconds(CLIENT_CPU) - client_before - (_children_cpu() - wrk_before)
    wall = result["duration_us"] / 1e6
    requests = max(result["requests"], 1)
    errors = sum(result[k] for k in ("connect", "read", "write", "status", "timeout"))
    sample = {
        "rps": result["requests"] / wall,
        "p50_ms": result["p50_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        "cpu_us_per_req": cpu_used * 1e6 / requests,
        "server_cpu_pct": 100 * cpu_used / wall,
        "other_cpu0_pct": max(0.0, 100 * other / wall),
        "other_cpu1_pct": max(0.0, 100 * other_client / wall),
        "requests": result["requests"],
        "wrk_errors": errors,
        "error_detail": {k: result[k] for k in ("connect", "read", "write", "status", "timeout") if result[k]},
    }
    if "hist" in result:
        sample["hist"] = result["hist"]
    return sample


# --------------------------------------------------------------------------- S6 idle connections


async def _open_keepalive(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    if not head.startswith(b"HTTP/1.1 200"):
        writer.close()
        raise ConnectionError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
    return reader, writer


async def _hold_idle(pid: int, port: int, count: int) -> dict[str, Any]:
    gate = asyncio.Semaphore(64)  # don't overflow small listen backlogs

    async def one() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        async with gate:
            return await asyncio.wait_for(_open_keepalive(port), 10)

    await asyncio.sleep(0.3)
    idle = rss_kib(pid)
    results = await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
    conns = [r for r in results if isinstance(r, tuple)]
    failures = [r for r in results if isinstance(r, BaseException)]
    await asyncio.sleep(1.0)
    loaded = rss_kib(pid)
    alive = sum(1 for reader, _ in conns if not reader.at_eof())
    for _, writer in conns:
        writer.close()
    return {
        "rss_idle_kib": idle,
        "rss_loaded_kib": loaded,
        "kib_per_conn": (loaded - idle) / max(len(conns), 1),
        "opened": len(conns),
        "alive": alive,
        "first_failure": repr(failures[0]) if failures else None,
    }


def measure_idle(proc: subprocess.Popen[bytes], port: int, args: argparse.Namespace) -> dict[str, Any]:
    problem = probe(port, Request(expect_body=b"Hello, world!"), "/")
    if problem:
        return {"error": problem}
    return asyncio.run(asyncio.wait_for(_hold_idle(proc.pid, port, args.idle_connections), 120))


# --------------------------------------------------------------------------- rounds


Samples = dict[str, dict[str, list[dict[str, Any]]]]  # scenario -> server -> per-round samples


def plan(scenarios: list[Scenario], specs: dict[str, ServerSpec]) -> list[tuple[ServerSpec, list[Scenario]]]:
    """Server launches of one round: each server once for its load scenarios, once per S6."""
    launches: list[tuple[ServerSpec, list[Scenario]]] = []
    load = [s for s in scenarios if s.kind != "idle" and not s.phase]
    names = list(dict.fromkeys(name for s in load for name in s.servers if name in specs))
    for name in names:
        launches.append((specs[name], [s for s in load if name in s.servers]))
    for scenario in (s for s in scenarios if s.kind == "idle"):
        launches += [(specs[name], [scenario]) for name in scenario.servers if name in specs]
    return launches


def _record(samples: Samples, scenario: Scenario, spec: ServerSpec, sample: dict[str, Any]) -> None:
    samples.setdefault(scenario.key, {}).setdefault(spec.name, []).append(sample)
    print(f"    {scenario.key} {spec.name:<20} {brief(sample)}", flush=True)


def run_launch(spec: ServerSpec, scenarios: list[Scenario], args: argparse.Namespace, samples: Samples) -> None:
    def record(scenario: Scenario, sample: dict[str, Any]) -> None:
        _record(samples, scenario, spec, sample)

    try:
        with running(spec) as (proc, port):
            for scenario in scenarios:
                try:
                    if scenario.kind == "idle":
                        record(scenario, measure_idle(proc, port, args))
                    else:
                        record(scenario, measure_wrk(proc, port, spec, scenario, args))
                except (RuntimeError, OSError, subprocess.TimeoutExpired, asyncio.TimeoutError) as exc:
                    record(scenario, {"error": f"{type(exc).__name__}: {exc}"})
    except ServerStartError as exc:
        for scenario in scenarios:
            record(scenario, {"error": f"server failed to start: {exc}"})


def _signal_tree(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    for pid in proc_tree(proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def run_phase(
    specs: list[ServerSpec], scenario: Scenario, args: argparse.Namespace, samples: Samples, round_no: int
) -> None:
    """The shared machine's noise comes in bursts lasting seconds, which is enough to
    decide S2's p99 or S5's 1000/1 ratio by which server a burst fell on. So all the
    scenario's servers run at once, every one but the measured one is stopped (SIGSTOP,
    so it cannot disturb), and ``--repeats`` slots each measure every server once, in an
    order rotated per slot. Neighbouring measurements of different servers are seconds
    apart, and a burst falls on them alike."""

    def record(spec: ServerSpec, sample: dict[str, Any]) -> None:
        _record(samples, scenario, spec, sample)

    with contextlib.ExitStack() as stack:
        up: list[tuple[ServerSpec, subprocess.Popen[bytes], int]] = []
        for spec in specs:
            try:
                proc, port = stack.enter_context(running(spec))
            except ServerStartError as exc:
                record(spec, {"error": f"server failed to start: {exc}"})
                continue
            up.append((spec, proc, port))
        for _, proc, _ in up:  # callbacks run before the servers' own exits: stopped ones ignore SIGTERM
            stack.callback(_signal_tree, proc, signal.SIGCONT)
        for _, proc, _ in up:
            _signal_tree(proc, signal.SIGSTOP)
        for slot in range(args.repeats):
            shift = ((round_no - 1) * args.repeats + slot) % max(len(up), 1)  # rotation goes on across rounds
            for spec, proc, port in up[shift:] + up[:shift]:
                _signal_tree(proc, signal.SIGCONT)
                try:
                    record(spec, measure_wrk(proc, port, spec, scenario, args))
                except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
                    record(spec, {"error": f"{type(exc).__name__}: {exc}"})
                finally:
                    _signal_tree(proc, signal.SIGSTOP)


def brief(sample: dict[str, Any]) -> str:
    if "error" in sample:
        return "ERROR " + str(sample["error"]).splitlines()[0][:150]
    if "rss_idle_kib" in sample:
        return (
            f"RSS {sample['rss_idle_kib'] / 1024:.1f} -> {sample['rss_loaded_kib'] / 1024:.1f} MiB "
            f"({sample['kib_per_conn']:.1f} KiB/conn, {sample['opened']} opened, {sample['alive']} alive)"
        )
    errors = f"  wrk errors={sample['error_detail']}" if sample["wrk_errors"] else ""
    return (
        f"{sample['rps']:9.0f} req/s  p50 {sample['p50_ms']:.2f} ms  p99 {sample['p99_ms']:.2f} ms  "
        f"{sample['cpu_us_per_req']:.1f} us CPU/req  server CPU {sample['server_cpu_pct']:.0f}%  "
        f"others on CPU{SERVER_CPU}/{CLIENT_CPU} {sample['other_cpu0_pct']:.0f}%/{sample['other_cpu1_pct']:.0f}%"
        f"{errors}"
    )


# --------------------------------------------------------------------------- summary


def stats(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarize(samples: Samples) -> dict[str, dict[str, dict[str, Any]]]:
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for key, by_server in samples.items():
        for server, runs in by_server.items():
            good = [r for r in runs if "error" not in r]
            entry: dict[str, Any] = {"rounds_ok": len(good), "rounds": len(runs)}
            failures = [r["error"] for r in runs if "error" in r]
            if failures:
                entry["failures"] = failures
            metrics = {k for r in good for k, v in r.items() if isinstance(v, (int, float))}
            for metric in sorted(metrics):
                entry[metric] = stats([float(r[metric]) for r in good])
            if good and all("hist" in r for r in good):
                entry["p99_all_ms"] = pooled_percentile([r["hist"] for r in good], 99.0) / 1000
            summary.setdefault(key, {})[server] = entry
    return summary


def pooled_percentile(histograms: list[list[list[int]]], percent: float) -> float:
    """The percentile over all requests of several wrk runs, from their histograms of
    ``[latency_us, count]`` pairs, ranked as wrk's own ``latency:percentile`` ranks."""
    counts: dict[int, int] = {}
    for histogram in histograms:
        for value, count in histogram:
            counts[value] = counts.get(value, 0) + count
    rank = round(percent / 100 * sum(counts.values()) + 0.5)
    seen = 0
    for value in sorted(counts):
        seen += counts[value]
        if seen >= rank:
            return float(value)
    return float(max(counts, default=0))


def _med(entry: dict[str, Any] | None, metric: str) -> float | None:
    if not entry or metric not in entry:
        return None
    value: float = entry[metric]["median"]
    return value


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a is not None and b else "-"


def _span(entry: dict[str, Any], metric: str, fmt: str) -> str:
    s = entry[metric]
    return f"{format(s['median'], fmt)} [{format(s['min'], fmt)}-{format(s['max'], fmt)}]"


def _row(cells: list[str], widths: list[int]) -> str:
    return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return [_row(header, widths), _row(["-" * w for w in widths], widths), *(_row(r, widths) for r in rows)]


def _error_row(name: str, entry: dict[str, Any], width: int) -> list[str]:
    reason = entry.get("failures", ["no data"])[0].splitlines()[0][:90]
    return [name, f"FAILED: {reason}", *[""] * (width - 2)]


def wrk_table(entries: dict[str, dict[str, Any]]) -> list[str]:
    header = ["server", "req/s median [min-max]", "p50 ms", "p99 ms", "CPU us/req [min-max]"]
    header += [
        f"req/s vs {REFERENCE}",
        f"CPU vs {REFERENCE}",
        f"CPU vs {FLOOR}",
        "srv CPU%",
        f"others CPU{SERVER_CPU}/{CLIENT_CPU}% max",
        "wrk errors",
    ]
    pooled = any("p99_all_ms" in e for e in entries.values())
    if pooled:  # a latency scenario: p99 per measurement with its spread, and over all requests
        header[3:4] = ["p99 ms median [min-max]", "p99 ms all requests"]
    ref, floor = entries.get(REFERENCE), entries.get(FLOOR)
    rows = []
    for name, e in entries.items():
        if "rps" not in e:
            rows.append(_error_row(name, e, len(header)))
            continue
        cpu = _med(e, "cpu_us_per_req")
        if pooled:
            p99 = [_span(e, "p99_ms", ".3f"), f"{e['p99_all_ms']:.3f}" if "p99_all_ms" in e else "-"]
        else:
            p99 = [f"{_med(e, 'p99_ms'):.2f}"]
        rows.append(
            [
                name,
                _span(e, "rps", ".0f"),
                f"{_med(e, 'p50_ms'):.2f}",
                *p99,
                _span(e, "cpu_us_per_req", ".1f"),
                _ratio(_med(e, "rps"), _med(ref, "rps")),
                _ratio(cpu, _med(ref, "cpu_us_per_req")),
                _ratio(cpu, _med(floor, "cpu_us_per_req")),
                f"{_med(e, 'server_cpu_pct'):.0f}",
                f"{e['other_cpu0_pct']['max']:.0f}/{e['other_cpu1_pct']['max']:.0f}",
                f"{_med(e, 'wrk_errors'):.0f}"
                + (f" ({e['rounds'] - e['rounds_ok']} rounds failed)" if "failures" in e else ""),
            ]
        )
    return _table(header, rows)


def routes_table(entries: dict[str, dict[str, Any]]) -> list[str]:
    header = [
        "framework",
        "CPU us/req 1 route",
        "CPU us/req 1000 routes",
        "CPU ratio 1000/1",
        "req/s 1",
        "req/s 1000",
    ]
    rows = []
    frameworks = ["hump", "starlette"] + (["hump@base"] if "hump-1r@base" in entries else [])
    for framework in frameworks:
        name, _, twin = framework.partition("@")
        suffix = f"@{twin}" if twin else ""
        one, many = entries.get(f"{name}-1r{suffix}"), entries.get(f"{name}-1000r{suffix}")
        if not one or not many or "rps" not in one or "rps" not in many:
            bad = one if one and "rps" not in one else many
            rows.append(_error_row(framework, bad or {}, len(header)))
            continue
        rows.append(
            [
                framework,
                _span(one, "cpu_us_per_req", ".1f"),
                _span(many, "cpu_us_per_req", ".1f"),
                _ratio(_med(many, "cpu_us_per_req"), _med(one, "cpu_us_per_req")),
                f"{_med(one, 'rps'):.0f}",
                f"{_med(many, 'rps'):.0f}",
            ]
        )
    return _table(header, rows)


def idle_table(entries: dict[str, dict[str, Any]], count: int) -> list[str]:
    header = ["server", "RSS idle MiB", f"RSS +{count} conns MiB", "KiB/conn [min-max]"]
    header += [f"KiB/conn vs {REFERENCE}", "opened", "alive"]
    ref = entries.get(REFERENCE)
    rows = []
    for name, e in entries.items():
        if "rss_idle_kib" not in e:
            rows.append(_error_row(name, e, len(header)))
            continue
        rows.append(
            [
                name,
                f"{_med(e, 'rss_idle_kib') / 1024:.1f}",  # type: ignore[operator]
                f"{_med(e, 'rss_loaded_kib') / 1024:.1f}",  # type: ignore[operator]
                _span(e, "kib_per_conn", ".1f"),
                _ratio(_med(e, "kib_per_conn"), _med(ref, "kib_per_conn")),
                f"{_med(e, 'opened'):.0f}",
                f"{_med(e, 'alive'):.0f}",
            ]
        )
    return _table(header, rows)


#: Issue 23's two ratios: (title, our server, the peer's, scenarios). Each is the peer's
#: CPU per request over ours, i.e. our requests per CPU-second over the peer's: >= 1.0x
#: means hump_listener is at least as cheap.
CLAIMS = (
    ("built-in server vs Starlette on uvicorn httptools", "hump", "starlette-httptools", ("S1", "S4", "S7")),
    ("App vs Starlette, both on granian", "hump-granian", "starlette-granian", ("S1", "S4", "S7")),
    ("App vs Starlette, both on uvicorn httptools", "hump-asgi-httptools", "starlette-httptools", ("S1", "S4", "S7")),
)


def claims_table(summary: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """The ratios of issue 23 items 1 and 2, one row per scenario and pair; the framework
    layer is a server's CPU per request over the raw ASGI app's on granian."""
    header = ["comparison", "scenario", "ours us/req", "peer us/req", "req per CPU-s ratio", "layer us (ours/peer)"]
    rows = []
    for title, ours, peer, keys in CLAIMS:
        for key in keys:
            entries = summary.get(key, {})
            mine, theirs = _med(entries.get(ours), "cpu_us_per_req"), _med(entries.get(peer), "cpu_us_per_req")
            if mine is None or theirs is None:
                continue
            layer = "-"
            raw = _med(entries.get("asgi-raw-granian"), "cpu_us_per_req")
            if raw is not None and "granian" in ours:
                layer = f"{mine - raw:.1f} / {theirs - raw:.1f}"
            rows.append([title, key, f"{mine:.1f}", f"{theirs:.1f}", _ratio(theirs, mine), layer])
    if not rows:
        return []
    return ["", "## Issue 23 ratios (>= 1.00x: hump_listener at least as cheap per request)", "", *_table(header, rows)]


def report(summary: dict[str, dict[str, dict[str, Any]]], args: argparse.Namespace) -> str:
    lines = [
        f"# Results: {args.rounds} round(s) x {args.duration}s (+{args.warmup}s warmup), "
        f"servers on CPU {SERVER_CPU}, wrk on CPU {CLIENT_CPU}, loop {args.loop} (hump_listener and uvicorn)",
    ]
    lines += noise_warning(summary)
    for scenario in SCENARIOS:
        entries = summary.get(scenario.key)
        if not entries:
            continue
        lines += ["", f"## {scenario.key}: {scenario.title}", ""]
        if scenario.kind == "wrk":
            lines += wrk_table(entries)
        elif scenario.kind == "routes":
            lines += routes_table(entries)
        else:
            lines += idle_table(entries, args.idle_connections)
    return "\n".join(lines + claims_table(summary) + failures_section(summary))


def noise_warning(summary: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """Warn when other processes kept the server's CPU busy during the measurements."""
    others = [e["other_cpu0_pct"]["median"] for es in summary.values() for e in es.values() if "rps" in e]
    if not others or statistics.median(others) < 10:
        return []
    return [
        f"WARNING: other processes used {statistics.median(others):.0f}% of CPU {SERVER_CPU} (median over "
        "rows) while the servers ran: req/s and latency are unreliable; CPU us/req is the robust metric."
    ]


def failures_section(summary: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """Each distinct failure once, in full (the tables show only its first line)."""
    seen: dict[str, list[str]] = {}
    for key, entries in summary.items():
        for server, entry in entries.items():
            for failure in entry.get("failures", []):
                seen.setdefault(failure, []).append(f"{key}/{server}")
    lines = ["", "## Failures", ""] if seen else []
    for failure, where in seen.items():
        lines += [f"* {', '.join(where)}:", *(f"    {line}" for line in failure.splitlines()[:25])]
    return lines


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="hump_listener benchmarks (see benchmarks/README.md)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk measurement (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of wrk warmup before each (default 1)")
    parser.add_argument("--only", default="", help="comma-separated scenarios, e.g. S1,S5")
    parser.add_argument("--servers", default="", help="comma-separated server names to keep (default all)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round x 2s")
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="measurements of each server per round in S2 and S5 (default 3)",
    )
    parser.add_argument("--idle-connections", type=int, default=2000, help="S6 connection count (default 2000)")
    parser.add_argument(
        "--loop",
        "--uvicorn-loop",  # its name before hump_listener could run on uvloop too
        dest="loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="event loop of hump_listener (HUMP_LOOP) and uvicorn (--loop); default asyncio",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout of this repository (git worktree add /tmp/base <commit>): adds its "
        "hump, hump-asgi-httptools and hump-granian as rows NAME@base, for before/after in one run",
    )
    parser.add_argument("--json", type=Path, default=RESULTS / "latest.json", help="where to save results")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.duration, args.warmup, args.repeats = 1, 2, 1, 1
    if args.rounds < 1 or args.duration < 1 or args.warmup < 0 or args.repeats < 1:
        parser.error("--rounds, --duration and --repeats must be >= 1, --warmup >= 0")
    return args


def select_scenarios(only: str) -> list[Scenario]:
    keys = [k.strip().upper() for k in only.split(",") if k.strip()]
    unknown = [k for k in keys if k not in BY_KEY]
    if unknown:
        sys.exit(f"unknown scenario(s): {', '.join(unknown)}; choose from {', '.join(BY_KEY)}")
    return [s for s in SCENARIOS if not keys or s.key in keys]


def with_baseline(scenarios: list[Scenario]) -> list[Scenario]:
    """Each scenario also run by the ``@base`` twin of its hump_listener servers
    (``--baseline``)."""
    twins = {spec.name.partition("@")[0] for spec in baseline_specs(Path("."), "asyncio")}
    return [
        dataclasses.replace(s, servers=(*s.servers, *(f"{n}@base" for n in s.servers if n in twins)))
        for s in scenarios
    ]


def select_servers(args: argparse.Namespace, scenarios: list[Scenario]) -> dict[str, ServerSpec]:
    specs = server_specs(args.loop, args.baseline.resolve() if args.baseline else None)
    wanted = {n.strip() for n in args.servers.split(",") if n.strip()}
    needed = {name for s in scenarios for name in s.servers}
    usable: dict[str, ServerSpec] = {}
    for name in (n for n in specs if n in needed):
        plain = name.partition("@")[0]  # a --baseline twin is kept with its server
        if wanted and name not in wanted and plain not in wanted and plain.rsplit("-", 1)[0] not in wanted:
            continue
        reason = missing_requirement(specs[name])
        if reason:
            print(f"SKIP {name}: {reason}")
        else:
            usable[name] = specs[name]
    return usable


def check_machine(args: argparse.Namespace) -> None:
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    cpus = os.sched_getaffinity(0)
    if not {SERVER_CPU, CLIENT_CPU} <= cpus:
        sys.exit(f"need CPUs {SERVER_CPU} and {CLIENT_CPU}; this process may use {sorted(cpus)}")
    os.sched_setaffinity(0, {CLIENT_CPU})  # the harness (and S6's client) stays off the server's CPU
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.idle_connections + 1024
    if soft < want:
        target = want if hard == resource.RLIM_INFINITY else min(hard, max(want, soft))
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))  # inherited by the servers
        if target < want:
            print(f"WARNING: RLIMIT_NOFILE hard limit {hard} < {want}; S6 may fail to open all connections")


def environment(args: argparse.Namespace) -> dict[str, Any]:
    versions = {}
    for dist in ("hump_listener", "tiny-listener", "h11", "uvicorn", "starlette", "httptools", "uvloop", "granian"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[dist] = importlib.metadata.version(dist)
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "wrk": (wrk.stdout or wrk.stderr).splitlines()[0] if (wrk.stdout or wrk.stderr) else "?",
        "versions": versions,
        "args": {k: str(v) for k, v in vars(args).items() if k != "tmpdir"},
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    check_machine(args)
    scenarios = select_scenarios(args.only)
    if args.baseline is not None:
        scenarios = with_baseline(scenarios)
    specs = select_servers(args, scenarios)
    launches = plan(scenarios, specs)
    if not launches and not any(s.phase for s in scenarios):
        sys.exit("nothing to run (all servers skipped?)")
    samples: Samples = {}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="hump-bench-") as tmpdir:
        args.tmpdir = tmpdir
        for scenario in scenarios:
            (Path(tmpdir) / f"{scenario.key}.lua").write_text(lua_script(scenario.request, scenario.latency))
        for round_no in range(1, args.rounds + 1):
            print(f"== round {round_no}/{args.rounds} ({time.monotonic() - started:.0f}s elapsed)", flush=True)
            # Even rounds run in reverse order: a server's position in the round (what ran
            # just before it) must not favour it, and paired rows (S5's 1 vs 1000 routes)
            # run in both orders.
            for spec, its_scenarios in launches if round_no % 2 else launches[::-1]:
                run_launch(spec, its_scenarios, args, samples)
            for scenario in (s for s in scenarios if s.phase):
                servers = [specs[name] for name in scenario.servers if name in specs]
                print(f"  {scenario.key}: all {len(servers)} servers up, one running at a time", flush=True)
                run_phase(servers, scenario, args, samples, round_no)
    summary = summarize(samples)
    text = report(summary, args)
    print("\n" + text)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    payload = {"environment": environment(args), "summary": summary, "samples": samples, "table": text}
    args.json.write_text(json.dumps(payload, indent=2))
    print(f"\n({time.monotonic() - started:.0f}s; JSON saved to {args.json})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
