"""S5: a hump_listener app with N parametrised routes ``GET:/r{i}/{name}`` (N from env BENCH_ROUTES).

Run: ``BENCH_ROUTES=1000 HUMP_PORT=8000 tiny-listener --app-dir benchmarks/apps hump_routes:app``.
Only the public API is used.
"""

from __future__ import annotations

import os

from tiny_listener import Param

from hump_listener import App, HTTPContext

N = int(os.environ.get("BENCH_ROUTES", "1000"))

app = App()


def _make_handler(i: int) -> None:
    async def handler(ctx: HTTPContext, name: Param) -> None:
        ctx.response(200, f"Hello, {name}!")

    # tiny-listener keys routes by the handler's __name__: give each one its own.
    handler.__name__ = handler.__qualname__ = f"r{i}"
    app.on_event(f"GET:/r{i}/{{name}}")(handler)


for _i in range(N):
    _make_handler(_i)
