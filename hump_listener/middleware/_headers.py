"""Header helpers shared by the shipped middleware (stdlib only)."""

from __future__ import annotations

from ..models import MutableHeaders

__all__ = ["add_vary", "split_tokens"]


def split_tokens(value: str) -> list[str]:
    """``"a, b ,c"`` → ``["a", "b", "c"]``: a comma-separated header list, blanks dropped."""
    return [token.strip() for token in value.split(",") if token.strip()]


def add_vary(headers: MutableHeaders, field: str) -> None:
    """Add ``field`` to ``Vary`` unless it (or ``*``) is already listed there.

    Several middleware add to the same header, so it is merged, never replaced.
    """
    present = [token for value in headers.getlist("vary") for token in split_tokens(value)]
    lowered = {token.lower() for token in present}
    if field.lower() in lowered or "*" in lowered:
        return
    headers["vary"] = ", ".join([*present, field])
