"""Checks for docs/configuration.md's program: the settings written in code are the app's."""

from __future__ import annotations

from docs_configuration import small, tuned


def test_configuration() -> None:
    assert tuned.config.max_connections == 10_000
    assert small.config.access_log is False
