"""Issue 14 item 8, the small ones: a bad query value in the demo is a 400, global
middleware (CORS) decorates the 500 of an unhandled exception, and the command line
says where an import error is."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
from framework_helpers import call
from process_helpers import ROOT, TESTS, tiny_listener

import http_web
from hump_listener import App, HTTPContext
from hump_listener.middleware import CORSMiddleware
from hump_listener.testing import TestClient

SITE = "https://site.example"


def test_demo_clock_with_a_bad_n_is_a_400() -> None:
    with TestClient(http_web.app) as client:
        for bad in ("abc", "-1", "1.5", "²"):
            r = client.get("/clock", params={"n": bad})
            assert r.status_code == 400, bad
            assert "n must be a whole number" in r.text
        assert client.get("/clock?n=1").status_code == 200


async def test_cors_headers_are_on_the_500_of_an_unhandled_exception(caplog: pytest.LogCaptureFixture) -> None:
    app = App(access_log=False)
    app.middleware(CORSMiddleware(allow_origins=[SITE]))
    seen: list[int] = []

    @app.middleware
    async def inner(ctx: HTTPContext, call_next: object) -> object:
        response = await call_next()  # type: ignore[operator]
        seen.append(response.status)
        return response

    @app.get("/boom")
    async def boom(ctx: HTTPContext) -> None:
        raise RuntimeError("boom")

    @app.get("/teapot")
    async def teapot(ctx: HTTPContext) -> None:
        ctx.throw(418)

    with caplog.at_level(logging.ERROR, logger="hump_listener.error"):
        failed = await call(app, "GET", "/boom", headers=[("Origin", SITE)])
    refused = await call(app, "GET", "/teapot", headers=[("Origin", SITE)])
    for ch, status in ((failed, 500), (refused, 418)):
        assert ch.status == status
        assert ch.header("access-control-allow-origin") == SITE
    assert failed.text == "Internal Server Error" and seen == [500, 418]
    assert caplog.text.count("RuntimeError: boom") == 1  # logged once, not once per layer


async def test_an_exception_in_inner_global_middleware_reaches_the_outer_as_a_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = App(access_log=False)
    app.middleware(CORSMiddleware(allow_origins=[SITE]))

    @app.middleware
    async def broken(ctx: HTTPContext, call_next: object) -> object:
        raise ValueError("broken middleware")

    @app.get("/")
    async def index(ctx: HTTPContext) -> str:
        return "x"

    with caplog.at_level(logging.ERROR, logger="hump_listener.error"):
        ch = await call(app, "GET", "/", headers=[("Origin", SITE)])
    assert ch.status == 500 and ch.header("access-control-allow-origin") == SITE
    assert "broken middleware" in caplog.text


def run_cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": f"{ROOT}:{TESTS}", "PATH": "/usr/bin:/bin", "HUMP_PORT": "0"}
    return subprocess.run(args, capture_output=True, text=True, timeout=30, env=env, cwd=TESTS)


def test_hump_listener_prints_where_an_import_error_is() -> None:
    """What the README says: ``hump-listener`` shows the file and line of an error in the
    app's module; tiny-listener's own CLI prints only the message."""
    ours = run_cli([sys.executable, "-m", "hump_listener", "apps.broken_import_app:app"])
    assert ours.returncode == 1
    assert "name 'HTTPContex' is not defined" in ours.stderr
    assert 'broken_import_app.py", line 10' in ours.stderr
    theirs = run_cli(tiny_listener("apps.broken_import_app:app"))
    assert theirs.returncode == 1
    assert "name 'HTTPContex' is not defined" in theirs.stdout + theirs.stderr
    assert "broken_import_app.py" not in theirs.stdout + theirs.stderr
