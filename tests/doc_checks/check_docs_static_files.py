"""Checks for docs/static-files.md's program: the folder is served, and nothing outside it."""

from __future__ import annotations

from docs_static_files import app

from hump_listener.testing import TestClient


def test_static_files() -> None:
    with TestClient(app) as client:
        css = client.get("/static/css/site.css")
        assert css.status_code == 200 and css.text == "body { color: teal }\n"
        assert css.headers["Cache-Control"] == "public, max-age=3600"
        etag = css.headers["ETag"]
        assert client.get("/static/css/site.css", headers={"If-None-Match": etag}).status_code == 304
        assert client.get("/static/../docs_static_files.py").status_code == 404
