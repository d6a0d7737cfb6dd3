"""Run an app as a real subprocess (``tiny-listener module:app``) on 127.0.0.1, port 0.

The server logs ``Serving on http://HOST:PORT`` when it listens; we read its stderr
until that line (bounded), so no test guesses a port or sleeps.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVING = re.compile(r"Serving on (https?://\S+)")
START_TIMEOUT = 20.0


@dataclass
class RunningServer:
    proc: subprocess.Popen[str]
    url: str
    lines: list[str] = field(default_factory=list)
    _queue: queue.Queue[str | None] = field(default_factory=queue.Queue)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def wait_for_line(self, pattern: str, timeout: float = 10.0) -> str:
        """Block until the server's stderr has a line matching ``pattern``."""
        rx = re.compile(pattern)
        for line in self.lines:
            if rx.search(line):
                return line
        while True:
            line = self._queue.get(timeout=timeout)
            if line is None:
                raise AssertionError(f"server exited before logging {pattern!r}: {self.lines[-20:]}")
            if rx.search(line):
                return line

    def output(self) -> str:
        return "".join(self.lines)


def tiny_listener_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("tiny-listener")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("tiny-listener")
    if found:
        return [found]
    return [sys.executable, "-m", "tiny_listener"]


@contextmanager
def run_server(
    target: str = "http_web:app",
    env: dict[str, str] | None = None,
    cmd: list[str] | None = None,
    cwd: Path = ROOT,
) -> Iterator[RunningServer]:
    full_env = {**os.environ, "HUMP_PORT": "0", "HUMP_HOST": "127.0.0.1", "PYTHONUNBUFFERED": "1"}
    tests_dir = str(ROOT / "tests")
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), tests_dir, full_env.get("PYTHONPATH", "")]))
    full_env.update(env or {})
    args = cmd if cmd is not None else [*tiny_listener_cmd(), target]
    proc = subprocess.Popen(
        args, cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    q: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            q.put(line)
        q.put(None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    server = RunningServer(proc, "", lines, q)
    try:
        line = server.wait_for_line(SERVING.pattern, timeout=START_TIMEOUT)
        match = SERVING.search(line)
        assert match is not None
        server.url = match.group(1)
        yield server
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        reader.join(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()
