"""CORS (Fetch standard, "CORS protocol"): answer preflights, label cross-origin replies.

Rules, in the order they are applied:

1. A *preflight* is ``OPTIONS`` carrying both ``Origin`` and
   ``Access-Control-Request-Method``. It is answered here, before routing, so it works
   for every route whether or not the app has an OPTIONS handler: 204 when the origin,
   method and headers are allowed, 400 naming what was refused otherwise.
2. Any other request with an allowed ``Origin`` runs normally and its response gets
   ``Access-Control-Allow-Origin`` (plus credentials / exposed headers when configured).
   A disallowed origin gets the response without CORS headers: the browser then refuses
   to hand it to the page, which is the whole enforcement.
3. ``Access-Control-Allow-Origin: *`` is only sent when every origin is allowed *and*
   credentials are not: browsers reject ``*`` on credentialed requests, so otherwise the
   origin is echoed. Whenever the answer depends on ``Origin`` the response says
   ``Vary: Origin``, so a shared cache never serves one origin's answer to another.

Register it globally (``app.middleware(CORSMiddleware(...))``): as route middleware it
runs after routing, so a preflight for a path without an OPTIONS route would be a 405
before it got the chance to answer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..models import Response
from ._headers import add_vary, split_tokens

if TYPE_CHECKING:
    from ..context import HTTPContext
    from ..endpoints import CallNext

__all__ = ["DEFAULT_MAX_AGE", "SAFELISTED_HEADERS", "CORSMiddleware"]

#: Seconds a browser may cache a preflight answer. Starlette's default is 600 too;
#: Chromium caps the value at 7200, Firefox at 86400.
DEFAULT_MAX_AGE = 600
#: Request headers a page may always send (the Fetch standard's CORS-safelisted names);
#: allowing them explicitly costs nothing and saves a surprising preflight failure.
SAFELISTED_HEADERS = frozenset({"accept", "accept-language", "content-language", "content-type"})
#: Methods allowed by default: the ones a simple (non-preflighted) request may use.
DEFAULT_METHODS = ("GET", "HEAD", "POST")


class CORSMiddleware:
    """``app.middleware(CORSMiddleware(allow_origins=["https://app.example"]))``.

    ``allow_origins``, ``allow_methods`` and ``allow_headers`` accept ``["*"]`` for
    "any". ``allow_origin_regex`` allows origins that match it in full (e.g.
    ``r"https://.*\\.example\\.com"``). ``max_age`` is sent on preflight answers.
    """

    def __init__(
        self,
        allow_origins: Sequence[str] = (),
        allow_methods: Sequence[str] = DEFAULT_METHODS,
        allow_headers: Sequence[str] = (),
        allow_credentials: bool = False,
        expose_headers: Sequence[str] = (),
        max_age: int = DEFAULT_MAX_AGE,
        allow_origin_regex: str | None = None,
    ) -> None:
        for name, value in (
            ("allow_origins", allow_origins), ("allow_methods", allow_methods),
            ("allow_headers", allow_headers), ("expose_headers", expose_headers),
        ):
            if isinstance(value, str):  # a classic slip: "*" instead of ["*"]
                raise TypeError(f"{name} must be a sequence of strings, not the string {value!r}")
        if max_age < 0:
            raise ValueError(f"max_age must be >= 0, got {max_age}")
        self.allow_all_origins = "*" in allow_origins
        self.allow_origins = frozenset(o.rstrip("/") for o in allow_origins if o != "*")
        self.allow_origin_regex = re.compile(allow_origin_regex) if allow_origin_regex else None
        self.allow_all_methods = "*" in allow_methods
        # Methods are case-sensitive tokens (RFC 9110 §9.1), but every standard one is
        # upper-case and browsers upper-case the standard ones they send.
        self.allow_methods = tuple(dict.fromkeys(m.upper() for m in allow_methods if m != "*"))
        self.allow_all_headers = "*" in allow_headers
        self.allow_headers = frozenset(h.lower() for h in allow_headers if h != "*") | SAFELISTED_HEADERS
        self.allow_credentials = allow_credentials
        self.expose_headers = ", ".join(expose_headers)
        self.max_age = max_age
        # "*" can only be sent when the answer is the same for every origin.
        self._wildcard = self.allow_all_origins and not allow_credentials
        self._preflight_headers = self._static_preflight_headers()

    def _static_preflight_headers(self) -> dict[str, str]:
        headers = {"access-control-max-age": str(self.max_age)}
        if not self.allow_all_methods:
            headers["access-control-allow-methods"] = ", ".join(self.allow_methods)
        if not self.allow_all_headers:
            headers["access-control-allow-headers"] = ", ".join(sorted(self.allow_headers))
        if self.allow_credentials:
            headers["access-control-allow-credentials"] = "true"
        return headers

    def is_allowed_origin(self, origin: str) -> bool:
        if self.allow_all_origins or origin in self.allow_origins:
            return True
        return self.allow_origin_regex is not None and self.allow_origin_regex.fullmatch(origin) is not None

    async def __call__(self, ctx: HTTPContext, call_next: CallNext) -> Response:
        request = ctx.request
        origin = request.headers.get("origin")
        if origin is None:
            response: Response = await call_next()
            if not self._wildcard:
                # The same URL answers differently once an Origin is sent.
                add_vary(response.headers, "Origin")
            return response
        if request.method == "OPTIONS" and "access-control-request-method" in request.headers:
            return self.preflight(origin, request.headers["access-control-request-method"],
                                  request.headers.get("access-control-request-headers", ""))
        response = await call_next()
        self.label(response, origin)
        return response

    def preflight(self, origin: str, method: str, requested_headers: str) -> Response:
        """The answer to a preflight: 204 with the allowances, or 400 saying what failed."""
        failures = []
        if not self.is_allowed_origin(origin):
            failures.append("origin")
        if not self.allow_all_methods and method not in self.allow_methods:
            failures.append("method")
        requested = [h.lower() for h in split_tokens(requested_headers)]
        if not self.allow_all_headers and any(h not in self.allow_headers for h in requested):
            failures.append("headers")
        if failures:
            response = Response(f"Disallowed CORS {', '.join(failures)}", 400)
            add_vary(response.headers, "Origin")
            return response
        response = Response(None, 204, self._preflight_headers)
        headers = response.headers
        if self.allow_all_methods:
            # "*" is literal for credentialed requests; echoing works in every case.
            headers["access-control-allow-methods"] = method
        if self.allow_all_headers and requested:
            headers["access-control-allow-headers"] = ", ".join(requested)
        self._set_origin(response, origin)
        return response

    def label(self, response: Response, origin: str) -> None:
        """Add the CORS headers an actual (non-preflight) cross-origin response needs."""
        if not self.is_allowed_origin(origin):
            if not self._wildcard:
                add_vary(response.headers, "Origin")
            return
        self._set_origin(response, origin)
        headers = response.headers
        if self.allow_credentials:
            headers["access-control-allow-credentials"] = "true"
        if self.expose_headers:
            headers["access-control-expose-headers"] = self.expose_headers

    def _set_origin(self, response: Response, origin: str) -> None:
        if self._wildcard:
            response.headers["access-control-allow-origin"] = "*"
        else:
            response.headers["access-control-allow-origin"] = origin
            add_vary(response.headers, "Origin")

    def __repr__(self) -> str:
        origins = "*" if self.allow_all_origins else sorted(self.allow_origins)
        return f"{type(self).__name__}(allow_origins={origins!r}, allow_credentials={self.allow_credentials})"
