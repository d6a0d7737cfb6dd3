"""Checks for docs/events.md's program (``docs_events``, see ``tests/doc_blocks.py``)."""

from __future__ import annotations

from smtplib import SMTPException

from docs_events import app, outbox, retries

from hump_listener.testing import TestClient


@app.on_event("flaky mail")
async def flaky_mail() -> None:
    raise SMTPException("mail server down")


def test_the_welcome_mail_gets_the_request_headers() -> None:
    with TestClient(app) as client:
        assert client.post("/signup", headers={"X-Email": "bo@example.com"}).text == "ok"
    assert "welcome, ann <bo@example.com>" in outbox


def test_on_error_hook_gets_the_failed_event() -> None:
    with TestClient(app):
        future = app.trigger_event_threadsafe("flaky mail", data={"to": "bo"})
        assert future.result(timeout=10) is None  # failed: the hook ran, nothing raised
    assert retries == [("flaky mail", {"to": "bo"})]
    assert app.ctxs == {}
