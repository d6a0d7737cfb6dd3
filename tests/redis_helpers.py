"""A real ``redis-server`` for tests: 127.0.0.1 on a free port, in a temp dir, no
persistence (no RDB snapshots, no AOF; ``persistent=True`` turns on an AOF synced at every
write), its own process that the test can kill, stop
(SIGSTOP: alive but silent) and start again on the same port.

The server logs "Ready to accept connections" when it listens; we wait for that line
(bounded) instead of polling the port or sleeping. ``running_redis(tmp_path)`` starts one
for a test (a fixture wraps it) and skips with the reason when ``redis-server`` is absent.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

READY = "Ready to accept connections"
START_TIMEOUT = 20.0
#: A port picked free can be taken before redis-server binds it: try a few.
PORT_ATTEMPTS = 5


def redis_server_path() -> str | None:
    return shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/local/bin/redis-server") if os.access(p, os.X_OK)), None
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """One redis-server process at a time on a fixed port (chosen at the first start)."""

    def __init__(self, executable: str, directory: Path, cpu: int | None = None, persistent: bool = False) -> None:
        #: Where it listens, and a command prefix (``ip netns exec NAME``) to run it elsewhere.
        self.bind = "127.0.0.1"
        self.prefix: list[str] = []
        self.executable = executable
        self.directory = directory
        self.cpu = cpu  # pin with taskset (benchmarks)
        #: An append-only file synced at every write: what a SIGKILL leaves is what Redis
        #: acknowledged (the setting docs/channels.md recommends for history across restarts).
        self.persistent = persistent
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []

    @property
    def url(self) -> str:
        return f"redis://{self.bind}:{self.port}/0"

    def command(self, port: int) -> list[str]:
        aof = ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else ["--appendonly", "no"]
        args = [
            *self.prefix, self.executable, "--port", str(port), "--bind", self.bind, "--save", "", *aof,
            "--dir", str(self.directory), "--daemonize", "no", "--databases", "1", "--loglevel", "notice",
        ]
        if self.bind != "127.0.0.1":  # a namespace's own address: no password, by design
            args += ["--protected-mode", "no"]
        if self.cpu is not None and shutil.which("taskset"):
            args = ["taskset", "-c", str(self.cpu), *args]
        return args

    def start(self) -> None:
        """Start (again, on the same port once it has one); return once it listens."""
        assert self.proc is None, "already running"
        for _ in range(PORT_ATTEMPTS):
            port = self.port or free_port()
            if self._launch(port):
                self.port = port
                return
            if self.port:  # our own port is taken: nothing else to try
                break
        raise RuntimeError(f"redis-server did not start: {self.lines[-10:]}")

    def _launch(self, port: int) -> bool:
        proc = subprocess.Popen(
            self.command(port), cwd=self.directory, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                self.lines.append(line)
                lines.put(line)
            proc.stdout.close()
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        while True:
            try:
                line = lines.get(timeout=START_TIMEOUT)
            except queue.Empty:
                proc.kill()
                proc.wait()
                return False
            if line is None:  # exited: the port was taken, most likely
                proc.wait()
                return False
            if READY in line:
                self.proc = proc
                return True

    def kill(self) -> None:
        """SIGKILL: every connection drops at once, as in a crash."""
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.kill()
            proc.wait(timeout=10)

    def pause(self) -> None:
        """SIGSTOP: connections stay open and nothing answers (a hung or partitioned host)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        self.kill()
        self.start()


def skip_unless_redis_server() -> str:
    import pytest  # here: benchmarks/broadcast.py uses this module without pytest

    path = redis_server_path()
    if path is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server; scripts/test does as root)")
    return path


@contextmanager
def running_redis(directory: Path, cpu: int | None = None, persistent: bool = False) -> Iterator[RedisServer]:
    """A started RedisServer, killed on exit; skips the test when redis-server is absent."""
    server = RedisServer(skip_unless_redis_server(), directory, cpu, persistent)
    server.start()
    try:
        yield server
    finally:
        server.kill()
