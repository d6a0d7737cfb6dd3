"""Signed-cookie sessions, as Starlette's ``SessionMiddleware`` keeps them (the
``sessions`` extra: itsdangerous, imported at start-up).

    Sessions(app, max_age=14 * 24 * 3600, same_site="lax", https_only=True)

    @app.post("/login")
    async def login(ctx: HTTPContext) -> None:
        ctx.session["user"] = (await ctx.form())["user"]
        ctx.redirect("/", 303)

The session is a dict, JSON-encoded, signed with a timestamp (itsdangerous'
``TimestampSigner``) and sent as one cookie; nothing is stored on the server. The client
can read it (base64), never change it: a cookie whose signature does not match, or older
than ``max_age``, is an empty session. Keep it small (browsers keep 4 KB per cookie) and
put no secrets in it.

The rules:

1. The secret is ``Sessions(app, secret_key=...)`` or else the app's configuration,
   ``config.secret_key`` (``HUMP_SECRET_KEY``). Without one, production mode (the
   default: ``config.debug`` off) refuses to start: one line, exit 1. Development mode
   (``--reload`` or ``HUMP_DEBUG=1``) makes a throw-away key per process, with a warning:
   sessions then end when the process restarts.
2. The cookie is sent with every answer to a request whose session is not empty (so its
   ``max_age`` slides, as Starlette's does), deleted once a session that had a cookie is
   emptied, and never sent with a 5xx (``ctx.set_cookie``'s rule).
3. Cookie attributes: ``HttpOnly`` always; ``SameSite`` from ``same_site`` (``lax``);
   ``Secure`` with ``https_only``; ``Max-Age`` from ``max_age`` (``None``: a browser-
   session cookie, and no expiry check); ``path`` and ``domain`` as given.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import secrets
from typing import TYPE_CHECKING, Any

from .config import ConfigError, how_to_set

if TYPE_CHECKING:
    from .app import App
    from .context import HTTPContext
    from .cookies import SameSite
    from .endpoints import CallNext
    from .models import Response

__all__ = ["DEFAULT_MAX_AGE", "ITSDANGEROUS_HINT", "Sessions", "session_of"]

error_log = logging.getLogger("hump_listener.error")

#: Starlette's ``SessionMiddleware`` default; Flask's ``PERMANENT_SESSION_LIFETIME`` is 31 days.
DEFAULT_MAX_AGE = 14 * 24 * 3600
ITSDANGEROUS_HINT = "Sessions need the itsdangerous package: pip install itsdangerous"
#: Where the session is kept on the request's context (``ctx.scope``).
_SCOPE_KEY = "session"


class Sessions:
    """Signed-cookie sessions for ``app``: a global middleware that loads
    ``ctx.session`` from the cookie and sends it back, and a start-up check of the secret
    (see the module docstring for the rules)."""

    def __init__(
        self,
        app: App,
        secret_key: str | None = None,
        *,
        cookie_name: str = "session",
        max_age: int | None = DEFAULT_MAX_AGE,
        path: str = "/",
        domain: str | None = None,
        same_site: SameSite = "lax",
        https_only: bool = False,
    ) -> None:
        self.app = app
        self.cookie_name = cookie_name
        self.max_age = max_age
        self.path = path
        self.domain = domain
        self.same_site: SameSite = same_site
        self.https_only = https_only
        self._secret_key = secret_key
        self._signer: Any = None
        app.add_service(self.start)
        app.middleware(self)

    async def start(self) -> None:
        """Resolve the secret and make the signer (a service: before the startup callbacks).
        ``ConfigError`` (one line, exit 1) without a secret in production mode."""
        try:
            import itsdangerous
        except ImportError:
            raise ConfigError(ITSDANGEROUS_HINT) from None
        config = self.app.config
        secret = self._secret_key or config.secret_key
        if not secret:
            if not config.debug:
                raise ConfigError(
                    f"Sessions need a secret key in production mode: set {how_to_set('secret_key')} "
                    "to a long random string (python -c 'import secrets; print(secrets.token_urlsafe(32))'), "
                    f"or develop with {how_to_set('debug')}=1, which makes a throw-away one"
                )
            secret = secrets.token_urlsafe(32)
            error_log.warning("Sessions: no secret key, using a throw-away one (development mode)")
        self._signer = itsdangerous.TimestampSigner(secret)

    async def __call__(self, ctx: HTTPContext, call_next: CallNext) -> Response:
        """The middleware: the session in, the request through, the cookie out."""
        raw = ctx.request.cookies.get(self.cookie_name)
        session = self.load(raw) if raw else {}
        ctx.scope[_SCOPE_KEY] = session
        response: Response = await call_next()
        if session:
            ctx.set_cookie(
                self.cookie_name, self.dump(session), max_age=self.max_age, path=self.path, domain=self.domain,
                secure=self.https_only, httponly=True, samesite=self.same_site,
            )
        elif raw:
            ctx.delete_cookie(
                self.cookie_name, path=self.path, domain=self.domain, secure=self.https_only, httponly=True,
                samesite=self.same_site,
            )
        return response

    def dump(self, session: dict[str, Any]) -> str:
        """The cookie value: the session as JSON, base64, signed with a timestamp."""
        signer = self._started()
        data = base64.b64encode(json.dumps(session, separators=(",", ":")).encode("utf-8"))
        signed: bytes = signer.sign(data)
        return signed.decode("ascii")

    def load(self, value: str) -> dict[str, Any]:
        """The session a cookie carries; ``{}`` when its signature is wrong (tampered,
        another key), it is older than ``max_age``, or it is not a JSON object."""
        import itsdangerous

        signer = self._started()
        try:
            data = signer.unsign(value.encode("ascii", "replace"), max_age=self.max_age)
            session = json.loads(base64.b64decode(data, validate=True))
        except (itsdangerous.BadSignature, binascii.Error, ValueError):
            return {}
        return session if isinstance(session, dict) else {}

    def _started(self) -> Any:
        if self._signer is None:
            raise RuntimeError("Sessions are not started: the app's startup runs Sessions.start")
        return self._signer


def session_of(ctx: HTTPContext) -> dict[str, Any]:
    """``ctx.session``: the session ``Sessions`` loaded for this request."""
    try:
        session: dict[str, Any] = ctx.scope[_SCOPE_KEY]
    except KeyError:
        raise RuntimeError(
            "ctx.session needs sessions: Sessions(app) (from hump_listener.sessions import Sessions)"
        ) from None
    return session
