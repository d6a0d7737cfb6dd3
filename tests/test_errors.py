"""errors.py: ``HTTPError`` (status, detail defaulting to the phrase, headers copied) and the
``HumpError`` family, whose place in the hierarchy callers catch by."""

from __future__ import annotations

import pytest

from hump_listener import errors
from hump_listener.errors import (
    ClientDisconnect,
    HTTPError,
    HumpError,
    NoResponse,
    ResponseAlreadySent,
    RouteConflict,
    RouteDefinitionError,
)
from hump_listener.seam import ClientDisconnect as SeamClientDisconnect


def test_http_error_detail_defaults_to_the_reason_phrase() -> None:
    exc = HTTPError(404)
    assert (exc.status, exc.detail, exc.headers) == (404, "Not Found", {})
    assert exc.args == (404, "Not Found")
    assert repr(exc) == "HTTPError(404, 'Not Found')"
    assert HTTPError(499).detail == "Client Error"  # unregistered: the class phrase
    assert HTTPError(400, "").detail == ""  # an explicit empty detail is kept


def test_http_error_copies_its_headers() -> None:
    given = {"Allow": "GET"}
    exc = HTTPError(405, headers=given)
    given["Allow"] = "POST"
    assert exc.headers == {"Allow": "GET"}


@pytest.mark.parametrize("status", [99, 600, 0])
def test_an_invalid_status_is_refused_where_it_is_written(status: int) -> None:
    with pytest.raises(ValueError, match="invalid HTTP status code"):
        HTTPError(status)


def test_the_family_tree() -> None:
    for kls in (ResponseAlreadySent, NoResponse, RouteDefinitionError, RouteConflict):
        assert issubclass(kls, HumpError)
        assert not issubclass(kls, HTTPError)
    assert issubclass(RouteDefinitionError, ValueError)  # bad definitions are bad values
    assert issubclass(RouteConflict, RouteDefinitionError)
    assert ClientDisconnect is SeamClientDisconnect  # one class on both sides of the seam
    assert sorted(errors.__all__) == errors.__all__
