"""Checks for the README's program (``readme``, see ``tests/doc_blocks.py``): every route
the README shows is requested, and answers what the README says it does.

Run by ``tests/test_readme.py`` in a plain pytest, in a temporary working directory. The
reference sections the README once held moved to the docs pages, with their checks
(``check_docs_*.py``).
"""

from __future__ import annotations

from readme import app

from hump_listener.testing import TestClient


def test_the_front_page_routes() -> None:
    with TestClient(app) as client:
        hello = client.get("/user/bob")
        assert (hello.status_code, hello.text) == (200, "Hello, bob!")
        assert hello.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert client.get("/user").status_code == 404
        with client.websocket_connect("/ws/echo") as ws:
            ws.send_bytes(b"\x00\x01")
            assert ws.receive_bytes() == b"\x00\x01"  # the same type back


def test_background_state_is_idle_after_the_tests() -> None:
    with TestClient(app) as client:
        client.post("/signup")
    assert app.ctxs == {}

