"""Which h11 the protocol parses with.

The pure-Python ``h11`` (a runtime dependency) unless ``HUMP_PARSER=h11_mypyc`` asks for
``h11_mypyc``, a mypyc-compiled build of h11 with the same API (``pip install
h11-mypyc``). The compiled parser is an experiment, not adopted: the whole suite passes
against it (CI runs it twice, once per parser) and it takes ~1.4x less CPU per request,
but on S1 it measured 1.13x-1.24x Starlette on uvicorn-httptools across runs, not
reliably the 1.2x the speed issue set for shipping it. Everything on the protocol side
imports ``h11`` from here, never directly, so one process never mixes the two: their
event classes and sentinels are distinct objects.
"""

from __future__ import annotations

import os
from types import ModuleType

__all__ = ["NAME", "h11"]


def _load() -> ModuleType:
    if os.environ.get("HUMP_PARSER", "").strip().lower() == "h11_mypyc":
        import h11_mypyc  # type: ignore[import-not-found, unused-ignore]

        return h11_mypyc  # type: ignore[no-any-return, unused-ignore]
    import h11 as pure

    return pure


h11: ModuleType = _load()
#: ``"h11_mypyc"`` or ``"h11"``: logged at start so a deployment knows which it runs.
NAME: str = h11.__name__
