"""The ancestors' examples run (issue 22 item 2): tiny-listener's HTTP example, Hump's
README and PyMicroHTTP's README, kept as files under examples/ with only their imports
changed, each served over a real socket by a real subprocess. (Chromium opens the
tiny-listener port in test_browser.py.)

A file that binds a fixed port (``Hump("", 8342)``, ``start_server(port=8080)``) is run
from a copy where that one call binds 127.0.0.1 port 0 instead: the server logs the port
it got (tests/servers.py)."""

from __future__ import annotations

import json
import signal
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from servers import ROOT, RunningServer, run_server

EXAMPLES = ROOT / "examples"


def fetch(url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[
    int, dict[str, str], bytes
]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


@contextmanager
def run_copy(path: Path, tmp_path: Path, old: str, new: str) -> Iterator[RunningServer]:
    """Run ``python path`` from a copy where ``old`` (the fixed port) reads ``new``."""
    source = path.read_text()
    assert source.count(old) == 1, f"{path.name} no longer has {old!r} once"
    copy = tmp_path / path.name
    copy.write_text(source.replace(old, new))
    with run_server(cmd=[sys.executable, str(copy)], cwd=tmp_path) as server:
        yield server


def stop(server: RunningServer) -> int:
    """SIGTERM, as a supervisor stops it: the graceful shutdown, then the exit status."""
    server.proc.send_signal(signal.SIGTERM)
    return server.proc.wait(timeout=20)


# -- tiny-listener's docs example ------------------------------------------------------------


def test_tiny_listener_example_runs_with_tiny_listener_and_greets_as_text() -> None:
    with run_server("http_web:app", cwd=EXAMPLES / "tiny_listener") as server:
        status, headers, body = fetch(f"{server.url}/user/bob")
        # the original replies with bytes: UTF-8 text goes out as text, so a browser shows it
        assert (status, headers["content-type"], body) == (200, "text/plain; charset=utf-8", b"Hello, bob!")
        assert fetch(f"{server.url}/")[2] == b"Welcome!"
        assert fetch(f"{server.url}/throw")[0] == 500
        assert fetch(f"{server.url}/nope")[0] == 404  # the original's EventNotFound -> throw_404
        server.wait_for_line(r'"GET /user/bob HTTP/1.1" 200')
        assert stop(server) == 0


# -- Hump's README -------------------------------------------------------------------------


def test_hump_hello_example(tmp_path: Path) -> None:
    with run_copy(EXAMPLES / "hump" / "hello.py", tmp_path, 'Hump("", 8342)', 'Hump("127.0.0.1", 0)') as server:
        status, headers, body = fetch(f"{server.url}/")
        assert (status, headers["content-type"], body) == (200, "text/plain; charset=utf-8", b"Hello, world!")
        assert fetch(f"{server.url}/", method="POST")[0] == 405  # one router: 404 and 405 apart
        assert stop(server) == 0  # asyncio.run(app.serve()) drains and returns on SIGTERM


def test_hump_teapot_example(tmp_path: Path) -> None:
    with run_copy(EXAMPLES / "hump" / "teapot.py", tmp_path, 'Hump("", 8342)', 'Hump("127.0.0.1", 0)') as server:
        status, _, body = fetch(f"{server.url}/")
        assert (status, body) == (418, b"Howdy!")


# -- PyMicroHTTP's README ------------------------------------------------------------------

PORT_8080 = "s.start_server(port=8080)"
LOOPBACK_0 = "s.start_server(host='127.0.0.1', port=0)"


def test_pymicrohttp_quickstart(tmp_path: Path) -> None:
    with run_copy(EXAMPLES / "pymicrohttp" / "quickstart.py", tmp_path, PORT_8080, LOOPBACK_0) as server:
        assert json.loads(fetch(f"{server.url}/hello")[2]) == {"message": "Hello, World!"}
        status, headers, body = fetch(f"{server.url}/hello/bob")
        assert (status, headers["content-type"]) == (200, "application/json")
        assert json.loads(body) == {"message": "Hello, bob!"}
        assert stop(server) == 0


def test_pymicrohttp_readme_examples(tmp_path: Path) -> None:
    with run_copy(EXAMPLES / "pymicrohttp" / "readme.py", tmp_path, PORT_8080, LOOPBACK_0) as server:
        url = server.url
        # '* /ping': any verb; the request dict's headers (any case)
        assert fetch(f"{url}/ping")[2] == b"pong"
        assert fetch(f"{url}/ping", method="DELETE", headers={"Double": "1"})[2] == b"pong-pong"
        # the body, as a str; returned tuples
        ok = fetch(f"{url}/login", "POST", json.dumps({"username": "ann", "password": "x"}).encode())
        assert (ok[0], json.loads(ok[2])) == (200, {"user": "ann"})
        missing = fetch(f"{url}/login", "POST", b'{"username": "ann"}')
        assert (missing[0], json.loads(missing[2])) == (400, {"error": "missing username or password"})
        assert json.loads(fetch(f"{url}/login", "POST", b"not json")[2]) == {"error": "invalid data"}
        # path and query parameters
        assert json.loads(fetch(f"{url}/users/eng/general")[2]) == {"group": "eng", "channel": "general"}
        assert json.loads(fetch(f"{url}/products?name=boot")[2]) == {"name": "boot", "category": "shoes"}
        assert fetch(f"{url}/hello/bob/2")[2] == b"Hello Hello bob"
        # returns: dict, (body, status), (body, status, headers)
        assert fetch(f"{url}/json")[1]["content-type"] == "application/json"
        assert fetch(f"{url}/missing")[:1] == (404,)
        status, headers, body = fetch(f"{url}/resource", "POST")
        assert (status, headers["location"], body) == (201, "/resource/1", b"Created")
        # per-route middleware, one and a chain; beforeAll around every route
        assert json.loads(fetch(f"{url}/logged")[2]) == {"message": "This is a logged route"}
        assert fetch(f"{url}/protected")[0] == 401
        granted = fetch(f"{url}/protected", headers={"Authorization": "Bearer secret"})
        assert json.loads(granted[2]) == {"message": "This is a protected route"}
        server.wait_for_line(r"Request: GET /protected")  # log_middleware, then auth
        server.wait_for_line(r" GET /logged$")  # beforeAll's logger, with its timestamp
        assert stop(server) == 0


@pytest.mark.parametrize("path", sorted(EXAMPLES.rglob("*.py")), ids=lambda p: p.relative_to(EXAMPLES).as_posix())
def test_every_example_is_run_by_a_test(path: Path) -> None:
    here = Path(__file__).read_text()
    assert f'"{path.name}"' in here or path.name == "http_web.py", f"examples/{path.name} is run by no test"
