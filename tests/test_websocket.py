"""websocket.py: WS routes, the per-connection context, the handler API (Starlette's), and
what happens when a handler returns, raises or refuses. Through the in-process test
client (the real HTTP/1.1 and WebSocket protocols, no port), and a few real processes."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import signal
from typing import Any

import pytest
import websockets
from servers import run_server
from tiny_listener import Depends, Param

from hump_listener import App, HTTPContext, HTTPError, WebSocket, WebSocketDisconnect, WebSocketState
from hump_listener.errors import RouteDefinitionError
from hump_listener.testing import AsyncTestClient, TestClient, WebSocketRejected


@pytest.fixture
def app() -> App:
    return App(access_log=False)


# -- routing and injection -----------------------------------------------------------------


def test_ws_and_get_share_a_path_and_convertors_apply(app: App) -> None:
    @app.get("/items/{n:int}")
    async def page(n: Param) -> str:
        return f"page {n}"

    @app.websocket("/items/{n:int}")
    async def live(ws: WebSocket, n: Param) -> None:
        await ws.accept()
        await ws.send_json({"n": n, "type": type(n).__name__})

    with TestClient(app) as client:
        assert client.get("/items/3").text == "page 3"
        with client.websocket_connect("/items/3") as ws:
            assert ws.receive_json() == {"n": 3, "type": "int"}
        # The convertor refuses: no WS route, so the upgrade is answered as HTTP.
        with pytest.raises(WebSocketRejected) as info, client.websocket_connect("/items/x"):
            pass
        assert info.value.response.status_code == 404


def test_on_event_spelling_and_flask_placeholders(app: App) -> None:
    @app.on_event("WS:/rooms/<name>")
    async def room(ws: WebSocket, name: Param) -> None:
        await ws.accept()
        await ws.send_text(name)

    with TestClient(app) as client, client.websocket_connect("/rooms/blue") as ws:
        assert ws.receive_text() == "blue"


def test_an_upgrade_to_an_http_only_path_is_answered_as_http(app: App) -> None:
    @app.get("/plain")
    async def plain() -> str:
        return "just http"

    @app.post("/posted")
    async def posted() -> str:
        return "posted"

    @app.websocket("/elsewhere")
    async def elsewhere(ws: WebSocket) -> None:
        await ws.accept()

    upgrade = {
        "upgrade": "websocket", "connection": "Upgrade", "sec-websocket-version": "13",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    with TestClient(app) as client:
        r = client.get("/plain", headers=upgrade)
        assert (r.status_code, r.text) == (200, "just http")
        assert client.get("/posted", headers=upgrade).status_code == 405
        assert client.get("/nowhere", headers=upgrade).status_code == 404


def test_depends_is_cached_per_connection(app: App) -> None:
    calls: list[str] = []

    async def user(ws: WebSocket) -> str:
        calls.append(ws.cid)
        return ws.request.headers.get("x-user", "anon")

    async def greeting(who: str = Depends(user)) -> str:
        return f"hi {who}"

    @app.websocket("/dep")
    async def dep(ws: WebSocket, who: str = Depends(user), hi: str = Depends(greeting)) -> None:
        await ws.accept()
        await ws.send_text(f"{who}|{hi}")

    with TestClient(app) as client:
        for name in ("ann", "bob"):
            with client.websocket_connect("/dep", headers={"x-user": name}) as ws:
                assert ws.receive_text() == f"{name}|hi {name}"
    assert len(calls) == 2 and calls[0] != calls[1]  # once per connection, not per use


def test_wrong_context_kinds_and_middleware_are_refused_at_registration(app: App) -> None:
    async def http_ctx(ctx: HTTPContext) -> None: ...

    async def ws_ctx(ws: WebSocket) -> str:
        return ""

    async def mw(ctx: HTTPContext, call_next: Any) -> Any:
        return await call_next()

    with pytest.raises(RouteDefinitionError, match="gets a WebSocket"):
        app.on_event("WS:/a")(http_ctx)
    with pytest.raises(RouteDefinitionError, match="gets a HTTPContext"):
        app.get("/b")(ws_ctx)
    with pytest.raises(RouteDefinitionError, match="middleware"):
        app.websocket("/c", middleware=[mw])(ws_ctx)


def test_without_the_websockets_package_registration_names_the_extra(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "websockets" else real(name, *a))

    async def h(ws: WebSocket) -> None: ...

    with pytest.raises(RouteDefinitionError, match=r"pip install websockets$"):
        app.websocket("/ws")(h)


# -- one context per connection ----------------------------------------------------------


async def test_one_held_context_per_connection_dropped_when_it_ends(app: App) -> None:
    seen: dict[str, Any] = {}
    finished = asyncio.Event()

    @app.on_event("ws_note")
    async def note(ws: WebSocket) -> None:  # a background event fired in the connection
        seen["event_ctx"] = ws
        finished.set()

    @app.websocket("/ctx")
    async def handler(ws: WebSocket) -> None:
        await ws.accept()
        seen["ctx"] = ws
        seen["alive"] = app.ctxs.get(ws.cid) is ws
        ws.trigger_event("ws_note")
        await finished.wait()
        await ws.send_text("ok")
        await ws.receive()

    async with AsyncTestClient(app) as client, client.websocket_connect("/ctx") as ws:
        assert await ws.receive_text() == "ok"
    assert seen["alive"] and seen["event_ctx"] is seen["ctx"]
    assert app.ctxs == {} and not seen["ctx"].events


def test_handshake_data_is_on_ws_request(app: App) -> None:
    @app.websocket("/info")
    async def info(ws: WebSocket) -> None:
        await ws.accept()
        r = ws.request
        await ws.send_json(
            {
                "path": r.path, "q": r.query.get("q"), "scheme": r.scheme, "cookie": r.cookies.get("sid"),
                "header": r.headers.get("x-h"), "client": list(r.client) if r.client else None,
            }
        )

    with TestClient(app) as client:
        client.cookies["sid"] = "abc"
        with client.websocket_connect("/info?q=1", headers={"x-h": "v"}) as ws:
            assert ws.receive_json() == {
                "path": "/info", "q": "1", "scheme": "ws", "cookie": "abc", "header": "v",
                "client": ["127.0.0.1", 50000],
            }


def test_trusted_proxy_headers_give_the_real_client_and_wss() -> None:
    app = App(access_log=False, forwarded_allow_ips="127.0.0.1")

    @app.websocket("/who")
    async def who(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_json([ws.request.client[0] if ws.request.client else None, ws.request.scheme])

    headers = {"x-forwarded-for": "203.0.113.9", "x-forwarded-proto": "https"}
    with TestClient(app) as client, client.websocket_connect("/who", headers=headers) as ws:
        assert ws.receive_json() == ["203.0.113.9", "wss"]


# -- the handler API ---------------------------------------------------------------------


def test_echo_keeps_message_types_and_iteration_ends_on_close(app: App) -> None:
    ended: list[int | None] = []

    @app.websocket("/echo")
    async def echo(ws: WebSocket) -> None:
        await ws.accept()
        async for message in ws:
            await ws.send(message)
        ended.append(1)

    with TestClient(app) as client, client.websocket_connect("/echo") as ws:
        ws.send_text("héllo")
        assert ws.receive() == "héllo"
        ws.send_bytes(b"\x00\xff")
        assert ws.receive() == b"\x00\xff"
        ws.send_json({"a": [1]})
        assert ws.receive_json() == {"a": [1]}
    assert ended == [1]  # async for ended quietly on the client's close


def test_subprotocols_and_accept_headers(app: App) -> None:
    @app.websocket("/proto")
    async def proto(ws: WebSocket) -> None:
        assert ws.client_state is WebSocketState.CONNECTING
        await ws.accept(subprotocol="v2" if "v2" in ws.subprotocols else None, headers={"X-Room": "7"})
        assert ws.client_state is WebSocketState.CONNECTED
        await ws.send_text(",".join(ws.subprotocols))

    with TestClient(app) as client, client.websocket_connect("/proto", subprotocols=["v1", "v2"]) as ws:
        assert ws.subprotocol == "v2" and ws.headers["x-room"] == "7"
        assert ws.receive_text() == "v1,v2"


def test_accepting_a_subprotocol_the_client_did_not_offer_is_an_error(app: App) -> None:
    @app.websocket("/bad")
    async def bad(ws: WebSocket) -> None:
        await ws.accept(subprotocol="nope")

    with (
        TestClient(app) as client,
        pytest.raises(WebSocketRejected) as info,
        client.websocket_connect("/bad", subprotocols=["v1"]),
    ):
        pass
    assert info.value.response.status_code == 500  # raised before the 101


def test_receive_text_refuses_binary_with_1003(app: App) -> None:
    result: dict[str, Any] = {}

    @app.websocket("/strict")
    async def strict(ws: WebSocket) -> None:
        await ws.accept()
        try:
            await ws.receive_text()
        except WebSocketDisconnect as exc:
            result["code"] = exc.code
            raise

    with TestClient(app) as client, client.websocket_connect("/strict") as ws:
        ws.send_bytes(b"raw")
        with pytest.raises(WebSocketDisconnect):
            ws.receive()
        assert ws.close_code == 1003
    assert result == {"code": 1003}


def test_handler_close_code_and_reason_reach_the_client(app: App) -> None:
    @app.websocket("/bye")
    async def bye(ws: WebSocket) -> None:
        await ws.accept()
        await ws.close(4001, "done here")

    with TestClient(app) as client, client.websocket_connect("/bye") as ws:
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive()
        assert (info.value.code, info.value.reason) == (4001, "done here")


async def test_a_push_only_handler_learns_of_the_disconnect_from_send(app: App) -> None:
    outcome: dict[str, Any] = {}
    sent_one = asyncio.Event()

    @app.websocket("/push")
    async def push(ws: WebSocket) -> None:
        await ws.accept()
        try:
            while True:
                await ws.send_text("tick")
                sent_one.set()
                await asyncio.sleep(0)
        except WebSocketDisconnect as exc:
            outcome["code"] = exc.code
            outcome["state"] = ws.client_state

    async with AsyncTestClient(app) as client, client.websocket_connect("/push") as ws:
        await sent_one.wait()
        await ws.close(1000)
    assert outcome == {"code": 1000, "state": WebSocketState.DISCONNECTED}


async def test_receive_after_the_peer_left_raises_with_its_code(app: App) -> None:
    codes: list[int] = []

    @app.websocket("/recv")
    async def recv(ws: WebSocket) -> None:
        await ws.accept()
        for _ in range(2):  # the second receive raises again, with the same code
            try:
                await ws.receive()
            except WebSocketDisconnect as exc:
                codes.append(exc.code)

    async with AsyncTestClient(app) as client, client.websocket_connect("/recv") as ws:
        await ws.close(4002)
    assert codes == [4002, 4002]


# -- ends: return, raise, refuse ---------------------------------------------------------------


def test_returning_without_closing_closes_1000(app: App) -> None:
    @app.websocket("/once")
    async def once(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text("one")

    with TestClient(app) as client, client.websocket_connect("/once") as ws:
        assert ws.receive_text() == "one"
        with pytest.raises(WebSocketDisconnect):
            ws.receive()
        assert ws.close_code == 1000


def test_raising_after_accept_closes_1011_and_logs_the_traceback(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    @app.websocket("/boom")
    async def boom(ws: WebSocket) -> None:
        await ws.accept()
        raise ValueError("kaput")

    with (
        caplog.at_level(logging.ERROR, "hump_listener.error"),
        TestClient(app) as client,
        client.websocket_connect("/boom") as ws,
    ):
        with pytest.raises(WebSocketDisconnect):
            ws.receive()
        assert ws.close_code == 1011
    [record] = [r for r in caplog.records if "Exception in WebSocket handler" in r.getMessage()]
    assert record.exc_info is not None and "kaput" in str(record.exc_info[1])


@pytest.mark.parametrize(
    ("body", "status"),
    [("raise_http", 403), ("deny", 401), ("return", 403), ("raise", 500), ("close", 403)],
)
def test_refusals_before_accept_are_http_answers(app: App, body: str, status: int) -> None:
    @app.websocket("/gate")
    async def gate(ws: WebSocket) -> None:
        if body == "raise_http":
            raise HTTPError(403, "members only")
        if body == "deny":
            await ws.deny(401, "who are you?", headers={"WWW-Authenticate": "Bearer"})
        elif body == "raise":
            raise RuntimeError("before accept")
        elif body == "close":
            await ws.close()

    with TestClient(app) as client, pytest.raises(WebSocketRejected) as info, client.websocket_connect("/gate"):
        pass
    response = info.value.response
    assert response.status_code == status
    if body == "deny":
        assert response.text == "who are you?" and response.headers["www-authenticate"] == "Bearer"
    if body == "raise_http":
        assert response.text == "members only"
    assert app.ctxs == {}


@pytest.mark.parametrize(
    ("path", "status"),
    [("/gate/toolong", 400), ("/gate/auth", 401), ("/gate/busy", 429), ("/gate/none", 403), ("/gate/ok", 101),
     ("/gate/raise", 500)],
)
def test_the_access_line_tells_the_status_that_was_sent(
    caplog: pytest.LogCaptureFixture, path: str, status: int
) -> None:
    """Issue 18 item 10: a refused handshake was logged as 403 whatever was sent."""
    app = App(access_log=True)

    @app.websocket("/gate/{why}")
    async def gate(ws: WebSocket, why: Param) -> None:
        if why == "toolong":
            raise HTTPError(400, "room name too long")
        if why == "auth":
            raise HTTPError(401, "who are you?")
        if why == "busy":
            await ws.deny(429, "slow down")
        if why == "raise":
            raise RuntimeError("before accept")
        if why == "ok":
            await ws.accept()
            await ws.close()

    with caplog.at_level(logging.INFO, "hump_listener.access"), TestClient(app) as client:
        if status == 101:
            with client.websocket_connect(path) as ws, pytest.raises(WebSocketDisconnect):
                ws.receive()
        else:
            with pytest.raises(WebSocketRejected) as info, client.websocket_connect(path):
                pass
            assert info.value.response.status_code == status
    [record] = [r for r in caplog.records if r.name == "hump_listener.access"]
    assert record.status == status  # type: ignore[attr-defined]  # what monitoring reads
    assert f'"GET {path} HTTP/1.1" {status} ' in record.getMessage()


def test_http_error_after_accept_closes_1008(app: App) -> None:
    @app.websocket("/policy")
    async def policy(ws: WebSocket) -> None:
        await ws.accept()
        raise HTTPError(403, "not in this room")

    with TestClient(app) as client, client.websocket_connect("/policy") as ws:
        with pytest.raises(WebSocketDisconnect) as info:
            ws.receive()
        assert (info.value.code, info.value.reason) == (1008, "not in this room")


def test_an_invalid_handshake_is_refused_before_the_handler_runs(app: App) -> None:
    ran: list[str] = []

    @app.websocket("/ws")
    async def handler(ws: WebSocket) -> None:
        ran.append("yes")

    with TestClient(app) as client:
        r = client.get(
            "/ws",
            headers={
                "upgrade": "websocket", "connection": "Upgrade", "sec-websocket-version": "8",
                "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
            },
        )
    assert r.status_code == 426 and r.headers["sec-websocket-version"] == "13"
    assert ran == []


# -- real processes ------------------------------------------------------------------------


def test_websockets_client_against_a_real_server_and_sigterm_sends_1001() -> None:
    async def session(port: int, server: Any) -> int | None:
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as client:
            await client.send("ping")
            assert await client.recv() == "ping"
            await client.send(b"\x01\x02")
            assert await client.recv() == b"\x01\x02"
            server.proc.send_signal(signal.SIGTERM)
            with pytest.raises(websockets.ConnectionClosed) as info:
                await client.recv()
            return info.value.rcvd.code if info.value.rcvd is not None else None

    with run_server("apps.ws_app:app", env={"HUMP_ACCESS_LOG": "0"}) as server:
        code = asyncio.run(session(server.port, server))
        assert code == 1001
        assert server.proc.wait(timeout=30) == 0
        output = server.output()
    assert "ws handler saw close 1001" in output and "shutdown callback ran" in output
