"""statuses.py: named codes as plain ints, ``reason`` (the phrase every part of the package
sends) and ``is_valid``."""

from __future__ import annotations

from http import HTTPStatus

import pytest

from hump_listener import statuses
from hump_listener.seam import reason_phrase


def test_every_name_is_the_stdlibs_code() -> None:
    names = [name for name in dir(statuses) if name.isupper() and name != "REASONS"]
    assert len(names) > 50
    for name in names:
        value = getattr(statuses, name)
        assert type(value) is int, name
        assert HTTPStatus[name] == value, name  # by name: 3.13 renamed some, keeping aliases
    assert statuses.IM_A_TEAPOT == 418
    assert statuses.NOT_FOUND == 404


@pytest.mark.parametrize(
    ("status", "phrase"),
    [(200, "OK"), (404, "Not Found"), (418, HTTPStatus(418).phrase), (499, "Client Error"), (299, "Success"),
     (599, "Server Error")],
)
def test_reason_is_the_registered_phrase_else_the_class_phrase(status: int, phrase: str) -> None:
    assert statuses.reason(status) == phrase
    assert statuses.reason(status) == reason_phrase(status)  # the status line says the same


def test_reasons_table_matches_the_stdlib() -> None:
    assert statuses.REASONS[503] == HTTPStatus(503).phrase
    assert set(statuses.REASONS) == {s.value for s in HTTPStatus}


@pytest.mark.parametrize(("status", "valid"), [(99, False), (100, True), (599, True), (600, False), (-1, False)])
def test_is_valid_is_the_range_a_server_may_send(status: int, valid: bool) -> None:
    assert statuses.is_valid(status) is valid
