"""sessions.py: signed-cookie sessions (issue 22 item 6): ctx.session as a dict kept in a
cookie, tampering and expiry give an empty session, the cookie's attributes, and the
start-up rule for the secret (production mode refuses to start without one)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import itsdangerous
import pytest
from tiny_listener import Param

from hump_listener import App, HTTPContext
from hump_listener.config import ConfigError
from hump_listener.sessions import Sessions
from hump_listener.testing import TestClient

SECRET = "test-secret-key-for-sessions"


def make_app(**options: Any) -> App:
    app = App(access_log=False)
    Sessions(app, **options)

    @app.post("/login/{user}")
    async def login(ctx: HTTPContext, user: Param) -> str:
        ctx.session["user"] = user
        return "ok"

    @app.get("/whoami")
    async def whoami(ctx: HTTPContext) -> dict[str, Any]:
        return dict(ctx.session)

    @app.post("/logout")
    async def logout(ctx: HTTPContext) -> str:
        ctx.session.clear()
        return "bye"

    @app.get("/crash")
    async def crash(ctx: HTTPContext) -> str:
        ctx.session["half"] = "done"
        raise RuntimeError("boom")

    return app


def test_the_session_round_trips_in_a_signed_cookie() -> None:
    app = make_app(secret_key=SECRET)
    with TestClient(app) as client:
        assert client.get("/whoami").json() == {}
        r = client.post("/login/ann")
        cookie = r.headers["set-cookie"]
        assert cookie.startswith("session=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
        assert "Max-Age=1209600" in cookie and "Secure" not in cookie
        assert client.get("/whoami").json() == {"user": "ann"}
        r = client.post("/logout")
        assert "Max-Age=0" in r.headers["set-cookie"]  # emptied: the cookie is deleted
        assert client.get("/whoami").json() == {}


def test_a_tampered_cookie_is_an_empty_session() -> None:
    app = make_app(secret_key=SECRET)
    with TestClient(app) as client:
        client.post("/login/ann")
        value = client.cookies["session"]
        _payload, rest = value.split(".", 1)
        forged = base64.b64encode(json.dumps({"user": "admin"}).encode()).decode()
        assert client.get("/whoami", headers={"Cookie": f"session={forged}.{rest}"}).json() == {}
        other_key = itsdangerous.TimestampSigner("another key").sign(forged.encode()).decode()
        assert client.get("/whoami", headers={"Cookie": f"session={other_key}"}).json() == {}
        assert client.get("/whoami", headers={"Cookie": "session=garbage"}).json() == {}
        assert client.get("/whoami", headers={"Cookie": f"session={value}"}).json() == {"user": "ann"}


def test_an_expired_cookie_is_an_empty_session(monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app(secret_key=SECRET, max_age=60)
    with TestClient(app) as client:
        client.post("/login/ann")
        value = client.cookies["session"]
        assert client.get("/whoami", headers={"Cookie": f"session={value}"}).json() == {"user": "ann"}
        now = time.time()
        monkeypatch.setattr(time, "time", lambda: now + 61)  # itsdangerous reads time.time()
        assert client.get("/whoami", headers={"Cookie": f"session={value}"}).json() == {}


def test_cookie_attributes_follow_the_options() -> None:
    app = make_app(secret_key=SECRET, cookie_name="sid", max_age=None, same_site="strict", https_only=True,
                   path="/app", domain="example.test")
    with TestClient(app) as client:
        cookie = client.post("/login/ann").headers["set-cookie"]
    assert cookie.startswith("sid=")
    for part in ("Secure", "HttpOnly", "SameSite=Strict", "Path=/app", "Domain=example.test"):
        assert part in cookie, part
    assert "Max-Age" not in cookie  # None: a browser-session cookie


def test_no_cookie_on_a_500() -> None:
    app = make_app(secret_key=SECRET)
    with TestClient(app) as client:
        r = client.get("/crash")
    assert r.status_code == 500 and "set-cookie" not in r.headers


def test_the_secret_comes_from_the_configuration() -> None:
    app = make_app()
    app.configure(secret_key=SECRET)
    with TestClient(app) as client:
        client.post("/login/ann")
        value = client.cookies["session"]
    assert itsdangerous.TimestampSigner(SECRET).unsign(value)  # signed with the configured key


def test_production_mode_refuses_to_start_without_a_secret() -> None:
    app = make_app()
    refused = "Sessions need a secret key in production mode: set HUMP_SECRET_KEY"
    with pytest.raises(ConfigError, match=refused), TestClient(app):
        pass


def test_development_mode_uses_a_throw_away_key(caplog: pytest.LogCaptureFixture) -> None:
    app = make_app()
    app.configure(debug=True)
    with TestClient(app) as client:
        client.post("/login/ann")
        assert client.get("/whoami").json() == {"user": "ann"}
    assert "throw-away" in caplog.text


def test_ctx_session_without_sessions_says_how_to_set_them_up() -> None:
    with pytest.raises(RuntimeError, match=r"ctx.session needs sessions: Sessions\(app\)"):
        _ = HTTPContext(App(access_log=False), "1").session
