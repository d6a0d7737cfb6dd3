"""The demo's chat across processes: two ``tiny-listener http_web:app`` instances on
different ports, both with ``HUMP_BROADCAST_URL`` naming one real redis-server
(tests/redis_helpers.py), relay chat messages to each other's clients; a Redis killed and
restarted mid-chat is survived. Clients are the ``websockets`` library's. Skipped, with
the reason, where redis-server is not installed."""

from __future__ import annotations

import asyncio
import http.client
import json
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
import redis.asyncio
from redis_helpers import RedisServer
from servers import RunningServer, run_server
from websockets.exceptions import ConnectionClosed, InvalidStatus
from ws_helpers import WS_WAIT, chat_frame, said, ws_connect

import http_web

ROOM = "relay"
CHANNEL = http_web.CHAT_CHANNEL + ROOM
#: Bound on a wait for a log line of an instance (reconnection backs off up to 5 s).
LOG_WAIT = 30.0
#: Bound on polls of Redis' own state (each poll is one round trip).
MAX_POLLS = 2000



@pytest.fixture
def instances(redis_server: RedisServer) -> Iterator[tuple[RunningServer, RunningServer]]:
    """Two demo instances, each its own process and port, sharing the test's Redis."""
    env = {"HUMP_BROADCAST_URL": redis_server.url}
    with ExitStack() as stack:
        a = stack.enter_context(run_server("http_web:app", env=env))
        b = stack.enter_context(run_server("http_web:app", env=env))
        assert a.port != b.port
        yield a, b


async def numsub(url: str, channel: str) -> int:
    client = redis.asyncio.Redis.from_url(url)
    try:
        reply = await client.pubsub_numsub(channel)
        return int(reply[0][1])
    finally:
        await client.aclose()


async def wait_numsub(url: str, channel: str, want: int) -> None:
    """Until Redis counts ``want`` subscriptions to ``channel`` (one per instance)."""
    for _ in range(MAX_POLLS):
        if await numsub(url, channel) == want:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{channel!r} never had {want} subscribers in Redis")


def status_of(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=WS_WAIT)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


async def wait_line(server: RunningServer, pattern: str) -> str:
    return await asyncio.to_thread(server.wait_for_line, pattern, LOG_WAIT)


async def test_two_instances_relay_chat_messages_to_each_other_s_clients(
    instances: tuple[RunningServer, RunningServer], redis_server: RedisServer
) -> None:
    a, b = instances
    async with ws_connect(a.url, f"/ws/chat/{ROOM}") as on_a, ws_connect(b.url, f"/ws/chat/{ROOM}") as on_b, \
            ws_connect(a.url, f"/ws/chat/{ROOM}") as also_on_a:
        # The 101 comes once the instance's subscription is confirmed by Redis: one
        # subscriber connection per instance, shared by its clients.
        assert await numsub(redis_server.url, CHANNEL) == 2
        await on_a.send("from a")
        assert [(await said(ws))[1] for ws in (on_a, on_b, also_on_a)] == ["from a"] * 3
        await on_b.send("from b")
        assert [(await said(ws))[1] for ws in (on_a, on_b, also_on_a)] == ["from b"] * 3
        async with ws_connect(b.url, "/ws/chat/other-room") as other:
            await other.send("other room")
            assert (await said(other))[1] == "other room"  # nothing of "relay" came first
    # Every client left: both instances unsubscribed.
    await wait_numsub(redis_server.url, CHANNEL, 0)
    for server in (a, b):
        assert "Traceback" not in server.output(), server.output()


async def test_a_redis_killed_and_restarted_mid_chat_is_survived(
    instances: tuple[RunningServer, RunningServer], redis_server: RedisServer
) -> None:
    a, b = instances
    async with ws_connect(a.url, f"/ws/chat/{ROOM}") as on_a, ws_connect(b.url, f"/ws/chat/{ROOM}") as on_b, \
            ws_connect(a.url, f"/ws/chat/{ROOM}") as talker:
        await on_a.send("before")
        assert [(await said(ws))[1] for ws in (on_a, on_b, talker)] == ["before"] * 3

        redis_server.kill()  # SIGKILL: every Redis connection drops at once
        for server in (a, b):
            await wait_line(server, r"WARNING .*broadcast: lost the connection to Redis")

        # A message sent while Redis is down cannot be published: its sender is told
        # (close 1013, try again later) instead of the message vanishing.
        await talker.send("during the outage")
        with pytest.raises(ConnectionClosed):
            await said(talker)
        assert talker.close_code == 1013, talker.close_reason

        # The other chats stay open through the outage (a ping round trip on each).
        for ws in (on_a, on_b):
            await asyncio.wait_for(await ws.ping(), WS_WAIT)

        # New chats, the room's event stream and its presence list say 503 meanwhile.
        with pytest.raises(InvalidStatus) as refused:
            async with ws_connect(a.url, f"/ws/chat/{ROOM}?name=late"):
                pass
        assert refused.value.response.status_code == 503
        for path in (f"/chat/{ROOM}/who", f"/chat/{ROOM}/events"):
            assert await asyncio.to_thread(status_of, a.port, path) == 503

        redis_server.start()  # same port
        for server in (a, b):
            # the room's channel and hump:presence (the demo handles presence events)
            await wait_line(server, r"INFO .*broadcast: reconnected to Redis .*2 channel\(s\) subscribed again")
        await wait_numsub(redis_server.url, CHANNEL, 2)  # both resubscriptions processed

        await on_b.send("after the restart")
        # The first message each receives after the outage is this one: the one sent
        # during it was never published. (Redis restarted without its data: each got a
        # reset frame first, skipped here, with the new epoch.)
        assert (await said(on_a))[1] == "after the restart"
        assert (await said(on_b))[1] == "after the restart"
        await on_a.send("and back")
        assert [(await said(on_a))[1], (await said(on_b))[1]] == ["and back"] * 2
    for server in (a, b):
        assert "Traceback" not in server.output(), server.output()


# -- resume over SSE and WebSocket, presence, across instances (issue 20 items 3-5) ------


class SSE:
    """A Server-Sent Events reader on a real connection (http.client, in a thread)."""

    def __init__(self, port: int, path: str, last_event_id: str | None = None) -> None:
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=WS_WAIT)
        self.conn.request("GET", path, headers=headers)
        self.response = self.conn.getresponse()
        assert self.response.status == 200
        assert self.response.headers["Content-Type"].startswith("text/event-stream")

    def event(self) -> dict[str, str]:
        """The next event's fields (comments, such as pings, skipped)."""
        fields: dict[str, str] = {}
        while True:
            line = self.response.readline().decode()
            assert line, "the stream ended"
            line = line.rstrip("\r\n")
            if not line:
                if fields:
                    return fields
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value

    def message(self) -> tuple[str, dict[str, object]]:
        """The next chat message: (its id, its JSON data); presence frames skipped."""
        while True:
            event = self.event()
            data = json.loads(event["data"])
            assert data["id"] == event["id"]
            if "text" in data:
                return event["id"], data

    def close(self) -> None:
        self.conn.close()


async def test_sse_resumes_from_last_event_id_on_another_instance(
    instances: tuple[RunningServer, RunningServer],
) -> None:
    a, b = instances
    path = "/chat/sse-room/events"
    stream = await asyncio.to_thread(SSE, a.port, path)
    try:
        async with ws_connect(b.url, "/ws/chat/sse-room?name=bea") as talker:
            await talker.send("one")
            assert await said(talker) == ("bea", "one")
            last_id, data = await asyncio.to_thread(stream.message)
            assert data == {"id": last_id, "from": "bea", "text": "one"}
            stream.close()  # the browser's connection drops...
            for i in range(5):
                await talker.send(f"missed {i}")
                assert await said(talker) == ("bea", f"missed {i}")
            # ... and EventSource reconnects with the last id it saw, here to the other instance
            stream = await asyncio.to_thread(SSE, b.port, path, last_id)
            got = [await asyncio.to_thread(stream.message) for _ in range(5)]
            assert [d["text"] for _, d in got] == [f"missed {i}" for i in range(5)]
            await talker.send("live")
            _, live = await asyncio.to_thread(stream.message)
            assert live["text"] == "live"  # nothing twice: the next one is the live message
    finally:
        stream.close()


async def test_ws_since_resumes_on_another_instance(instances: tuple[RunningServer, RunningServer]) -> None:
    a, b = instances
    async with ws_connect(a.url, "/ws/chat/ws-room?name=ann") as ann:
        async with ws_connect(b.url, "/ws/chat/ws-room?name=bob") as bob:
            await ann.send("hello bob")
            seen = await chat_frame(bob, lambda f: f.get("text") == "hello bob")
        for i in range(5):
            await ann.send(f"while away {i}")
        await chat_frame(ann, lambda f: f.get("text") == "while away 4")  # all published
        async with ws_connect(a.url, f"/ws/chat/ws-room?name=bob&since={seen['id']}") as back:
            await back.send("back")
            got = []
            while not got or got[-1] != ("bob", "back"):
                got.append(await said(back))
    assert got == [("ann", f"while away {i}") for i in range(5)] + [("bob", "back")]


async def test_who_lists_the_room_from_any_instance(instances: tuple[RunningServer, RunningServer]) -> None:
    a, b = instances

    def who(server: RunningServer) -> list[str]:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=WS_WAIT)
        try:
            conn.request("GET", "/chat/who-room/who")
            response = conn.getresponse()
            assert response.status == 200
            names: list[str] = json.loads(response.read())
            return names
        finally:
            conn.close()

    async with ws_connect(a.url, "/ws/chat/who-room?name=ann") as ann, \
            ws_connect(b.url, "/ws/chat/who-room?name=bob") as bob:
        # both joined before their 101: listed everywhere now
        assert await asyncio.to_thread(who, a) == ["ann", "bob"]
        assert await asyncio.to_thread(who, b) == ["ann", "bob"]
        # ann, on the other instance, is told of bob's join (a presence frame: no "text")
        joined = await chat_frame(ann, lambda f: f.get("type") == "join" and f["from"] == "bob")
        assert "text" not in joined
        await bob.close()
        left = await chat_frame(ann, lambda f: f.get("type") == "leave")
        assert left["from"] == "bob" and "text" not in left
        assert await asyncio.to_thread(who, b) == ["ann"]
    # ann's handler leaves the presence as it ends, just after the close handshake
    for _ in range(MAX_POLLS):
        if await asyncio.to_thread(who, a) == []:
            break
    else:
        raise AssertionError("ann is still listed after leaving")
