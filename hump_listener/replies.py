"""Replies: the one path a handler's answer takes to become the request's ``Response``.

A handler or middleware replies by *recording* (``ctx.json(...)``, ``ctx.response()``:
``ctx.reply``) or by *returning* a value; ``reconcile`` is the one place the two meet
(its docstring has the rule), ``to_response`` the one conversion of a returned value and
``error_response`` the one of an ``HTTPError``. ``chain`` calls ``reconcile`` at every
middleware layer, ``dispatch`` after the handler::

    return "hi"                  -> Response("hi")                      (200, text/plain)
    return {"a": 1}              -> Response({"a": 1})                  (JSON)
    return "gone", 410           -> Response("gone", 410)
    ctx.json(data); return None  -> the recorded reply
    raise HTTPError(404)         -> error_response: Response("Not Found", 404)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import HTTPError, NoResponse, ResponseAlreadySent
from .models import Response

if TYPE_CHECKING:
    from .context import HTTPContext

__all__ = ["error_response", "reconcile", "to_response"]


def to_response(value: Any) -> Response:
    """Turn a handler's return value into a Response: str, bytes, dict/list (JSON),
    ``Response``, ``(body, status)`` or ``(body, status, headers)``."""
    if isinstance(value, Response):
        return value
    if isinstance(value, tuple):
        if len(value) == 2:
            return Response(value[0], value[1])
        if len(value) == 3:
            return Response(value[0], value[1], value[2])
        raise TypeError(f"a returned tuple must be (body, status[, headers]), got {len(value)} items")
    return Response(value)


def error_response(exc: HTTPError) -> Response:
    """The answer an ``HTTPError`` stands for: its status, detail and headers."""
    return Response(exc.detail, exc.status, exc.headers)


def reconcile(ctx: HTTPContext, returned: Any, where: str, replaces: bool) -> Response:
    """The one place a recorded reply meets a returned one; returns the answer.

    A handler or middleware replies either by *recording* (``ctx.response()``,
    ``ctx.json(data)``, ``ctx.redirect()``...: ``ctx.reply``, at most one, a second
    raises ``ResponseAlreadySent``) or by *returning* a value. When it has returned:

    1. ``None``, or the recorded reply itself (``return ctx.json(...)``): the recorded
       reply is the answer.
    2. Anything else: ``to_response(value)`` is the answer, and is recorded in place of
       the earlier one. For a handler (``replaces=False``) an earlier recorded reply
       makes it a second reply: ``ResponseAlreadySent``, a logged 500 like any error.
       For middleware and ``HTTPError`` answers (``replaces=True``) replacing is the
       point: a middleware returns a new response instead of the one ``call_next``
       gave it, and an ``HTTPError`` raised after a reply was recorded answers instead.
    3. Neither: ``NoResponse`` naming ``where`` (a logged 500).

    An exception other than ``HTTPError`` discards the recorded reply (the request
    failed half-way, see ``dispatch.RequestPath.unhandled``): tiny-listener's ``on_error`` hooks may
    record a new one, else the answer is 500.
    """
    recorded = ctx.reply
    if returned is None or returned is recorded:
        if recorded is None:
            raise NoResponse(f"{where} for {ctx.request.method} {ctx.request.path} returned None without replying")
        return recorded
    response = to_response(returned)
    if recorded is not None and not replaces:
        raise ResponseAlreadySent(
            f"{where} for {ctx.request.method} {ctx.request.path} returned a response after "
            f"replying ({recorded.status}); a request gets exactly one"
        )
    ctx.reply = response
    return response
