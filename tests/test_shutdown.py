"""Graceful shutdown of a real ``tiny-listener`` process: SIGTERM while a slow request
is in flight → new connections are refused, the request still completes, shutdown
callbacks run, the process exits 0. Background events get the same drain (one deadline),
are cancelled past it with a line saying how many, and a second signal skips the rest."""

from __future__ import annotations

import signal
import socket
import threading

import httpx
from servers import run_server


def test_sigterm_drains_in_flight_request_then_exits_0() -> None:
    with run_server("apps.slow_app:app", env={"HUMP_ACCESS_LOG": "0"}) as server:
        result: dict[str, object] = {}

        def slow_request() -> None:
            with httpx.Client(timeout=30) as client:
                r = client.get(f"{server.url}/slow")
                result["status"], result["text"] = r.status_code, r.text

        t = threading.Thread(target=slow_request)
        t.start()
        server.wait_for_line(r"slow request started")  # the handler is now in flight
        server.proc.send_signal(signal.SIGTERM)
        server.wait_for_line(r"Stopped accepting connections")
        try:
            socket.create_connection(("127.0.0.1", server.port), timeout=5).close()
            refused = False
        except ConnectionRefusedError:
            refused = True
        assert refused, "a new connection was accepted during shutdown"
        assert server.proc.poll() is None, "the server exited before its in-flight request finished"

        server.proc.send_signal(signal.SIGUSR1)  # let the slow handler finish
        t.join(timeout=30)
        assert result == {"status": 200, "text": "done slowly"}
        assert server.proc.wait(timeout=30) == 0
        output = server.output()
        assert "shutdown callback ran" in output
        assert output.index("slow request finished") < output.index("shutdown callback ran")


# -- background events: the same drain, one deadline (apps/events_app.py) ------------------


def start_job(url: str) -> None:
    with httpx.Client(timeout=10) as client:
        assert client.post(f"{url}/job").text == "queued"  # answered; the job runs on


def test_sigterm_waits_for_a_background_event_then_exits_0() -> None:
    with run_server("apps.events_app:app", env={"HUMP_ACCESS_LOG": "0"}) as server:
        start_job(server.url)
        server.wait_for_line(r"job started")
        server.proc.send_signal(signal.SIGTERM)
        server.wait_for_line(r"shutdown: waiting up to 30 s for 1 background event\(s\)")
        assert server.proc.poll() is None, "the server exited with a background event in flight"
        server.proc.send_signal(signal.SIGUSR1)  # let the job finish
        assert server.proc.wait(timeout=30) == 0
        output = server.output()
        assert output.index("job finished") < output.index("shutdown callback ran")
        assert "cancelling" not in output


def test_the_drain_deadline_cancels_background_events_saying_how_many() -> None:
    env = {"HUMP_ACCESS_LOG": "0", "TEST_SHUTDOWN_TIMEOUT": "0.2"}
    with run_server("apps.events_app:app", env=env) as server:
        start_job(server.url)
        start_job(server.url)
        server.wait_for_line(r"job started")
        server.proc.send_signal(signal.SIGTERM)
        server.wait_for_line(r"shutdown: cancelling 2 background event\(s\) still running")
        assert server.proc.wait(timeout=30) == 0
        output = server.output()
        assert output.count("job cancelled") == 2
        assert output.index("job cancelled") < output.index("shutdown callback ran")


def test_a_second_signal_skips_the_background_event_drain() -> None:
    # A drain of an hour: only the second signal can end it within the test's timeouts.
    env = {"HUMP_ACCESS_LOG": "0", "TEST_SHUTDOWN_TIMEOUT": "3600"}
    with run_server("apps.events_app:app", env=env) as server:
        start_job(server.url)
        server.wait_for_line(r"job started")
        server.proc.send_signal(signal.SIGTERM)
        server.wait_for_line(r"waiting up to 3.6e\+03 s for 1 background event\(s\)")
        server.proc.send_signal(signal.SIGTERM)
        server.wait_for_line(r"shutdown: cancelling 1 background event\(s\) still running")
        assert server.proc.wait(timeout=30) == 0
        assert "job cancelled" in server.output() and "shutdown callback ran" in server.output()


def test_a_second_signal_skips_the_request_drain_too() -> None:
    env = {"HUMP_ACCESS_LOG": "0", "TEST_SHUTDOWN_TIMEOUT": "3600"}
    with run_server("apps.events_app:app", env=env) as server:
        outcome: dict[str, object] = {}

        def slow_request() -> None:
            try:
                with httpx.Client(timeout=30) as client:
                    outcome["status"] = client.get(f"{server.url}/slow").status_code
            except httpx.HTTPError as exc:
                outcome["error"] = exc

        t = threading.Thread(target=slow_request)
        t.start()
        try:
            server.wait_for_line(r"slow request started")
            server.proc.send_signal(signal.SIGTERM)
            server.wait_for_line(r"Stopped accepting connections")
            server.proc.send_signal(signal.SIGTERM)
            assert server.proc.wait(timeout=5) == 0
        finally:
            if server.proc.poll() is None:
                server.proc.kill()
            t.join(timeout=30)
