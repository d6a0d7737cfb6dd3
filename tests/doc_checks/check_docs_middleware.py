"""Checks for docs/middleware.md's program: the middleware shown runs where it says."""

from __future__ import annotations

import gzip

from docs_middleware import app

from hump_listener.testing import TestClient


def test_middleware() -> None:
    with TestClient(app) as client:
        assert client.get("/").headers["X-Served-By"] == "hump"
        assert client.get("/private").status_code == 401
        ok = client.get("/private", headers={"Authorization": "Bearer secret"})
        assert (ok.status_code, ok.text) == (200, "secret")


def test_cors_and_gzip() -> None:
    with TestClient(app) as client:
        preflight = client.options(
            "/private",
            headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
        )
        assert preflight.status_code == 204
        assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example"
        big = client.get("/report.txt", headers={"Accept-Encoding": "gzip"})
        assert big.headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(big.content) == b"row\n" * 200
        small = client.get("/", headers={"Accept-Encoding": "gzip"})
        assert "Content-Encoding" not in small.headers  # under minimum_size
