"""Presence: who is in a channel, across workers and hosts (``broadcast.presence``)::

    async with broadcast.presence.join("room:lobby", "alice", {"name": "Alice"}):
        ...                                            # alice is listed while inside
    members = await broadcast.presence.list("room:lobby")   # [Member(key, meta, id), ...]

Its rules:

1. **One entry per join**, not per key: two tabs of one user are two entries with the
   same key (``list`` returns both; group by ``key`` for distinct users). An entry is a
   key (a user name or id) and small JSON metadata (at most ``MAX_META_SIZE`` bytes).
2. **Heartbeats that expire.** Over Redis each entry is a member of a sorted set per
   channel whose score is its expiry time (Redis' clock); the process that holds it
   renews all its entries every ``heartbeat`` seconds (``PRESENCE_HEARTBEAT``), for
   ``ttl`` seconds (``PRESENCE_TTL``). A process that dies without leaving (SIGKILL, a
   host gone) stops renewing: its entries are not listed once their ``ttl`` has passed,
   so no ghost stays longer than ``PRESENCE_TTL`` (25 s; Phoenix uses a 30 s down period).
   A heartbeat also re-adds entries that a Redis restarted without its data forgot.
3. **Events.** Joining and leaving fire the app's ``presence_join`` / ``presence_leave``
   events (``@app.on_event("presence_join")``, with ``data={"channel", "key", "meta"}``)
   on the instance where they happened; an entry found expired by ``list`` fires
   ``presence_leave`` on the instance that found it (once: it is removed). No handler,
   no event. Outside an app (``Broadcast(events=None)``), nothing fires.
4. **Outages.** ``join`` and ``list`` raise ``BroadcastUnavailable`` while Redis cannot be
   reached; a heartbeat that fails is retried at the next beat (entries then live on
   Redis' side until their ttl). The memory backend lists the entries of its own process.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .broadcast import BroadcastUnavailable

if TYPE_CHECKING:
    from .broadcast import Broadcast
    from .broadcast_redis import RedisBackend, Script

__all__ = ["MAX_META_SIZE", "PRESENCE_HEARTBEAT", "PRESENCE_TTL", "Member", "Presence"]

logger = logging.getLogger("hump_listener.error")

#: Seconds between two renewals of a process's entries.
PRESENCE_HEARTBEAT = 8.0
#: Seconds an entry lives without a renewal: what a crashed process's ghosts last at
#: most (three heartbeats can be missed; Phoenix Presence's down period is 30 s).
PRESENCE_TTL = 25.0
#: Largest metadata of one entry, as JSON bytes: presence is listed whole.
MAX_META_SIZE = 4096

_JOIN_SCRIPT = """
local members, metas = KEYS[1], KEYS[2]
local now = redis.call('TIME')
local expiry = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) + tonumber(ARGV[1])
for i = 2, #ARGV, 2 do
  redis.call('ZADD', members, expiry, ARGV[i])
  redis.call('HSET', metas, ARGV[i], ARGV[i + 1])
end
redis.call('PEXPIRE', members, ARGV[1] * 2)
redis.call('PEXPIRE', metas, ARGV[1] * 2)
return expiry
"""

_LEAVE_SCRIPT = """
redis.call('ZREM', KEYS[1], ARGV[1])
return redis.call('HDEL', KEYS[2], ARGV[1])
"""

#: Returns {live entries: id, meta, id, meta...}, {expired entries: id, meta...}.
_LIST_SCRIPT = """
local members, metas = KEYS[1], KEYS[2]
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local expired = redis.call('ZRANGEBYSCORE', members, '-inf', ms)
local gone = {}
for _, id in ipairs(expired) do
  local meta = redis.call('HGET', metas, id)
  if meta then
    table.insert(gone, id)
    table.insert(gone, meta)
    redis.call('HDEL', metas, id)
  end
end
redis.call('ZREMRANGEBYSCORE', members, '-inf', ms)
local live = {}
for _, id in ipairs(redis.call('ZRANGE', members, 0, -1)) do
  local meta = redis.call('HGET', metas, id)
  if meta then
    table.insert(live, id)
    table.insert(live, meta)
  end
end
return {live, gone}
"""


@dataclass(frozen=True, slots=True)
class Member:
    """One entry of a channel's presence: its ``key``, its ``meta`` and the ``id`` of
    the join that made it."""

    key: str
    meta: dict[str, Any] = field(default_factory=dict)
    id: str = ""

    def _encode(self) -> str:
        return json.dumps({"k": self.key, "m": self.meta}, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def _decode(cls, id: bytes | str, payload: bytes | str) -> Member:
        data = json.loads(payload)
        return cls(str(data["k"]), dict(data.get("m") or {}), id.decode() if isinstance(id, bytes) else id)


class Presence:
    """The presence of a Broadcast's channels (rules above). State by lifetime: the
    entries this process holds and its heartbeat task, from the first join to the
    Broadcast's stop."""

    def __init__(
        self, broadcast: Broadcast, heartbeat: float = PRESENCE_HEARTBEAT, ttl: float = PRESENCE_TTL
    ) -> None:
        if not 0 < heartbeat < ttl:
            raise ValueError(f"the heartbeat ({heartbeat} s) must be shorter than the ttl ({ttl} s)")
        self.heartbeat = heartbeat
        self.ttl = ttl
        self._broadcast = broadcast
        self._local: dict[str, dict[str, Member]] = {}  # channel -> id -> entry of this process
        self._beat: asyncio.Task[None] | None = None
        self._beat_failed = False

    def _redis(self) -> RedisBackend | None:
        from .broadcast import _MemoryBackend

        backend = self._broadcast._backend
        return None if isinstance(backend, _MemoryBackend) else backend  # type: ignore[return-value]

    def _keys(self, redis: RedisBackend, channel: str) -> list[str]:
        return [redis.key("p", channel), redis.key("pm", channel)]

    @asynccontextmanager
    async def join(self, channel: str, key: str, meta: dict[str, Any] | None = None) -> AsyncIterator[Member]:
        """Be listed in ``channel`` as ``key`` (with ``meta``) inside the ``async with``."""
        member = Member(key, dict(meta or {}), secrets.token_hex(8))
        payload = member._encode()
        if len(payload.encode()) > MAX_META_SIZE:
            raise ValueError(f"presence metadata has at most {MAX_META_SIZE} bytes of JSON")
        broadcast = self._broadcast
        if not broadcast.started:
            await broadcast.start()
        redis = self._redis()
        if redis is not None:
            args = [self._ttl_ms(), member.id, payload]
            await redis.run_script(_script(_JOIN_SCRIPT), self._keys(redis, channel), args, "join a presence")
        self._local.setdefault(channel, {})[member.id] = member
        self._start_beat()
        self._fire("presence_join", channel, member)
        try:
            yield member
        finally:
            entries = self._local.get(channel)
            if entries is not None:
                entries.pop(member.id, None)
                if not entries:
                    del self._local[channel]
            if redis is not None and broadcast.started:
                with contextlib.suppress(BroadcastUnavailable):  # else it expires by itself (rule 2)
                    await redis.run_script(
                        _script(_LEAVE_SCRIPT), self._keys(redis, channel), [member.id], "leave a presence"
                    )
            self._fire("presence_leave", channel, member)

    async def list(self, channel: str) -> list[Member]:
        """The entries of ``channel``: of every process over Redis, of this one in memory."""
        broadcast = self._broadcast
        if not broadcast.started:
            await broadcast.start()
        redis = self._redis()
        if redis is None:
            return list(self._local.get(channel, {}).values())
        live, gone = await redis.run_script(_script(_LIST_SCRIPT), self._keys(redis, channel), [], "list a presence")
        for i in range(0, len(gone), 2):
            self._fire("presence_leave", channel, Member._decode(gone[i], gone[i + 1]))
        return [Member._decode(live[i], live[i + 1]) for i in range(0, len(live), 2)]

    # -- heartbeats and events ---------------------------------------------------------------

    def _ttl_ms(self) -> int:
        return max(1, round(self.ttl * 1000))

    def _start_beat(self) -> None:
        if self._redis() is not None and (self._beat is None or self._beat.done()):
            self._beat = asyncio.get_running_loop().create_task(self._beats(), name="hump presence heartbeat")

    async def _beats(self) -> None:
        redis = self._redis()
        assert redis is not None
        while self._local:
            await asyncio.sleep(self.heartbeat)
            await self.renew(redis)

    async def renew(self, redis: RedisBackend | None = None) -> None:
        """Renew every entry this process holds (the heartbeat does it every
        ``heartbeat`` seconds)."""
        redis = redis or self._redis()
        if redis is None:
            return
        for channel, entries in list(self._local.items()):
            args: list[Any] = [self._ttl_ms()]
            for member in list(entries.values()):
                args += [member.id, member._encode()]
            try:
                await redis.run_script(_script(_JOIN_SCRIPT), self._keys(redis, channel), args, "renew a presence")
            except BroadcastUnavailable as exc:
                if not self._beat_failed:
                    self._beat_failed = True
                    logger.warning("presence: a heartbeat failed (%s); retrying at the next one", exc)
                return
        self._beat_failed = False

    def _fire(self, name: str, channel: str, member: Member) -> None:
        events = self._broadcast.events
        if events is None:
            return
        from tiny_listener import EventNotFound

        # No handler for it; or no running app to run it (stopping, or outside one).
        with contextlib.suppress(EventNotFound, RuntimeError):
            events(name, data={"channel": channel, "key": member.key, "meta": member.meta})

    async def _stop(self) -> None:
        beat, self._beat = self._beat, None
        if beat is not None:
            beat.cancel()
            await asyncio.wait([beat])
        self._local.clear()


@functools.cache
def _script(source: str) -> Script:
    """The script object of ``source`` (made once; broadcast_redis is imported for Redis only)."""
    from .broadcast_redis import Script

    return Script(source)
