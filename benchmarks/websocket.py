"""WebSocket benchmark: hump_listener beside uvicorn's WebSocket stacks and Starlette.

    python benchmarks/websocket.py            # 3 rounds, ~5.5 min
    python benchmarks/websocket.py --quick    # smoke run, ~1 min
    python benchmarks/websocket.py --only W2 --rounds 5 --servers hump,uvicorn-sansio

The same side-by-side style as run.py (whose server launching and /proc readings it
reuses): every server runs pinned to CPU 0, the load generator (benchmarks/wsload.py, one
process on uvloop) and this harness on CPU 1. W1 and W2 are measured the way run.py
measures S2 and S5 (``run_echo_phase``): in each round every server is started, all but
the measured one are stopped with SIGSTOP, and ``--repeats`` slots each measure every
server once, the order rotated from slot to slot. W3 starts each server fresh, once per
round, in an order reversed every other round. Every server is killed afterwards.

Scenarios (one "message" is one echo: a 32-byte text frame in, the same frame back):

* W1: echo round trips over 1 connection, lock-step (send, wait for the echo, send next);
* W2: echoes over 50 connections, each in lock-step;
* W3: server memory per idle WebSocket connection: RSS of the server's process tree with
  --idle-connections open (each after its handshake and one echo) minus RSS before, / n.
* W4 (issue 18.2): one client floods one connection with tiny frames (1-byte binary
  frames, echoed; pings; messages of 4,000 one-byte fragments) while another connection
  sends ``GET /`` in lock-step: that probe's p50/p99 under each attack beside its idle
  figure (goal: within a few milliseconds of idle). ``GET /`` is a 404 on every server's
  echo app: the probe measures turn-around, not a route.

Per W1/W2 measurement: messages per second, p50/p99 round-trip time, and the server's CPU
time (utime+stime of its process tree, from /proc, read by the load generator at the edges
of its window) per message. **msgs per server CPU-second** (1e6 / CPU us per message) is
the figure the target is about (issue 12: >= 1.5x uvicorn's best WebSocket implementation):
unlike msgs/s it does not depend on whether the client or the server saturated first. The
ratios compare with uvicorn's best raw-ASGI row (the lowest CPU us per message) in the same
scenario. See benchmarks/README.md, "websocket.py".
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common
import run as harness
from run import (
    APPS,
    CLIENT_CPU,
    HOST,
    PEERS,
    PY,
    RESULTS,
    SERVER_CPU,
    ServerSpec,
    ServerStartError,
)

LOAD = Path(__file__).resolve().parent / "wsload.py"
HUMP = "hump"
#: uvicorn's raw-ASGI rows: the best of them (lowest CPU per message) is the reference.
UVICORN = ("uvicorn-sansio", "uvicorn-websockets", "uvicorn-wsproto")
#: Seconds the load generator may take beyond its warmup + duration (connecting, closing).
CLIENT_SLACK = 60


# --------------------------------------------------------------------------- servers


def _hump(loop: str) -> Callable[[int], tuple[list[str], dict[str, str]]]:
    def command(port: int) -> tuple[list[str], dict[str, str]]:
        # HUMP_LOOP picks the loop (common.hump_env); BENCH_LOOP is the app's own note of it.
        env = common.hump_env(port, loop=loop, HUMP_PARSER="h11", BENCH_LOOP=loop)
        return [*common.tiny_listener(), "--app-dir", str(APPS), "hump_ws:app"], env

    return command


def _uvicorn(app: str, ws: str, loop: str) -> Callable[[int], tuple[list[str], dict[str, str]]]:
    def command(port: int) -> tuple[list[str], dict[str, str]]:
        argv = [PY, "-m", "uvicorn", "--app-dir", str(PEERS), app, "--host", HOST, "--port", str(port)]
        # --http h11: the handshake goes through the same parser as ours (it is the only
        # HTTP request of a WebSocket connection, so this hardly matters for W1/W2).
        argv += ["--ws", ws, "--http", "h11", "--loop", loop, "--no-access-log", "--log-level", "warning"]
        return argv, {}

    return command


def uvicorn_has(ws: str) -> bool:
    """Whether the installed uvicorn offers ``--ws ws`` (websockets-sansio is 0.35+)."""
    module = {
        "websockets-sansio": "websockets_sansio_impl",
        "websockets": "websockets_impl",
        "wsproto": "wsproto_impl",
    }[ws]
    with contextlib.suppress(ImportError, ValueError):
        return importlib.util.find_spec(f"uvicorn.protocols.websockets.{module}") is not None
    return False


def server_specs(
    loop: str, starlette_ws: str, hump_loop: str, baseline: Path | None = None
) -> tuple[dict[str, ServerSpec], list[str]]:
    """The servers, and why any is left out. ``baseline``: another checkout of this
    repository, whose hump_listener runs the same app as row ``hump@base``."""
    skipped: list[str] = []
    loop_req = ("uvloop",) if loop == "uvloop" else ()
    hump_req = ("hump_listener", "tiny_listener", "h11", "websockets", *(("uvloop",) if hump_loop == "uvloop" else ()))
    specs = [ServerSpec(HUMP, _hump(hump_loop), hump_req)]
    if baseline is not None:
        specs.append(ServerSpec(f"{HUMP}@base", common.from_checkout(baseline, _hump(hump_loop)), hump_req))
    for name, ws, lib in (
        ("uvicorn-sansio", "websockets-sansio", "websockets"),
        ("uvicorn-websockets", "websockets", "websockets"),
        ("uvicorn-wsproto", "wsproto", "wsproto"),
    ):
        if importlib.util.find_spec("uvicorn") is not None and not uvicorn_has(ws):
            skipped.append(f"{name}: this uvicorn has no --ws {ws}")
            continue
        specs.append(ServerSpec(name, _uvicorn("asgi_ws:app", ws, loop), ("uvicorn", lib, *loop_req)))
    lib = "wsproto" if starlette_ws == "wsproto" else "websockets"
    specs.append(
        ServerSpec("starlette", _uvicorn("starlette_ws:app", starlette_ws, loop), ("uvicorn", "starlette", lib))
    )
    out: dict[str, ServerSpec] = {}
    for spec in specs:
        reason = harness.missing_requirement(spec)
        if reason:
            skipped.append(f"{spec.name}: {reason}")
        else:
            out[spec.name] = spec
    return out, skipped


# --------------------------------------------------------------------------- measuring


def load(
    mode: str, port: int, pid: int, connections: int, args: argparse.Namespace, extra: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Run the load generator once (pinned to CPU 1) and return its JSON result."""
    argv = [PY, str(LOAD), mode, "--port", str(port), "--server-pid", str(pid), *extra]
    argv += ["--connections", str(connections), "--size", str(args.size), "--loop", args.client_loop]
    argv += ["--warmup", str(args.warmup), "--duration", str(args.duration)]
    budget = args.warmup + args.duration + CLIENT_SLACK
    out = subprocess.run(
        argv, capture_output=True, text=True, timeout=budget, preexec_fn=common.pinned(CLIENT_CPU), check=False
    )
    for line in out.stdout.splitlines():
        if line.startswith("WSLOAD "):
            result: dict[str, Any] = json.loads(line[len("WSLOAD ") :])
            return result
    tail = (out.stderr or out.stdout).strip().splitlines()[-3:]
    return {"error": f"load generator gave no result (rc={out.returncode}): {' / '.join(tail)}"}


def echo_sample(result: dict[str, Any]) -> dict[str, Any]:
    if "error" in result:
        return result
    wall, messages = result["wall_s"], max(result["messages"], 1)
    cpu_us = result["server_cpu_s"] * 1e6 / messages
    return {
        "msgs_per_s": result["messages"] / wall,
        "p50_us": result["p50_us"],
        "p99_us": result["p99_us"],
        "cpu_us_per_msg": cpu_us,
        "msgs_per_cpu_s": 1e6 / cpu_us if cpu_us else 0.0,
        "server_cpu_pct": 100 * result["server_cpu_s"] / wall,
        "client_cpu_pct": 100 * result["client_cpu_s"] / wall,
        "other_cpu0_pct": 100 * result["other_cpu0_s"] / wall,
        "other_cpu1_pct": 100 * result["other_cpu1_s"] / wall,
        "messages": result["messages"],
        "not_closed": result["not_closed"],
    }


SCENARIOS = {
    "W1": "echo round trips, 1 connection, lock-step, 32 B text",
    "W2": "echoes, 50 connections each in lock-step, 32 B text",
    "W3": "server RSS per idle WebSocket connection",
    "W4": "GET / p50/p99 on another connection while one client floods tiny frames",
}
#: W4's attacks (wsload.py flood --attack), "none" first: the idle figure.
ATTACKS = ("none", "binary", "ping", "cont")

Samples = dict[str, dict[str, list[dict[str, Any]]]]  # scenario -> server -> samples


def flood_sample(port: int, pid: int, args: argparse.Namespace) -> dict[str, Any]:
    """W4: the probe's p50/p99 (ms) idle and under each attack, in one sample."""
    sample: dict[str, Any] = {}
    for attack in ATTACKS:
        result = load("flood", port, pid, 1, args, ("--attack", attack))
        if "error" in result:
            return {"error": f"{attack}: {result['error']}"}
        sample[f"{attack}_p50_ms"] = result["p50_ms"]
        sample[f"{attack}_p99_ms"] = result["p99_ms"]
        sample[f"{attack}_probes"] = result["probes"]
    return sample


def brief(sample: dict[str, Any]) -> str:
    if "error" in sample:
        return "ERROR " + str(sample["error"]).splitlines()[0][:160]
    if "none_p50_ms" in sample:
        return "  ".join(
            f"{a} p50 {sample[f'{a}_p50_ms']:.2f} p99 {sample[f'{a}_p99_ms']:.1f} ms ({sample[f'{a}_probes']})"
            for a in ATTACKS
        )
    if "kib_per_conn" in sample:
        return (
            f"RSS {sample['rss_idle_kib'] / 1024:.1f} -> {sample['rss_loaded_kib'] / 1024:.1f} MiB "
            f"({sample['kib_per_conn']:.1f} KiB/conn, {sample['opened']} opened, {sample['alive']} alive)"
        )
    return (
        f"{sample['msgs_per_s']:8.0f} msgs/s  p50 {sample['p50_us']:.0f} us  p99 {sample['p99_us']:.0f} us  "
        f"{sample['cpu_us_per_msg']:.1f} us CPU/msg  server {sample['server_cpu_pct']:.0f}%  "
        f"client {sample['client_cpu_pct']:.0f}%  others CPU{SERVER_CPU}/{CLIENT_CPU} "
        f"{sample['other_cpu0_pct']:.0f}%/{sample['other_cpu1_pct']:.0f}%"
    )


def record(samples: Samples, key: str, name: str, sample: dict[str, Any]) -> None:
    samples.setdefault(key, {}).setdefault(name, []).append(sample)
    print(f"    {key} {name:<20} {brief(sample)}", flush=True)


def measure(key: str, port: int, pid: int, args: argparse.Namespace) -> dict[str, Any]:
    try:
        if key == "W3":
            return load("idle", port, pid, args.idle_connections, args)
        if key == "W4":
            return flood_sample(port, pid, args)
        return echo_sample(load("echo", port, pid, 1 if key == "W1" else 50, args))
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


def run_launch(spec: ServerSpec, keys: list[str], args: argparse.Namespace, samples: Samples) -> None:
    """W3: a fresh server, measured, stopped."""
    try:
        with harness.running(spec) as (proc, port):
            for key in keys:
                record(samples, key, spec.name, measure(key, port, proc.pid, args))
    except ServerStartError as exc:
        for key in keys:
            record(samples, key, spec.name, {"error": f"server failed to start: {exc}"})


def run_echo_phase(
    specs: list[ServerSpec], keys: list[str], args: argparse.Namespace, samples: Samples, round_no: int
) -> None:
    """W1 and W2, the way run.py measures S2 and S5: the shared VM's noise comes in bursts
    of seconds, enough to decide a 1.5x ratio by which server a burst fell on. So every
    server of the round is started at once and stopped (SIGSTOP: it cannot disturb), and
    ``--repeats`` slots each measure every server once (SIGCONT, W1 then W2, SIGSTOP), the
    order rotated from slot to slot and round to round: measurements of different servers
    are seconds apart, and a burst falls on them alike."""
    with contextlib.ExitStack() as stack:
        up: list[tuple[ServerSpec, Any, int]] = []
        for spec in specs:
            try:
                proc, port = stack.enter_context(harness.running(spec))
            except ServerStartError as exc:
                for key in keys:
                    record(samples, key, spec.name, {"error": f"server failed to start: {exc}"})
                continue
            up.append((spec, proc, port))
        for _, proc, _ in up:  # runs before the servers' own exits: a stopped one ignores SIGTERM
            stack.callback(harness._signal_tree, proc, signal.SIGCONT)
        for _, proc, _ in up:
            harness._signal_tree(proc, signal.SIGSTOP)
        for slot in range(args.repeats):
            shift = ((round_no - 1) * args.repeats + slot) % max(len(up), 1)
            for spec, proc, port in up[shift:] + up[:shift]:
                if time.monotonic() > args.deadline:
                    return
                harness._signal_tree(proc, signal.SIGCONT)
                try:
                    for key in keys:
                        record(samples, key, spec.name, measure(key, port, proc.pid, args))
                finally:
                    harness._signal_tree(proc, signal.SIGSTOP)


# --------------------------------------------------------------------------- report


def best_uvicorn(entries: dict[str, dict[str, Any]], metric: str) -> str | None:
    """The uvicorn raw-ASGI row with the lowest ``metric`` (CPU us/msg, KiB/conn)."""
    rows = [(harness._med(entries.get(n), metric), n) for n in UVICORN]
    ranked = sorted((value, name) for value, name in rows if value is not None)
    return ranked[0][1] if ranked else None


def echo_table(entries: dict[str, dict[str, Any]]) -> tuple[list[str], list[str]]:
    ref_name = best_uvicorn(entries, "cpu_us_per_msg")
    ref = entries.get(ref_name) if ref_name else None
    header = ["server", "msgs/s median [min-max]", "p50 us", "p99 us", "CPU us/msg [min-max]"]
    header += ["msgs/CPU-s", "msgs/CPU-s vs uvicorn best", "msgs/s vs uvicorn best", "srv CPU%", "client CPU%"]
    header += [f"others CPU{SERVER_CPU}/{CLIENT_CPU}% max"]
    rows, notes = [], []
    for name, e in entries.items():
        if "cpu_us_per_msg" not in e:
            rows.append(harness._error_row(name, e, len(header)))
            continue
        rows.append(
            [
                name + (" *" if name == ref_name else ""),
                harness._span(e, "msgs_per_s", ".0f"),
                f"{harness._med(e, 'p50_us'):.0f}",
                f"{harness._med(e, 'p99_us'):.0f}",
                harness._span(e, "cpu_us_per_msg", ".1f"),
                f"{harness._med(e, 'msgs_per_cpu_s'):.0f}",
                harness._ratio(harness._med(e, "msgs_per_cpu_s"), harness._med(ref, "msgs_per_cpu_s")),
                harness._ratio(harness._med(e, "msgs_per_s"), harness._med(ref, "msgs_per_s")),
                f"{harness._med(e, 'server_cpu_pct'):.0f}",
                f"{harness._med(e, 'client_cpu_pct'):.0f}",
                f"{e['other_cpu0_pct']['max']:.0f}/{e['other_cpu1_pct']['max']:.0f}",
            ]
        )
        server_pct, client_pct = harness._med(e, "server_cpu_pct"), harness._med(e, "client_cpu_pct")
        if server_pct is not None and client_pct is not None and server_pct < 90 and client_pct > 90:
            notes.append(
                f"{name}: the client was the limit (server {server_pct:.0f}% busy, client {client_pct:.0f}%): "
                "compare CPU us/msg, not msgs/s"
            )
    if ref_name:
        notes.insert(0, f"* uvicorn best = {ref_name} (lowest CPU us/msg among {', '.join(UVICORN)})")
    return harness._table(header, rows), notes


def idle_table(entries: dict[str, dict[str, Any]], count: int) -> tuple[list[str], list[str]]:
    ref_name = best_uvicorn(entries, "kib_per_conn")
    ref = entries.get(ref_name) if ref_name else None
    header = ["server", "RSS idle MiB", f"RSS +{count} conns MiB", "KiB/conn [min-max]", "vs uvicorn best"]
    header += ["opened", "alive"]
    rows = []
    for name, e in entries.items():
        if "kib_per_conn" not in e:
            rows.append(harness._error_row(name, e, len(header)))
            continue
        rows.append(
            [
                name + (" *" if name == ref_name else ""),
                f"{harness._med(e, 'rss_idle_kib') / 1024:.1f}",  # type: ignore[operator]
                f"{harness._med(e, 'rss_loaded_kib') / 1024:.1f}",  # type: ignore[operator]
                harness._span(e, "kib_per_conn", ".1f"),
                harness._ratio(harness._med(e, "kib_per_conn"), harness._med(ref, "kib_per_conn")),
                f"{harness._med(e, 'opened'):.0f}",
                f"{harness._med(e, 'alive'):.0f}",
            ]
        )
    notes = [f"* uvicorn best = {ref_name} (lowest KiB/conn)"] if ref_name else []
    return harness._table(header, rows), notes


def flood_table(entries: dict[str, dict[str, Any]]) -> tuple[list[str], list[str]]:
    header = ["server"] + [f"{a if a != 'none' else 'idle'} p50 / p99 ms" for a in ATTACKS]
    header += ["probes in window, idle / worst attack"]
    rows = []
    for name, e in entries.items():
        if "none_p50_ms" not in e:
            rows.append(harness._error_row(name, e, len(header)))
            continue
        cells = [name]
        for attack in ATTACKS:
            cells.append(f"{harness._med(e, f'{attack}_p50_ms'):.2f} / {harness._med(e, f'{attack}_p99_ms'):.1f}")
        worst = min(harness._med(e, f"{a}_probes") or 0.0 for a in ATTACKS[1:])
        cells.append(f"{harness._med(e, 'none_probes'):.0f} / {worst:.0f}")
        rows.append(cells)
    notes = ["A row with few probes under an attack: GET / waited behind the flood for most of the window."]
    return harness._table(header, rows), notes


def verdict(summary: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """The issue's targets, as measured."""
    lines = []
    for key in ("W1", "W2"):
        entries = summary.get(key, {})
        ref = best_uvicorn(entries, "cpu_us_per_msg")
        ours = harness._med(entries.get(HUMP), "msgs_per_cpu_s")
        theirs = harness._med(entries.get(ref), "msgs_per_cpu_s") if ref else None
        if ours and theirs:
            ratio = ours / theirs
            met = "met" if ratio >= 1.5 else "NOT met"
            lines.append(f"* {key}: hump {ratio:.2f}x {ref} in msgs per server CPU-second (target >= 1.5x: {met})")
    entries = summary.get("W3", {})
    ref = best_uvicorn(entries, "kib_per_conn")
    ours = harness._med(entries.get(HUMP), "kib_per_conn")
    theirs = harness._med(entries.get(ref), "kib_per_conn") if ref else None
    if ours is not None and theirs:
        met = "met" if ours <= theirs else "NOT met"
        lines.append(
            f"* W3: hump {ours:.1f} KiB/conn vs {ref} {theirs:.1f} ({ours / theirs:.2f}x; target <= 1.00x: {met})"
        )
    return ["", "## Targets (issue 12)", "", *lines] if lines else []


def noise_warning(summary: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    others = [e["other_cpu0_pct"]["median"] for es in summary.values() for e in es.values() if "other_cpu0_pct" in e]
    if not others or statistics.median(others) < 10:
        return []
    return [
        f"WARNING: other processes used {statistics.median(others):.0f}% of CPU {SERVER_CPU} (median over rows) "
        "while the servers ran: msgs/s and latency are unreliable; CPU us/msg is the robust metric."
    ]


def report(summary: dict[str, dict[str, dict[str, Any]]], args: argparse.Namespace, load_avg: str) -> str:
    lines = [
        f"# WebSocket results: {args.rounds} round(s), W1/W2 {args.repeats} slot(s) per round of "
        f"{args.duration}s (+{args.warmup}s warmup), "
        f"servers on CPU {SERVER_CPU}, load generator on CPU {CLIENT_CPU} (client loop: {args.client_loop_used}), "
        f"hump on {args.hump_loop}, uvicorn --loop {args.uvicorn_loop}, Starlette on --ws {args.starlette_ws}, "
        f"load average at start {load_avg}",
    ]
    lines += noise_warning(summary)
    for key, title in SCENARIOS.items():
        entries = summary.get(key)
        if not entries:
            continue
        lines += ["", f"## {key}: {title}", ""]
        if key == "W3":
            table, notes = idle_table(entries, args.idle_connections)
        elif key == "W4":
            table, notes = flood_table(entries)
        else:
            table, notes = echo_table(entries)
        lines += table + notes
    lines += verdict(summary)
    return "\n".join(lines + harness.failures_section(summary))


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="WebSocket benchmarks (see benchmarks/README.md)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--duration", type=float, default=3, help="seconds per measurement (default 3)")
    parser.add_argument(
        "--repeats", type=int, default=2, help="W1/W2 measurements of each server per round (default 2)"
    )
    parser.add_argument("--warmup", type=float, default=1, help="seconds of load before each (default 1)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round x 2 s, 500 idle connections")
    parser.add_argument("--only", default="", help="comma-separated scenarios: W1,W2,W3,W4")
    parser.add_argument("--servers", default="", help="comma-separated server names to keep (default all)")
    parser.add_argument("--idle-connections", type=int, default=2000, help="W3 connection count (default 2000)")
    parser.add_argument("--size", type=int, default=32, help="message payload bytes (default 32)")
    parser.add_argument("--uvicorn-loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument(
        "--hump-loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="hump_listener's loop (default asyncio, its own; uvloop: apps/hump_ws.py installs uvloop's policy)",
    )
    parser.add_argument(
        "--starlette-ws",
        choices=("websockets-sansio", "websockets", "wsproto"),
        default="websockets-sansio",
        help="uvicorn's --ws for the Starlette row (default websockets-sansio, uvicorn's fastest here)",
    )
    parser.add_argument("--client-loop", choices=("auto", "asyncio", "uvloop"), default="auto")
    parser.add_argument("--max-seconds", type=float, default=540, help="start no new launch after this (default 540)")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout of this repository (git worktree add /tmp/base <commit>): its "
        "hump_listener serving the same app, as row hump@base, for before/after in one run",
    )
    parser.add_argument("--json", type=Path, default=RESULTS / "websocket.json", help="where to save results")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.repeats, args.duration, args.warmup, args.idle_connections = 1, 1, 2, 1, 500
    if min(args.rounds, args.repeats, args.idle_connections) < 1 or args.duration <= 0 or args.warmup < 0:
        parser.error("--rounds, --repeats, --duration and --idle-connections must be positive, --warmup >= 0")
    return args


def prepare_machine(args: argparse.Namespace) -> None:
    cpus = os.sched_getaffinity(0)
    if not {SERVER_CPU, CLIENT_CPU} <= cpus:
        sys.exit(f"need CPUs {SERVER_CPU} and {CLIENT_CPU}; this process may use {sorted(cpus)}")
    os.sched_setaffinity(0, {CLIENT_CPU})
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.idle_connections + 1024
    if soft < want:  # inherited by the servers and the load generator
        target = want if hard == resource.RLIM_INFINITY else min(hard, max(want, soft))
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        if target < want:
            print(f"WARNING: RLIMIT_NOFILE hard limit {hard} < {want}; W3 may fail to open all connections")


def environment(args: argparse.Namespace, load_avg: str) -> dict[str, Any]:
    versions = {}
    for dist in ("hump_listener", "tiny-listener", "h11", "websockets", "wsproto", "uvicorn", "starlette", "uvloop"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[dist] = importlib.metadata.version(dist)
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": load_avg,
        "versions": versions,
        "args": {k: str(v) for k, v in vars(args).items()},
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    prepare_machine(args)
    keys = [k.strip().upper() for k in args.only.split(",") if k.strip()] or list(SCENARIOS)
    unknown = [k for k in keys if k not in SCENARIOS]
    if unknown:
        sys.exit(f"unknown scenario(s): {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    baseline = args.baseline.resolve() if args.baseline else None
    specs, skipped = server_specs(args.uvicorn_loop, args.starlette_ws, args.hump_loop, baseline)
    wanted = {n.strip() for n in args.servers.split(",") if n.strip()}
    if wanted:  # (a --baseline twin is kept with its server)
        specs = {name: spec for name, spec in specs.items() if name.partition("@")[0] in wanted}
    for reason in skipped:
        print(f"SKIP {reason}")
    if not specs:
        sys.exit("nothing to run (all servers skipped?)")
    args.client_loop_used = args.client_loop
    if args.client_loop == "auto":
        args.client_loop_used = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    load_avg = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average {load_avg}", flush=True)
    # W1+W2: one phase per round with every server up (run_echo_phase); W3: a fresh
    # launch per server (RSS after load differs), in an order reversed every other round.
    echo_keys = [k for k in keys if k != "W3"]
    samples: Samples = {}
    started = time.monotonic()
    args.deadline = started + args.max_seconds
    for round_no in range(1, args.rounds + 1):
        print(f"== round {round_no}/{args.rounds} ({time.monotonic() - started:.0f}s elapsed)", flush=True)
        order = list(specs.values()) if round_no % 2 else list(specs.values())[::-1]
        if echo_keys:
            run_echo_phase(order, echo_keys, args, samples, round_no)
        if "W3" in keys:
            for spec in order:
                if time.monotonic() > args.deadline:
                    break
                run_launch(spec, ["W3"], args, samples)
    stopped_early = time.monotonic() > args.deadline
    summary = harness.summarize(samples)
    text = report(summary, args, load_avg)
    if stopped_early:
        text += f"\n\nNOTE: nothing started after --max-seconds {args.max_seconds:.0f}: rows have fewer samples."
    print("\n" + text)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    payload = {"environment": environment(args, load_avg), "summary": summary, "samples": samples, "table": text}
    args.json.write_text(json.dumps(payload, indent=2))
    print(f"\n({time.monotonic() - started:.0f}s; JSON saved to {args.json})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
