"""The demo's page-level features, in-process through the test client: the static
folder, the upload form and the SSE clock, all reachable from /page."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

import http_web
from hump_listener.testing import TestClient


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(http_web.app) as c:
        yield c


def test_page_links_every_feature(client: TestClient) -> None:
    page = client.get("/page").text
    for needle in ('href="/static/hello.txt"', 'action="/upload"', 'enctype="multipart/form-data"',
                   'new EventSource("/clock")', 'href="/user/bob"', 'href="/static/style.css"'):
        assert needle in page


def test_static_folder(client: TestClient) -> None:
    r = client.get("/static/hello.txt")
    assert r.status_code == 200 and r.text == "Hello from a static file!\n"
    assert r.headers["content-type"] == "text/plain; charset=utf-8" and r.headers["etag"]
    assert client.get("/static/hello.txt", headers={"If-None-Match": r.headers["etag"]}).status_code == 304
    assert client.get("/static/style.css").headers["content-type"] == "text/css; charset=utf-8"
    assert client.get("/static/%2e%2e/http_web.py").status_code == 404
    assert client.get("/static/missing.txt").status_code == 404


def test_upload_form(client: TestClient) -> None:
    r = client.post("/upload", data={"title": "notes"}, files={"file": ("notes.txt", b"x" * 1000, "text/plain")})
    assert r.status_code == 200
    assert r.json() == {"title": "notes", "filename": "notes.txt", "size": 1000}
    r = client.post("/upload", data={"title": "no file"}, files={"other": ("a.txt", b"a", "text/plain")})
    assert r.status_code == 400 and "choose a file" in r.text


def test_sse_clock(client: TestClient) -> None:
    r = client.get("/clock?n=2")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert r.headers["cache-control"] == "no-cache"
    events = re.findall(r"event: tick\ndata: (\d\d:\d\d:\d\d UTC)\n\n", r.text)
    assert len(events) == 2
