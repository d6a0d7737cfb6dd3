"""Run the command line (or ``tiny-listener``) as a real subprocess in a session of its
own, read its stderr line by line, and kill the whole session in a ``finally``: a
supervisor's workers or a reloader's child never outlive a test.

The server logs ``Serving on http://HOST:PORT`` when it listens; tests wait for that
line (bounded) instead of guessing ports or sleeping.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import queue
import re
import signal
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
SERVING = re.compile(r"Serving on (https?)://([^\s:]+|\[[^\]]+\]):(\d+)")
START_TIMEOUT = 30.0


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "hump_listener", *args]


def tiny_listener(*args: str) -> list[str]:
    exe = Path(sys.executable).with_name("tiny-listener")
    return [str(exe), *args] if exe.exists() else [sys.executable, "-m", "tiny_listener", *args]


@dataclass
class Launched:
    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    _queue: queue.Queue[str | None] = field(default_factory=queue.Queue)

    def wait_for_line(self, pattern: str, timeout: float = START_TIMEOUT, after: int = 0) -> str:
        """The first stderr line matching ``pattern`` among lines ``after`` onwards;
        waits (bounded) for it to be written."""
        rx = re.compile(pattern)
        while True:
            for line in self.lines[after:]:
                if rx.search(line):
                    return line
            after = len(self.lines)
            try:
                got = self._queue.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r} within {timeout}s: {self.lines[-20:]}") from None
            if got is None and not any(rx.search(x) for x in self.lines[after:]):
                raise AssertionError(f"process exited before logging {pattern!r}: {self.lines[-30:]}")

    def wait_for_count(self, pattern: str, count: int, timeout: float = START_TIMEOUT) -> list[str]:
        """Wait until ``count`` stderr lines match ``pattern``; return them."""
        rx = re.compile(pattern)
        while True:
            found = [line for line in self.lines if rx.search(line)]
            if len(found) >= count:
                return found
            try:
                got = self._queue.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"{len(found)}/{count} lines matching {pattern!r}: {self.lines[-20:]}") from None
            if got is None and len([x for x in self.lines if rx.search(x)]) < count:
                raise AssertionError(f"process exited with {len(found)}/{count} {pattern!r}: {self.lines[-30:]}")

    def serving_port(self, after: int = 0) -> int:
        match = SERVING.search(self.wait_for_line(SERVING.pattern, after=after))
        assert match is not None
        return int(match.group(3))

    def output(self) -> str:
        return "".join(self.lines)


@contextmanager
def launch(args: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT) -> Iterator[Launched]:
    full_env = {**os.environ, "HUMP_HOST": "127.0.0.1", "HUMP_PORT": "0", "PYTHONUNBUFFERED": "1"}
    for name in ("HUMP_WORKERS", "HUMP_SSL_CERTFILE", "HUMP_SSL_KEYFILE", "HUMP_ACCESS_LOG", "HUMP_LOG_LEVEL"):
        full_env.pop(name, None)
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), str(TESTS), full_env.get("PYTHONPATH", "")]))
    full_env.update(env or {})
    proc = subprocess.Popen(
        args, cwd=cwd, env=full_env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    launched = Launched(proc)

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            launched.lines.append(line)
            launched._queue.put(line)
        launched._queue.put(None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        yield launched
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the process and everything it started
        proc.wait(timeout=10)
        reader.join(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()


def get(
    port: int, path: str = "/", *, context: ssl.SSLContext | None = None, timeout: float = 10.0
) -> tuple[int, str]:
    """One request on a fresh connection: ``(status, body)``."""
    conn: http.client.HTTPConnection
    if context is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    else:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=context)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def open_files(pid: int | str = "self") -> int:
    """How many files process ``pid`` has open (Linux ``/proc``)."""
    return len(os.listdir(f"/proc/{pid}/fd"))


async def until(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    """Poll ``condition`` (of another process: nothing to wait on) once per loop turn
    until it holds; False after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0)
    return True
