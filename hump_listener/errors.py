"""The framework's small exception family. A leaf module: imports nothing of ours but
``statuses`` and the seam's ``ClientDisconnect``.

Everything a handler or middleware may raise to mean "answer with this status" is an
``HTTPError``; everything that means "you used the API wrong" is a ``HumpError``.
"""

from __future__ import annotations

from collections.abc import Mapping

from . import statuses
from .seam import ClientDisconnect

__all__ = [
    "ClientDisconnect",
    "HTTPError",
    "HumpError",
    "NoResponse",
    "ResponseAlreadySent",
    "RouteConflict",
    "RouteDefinitionError",
]


class HTTPError(Exception):
    """Raise in a handler or middleware to answer with ``status``.

    ``detail`` becomes the plain-text body and defaults to the reason phrase, as in
    Starlette's ``HTTPException``; ``headers`` are added to the response.
    """

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if not statuses.is_valid(status):
            raise ValueError(f"invalid HTTP status code: {status!r}")
        self.status = status
        self.detail = statuses.reason(status) if detail is None else detail
        self.headers = dict(headers) if headers else {}
        super().__init__(status, self.detail)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status!r}, {self.detail!r})"


class HumpError(Exception):
    """Misuse of the framework's API (a programming error, not a client error)."""


class ResponseAlreadySent(HumpError):
    """A second reply was attempted for a request that already has one."""


class NoResponse(HumpError):
    """A handler returned ``None`` without replying."""


class RouteDefinitionError(HumpError, ValueError):
    """A route template or handler signature is invalid; raised at registration."""


class RouteConflict(RouteDefinitionError):
    """The same method and path template were registered twice."""
