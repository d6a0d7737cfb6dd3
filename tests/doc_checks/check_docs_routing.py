"""Checks for docs/routing.md's program: every route the page shows answers what it says."""

from __future__ import annotations

from docs_routing import app

from hump_listener.testing import TestClient


def test_routes() -> None:
    with TestClient(app) as client:
        assert client.get("/").text == "Hello, world!"
        assert client.head("/").content == b""
        assert client.get("/api/users/7").json() == {"id": 7}
        assert client.get("/api/users/x").status_code == 404  # the convertor refuses: the fallback
        assert client.get("/files/a/b.txt").text == "a/b.txt"
        assert client.request("PATCH", "/anything").text == "PATCH"
        assert client.get("/hello/ann").text == "Hello, ann!"
        missing = client.get("/no/such/page")
        assert (missing.status_code, missing.text) == (404, "nothing at /no/such/page")


def test_injection() -> None:
    with TestClient(app) as client:
        assert client.get("/me/pen").json() == {"user": "anonymous", "item": "pen"}
        assert client.get("/me/pen", headers={"X-User": "ann"}).json()["user"] == "ann"


def test_sync_handlers() -> None:
    with TestClient(app) as client:
        assert client.get("/slow/monday").json() == {"day": "monday", "path": "/slow/monday"}
        assert client.post("/reverse", content=b"abc").text == "cba"
