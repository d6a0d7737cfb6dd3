"""Graceful shutdown of a real ``tiny-listener`` process: SIGTERM while a slow request
is in flight → new connections are refused, the request still completes, shutdown
callbacks run, the process exits 0."""

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
