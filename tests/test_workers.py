"""Worker processes (hump_listener.workers), with real subprocesses on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections import deque

import pytest
from process_helpers import cli, get, launch, tiny_listener

from hump_listener import App
from hump_listener.workers import Supervisor, find_import_string

pytestmark = pytest.mark.skipif(os.name != "posix", reason="workers are POSIX only")

#: Bound on loops that wait for an observable condition (a new pid, a refused port).
DEADLINE = 30.0


def pids_serving(port: int, want: int) -> set[int]:
    """Ask for /pid on fresh connections until ``want`` distinct pids answered (bounded)."""
    pids: set[int] = set()
    for _ in range(500):
        status, body = get(port, "/pid")
        assert status == 200
        pids.add(int(body))
        if len(pids) >= want:
            break
    return pids


def get_retrying(port: int, path: str) -> tuple[int, str]:
    """A request that tolerates the reset of a connection queued on a dying worker."""
    end = time.monotonic() + DEADLINE
    while True:
        try:
            return get(port, path)
        except (ConnectionError, TimeoutError):
            if time.monotonic() > end:
                raise


@pytest.mark.parametrize("how", ["SIGTERM to the supervisor", "Ctrl+C to the process group"])
def test_requests_are_served_by_several_workers_and_a_stop_signal_exits_0(how: str) -> None:
    with launch(cli("apps.pid_app:app", "--workers", "3", "--port", "0")) as proc:
        proc.wait_for_count(r"Serving on", 3)
        port = proc.serving_port()
        pids = pids_serving(port, 2)
        assert len(pids) >= 2
        assert proc.proc.pid not in pids  # the supervisor serves nothing itself
        if how.startswith("SIGTERM"):
            proc.proc.send_signal(signal.SIGTERM)
        else:
            os.killpg(proc.proc.pid, signal.SIGINT)  # what a terminal does (own session here)
        assert proc.proc.wait(timeout=DEADLINE) == 0
        proc.wait_for_line(r"all workers stopped")
        # Workers ignore the terminal's SIGINT and drain on the supervisor's SIGTERM: had
        # they taken both, the second would have cut their drain short.
        assert proc.output().count("Shutting down (signal 15)") == 3
        assert "Shutting down (signal 2)" not in proc.output()


def test_a_killed_worker_is_replaced_without_stopping_service() -> None:
    # Through tiny-listener and the environment: App.run() itself starts the supervisor.
    with launch(tiny_listener("apps.pid_app:app"), env={"HUMP_WORKERS": "2"}) as proc:
        proc.wait_for_count(r"Serving on", 2)
        port = proc.serving_port()
        before = pids_serving(port, 2)
        assert len(before) == 2
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        proc.wait_for_line(rf"pid {victim}\) exited with signal SIGKILL")
        proc.wait_for_count(r"Started worker", 3)
        proc.wait_for_count(r"Serving on", 3)
        status, body = get_retrying(port, "/pid")
        assert status == 200
        seen: set[int] = {int(body)}
        end = time.monotonic() + DEADLINE
        while not seen - before and time.monotonic() < end:
            status, body = get_retrying(port, "/pid")
            assert status == 200
            seen.add(int(body))
        assert victim not in seen
        assert seen - before, "the replacement worker never answered"
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(timeout=DEADLINE) == 0


def test_sigterm_lets_every_worker_drain() -> None:
    with launch(cli("apps.pid_app:app", "--workers", "2")) as proc:
        proc.wait_for_count(r"Serving on", 2)
        port = proc.serving_port()
        result: dict[str, object] = {}

        def slow_request() -> None:
            result["response"] = get(port, "/slow", timeout=DEADLINE)

        t = threading.Thread(target=slow_request)
        t.start()
        line = proc.wait_for_line(r"slow request started in \d+")
        busy = int(line.rsplit(" ", 1)[1])
        proc.proc.send_signal(signal.SIGTERM)
        proc.wait_for_count(r"Shutting down", 2)  # both workers got it...
        assert proc.proc.poll() is None  # ...and the busy one is still draining
        os.kill(busy, signal.SIGUSR1)  # let the slow handler finish
        t.join(timeout=DEADLINE)
        assert result["response"] == (200, f"done slowly in {busy}")
        assert proc.proc.wait(timeout=DEADLINE) == 0


def test_shared_socket_mode_serves_and_stops() -> None:
    # What macOS and the BSDs get: one socket bound by the supervisor, inherited.
    script = (
        "import sys, hump_listener.workers as w; w.BALANCED_REUSEPORT = False; "
        "from hump_listener.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    args = [sys.executable, "-c", script, "apps.pid_app:app", "--workers", "2"]
    with launch(args) as proc:
        proc.wait_for_line(r"2 workers \(shared socket\)")
        proc.wait_for_count(r"Serving on", 2)
        port = proc.serving_port()
        status, body = get(port, "/pid")
        assert status == 200
        assert int(body) != proc.proc.pid
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(timeout=DEADLINE) == 0


def test_workers_stop_when_the_supervisor_is_killed() -> None:
    with launch(cli("apps.pid_app:app", "--workers", "2")) as proc:
        proc.wait_for_count(r"Serving on", 2)
        port = proc.serving_port()
        assert get(port, "/pid")[0] == 200
        proc.proc.kill()  # SIGKILL: no chance to stop the workers itself
        proc.proc.wait(timeout=DEADLINE)
        proc.wait_for_count(r"supervisor is gone", 2)
        end = time.monotonic() + DEADLINE
        refused = False
        while not refused and time.monotonic() < end:
            try:
                get(port, "/pid")
            except ConnectionRefusedError:
                refused = True
            except (ConnectionError, TimeoutError):
                pass
        assert refused, "orphaned workers kept serving"


def test_a_worker_that_keeps_dying_makes_the_supervisor_give_up() -> None:
    with launch(cli("apps.crash_app:app", "--workers", "2")) as proc:
        assert proc.proc.wait(timeout=DEADLINE) == 1
        proc.wait_for_line(r"giving up")
        assert "this worker cannot start" in proc.output()


def test_restart_rate_limit_is_per_slot_and_sliding() -> None:
    now = [0.0]
    supervisor = Supervisor(App(), max_restarts=2, restart_window=10.0, clock=lambda: now[0])
    supervisor._restarts = [deque(), deque()]
    assert supervisor._may_restart(0) and supervisor._may_restart(0)
    assert not supervisor._may_restart(0)
    assert supervisor._may_restart(1)  # another slot has its own budget
    now[0] = 10.5
    assert supervisor._may_restart(0)  # the window slid past the old restarts


app_for_lookup = App()


def test_find_import_string() -> None:
    assert find_import_string(app_for_lookup) == f"{__name__}:app_for_lookup"
    app_for_lookup.import_string = "somewhere:else"
    try:
        assert find_import_string(app_for_lookup) == "somewhere:else"
    finally:
        app_for_lookup.import_string = None
    with pytest.raises(RuntimeError, match="import_string"):
        find_import_string(App())
