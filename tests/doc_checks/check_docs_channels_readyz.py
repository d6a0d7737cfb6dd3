"""Checks for docs/channels.md's readiness route (``docs_channels_readyz``)."""

from __future__ import annotations

from docs_channels_readyz import app

from hump_listener.testing import TestClient


def test_readyz_reports_the_broadcast() -> None:
    with TestClient(app) as client:
        r = client.get("/readyz")
        assert r.status_code == 200 and r.json() == {"broadcast": "connected"}
