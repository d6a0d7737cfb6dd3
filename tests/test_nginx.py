"""deploy/nginx.conf in front of two real instances (``tiny-listener`` subprocesses of
tests/apps/proxied_app.py, or of the demo http_web.py for the chat), all on 127.0.0.1.
The chat test adds a real redis-server that both instances share (HUMP_BROADCAST_URL),
so a message crosses from one instance's client to the other's; it is skipped, with the
reason, where redis-server is absent, as every test here is where nginx is.

The test runs the deploy config itself, rewritten only where a test must differ (ports,
a temp prefix for logs, pid and temp files, one nginx worker, no ``user``) plus one
addition: nginx connects to the instances from 127.0.0.2 (``proxy_bind``) and the
instances trust only that address, so the test client (127.0.0.1) is an untrusted
client, as on the internet.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import queue
import re
import shutil
import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import AsyncExitStack, ExitStack, suppress
from pathlib import Path
from typing import Any

import pytest
from process_helpers import Launched, launch, tiny_listener
from redis_helpers import running_redis
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed
from ws_helpers import recv, said, ws_connect

from hump_listener.config import DEFAULT_WS_PING_INTERVAL, DEFAULT_WS_PING_TIMEOUT

ROOT = Path(__file__).resolve().parent.parent
DEPLOY_CONF = ROOT / "deploy" / "nginx.conf"
NGINX = shutil.which("nginx") or next(
    (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
)
APP = "apps.proxied_app:app"
NGINX_SIDE = "127.0.0.2"  # nginx's source address towards the instances (proxy_bind)
#: Upper bound on requests the background client sends during a restart.
MAX_LOOP_REQUESTS = 5000
#: WebSocket connections tried through nginx to get one on each instance (round robin
#: alternates, so two are enough unless something else took a turn).
MAX_CHAT_CLIENTS = 8
#: Bounded wait for an instance's access line: polls of LOG_POLL seconds each.
LOG_POLLS = 300
LOG_POLL = 0.1

pytestmark = pytest.mark.skipif(NGINX is None, reason="the nginx binary is not installed (apt-get install nginx)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def render(conf: str, prefix: Path, listen: int, upstreams: tuple[int, int]) -> str:
    """The deploy config with test ports and paths; each rewrite must apply exactly once,
    so a change to deploy/nginx.conf that breaks the test's assumptions fails loudly."""

    def sub(pattern: str, replacement: str, text: str) -> str:
        out, n = re.subn(pattern, replacement, text, flags=re.MULTILINE)
        assert n == 1, f"deploy/nginx.conf: expected one match of {pattern!r}, found {n}"
        return out

    temp_paths = "".join(
        f"\n    {kind}_temp_path {prefix}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = sub(r"^user .*;$", "", conf)
    conf = sub(r"^worker_processes .*;$", "worker_processes 1;", conf)
    conf = sub(r"^error_log .*;$", "error_log stderr notice;", conf)
    conf = sub(r"access_log /var/log/nginx/access.log", f"access_log {prefix}/access.log", conf)
    conf = sub(r"^http \{$", "http {" + temp_paths, conf)
    conf = sub(r"server 127\.0\.0\.1:8001 ", f"server 127.0.0.1:{upstreams[0]} ", conf)
    conf = sub(r"server 127\.0\.0\.1:8002 ", f"server 127.0.0.1:{upstreams[1]} ", conf)
    conf = sub(r"listen 80;", f"listen 127.0.0.1:{listen};", conf)
    conf = sub(
        r"proxy_pass http://hump_listener;",
        f"proxy_pass http://hump_listener;\n            proxy_bind {NGINX_SIDE};",
        conf,
    )
    return conf


def request(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, (json.loads(body) if resp.status == 200 else {"body": body})
    finally:
        conn.close()


def start_instance(
    stack: ExitStack, port: int = 0, app: str = APP, env: dict[str, str] | None = None
) -> tuple[Launched, int]:
    full_env = {"HUMP_PORT": str(port), "HUMP_FORWARDED_ALLOW_IPS": NGINX_SIDE, **(env or {})}
    instance = stack.enter_context(launch(tiny_listener(app), env=full_env))
    return instance, instance.serving_port()


def deploy(
    stack: ExitStack, tmp_path: Path, app: str = APP, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Two instances of ``app`` behind nginx, owned by ``stack``."""
    a, port_a = start_instance(stack, app=app, env=env)
    b, port_b = start_instance(stack, app=app, env=env)
    listen = free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(render(DEPLOY_CONF.read_text(), tmp_path, listen, (port_a, port_b)))
    nginx = stack.enter_context(launch(nginx_argv(tmp_path, conf, "daemon off;")))
    # Logged after nginx has bound its port (ngx_init_cycle), so requests just queue.
    nginx.wait_for_line(r"start worker process")
    return {"stack": stack, "nginx": listen, "a": (a, port_a), "b": (b, port_b), "nginx_proc": nginx}


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Two instances behind nginx; yields ports, processes and the ExitStack that owns
    them (every process is killed when the test ends, whatever happens)."""
    assert NGINX is not None
    with ExitStack() as stack:
        yield deploy(stack, tmp_path)


def nginx_argv(prefix: Path, conf: Path, global_directives: str, *flags: str) -> list[str]:
    """nginx with everything under ``prefix`` (no root-only paths): its config, error log
    and pid file, plus ``global_directives`` such as ``daemon off;``."""
    assert NGINX is not None
    return [
        NGINX, *flags, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log"),
        "-g", f"{global_directives} pid {prefix / 'nginx.pid'};".strip(),
    ]


def pids_through(port: int, want: int, attempts: int = 20) -> set[int]:
    seen: set[int] = set()
    for _ in range(attempts):
        status, body = request(port, "/whoami")
        assert status == 200, body
        seen.add(body["pid"])
        if len(seen) == want:
            break
    return seen


def test_config_is_valid_as_shipped_apart_from_ports_and_paths(tmp_path: Path) -> None:
    assert NGINX is not None
    conf = tmp_path / "nginx.conf"
    conf.write_text(render(DEPLOY_CONF.read_text(), tmp_path, free_port(), (free_port(), free_port())))
    with launch(nginx_argv(tmp_path, conf, "", "-t")) as check:
        assert check.proc.wait(timeout=30) == 0, check.output()
        check.wait_for_line(r"syntax is ok")


def test_requests_reach_both_instances(deployment: dict[str, Any]) -> None:
    a, b = deployment["a"][0], deployment["b"][0]
    assert pids_through(deployment["nginx"], want=2) == {a.proc.pid, b.proc.pid}


def test_client_address_arrives_through_the_proxy_headers(deployment: dict[str, Any]) -> None:
    port = deployment["nginx"]
    status, seen = request(port, "/whoami")
    assert status == 200
    assert seen["x_forwarded_for"] == "127.0.0.1"  # nginx: $proxy_add_x_forwarded_for
    # The app's peer is nginx (127.0.0.2, trusted); the client comes from the header,
    # which gives no port.
    assert seen["client"] == ["127.0.0.1", 0]
    assert seen["scheme"] == "http"


def test_spoofed_headers_sent_to_nginx_are_not_believed(deployment: dict[str, Any]) -> None:
    port = deployment["nginx"]
    spoof = {"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https", "Forwarded": "for=7.7.7.7"}
    status, seen = request(port, "/whoami", spoof)
    assert status == 200
    # nginx appends the real peer; walking from the right, 127.0.0.1 is the first
    # address no trusted proxy vouches for, so the forged 6.6.6.6 is ignored (uvicorn's rule).
    assert seen["x_forwarded_for"] == "6.6.6.6, 127.0.0.1"
    assert seen["client"] == ["127.0.0.1", 0]
    assert seen["scheme"] == "http"  # X-Forwarded-Proto is overwritten by nginx
    assert seen["forwarded"] is None  # and Forwarded dropped
    # Straight to an instance, the test client is an untrusted peer: nothing is believed.
    direct_port = deployment["a"][1]
    status, seen = request(direct_port, "/whoami", spoof)
    assert status == 200 and seen["client"][0] == "127.0.0.1" and seen["client"][1] != 0
    assert seen["scheme"] == "http"


class Hammer(threading.Thread):
    """Sends GET /whoami through nginx, one fresh connection each, until told to stop
    (or MAX_LOOP_REQUESTS); records every outcome."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.stop = threading.Event()
        self.results: list[int | str] = []

    def run(self) -> None:
        while not self.stop.is_set() and len(self.results) < MAX_LOOP_REQUESTS:
            try:
                self.results.append(request(self.port, "/whoami")[0])
            except Exception as exc:
                self.results.append(repr(exc))


def test_graceful_restart_of_one_instance_loses_no_request(deployment: dict[str, Any]) -> None:
    port, stack = deployment["nginx"], deployment["stack"]
    (a, port_a), (b, _) = deployment["a"], deployment["b"]
    assert pids_through(port, want=2) == {a.proc.pid, b.proc.pid}

    # A request through nginx that instance A is known to be serving when it gets SIGTERM.
    held = None
    for _ in range(10):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", f"/hold?pid={a.proc.pid}")
        resp = conn.getresponse()
        if resp.getheader("X-Pid") == str(a.proc.pid):
            held = (conn, resp)
            break
        assert (resp.status, resp.read()) == (200, b"not me")
        conn.close()
    assert held is not None, "nginx never sent /hold to instance A"
    conn, resp = held

    hammer = Hammer(port)
    hammer.start()
    try:
        assert resp.readline() == b"started\n"
        a.proc.send_signal(signal.SIGTERM)
        # The in-flight request finishes: the instance drains before it exits.
        assert (resp.status, resp.read()) == (200, b"done\n")
        conn.close()
        assert a.proc.wait(timeout=30) == 0, a.output()
        # A is down: requests through nginx still succeed, all from B.
        for _ in range(10):
            status, seen = request(port, "/whoami")
            assert status == 200 and seen["pid"] == b.proc.pid
        # Start it again on the same port.
        a2, port_a2 = start_instance(stack, port_a)
        assert port_a2 == port_a
        status, seen = request(port_a, "/whoami")
        assert status == 200 and seen["pid"] == a2.proc.pid != a.proc.pid
    finally:
        hammer.stop.set()
        hammer.join(timeout=30)
    assert not hammer.is_alive()
    failures = [r for r in hammer.results if r != 200]
    assert hammer.results and not failures, (failures[:5], deployment["nginx_proc"].output()[-2000:])


# -- WebSockets through nginx -------------------------------------------------------------


def test_read_timeout_outlasts_the_websocket_keepalive() -> None:
    """nginx cuts an upgraded connection after ``proxy_read_timeout`` of silence both
    ways; the app's ping (after ``ws_ping_interval`` of silence) and its own close of an
    unanswered one (``ws_ping_timeout`` later) must both come first."""
    conf = DEPLOY_CONF.read_text()
    assert re.search(r"^\s*map \$http_upgrade \$connection_upgrade \{", conf, re.MULTILINE)
    assert re.search(r"^\s*proxy_set_header Upgrade \$http_upgrade;", conf, re.MULTILINE)
    assert re.search(r"^\s*proxy_set_header Connection \$connection_upgrade;", conf, re.MULTILINE)
    timeouts = re.findall(r"^\s*proxy_read_timeout (\d+)s;", conf, re.MULTILINE)
    assert len(timeouts) == 1
    assert DEFAULT_WS_PING_INTERVAL is not None
    assert int(timeouts[0]) > DEFAULT_WS_PING_INTERVAL + DEFAULT_WS_PING_TIMEOUT


def instance_of(instances: dict[str, Launched], marker: str) -> str:
    """Which instance accepted the chat connection whose query carries ``marker``. An
    instance logs the 101 before sending it, so by the time the client is open the line
    is in that instance's stderr pipe; wait for it (bounded), watching both."""
    rx = re.compile(rf'"GET /ws/chat/\S*[?&]client={marker}\b\S* HTTP/1\.1" 101 ')
    for _ in range(LOG_POLLS):
        found = [name for name, inst in instances.items() if any(rx.search(line) for line in inst.lines)]
        if found:
            assert len(found) == 1, found
            return found[0]
        for inst in instances.values():
            with suppress(queue.Empty):
                inst._queue.get(timeout=LOG_POLL)  # woken by any new line
    raise AssertionError(f"no instance logged the 101 of client {marker}")


async def test_a_chat_through_nginx_crosses_both_instances(tmp_path: Path) -> None:
    """deploy/nginx.conf in front of two demo instances sharing one Redis: a client on
    each instance, each sees the other's messages; then a rolling restart: the instance
    that stops closes its chats with 1001, and a client that reconnects through nginx
    chats on with the other."""
    redis_dir = tmp_path / "redis"
    redis_dir.mkdir()
    with running_redis(redis_dir) as redis_server, ExitStack() as stack:
        env = {"HUMP_BROADCAST_URL": redis_server.url}
        deployment = await asyncio.to_thread(deploy, stack, tmp_path, "http_web:app", env)
        base = f"http://127.0.0.1:{deployment['nginx']}"
        instances = {"a": deployment["a"][0], "b": deployment["b"][0]}
        async with AsyncExitStack() as clients:
            on: dict[str, ClientConnection] = {}
            for n in range(MAX_CHAT_CLIENTS):
                ws = await clients.enter_async_context(ws_connect(base, f"/ws/chat/nginx?client={n}"))
                on.setdefault(await asyncio.to_thread(instance_of, instances, str(n)), ws)
                if len(on) == 2:
                    break
            assert set(on) == {"a", "b"}, "nginx never sent a chat connection to one of the instances"
            # The instances saw the client, not nginx (X-Forwarded-For from 127.0.0.2).
            assert all(
                "127.0.0.1:0 - " in line for inst in instances.values() for line in inst.lines if '" 101 ' in line
            )

            await on["a"].send("through nginx, from a")
            assert (await said(on["a"]))[1] == "through nginx, from a"
            assert (await said(on["b"]))[1] == "through nginx, from a"
            await on["b"].send("through nginx, from b")
            assert (await said(on["b"]))[1] == "through nginx, from b"
            assert (await said(on["a"]))[1] == "through nginx, from b"

            # Rolling restart of instance a: its chats get 1001 through nginx.
            a = instances["a"]
            a.proc.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed):
                while True:  # skip what other clients of the room said meanwhile (none)
                    await recv(on["a"])
            assert on["a"].close_code == 1001, on["a"].close_reason
            assert await asyncio.to_thread(a.proc.wait, 30) == 0, a.output()
            assert "cancelling" not in a.output(), a.output()

            # The page reconnects: through nginx it lands on b, the instance that is up.
            back = await clients.enter_async_context(ws_connect(base, "/ws/chat/nginx?client=back"))
            assert await asyncio.to_thread(instance_of, instances, "back") == "b"
            await back.send("reconnected")
            assert (await said(back))[1] == "reconnected"
            assert (await said(on["b"]))[1] == "reconnected"
