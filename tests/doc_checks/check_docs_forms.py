"""Checks for docs/forms.md's program: the upload and the cookie round trip."""

from __future__ import annotations

from docs_forms import app

from hump_listener.testing import TestClient


def test_forms() -> None:
    with TestClient(app) as client:
        r = client.post("/upload", data={"title": "Q3"}, files={"file": ("q3.pdf", b"%PDF", "application/pdf")})
        assert r.json() == {"title": "Q3", "filename": "q3.pdf", "size": 4}
        no_file = client.post("/upload", data={"title": "no file"}, files={"other": ("x", b"", "text/plain")})
        assert no_file.status_code == 400


def test_cookies() -> None:
    with TestClient(app) as client:
        login = client.post("/login", data={"user": "ann"})
        assert login.status_code == 303 and login.headers["Location"] == "/whoami"
        assert "HttpOnly" in login.headers["Set-Cookie"] and "Secure" in login.headers["Set-Cookie"]
        assert client.get("/whoami").text == "user:ann"  # the route the login redirects to exists
        logout = client.post("/logout")
        assert logout.status_code == 303 and client.get("/whoami").text == "nobody"
