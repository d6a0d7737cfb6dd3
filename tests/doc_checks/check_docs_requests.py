"""Checks for docs/requests.md's program: what the handlers read is what was sent."""

from __future__ import annotations

from docs_requests import app

from hump_listener.testing import TestClient


def test_the_request() -> None:
    with TestClient(app) as client:
        r = client.post(
            "/inspect?q=1&q=2", json={"a": 1}, headers={"Accept": "text/html"}, cookies={"k": "v"}
        )
        body = r.json()
        assert r.status_code == 200, r.text
        assert body["method"] == "POST" and body["path"] == "/inspect" and body["query_string"] == "q=1&q=2"
        assert body["q"] == "1" and body["all_q"] == ["1", "2"]
        assert body["content_type"] == "application/json" and body["accept"] == ["text/html"]
        assert body["cookies"] == {"k": "v"} and body["data"] == {"a": 1} and body["size"] == len('{"a": 1}')
        assert body["http_version"] == "1.1" and body["scheme"] == "http"
        # Without a Content-Type the handler still answers (issue 14: it was a KeyError).
        bare = client.post("/inspect", content=b'{"a": 2}')
        assert (bare.status_code, bare.json()["content_type"], bare.json()["data"]) == (200, None, {"a": 2})
        assert client.post("/inspect", content=b"").status_code == 400  # an empty body is not JSON
        assert client.post("/count-bytes", content=[b"ab", b"cde"]).text == "5"
