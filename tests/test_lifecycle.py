"""The one startup/shutdown lifecycle (App.run_startup / App.run_shutdown) and its one
error policy, as each runner uses it: in process, the test clients, the ASGI lifespan,
and a real server process."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import pytest
from servers import run_server, tiny_listener_cmd
from tiny_listener import Param

from hump_listener import App, ServerConfig
from hump_listener.testing import AsyncTestClient, TestClient


def lifecycle_app(log: list[str], *, fail_at: str | None = None) -> App:
    app = App(access_log=False)

    async def service_start() -> None:
        log.append("service start")

    async def service_stop() -> None:
        log.append("service stop")

    app.add_service(service_start, service_stop)

    @app.startup
    async def first() -> None:
        log.append("startup 1")
        if fail_at == "startup 1":
            raise ValueError("no database")

    @app.startup
    async def second() -> None:
        log.append("startup 2")

    @app.shutdown
    async def down_1() -> None:
        log.append("shutdown 1")
        if fail_at == "shutdown 1":
            raise RuntimeError("cannot close")

    @app.shutdown
    async def down_2() -> None:
        log.append("shutdown 2")

    return app


def errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "hump_listener.error" and r.levelno >= logging.ERROR]


# -- the policy, in process -----------------------------------------------------------------


async def test_startup_then_shutdown_in_order() -> None:
    log: list[str] = []
    app = lifecycle_app(log)
    await app.run_startup()
    await app.run_shutdown()
    assert log == ["service start", "startup 1", "startup 2", "shutdown 1", "shutdown 2", "service stop"]


async def test_a_failing_startup_callback_stops_startup_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    log: list[str] = []
    app = lifecycle_app(log, fail_at="startup 1")
    with caplog.at_level(logging.INFO, logger="hump_listener.error"), pytest.raises(ValueError, match="no database"):
        await app.run_startup()
    assert log == ["service start", "startup 1", "service stop"]  # no startup 2, no shutdown callbacks
    [record] = errors(caplog)
    assert record.getMessage().startswith("Application startup failed: startup callback ")
    assert "first raised ValueError: no database" in record.getMessage()
    assert record.exc_info is not None


def _trigger(app: App, name: str) -> Any:
    async def trigger() -> None:
        app.trigger_event(name)
        await asyncio.sleep(0)  # let it start

    return trigger


async def test_background_events_of_a_failed_startup_are_cancelled(caplog: pytest.LogCaptureFixture) -> None:
    app = App(access_log=False)
    ran: list[str] = []

    @app.on_event("warmup")
    async def warmup() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            ran.append("warmup cancelled")

    app.startup(_trigger(app, "warmup"))

    @app.startup
    async def fails() -> None:
        raise OSError("disk full")

    with caplog.at_level(logging.INFO, logger="hump_listener.error"), pytest.raises(OSError):
        await app.run_startup()
    assert ran == ["warmup cancelled"]
    assert "startup failed: cancelling 1 background event(s) still running" in caplog.text
    assert app.ctxs == {} and not app.background.tasks


async def test_a_failing_shutdown_callback_is_logged_and_the_rest_run(caplog: pytest.LogCaptureFixture) -> None:
    log: list[str] = []
    app = lifecycle_app(log, fail_at="shutdown 1")
    await app.run_startup()
    with caplog.at_level(logging.ERROR, logger="hump_listener.error"):
        await app.run_shutdown()  # never raises
    assert log[-3:] == ["shutdown 1", "shutdown 2", "service stop"]
    [record] = errors(caplog)
    assert "shutdown callback" in record.getMessage() and "down_1" in record.getMessage()
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)


async def test_shutdown_drains_background_events_before_the_callbacks() -> None:
    app = App(access_log=False)
    log: list[str] = []
    gate = asyncio.Event()

    @app.on_event("job")
    async def job() -> None:
        await gate.wait()
        log.append("job done")

    @app.shutdown
    async def down() -> None:
        log.append("shutdown callback")

    await app.run_startup()
    app.trigger_event("job")
    shutdown = asyncio.ensure_future(app.run_shutdown(timeout=30))
    for _ in range(10):
        await asyncio.sleep(0)
    assert not shutdown.done() and log == []  # waiting for the job
    gate.set()
    await asyncio.wait_for(shutdown, 10)
    assert log == ["job done", "shutdown callback"]


async def test_the_drain_deadline_cancels_what_is_left_saying_how_many(caplog: pytest.LogCaptureFixture) -> None:
    app = App(access_log=False)
    cancelled: list[int] = []

    @app.on_event("stuck {i:int}")
    async def stuck(i: Param) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(i)
            raise

    await app.run_startup()
    for i in range(3):
        app.trigger_event(f"stuck {i}")
    with caplog.at_level(logging.INFO, logger="hump_listener.error"):
        await app.run_shutdown(timeout=0.05)
    assert sorted(cancelled) == [0, 1, 2]
    assert "shutdown: cancelling 3 background event(s) still running" in caplog.text
    assert app.ctxs == {} and not app.background.tasks


async def test_cut_skips_the_rest_of_the_drain(caplog: pytest.LogCaptureFixture) -> None:
    app = App(access_log=False)

    @app.on_event("stuck")
    async def stuck() -> None:
        await asyncio.Event().wait()

    await app.run_startup()
    app.trigger_event("stuck")
    with caplog.at_level(logging.INFO, logger="hump_listener.error"):
        shutdown = asyncio.ensure_future(app.run_shutdown(timeout=3600))
        for _ in range(10):
            await asyncio.sleep(0)
        assert not shutdown.done()
        app.background.cut()  # what a second signal does
        for _ in range(20):
            if shutdown.done():
                break
            await asyncio.sleep(0)
        assert shutdown.done(), "the drain went on after cut()"
    assert "cancelling 1 background event(s)" in caplog.text


def test_drain_timeout_defaults_to_the_servers_shutdown_timeout() -> None:
    from hump_listener.config import DEFAULT_SHUTDOWN_TIMEOUT

    assert App().lifecycle.drain_timeout() == DEFAULT_SHUTDOWN_TIMEOUT
    assert App(shutdown_timeout=2).lifecycle.drain_timeout() == 2
    assert App(config=ServerConfig(shutdown_timeout=3)).lifecycle.drain_timeout() == 3


# -- the test clients -------------------------------------------------------------------------


def test_test_client_raises_the_startup_error_and_stops_its_thread(caplog: pytest.LogCaptureFixture) -> None:
    import threading

    log: list[str] = []
    with (
        caplog.at_level(logging.ERROR, logger="hump_listener.error"),
        pytest.raises(ValueError, match="no database"),
        TestClient(lifecycle_app(log, fail_at="startup 1")),
    ):
        raise AssertionError("the block must not run")
    assert not any(t.name == "hump-testclient" for t in threading.enumerate())
    assert len(errors(caplog)) == 1
    assert "shutdown 1" not in log


async def test_async_test_client_runs_the_same_lifecycle() -> None:
    log: list[str] = []
    async with AsyncTestClient(lifecycle_app(log)):
        assert log == ["service start", "startup 1", "startup 2"]
    assert log[-3:] == ["shutdown 1", "shutdown 2", "service stop"]
    with pytest.raises(ValueError):
        async with AsyncTestClient(lifecycle_app([], fail_at="startup 1")):
            raise AssertionError("the block must not run")


# -- the ASGI lifespan -------------------------------------------------------------------------


class Peer:
    def __init__(self, *incoming: dict[str, Any]) -> None:
        self.incoming = list(incoming)
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        return self.incoming.pop(0)

    async def send(self, message: Any) -> None:
        self.sent.append(dict(message))


async def test_asgi_lifespan_reports_the_failure_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    log: list[str] = []
    peer = Peer({"type": "lifespan.startup"})
    with caplog.at_level(logging.ERROR, logger="hump_listener.error"):
        await lifecycle_app(log, fail_at="startup 1")({"type": "lifespan"}, peer.receive, peer.send)
    assert peer.sent == [{"type": "lifespan.startup.failed", "message": "ValueError: no database"}]
    assert len(errors(caplog)) == 1


async def test_asgi_lifespan_shutdown_drains_events_and_survives_failing_callbacks() -> None:
    log: list[str] = []
    app = lifecycle_app(log, fail_at="shutdown 1")
    gate = asyncio.Event()

    @app.on_event("job")
    async def job() -> None:
        await gate.wait()
        log.append("job done")

    @app.startup
    async def start_job() -> None:
        app.trigger_event("job")
        asyncio.get_running_loop().call_soon(gate.set)

    peer = Peer({"type": "lifespan.startup"}, {"type": "lifespan.shutdown"})
    await app({"type": "lifespan"}, peer.receive, peer.send)
    assert [m["type"] for m in peer.sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert log.index("job done") < log.index("shutdown 1") < log.index("shutdown 2")


# -- the built-in server -----------------------------------------------------------------------


def test_server_exits_1_with_one_clear_line_when_startup_fails() -> None:
    import subprocess

    from servers import ROOT

    proc = subprocess.run(
        [*tiny_listener_cmd(), "apps.crash_app:app"], cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**_env(), "HUMP_PORT": "0"},
    )
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert any(
        "Application startup failed: startup callback apps.crash_app.boom raised RuntimeError: "
        "this worker cannot start" in line
        for line in lines
    ), proc.stderr
    assert proc.stderr.count("Traceback (most recent call last)") == 1  # ours, not a crash's
    assert "Serving on" not in proc.stderr
    assert "never retrieved" not in proc.stderr


def test_server_exits_1_when_the_port_is_taken() -> None:
    import subprocess

    from servers import ROOT

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [*tiny_listener_cmd(), "apps.events_app:app"], cwd=ROOT, capture_output=True, text=True,
            timeout=60, env={**_env(), "HUMP_PORT": str(port)},
        )
    assert proc.returncode == 1, proc.stderr
    assert f"cannot listen on 127.0.0.1:{port}: [Errno 98]" in proc.stderr
    assert "shutdown callback ran" in proc.stderr  # startup had succeeded: shutdown runs
    assert "Traceback" not in proc.stderr


def test_a_served_app_runs_its_lifecycle_once_each_way() -> None:
    with run_server("apps.slow_app:app", env={"HUMP_ACCESS_LOG": "0"}) as server:
        server.proc.terminate()
        assert server.proc.wait(timeout=30) == 0
        assert server.output().count("shutdown callback ran") == 1


def _env() -> dict[str, str]:
    import os

    from servers import ROOT

    env = {**os.environ, "HUMP_HOST": "127.0.0.1", "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), str(ROOT / "tests"), env.get("PYTHONPATH", "")]))
    return env


def test_a_signal_during_startup_shuts_down_once_startup_has_finished() -> None:
    import signal

    from process_helpers import launch
    from process_helpers import tiny_listener as tiny_listener_args

    env = {"TEST_SLOW_STARTUP": "1", "HUMP_ACCESS_LOG": "0"}
    with launch(tiny_listener_args("apps.events_app:app"), env=env) as server:
        server.wait_for_line(r"startup waiting")
        server.proc.send_signal(signal.SIGTERM)
        server.wait_for_line(r"during startup: shutting down once it has finished")
        server.proc.send_signal(signal.SIGUSR1)  # let the startup callback finish
        assert server.proc.wait(timeout=30) == 0
        output = server.output()
        assert "startup finished" in output and "shutdown callback ran" in output
        assert "Serving on" not in output


# -- lifecycle.py's signal half, in process (a fake server: anything with shutdown()) --------


class StubServer:
    """What ``Lifecycle`` needs of a server (``lifecycle.Stoppable``): records its drains."""

    def __init__(self, fail: bool = False) -> None:
        self.drains: list[float | None] = []
        self.fail = fail

    async def shutdown(self, timeout: float | None = None) -> None:
        self.drains.append(timeout)
        if self.fail:
            raise OSError("socket gone")


async def test_graceful_shutdown_drains_the_server_then_runs_the_shutdown_half() -> None:
    log: list[str] = []
    app = lifecycle_app(log)
    await app.run_startup()
    server = StubServer()
    app.lifecycle.server = server
    app.lifecycle._stopped = asyncio.Event()
    app.configure(shutdown_timeout=3.0)
    await app.graceful_shutdown(15)
    assert server.drains == [3.0]  # the one deadline, the server's drain first
    assert log[-3:] == ["shutdown 1", "shutdown 2", "service stop"]
    assert app.lifecycle._stopped.is_set()  # main() may return


async def test_the_drain_line_says_how_long_and_that_a_second_signal_skips_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 18 item 7: Ctrl+C waited the whole drain and nothing said a second one skips it."""
    app = App(access_log=False, shutdown_timeout=4)
    app.lifecycle.server = StubServer()
    with caplog.at_level(logging.INFO, logger="hump_listener.error"):
        await app.graceful_shutdown(2)
    assert "Shutting down (signal 2): draining for up to 4 s; a second signal skips the drain" in caplog.text


async def test_a_second_signal_cuts_the_background_drain_and_the_servers(caplog: pytest.LogCaptureFixture) -> None:
    app = App(access_log=False)
    server = StubServer()
    app.lifecycle.server = server
    app.lifecycle._stopping = True  # the first signal's shutdown is under way
    with caplog.at_level(logging.INFO, logger="hump_listener.error"):
        await app.graceful_shutdown(2)
    assert "Second signal (2): skipping the rest of the drain" in caplog.text
    assert server.drains == [0]
    assert app.background._cut


async def test_a_signal_during_startup_only_marks_the_app_stopping() -> None:
    app = App(access_log=False)
    server = StubServer()
    app.lifecycle.server = server
    app.lifecycle._starting = True
    await app.graceful_shutdown(15)
    assert app.lifecycle._stopping
    assert server.drains == []  # main() shuts down once startup has finished


async def test_a_failing_graceful_shutdown_is_logged_and_lets_main_return(caplog: pytest.LogCaptureFixture) -> None:
    app = App(access_log=False)
    app.lifecycle.server = StubServer(fail=True)
    app.lifecycle._stopped = asyncio.Event()
    with caplog.at_level(logging.ERROR, logger="hump_listener.error"):
        app.lifecycle._on_signal(15)
        [task] = app.lifecycle._tasks  # kept while it runs
        await asyncio.wait([task])
        for _ in range(10):  # its done-callback runs on the next loop turn
            if not app.lifecycle._tasks:
                break
            await asyncio.sleep(0)
    assert app.lifecycle._tasks == set()
    assert "graceful shutdown failed" in caplog.text and "socket gone" in caplog.text
    assert app.lifecycle._stopped.is_set()


async def test_signal_handlers_go_on_the_running_loop_in_the_main_thread_only() -> None:
    import signal
    import threading

    app = App(access_log=False)
    loop = asyncio.get_running_loop()
    done = threading.Event()
    threading.Thread(target=lambda: (app.install_signal_handlers(), done.set())).start()
    assert done.wait(5)
    assert loop.remove_signal_handler(signal.SIGINT) is False  # the thread installed nothing
    app.install_signal_handlers()
    try:
        assert loop.remove_signal_handler(signal.SIGINT) is True
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
