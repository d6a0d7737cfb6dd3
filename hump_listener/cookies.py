"""Set-Cookie values (RFC 6265), built with the stdlib's ``http.cookies.Morsel``.

Reading cookies is ``models.parse_cookies`` (lenient, because browsers send what they
like); writing them here is strict, because a bad value is our bug: an invalid name
or SameSite value raises ``ValueError`` at the ``set_cookie`` call, not in a browser.
"""

from __future__ import annotations

from datetime import datetime, timezone
from email.utils import format_datetime
from http.cookies import CookieError, Morsel
from typing import Literal
from urllib.parse import quote

__all__ = ["EPOCH", "SameSite", "build_set_cookie"]

SameSite = Literal["lax", "strict", "none"]

_SAMESITE = {"lax": "Lax", "strict": "Strict", "none": "None"}

#: RFC 6265 §4.1.1 cookie-octets that ``quote`` would escape, minus ``%`` (escaped so that
#: percent-decoding, which ``models.parse_cookies`` does, gives the value back).
_COOKIE_OCTETS = "!#$&'()*+/:<=>?@[]^`{|}"

#: What ``delete_cookie`` sends as Expires: the epoch, long past in every clock.
EPOCH = "Thu, 01 Jan 1970 00:00:00 GMT"


def build_set_cookie(
    name: str,
    value: str,
    *,
    max_age: int | None = None,
    expires: datetime | int | str | None = None,
    path: str | None = "/",
    domain: str | None = None,
    secure: bool = False,
    httponly: bool = False,
    samesite: SameSite | None = "lax",
) -> str:
    """One ``Set-Cookie`` header value.

    ``value`` is percent-encoded where it holds bytes a cookie-value may not (space,
    ``;``, ``,``, ``"``, ``\\``, ``%``, non-ASCII as UTF-8), as JavaScript's
    ``encodeURIComponent`` would; ``models.parse_cookies`` decodes it. (``http.cookies``
    would use octal escapes, which no browser or JavaScript code understands.) The name
    and the attributes go through ``http.cookies.Morsel``, which validates the name.

    ``expires``: an aware ``datetime`` (naive means UTC), seconds from now (``int``), or
    a ready HTTP date string.
    """
    morsel: Morsel[str] = Morsel()
    try:
        morsel.set(name, value, quote(value, safe=_COOKIE_OCTETS))
    except CookieError as e:
        raise ValueError(f"invalid cookie name {name!r}: {e}") from None
    if max_age is not None:
        morsel["max-age"] = str(int(max_age))
    if expires is not None:
        if isinstance(expires, datetime):
            if expires.tzinfo is None:
                expires = expires.replace(tzinfo=timezone.utc)
            morsel["expires"] = format_datetime(expires.astimezone(timezone.utc), usegmt=True)
        else:
            morsel["expires"] = expires  # Morsel formats int offsets
    if path is not None:
        morsel["path"] = path
    if domain is not None:
        morsel["domain"] = domain
    if secure:
        morsel["secure"] = True  # Morsel's flags are booleans
    if httponly:
        morsel["httponly"] = True
    if samesite is not None:
        key = samesite.lower()
        if key not in _SAMESITE:
            raise ValueError(f"samesite must be 'lax', 'strict' or 'none', got {samesite!r}")
        if key == "none" and not secure:
            # Browsers drop SameSite=None cookies that are not Secure; fail here instead.
            raise ValueError("samesite='none' requires secure=True")
        morsel["samesite"] = _SAMESITE[key]
    header = morsel.OutputString()
    for part in (path, domain):
        if part is not None and any(c in part for c in ";\r\n\x00"):
            raise ValueError(f"invalid character in cookie attribute: {part!r}")
    return header
