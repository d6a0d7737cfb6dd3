"""A Starlette app with the benchmark routes (same contract as hump_listener's demo).

Run: ``uvicorn --app-dir benchmarks/peers starlette_app:app``.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route


async def hello(request: Request) -> Response:
    return PlainTextResponse("Hello, world!")


async def echo(request: Request) -> Response:
    body = await request.body()
    return Response(body, media_type=request.headers.get("content-type", "application/octet-stream"))


async def user(request: Request) -> Response:
    user_id: int = request.path_params["user_id"]
    return JSONResponse({"id": user_id, "name": f"user{user_id}"})


app = Starlette(
    routes=[
        Route("/", hello, methods=["GET"]),
        Route("/echo", echo, methods=["POST"]),
        Route("/api/users/{user_id:int}", user, methods=["GET"]),
    ]
)
