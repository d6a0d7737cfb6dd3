"""S5 peer: a Starlette app with N parametrised routes ``/r{i}/{name}`` (N from env BENCH_ROUTES).

Run: ``BENCH_ROUTES=1000 uvicorn --app-dir benchmarks/apps starlette_routes:app``.
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

N = int(os.environ.get("BENCH_ROUTES", "1000"))


async def handler(request: Request) -> Response:
    return PlainTextResponse(f"Hello, {request.path_params['name']}!")


app = Starlette(routes=[Route(f"/r{i}/{{name}}", handler, methods=["GET"]) for i in range(N)])
