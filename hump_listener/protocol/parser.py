"""Which h11 the protocol parses with.

``h11_mypyc`` is a mypyc-compiled build of h11 with the same API: ``pip install
"hump_listener[speed]"``. It is used when importable; ``HUMP_PARSER=h11`` forces the
pure-Python ``h11`` (a runtime dependency, always there) and ``HUMP_PARSER=h11_mypyc``
insists on the compiled one (an ImportError if it is missing). The test suite runs
against both. Everything on the protocol side imports ``h11`` from here, never
directly, so one process never mixes the two: their event classes and sentinels are
distinct objects.
"""

from __future__ import annotations

import os
from types import ModuleType

__all__ = ["NAME", "h11"]


def _load() -> ModuleType:
    wanted = os.environ.get("HUMP_PARSER", "").strip().lower()
    if wanted != "h11":
        try:
            import h11_mypyc  # type: ignore[import-not-found, unused-ignore]

            return h11_mypyc  # type: ignore[no-any-return, unused-ignore]
        except ImportError:
            if wanted == "h11_mypyc":
                raise
    import h11 as pure

    return pure


h11: ModuleType = _load()
#: ``"h11_mypyc"`` or ``"h11"``: logged at start so a deployment knows which it runs.
NAME: str = h11.__name__
