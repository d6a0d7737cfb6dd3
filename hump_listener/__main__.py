"""``python -m hump_listener module:app [options]``; see ``hump_listener.cli``."""

from __future__ import annotations

from .cli import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
