"""The demo app: ``tiny-listener http_web:app``, then open http://127.0.0.1:8000/page.

Its routes are a contract other checks rely on (tests, benchmarks):

- ``GET /`` "Hello, world!"; ``GET /user/{username}``; ``GET /api/users/<int:user_id>``
  (JSON); ``GET /search`` (the query as JSON); ``POST /echo`` (the body back, same type);
  ``GET /throw`` (500); ``GET /teapot`` (418); ``GET /page`` (links to everything: the
  Jinja2 template templates/page.html, the ``templates`` extra);
  ``POST /upload`` (multipart, up to 10 MiB); ``GET /clock`` (SSE, ``?n=`` ticks);
  ``GET /static/...`` (public/).
- ``WS /ws/echo``: each message back with its own type (text as text, binary as binary).
- ``WS /ws/chat/{room}?name=NAME[&since=ID]``: every text message goes to every
  connection in the room, the sender included, through ``app.broadcast``: in-process by
  default, across workers and hosts with ``HUMP_BROADCAST_URL=redis://...``. Each frame
  the server sends is JSON with its position as ``"id"``: ``{"id", "from", "text"}`` for
  a chat message, ``{"id", "type": "join" | "leave", "from"}`` for presence and
  ``{"id", "type": "reset"}`` when missed messages are gone (no ``"text"`` in either).
  ``since`` first replays the room's frames after that id, in order, once each. The 101
  is sent once the connection is subscribed, so a client that sees the connection open
  receives the room's next message. A binary message closes with 1003, a text over
  ``CHAT_MAX_CHARS`` with 1009, a message that cannot be published (Redis down) with 1013
  (try again later), a client too slow for the room with 1013 too (it resumes with
  ``since``). ``GET /chat?room=`` is the page where a person chats;
  ``GET /chat/{room}/events`` streams the same frames as SSE (``id:`` = position,
  ``Last-Event-ID`` resumes); ``GET /chat/{room}/who`` lists the names of the room's open
  connections on every instance (JSON).
- ``POST /signup`` (``name`` as a form field, JSON ``{"name": ...}`` or ``?name=``)
  answers 202 at once and fires the ``user_created`` background event, which records
  the name; ``GET /signups`` lists the names recorded so far (JSON; per process).
- ``POST /jobs?count=N&ms=M`` queues N durable events (``job``) that each take M ms,
  and answers 202 ``{"queued": N, "ms": M}`` once they are stored; ``GET /jobs`` is
  ``{"done", "runs", "pending", "dead", "queued", "running", "delayed"}``: distinct
  jobs completed, handler completions (duplicates after a crash included), jobs not
  finished yet (queued, running, delayed), dead letters. With
  ``HUMP_BROADCAST_URL=redis://...`` the jobs and the counts are in Redis, shared by
  every worker and host; otherwise they are this process's.
"""

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hump_listener import (
    App,
    Data,
    HTTPContext,
    HTTPError,
    MultiDict,
    Param,
    UploadFile,
    WebSocket,
    WebSocketDisconnect,
    WebSocketState,
    statuses,
)
from hump_listener.broadcast import BroadcastUnavailable, Item, Reset, Subscription
from hump_listener.durable import DurableEvent
from hump_listener.templating import Templates

HERE = Path(__file__).resolve().parent
app = App()
app.static("/static", HERE / "public")
app.templates = Templates(HERE / "templates")  # the pages: templates/*.html (Jinja2)

USERS = {1: "alice", 2: "bob", 42: "douglas"}

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
    try:
        ctx.render("page.html", user="bob")
    except ImportError as exc:  # installed without the templates extra (pip install -e .)
        # The demo's own choice, for the person at the browser: the 500 says what to run
        # (the framework logs it either way; an app would let the error propagate).
        ctx.response(500, f"{exc}\n(./scripts/demo installs it)\n")


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


# -- WebSockets -------------------------------------------------------------------------


@app.websocket("/ws/echo")
async def ws_echo(ws: WebSocket) -> None:
    """Each message back with its own type: ``str`` (text) as text, ``bytes`` as binary."""
    await ws.accept()
    async for message in ws:
        await ws.send(message)


#: Longest chat message, in characters: a chat line, not a file transfer (Slack cuts a
#: message at 4000 characters, IRC lines are 512 bytes); longer closes with 1009.
CHAT_MAX_CHARS = 4000
#: Longest room name: it becomes part of a Redis channel name.
CHAT_MAX_ROOM = 64
#: Longest name (``?name=``), in characters; longer is cut.
CHAT_MAX_NAME = 40
#: Frames a chat connection may have queued and not sent: beyond, it is closed with 1013
#: and resumes with ``since``; below the history's 1000 so that the resume misses nothing.
CHAT_MAX_QUEUE = 256
#: Channel prefix: channels are shared by everything on one Redis (docs/channels.md).
CHAT_CHANNEL = "hump_demo:chat:"
# Close codes (RFC 6455 §7.4.1, and 1013 from the IANA registry)
_UNSUPPORTED_DATA = 1003
_TOO_BIG = 1009
_INTERNAL_ERROR = 1011
_TRY_AGAIN_LATER = 1013
_GOING_AWAY = 1001


def _room_channel(room: str) -> str:
    if len(room) > CHAT_MAX_ROOM:
        raise HTTPError(400, f"a room name has at most {CHAT_MAX_ROOM} characters")
    return CHAT_CHANNEL + room


def _chat_name(query: MultiDict) -> str:
    return (query.get("name") or "").strip()[:CHAT_MAX_NAME] or "anonymous"


def chat_frame(item: Item) -> str:
    """What a chat client receives for an item of the room's channel: the published JSON
    object with its position first, ``{"id": ..., "from": ..., "text": ...}`` for a
    message (``"type": "join"`` / ``"leave"`` frames carry no ``"text"``); a ``Reset``
    (history lost: messages up to ``id`` are not coming) is ``{"id": ..., "type": "reset"}``."""
    if isinstance(item, Reset):
        return f'{{"id":"{item.id}","type":"reset"}}'
    data = item.data
    if isinstance(data, str) and data.startswith("{") and item.id:
        # The id is "<hex epoch>-<digits>": nothing to escape; the rest is as published.
        return f'{{"id":"{item.id}",{data[1:]}' if data != "{}" else f'{{"id":"{item.id}"}}'
    return json.dumps({"id": item.id, "type": "other"})


@app.websocket("/ws/chat/{room}")
async def chat(ws: WebSocket, room: Param) -> None:
    """A chat room: ``/ws/chat/{room}?name=NAME[&since=ID]``. Each text the client sends
    is published on the room's channel as ``{"from": NAME, "text": ...}``; every item of
    the channel is relayed to the client as ``chat_frame`` makes it (its own messages
    too). ``since`` (the ``id`` of the last frame it saw) first replays what it missed.

    Two tasks per connection: this handler reads the client, ``_relay`` writes to it.
    The handler waits on the client, never on the subscription, so when the connection
    ends (the client leaves, or SIGTERM's 1001) it returns at once, and the ``finally``
    cancels the relay: nothing outlives the connection and a graceful drain does not wait.
    A client too slow for the room is closed with 1013 and resumes with ``since``.
    """
    if len(room) > CHAT_MAX_ROOM:
        await ws.deny(400, f"a room name has at most {CHAT_MAX_ROOM} characters")
        return
    channel = CHAT_CHANNEL + room
    name = _chat_name(ws.request.query)
    since = ws.request.query.get("since") or None
    broadcast = app.broadcast
    async with contextlib.AsyncExitStack() as stack:
        try:
            sub = await stack.enter_async_context(
                broadcast.subscribe(channel, since=since, max_queue=CHAT_MAX_QUEUE, overflow="close")
            )
            await stack.enter_async_context(broadcast.presence.join(channel, name, {"name": name}))
        except BroadcastUnavailable:  # Redis is down: the page retries
            await ws.deny(503, "the chat is unavailable; try again")
            return
        await ws.accept()  # subscribed first: the client's first message comes back to it
        relay = asyncio.create_task(_relay(ws, sub), name=f"chat relay {room!r}")
        try:
            async for message in ws:
                if not isinstance(message, str):
                    await ws.close(_UNSUPPORTED_DATA, "the chat takes text messages")
                    break
                if len(message) > CHAT_MAX_CHARS:
                    await ws.close(_TOO_BIG, f"a chat message has at most {CHAT_MAX_CHARS} characters")
                    break
                try:
                    await broadcast.publish_json(channel, {"from": name, "text": message})
                except BroadcastUnavailable:
                    # Not sent, and the client must know: it reconnects and sends again.
                    await ws.close(_TRY_AGAIN_LATER, "the chat is unavailable; try again")
                    break
        finally:
            relay.cancel()
            await asyncio.wait([relay])
        if not relay.cancelled():
            relay.result()  # a relay that failed: its error becomes the handler's (logged, 1011)


async def _relay(ws: WebSocket, sub: Subscription) -> None:
    """Send the room's items to the client until the connection or the subscription
    ends; either way the connection is closed when it returns, so the handler's loop over
    the client's messages ends too."""
    try:
        async for item in sub.iter_items():
            await ws.send(chat_frame(item))
    except WebSocketDisconnect:
        return  # the connection is closed: the handler's loop has ended or is ending
    except Exception:  # a bug: close now (the handler re-raises it, so it is logged)
        with contextlib.suppress(WebSocketDisconnect):
            if ws.client_state is WebSocketState.CONNECTED:
                await ws.close(_INTERNAL_ERROR)
        raise
    if sub.overflowed:  # too slow for the room: it reconnects with since=<its last id>
        await ws.close(_TRY_AGAIN_LATER, "too far behind; reconnect with since")
    else:  # the subscription ended: the broadcast stopped (the app is shutting down)
        await ws.close(_GOING_AWAY, "the chat is shutting down")


@app.get("/chat/{room}/events")
async def chat_events(ctx: HTTPContext, room: Param) -> None:
    """The room's frames as Server-Sent Events, each with its position as ``id:`` and
    ``chat_frame``'s JSON as ``data:``; a reconnecting ``EventSource`` sends
    ``Last-Event-ID`` and gets exactly what it missed (``?since=`` does the same)."""
    channel = _room_channel(room)
    since = ctx.request.headers.get("last-event-id") or ctx.request.query.get("since") or None
    broadcast = app.broadcast
    if since is None:
        # From now on: the position is taken before the reply starts, so nothing that is
        # published once the client sees the 200 is missed.
        try:
            since = await broadcast.position(channel)
        except BroadcastUnavailable:
            raise HTTPError(503, "the chat is unavailable; try again", {"Retry-After": "1"}) from None

    async def frames() -> AsyncIterator[dict[str, str]]:
        async with broadcast.subscribe(channel, since=since, max_queue=CHAT_MAX_QUEUE, overflow="close") as sub:
            async for item in sub.iter_items():
                yield {"id": item.id, "data": chat_frame(item)}
        # Ended (too slow, or the app is stopping): the EventSource reconnects and resumes.

    ctx.sse(frames())


@app.on_event("presence_join")
async def chat_joined(channel: Data, key: Data, local: Data) -> None:
    """Presence events (presence.py) of chat rooms become frames of the room:
    ``{"id": ..., "type": "join" | "leave", "from": NAME}``, no ``"text"``. Every
    instance gets each event; the one where it happened (``local``) publishes the frame."""
    await _announce(channel, key, local, "join")


@app.on_event("presence_leave")
async def chat_left(channel: Data, key: Data, local: Data) -> None:
    await _announce(channel, key, local, "leave")


async def _announce(channel: str, key: str, local: bool, kind: str) -> None:
    if local and channel.startswith(CHAT_CHANNEL) and app.broadcast.started:
        # Best effort: a join or leave while Redis is down is not announced (the page
        # also refreshes its list of who is online from /chat/{room}/who).
        with contextlib.suppress(BroadcastUnavailable):
            await app.broadcast.publish_json(channel, {"type": kind, "from": key})


@app.get("/chat/{room}/who")
async def chat_who(ctx: HTTPContext, room: Param) -> None:
    """The names of the room's open connections, on every instance: a JSON list."""
    try:
        members = await app.broadcast.presence.list(_room_channel(room))
    except BroadcastUnavailable:
        raise HTTPError(503, "the chat is unavailable; try again", {"Retry-After": "1"}) from None
    ctx.json(sorted(str(m.meta.get("name", m.key)) for m in members))


CHAT_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>hump_listener chat</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/style.css"></head>
<body>
<h1>Chat: <span id="room"></span></h1>
<p>Status: <span id="chat-status">connecting…</span> · <a href="/page">back to the demo</a></p>
<p>Online: <span id="who"></span></p>
<ul id="messages"></ul>
<form id="chat-form" autocomplete="off">
  <input id="chat-name" size="10" aria-label="your name">
  <input id="chat-input" size="40" maxlength="3000" placeholder="say something" aria-label="message" autofocus>
  <button id="chat-send" type="submit">Send</button>
</form>
<script src="/static/chat.js"></script>
</body>
</html>
"""


@app.get("/chat")
async def chat_page(ctx: HTTPContext) -> None:
    """The chat page (``?room=``, default ``lobby``); its script is public/chat.js."""
    ctx.html(CHAT_PAGE)


# -- background events ----------------------------------------------------------------------

#: Names kept for ``GET /signups`` (the oldest go first): the demo keeps them in memory.
SIGNUPS_KEPT = 1000
#: Longest name ``POST /signup`` takes.
MAX_NAME = 100
signups: deque[str] = deque(maxlen=SIGNUPS_KEPT)


@app.on_event("user_created")
async def user_created(name: Data) -> None:
    """The background event ``POST /signup`` fires: record the name (where a real app
    would send a welcome mail)."""
    signups.append(name)


@app.post("/signup")
async def signup(ctx: HTTPContext) -> None:
    name = await _signup_name(ctx)
    ctx.trigger_event("user_created", data={"name": name})  # fire and forget: runs after the reply
    ctx.json({"name": name, "status": "accepted"}, status=statuses.ACCEPTED)


@app.get("/signups")
async def list_signups(ctx: HTTPContext) -> None:
    ctx.json(list(signups))


async def _signup_name(ctx: HTTPContext) -> str:
    content_type = ctx.request.content_type.split(";")[0].strip().lower()
    name: object
    if content_type == "application/json":
        data = await ctx.read_json()
        name = data.get("name") if isinstance(data, dict) else None
    elif content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        name = (await ctx.form()).get("name")
    else:
        name = ctx.request.query.get("name")
    if not isinstance(name, str) or not name.strip():
        raise HTTPError(400, "give a name: a form field, JSON {\"name\": ...} or ?name=")
    name = name.strip()
    if len(name) > MAX_NAME:
        raise HTTPError(400, f"a name has at most {MAX_NAME} characters")
    return name


# -- durable events: POST /jobs, GET /jobs --------------------------------------------------

#: Most jobs one ``POST /jobs`` queues, and the longest a job may take (ms).
MAX_JOBS = 10_000
MAX_JOB_MS = 60_000
#: Where the job counts live in Redis (with ``HUMP_BROADCAST_URL``).
JOBS_KEY = "hump:demo:jobs"


class JobCounts:
    """What ``GET /jobs`` reports of the jobs' runs: distinct jobs done and runs, in Redis
    (every worker and host) when the app has a Redis URL, else in this process."""

    def __init__(self) -> None:
        self.done: set[str] = set()
        self.runs = 0
        self.redis: Any = None

    async def start(self, url: str) -> None:
        if url.startswith(("redis://", "rediss://")):
            import redis.asyncio

            self.redis = redis.asyncio.Redis.from_url(url)

    async def stop(self) -> None:
        client, self.redis = self.redis, None
        if client is not None:
            await client.aclose()

    async def record(self, job_id: str) -> None:
        if self.redis is None:
            self.done.add(job_id)
            self.runs += 1
            return
        async with self.redis.pipeline(transaction=True) as pipe:
            await pipe.sadd(f"{JOBS_KEY}:done", job_id).incr(f"{JOBS_KEY}:runs").execute()

    async def counts(self) -> tuple[int, int]:
        if self.redis is None:
            return len(self.done), self.runs
        done, runs = await self.redis.pipeline(transaction=False).scard(f"{JOBS_KEY}:done").get(
            f"{JOBS_KEY}:runs"
        ).execute()
        return int(done), int(runs or 0)


job_counts = JobCounts()


@app.startup
async def start_job_counts() -> None:
    await job_counts.start(app.durable.url)


@app.shutdown
async def stop_job_counts() -> None:
    await job_counts.stop()


@app.on_event("job", durable=True)
async def job(event: DurableEvent, ms: Data) -> None:
    """A durable job: takes ``ms`` milliseconds, then counts itself done."""
    await asyncio.sleep(ms / 1000)
    await job_counts.record(event.id)


@app.post("/jobs")
async def queue_jobs(ctx: HTTPContext) -> None:
    count = _int_param(ctx, "count", 1, MAX_JOBS)
    ms = _int_param(ctx, "ms", 0, MAX_JOB_MS)
    # Awaited: the answer says the jobs are stored (in Redis, when configured).
    await asyncio.gather(*(ctx.trigger_event("job", data={"ms": ms}) for _ in range(count)))
    ctx.json({"queued": count, "ms": ms}, status=statuses.ACCEPTED)


@app.get("/jobs")
async def list_jobs(ctx: HTTPContext) -> None:
    done, runs = await job_counts.counts()
    stats = await app.durable.stats()
    ctx.json({"done": done, "runs": runs, **stats})


def _int_param(ctx: HTTPContext, name: str, low: int, high: int) -> int:
    raw = ctx.request.query.get(name)
    try:
        value = int(raw) if raw is not None else -1
    except ValueError:
        value = -1
    if not low <= value <= high:
        raise HTTPError(400, f"?{name}= must be an integer from {low} to {high}")
    return value
