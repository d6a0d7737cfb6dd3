"""Checks for docs/responses.md's program: every reply the page shows is sent as it says."""

from __future__ import annotations

from docs_responses import app

from hump_listener.testing import TestClient


def test_replies() -> None:
    with TestClient(app) as client:
        created = client.get("/reply/created")
        assert (created.status_code, created.text, created.headers["X-Id"]) == (201, "created", "7")
        assert created.headers["Content-Type"].startswith("text/plain")
        assert client.get("/reply/text").headers["Content-Type"] == "text/plain; charset=utf-8"
        assert client.get("/reply/html").text == "<h1>hi</h1>"
        as_json = client.get("/reply/json")
        assert (as_json.status_code, as_json.json()) == (202, {"ok": True})
        moved = client.get("/reply/moved")
        assert (moved.status_code, moved.headers["Location"]) == (307, "/elsewhere")
        forbidden = client.get("/reply/forbidden")
        assert (forbidden.status_code, forbidden.text) == (403, "go away")
        assert client.get("/reply/other").status_code == 404
        raw = client.get("/returned/bytes")
        assert (raw.content, raw.headers["Content-Type"]) == (b"\x00\x01", "application/octet-stream")
        tup = client.get("/returned/tuple")
        assert (tup.status_code, tup.text, tup.headers["X-Queue"]) == (202, "accepted", "3")
        resp = client.get("/returned/response")
        assert (resp.status_code, resp.json()) == (201, {"ok": True})
        teapot = client.get("/returned/other")
        assert (teapot.status_code, teapot.text) == (418, "I'm a Teapot")
