"""The demo app: ``tiny-listener http_web:app``, then open http://127.0.0.1:8000/page.

Its routes are a contract other checks rely on (tests, benchmarks).
"""

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path

from tiny_listener import Param

from hump_listener import App, HTTPContext, HTTPError, UploadFile, statuses

app = App()
app.static("/static", Path(__file__).resolve().parent / "public")
asgi = app.asgi  # the same app for ASGI servers: uvicorn http_web:asgi --workers 4

USERS = {1: "alice", 2: "bob", 42: "douglas"}

PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>hump_listener demo</title>
<link rel="stylesheet" href="/static/style.css"></head>
<body>
<h1>hump_listener demo</h1>
<ul>
  <li><a id="hello" href="/">Hello, world</a></li>
  <li><a id="user" href="/user/bob">Greet bob</a></li>
  <li><a id="api" href="/api/users/42">User 42 as JSON</a></li>
  <li><a id="search" href="/search?q=a&amp;q=b&amp;n=3">Search ?q=a&amp;q=b&amp;n=3</a></li>
  <li><a id="teapot" href="/teapot">I'm a teapot (418)</a></li>
  <li><a id="throw" href="/throw">A server error (500)</a></li>
</ul>
<form method="post" action="/echo" enctype="text/plain">
  <input name="say" value="hello"> <button type="submit">POST /echo</button>
</form>
<h2>Static files</h2>
<p><a id="static" href="/static/hello.txt">/static/hello.txt</a></p>
<h2>Upload</h2>
<form id="upload-form" method="post" action="/upload" enctype="multipart/form-data">
  <input name="title" value="my file"> <input id="upload-file" type="file" name="file">
  <button id="upload-submit" type="submit">Upload</button>
</form>
<h2>Server-Sent Events clock</h2>
<p>Server time: <span id="clock">waiting…</span></p>
<script>
  const clock = new EventSource("/clock");
  clock.addEventListener("tick", (e) => { document.getElementById("clock").textContent = e.data; });
</script>
</body>
</html>
"""


@app.on_event("GET:/")
async def index(ctx: HTTPContext) -> None:
    ctx.response(200, "Hello, world!")


@app.on_event("GET:/user/{username}")
async def hello(ctx: HTTPContext, username: Param) -> None:
    ctx.response(200, f"Hello, {username}!")


@app.on_event("GET:/api/users/<int:user_id>")
async def api_user(ctx: HTTPContext, user_id: Param) -> None:
    ctx.json({"id": user_id, "name": USERS.get(user_id, f"user{user_id}")})


@app.on_event("GET:/search")
async def search(ctx: HTTPContext) -> None:
    ctx.json(ctx.request.query.to_dict())


@app.on_event("POST:/echo")
async def echo(ctx: HTTPContext) -> None:
    body = await ctx.body()
    ctx.response(200, body, content_type=ctx.request.content_type or "application/octet-stream")


@app.on_event("GET:/throw")
async def throw(ctx: HTTPContext) -> None:
    ctx.throw_500()


@app.on_event("GET:/teapot")
async def teapot(ctx: HTTPContext) -> None:
    ctx.response(statuses.IM_A_TEAPOT, "I'm a teapot")


@app.on_event("GET:/page")
async def page(ctx: HTTPContext) -> None:
    ctx.html(PAGE)


@app.on_event("POST:/upload", max_body_size=10 * 1024 * 1024)
async def upload(ctx: HTTPContext) -> None:
    form = await ctx.form()
    file = form.get("file")
    if not isinstance(file, UploadFile) or not file.filename:
        raise HTTPError(400, "choose a file to upload")
    data = await file.read()
    ctx.json({"title": form.get("title", ""), "filename": file.filename, "size": len(data)})


@app.on_event("GET:/clock")
async def clock(ctx: HTTPContext) -> None:
    """Server-Sent Events: the server time every second (``?n=`` stops after n ticks)."""
    n_ticks = ctx.request.query.get("n", "")
    if n_ticks and not (n_ticks.isascii() and n_ticks.isdigit()):
        raise HTTPError(400, f"n must be a whole number of ticks, got {n_ticks!r}")
    limit = int(n_ticks or 0)

    async def ticks() -> AsyncIterator[dict[str, str]]:
        n = 0
        while True:
            yield {"event": "tick", "data": datetime.now(timezone.utc).strftime("%H:%M:%S UTC")}
            n += 1
            if n == limit:
                return
            await asyncio.sleep(1)

    ctx.sse(ticks())
