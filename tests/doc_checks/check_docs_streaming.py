"""Checks for docs/streaming.md's program: the stream, the events and the download."""

from __future__ import annotations

from pathlib import Path

from docs_streaming import app

from hump_listener.testing import TestClient


def test_streaming() -> None:
    with TestClient(app) as client:
        assert client.get("/count").text == "0\n1\n2\n"
        ticks = client.get("/ticks")
        assert ticks.headers["Content-Type"] == "text/event-stream; charset=utf-8"
        assert ticks.text.count("event: tick") == 3 and "data: 2" in ticks.text
        assert client.get("/report").status_code == 404  # no file yet
        Path("exports").mkdir(exist_ok=True)
        Path("exports/report.csv").write_text("a,b\n1,2\n")
        download = client.get("/report")
        assert download.text == "a,b\n1,2\n"
        assert "filename*=UTF-8''rapport%20%C3%A9t%C3%A9.csv" in download.headers["Content-Disposition"]
        partial = client.get("/report", headers={"Range": "bytes=0-2"})
        assert (partial.status_code, partial.text) == (206, "a,b")
