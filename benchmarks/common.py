"""What the benchmark scripts share: paths, the CPU split, free ports, how to start the
demo app, and the /proc readers (CPU time and RSS of a process tree).

Every script in this directory imports it (``run.py``, ``soak.py``, ``workers.py``,
``inproc.py``, ``icount.py``); none keeps a copy of these helpers. Linux only, like the
benchmarks themselves (``/proc``, ``sched_setaffinity``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "BENCH_DIR",
    "CLIENT_CPU",
    "CLK_TCK",
    "HOST",
    "REPO",
    "SERVER_CPU",
    "cpu_seconds",
    "free_port",
    "hump_env",
    "pinned",
    "proc_tree",
    "pythonpath",
    "rss_kib",
    "tiny_listener",
]

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
HOST = "127.0.0.1"
#: Servers run pinned to CPU 0, the load generator (wrk, or the soak's client) to CPU 1,
#: so the server has a whole core and the client never steals it.
SERVER_CPU = 0
CLIENT_CPU = 1
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A port that was free on ``HOST`` a moment ago."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def tiny_listener() -> list[str]:
    """The ``tiny-listener`` command of this interpreter's environment (else on PATH,
    else ``python -m tiny_listener``): how the README starts the demo."""
    local = Path(sys.executable).with_name("tiny-listener")
    if local.exists():
        return [str(local)]
    found = shutil.which("tiny-listener")
    return [found] if found else [sys.executable, "-m", "tiny_listener"]


def pythonpath() -> str:
    """The repository first, so the working tree's hump_listener is used even if not installed."""
    return os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)


def hump_env(port: int, loop: str = "asyncio", **extra: str) -> dict[str, str]:
    """The environment a benchmarked hump_listener server starts with: our port, access
    log off, and the event loop named explicitly (``auto`` would pick uvloop whenever the
    bench extra installed it, while the peers run on ``--loop asyncio``)."""
    return {
        "HUMP_PORT": str(port), "HUMP_HOST": HOST, "HUMP_ACCESS_LOG": "0", "HUMP_LOOP": loop,
        "PYTHONPATH": pythonpath(), "PYTHONUNBUFFERED": "1", **extra,
    }


def pin_self(cpu: int) -> bool:
    """Confine this process to ``cpu`` when the machine has at least 2 CPUs (else leave it
    free); returns whether it did."""
    if not hasattr(os, "sched_setaffinity") or (os.cpu_count() or 1) < 2:
        return False
    os.sched_setaffinity(0, {cpu})
    return True


def pinned(cpus: int | set[int] | None) -> Callable[[], None]:
    """A ``preexec_fn`` confining the child (and what it spawns) to ``cpus``."""

    def preexec() -> None:
        if cpus is not None:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, {cpus} if isinstance(cpus, int) else cpus)

    return preexec


def proc_tree(root: int) -> list[int]:
    """``root`` and all its live descendants."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(parents.get(pid, []))
    return tree


def cpu_seconds(root: int) -> float:
    """utime+stime (+ reaped children's) of ``root``'s process tree, in seconds."""
    ticks = 0
    for pid in proc_tree(root):
        with contextlib.suppress(OSError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return ticks / CLK_TCK


def rss_kib(root: int) -> int:
    """Sum of VmRSS over ``root``'s process tree, in KiB."""
    total = 0
    for pid in proc_tree(root):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def spread(values: list[float], fmt: str) -> str:
    """The median of ``values``, then ``[min-max]`` when there is more than one."""
    med = statistics.median(values)
    if len(values) == 1:
        return format(med, fmt)
    return f"{format(med, fmt)} [{format(min(values), fmt)}-{format(max(values), fmt)}]"


def text_table(lines: list[tuple[str, ...]]) -> list[str]:
    """``lines`` (the header first) as aligned ``a | b`` rows, a rule under the header."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    out = [" | ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in lines]
    out.insert(1, "-+-".join("-" * w for w in widths))
    return out


Command = Callable[[int], tuple[list[str], dict[str, str]]]


def from_checkout(base: Path, command: Command) -> Command:
    """``command`` (a server launch: port -> argv, extra env) run from another checkout
    ``base`` of this repository: paths into this tree, in the arguments and PYTHONPATH,
    point into ``base`` instead, and ``base`` comes first on PYTHONPATH. The benchmarks'
    ``--baseline``: a change's before and after in one run."""
    here = str(REPO)

    def run(port: int) -> tuple[list[str], dict[str, str]]:
        argv, env = command(port)
        # argv[0] is this environment's program (its .venv may be inside this tree): kept
        argv = argv[:1] + [str(base) + arg[len(here) :] if arg.startswith(here) else arg for arg in argv[1:]]
        path = env.get("PYTHONPATH", "").replace(here, str(base))
        return argv, {**env, "PYTHONPATH": os.pathsep.join(p for p in (str(base), path) if p)}

    return run
