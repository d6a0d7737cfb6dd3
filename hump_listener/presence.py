"""Presence: who is in a channel, across workers and hosts (``broadcast.presence``)::

    async with broadcast.presence.join("room:lobby", "alice", {"name": "Alice"}):
        ...                                            # alice is listed while inside
    members = await broadcast.presence.list("room:lobby")   # [Member(key, meta, id), ...]

Its rules:

1. **One entry per join**, not per key: two tabs of one user are two entries with the
   same key (``list`` returns both; group by ``key`` for distinct users). An entry is a
   key (a user name or id) and small JSON metadata (at most ``MAX_META_SIZE`` bytes).
2. **Heartbeats that expire.** Over Redis each entry is a member of a sorted set per
   channel whose score is its expiry time (Redis' clock), and of one index of every
   entry by expiry; the process that holds it renews all its entries every
   ``heartbeat`` seconds (``PRESENCE_HEARTBEAT``, 5 s), for ``ttl`` seconds
   (``PRESENCE_TTL``, 20 s). A process that dies without leaving (SIGKILL, a host gone)
   stops renewing: its entries are not listed once their ``ttl`` has passed, and the
   next heartbeat of any live process removes them (rule 3), so no ghost is listed
   longer than 20 s and its ``presence_leave`` fires within 25 s (Phoenix Presence's down
   period is 30 s). A heartbeat also re-adds entries that a Redis restarted without its
   data forgot, or that were removed while their process was stalled past the ttl
   (each such re-add is a new ``presence_join``).
3. **Events, on every instance.** A join and a leave fire the app's ``presence_join`` /
   ``presence_leave`` event (``@app.on_event("presence_join")``) with
   ``data={"channel", "key", "meta", "id", "local"}`` once on every instance that handles
   it. ``local`` is true on exactly one instance per change: where the join or leave
   happened, or the one whose heartbeat (or ``list``) removed an expired entry: handle
   it there to act once cluster-wide (the demo publishes its chat frames so). Over Redis
   the changes travel on one internal channel, ``<key_prefix>presence``
   (``hump:presence``; channels under the key prefix are the framework's): the instance
   that made a change fires it at once and publishes it; every other instance fires what
   it receives (its own messages are skipped by their origin). Expired entries are
   removed atomically by one script (the heartbeat's sweep of the index, or ``list``),
   so each leaves once, cluster-wide. Costs: one publish (and its history entry) per
   join and leave, one sweep per heartbeat per process, and, in a process that handles
   the events, one subscription to that channel (``listen()``: the app calls it as it
   starts when it has a handler; a first ``join`` or ``list`` does too). No handler, no
   subscription and no event; outside an app (``Broadcast(events=None)``) nothing
   fires. The memory backend fires the events of its own process, ``local`` true.
4. **Outages.** ``join`` and ``list`` raise ``BroadcastUnavailable`` while Redis cannot be
   reached; a heartbeat that fails is retried at the next beat (entries then live on
   Redis' side until their ttl). A leave that cannot reach Redis fires where it happened
   at once, and on the others when the entry expires (that instance skips it then). A
   change made while the events cannot be published is not seen by the other instances
   (logged once); they catch up with ``list``. The memory backend lists the entries of
   its own process.
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
from time import monotonic
from typing import TYPE_CHECKING, Any

from .broadcast import BroadcastUnavailable

if TYPE_CHECKING:
    from .broadcast import Broadcast
    from .broadcast_redis import RedisBackend, Script

__all__ = ["MAX_META_SIZE", "PRESENCE_HEARTBEAT", "PRESENCE_TTL", "Member", "Presence"]

logger = logging.getLogger("hump_listener.error")

#: Seconds between two renewals of a process's entries (and sweeps of expired ones).
PRESENCE_HEARTBEAT = 5.0
#: Seconds an entry lives without a renewal: what a crashed process's ghosts are listed
#: for at most (three heartbeats can be missed); their leave fires within one more
#: heartbeat (Phoenix Presence's down period is 30 s).
PRESENCE_TTL = 20.0
#: Largest metadata of one entry, as JSON bytes: presence is listed whole.
MAX_META_SIZE = 4096
#: Expired entries one sweep removes at most (the next beat takes the rest).
_SWEEP_BATCH = 1000

#: Sets a key's expiry to at least ``ms`` (never shortens one a longer ttl set).
_LUA_KEEP = """
local function keep(key, ms)
  local left = redis.call('PTTL', key)
  if left < ms then redis.call('PEXPIRE', key, ms) end
end
"""

#: Join or renew. KEYS: members, metas, index. ARGV: ttl (ms), channel, then id, payload
#: pairs. Returns the ids that were not there (all on a join; re-added ones on a renewal).
_JOIN_SCRIPT = _LUA_KEEP + """
local members, metas, index = KEYS[1], KEYS[2], KEYS[3]
local now = redis.call('TIME')
local ttl = tonumber(ARGV[1])
local expiry = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) + ttl
local added = {}
for i = 3, #ARGV, 2 do
  if redis.call('ZADD', members, expiry, ARGV[i]) == 1 then table.insert(added, ARGV[i]) end
  redis.call('HSET', metas, ARGV[i], ARGV[i + 1])
  redis.call('ZADD', index, expiry, ARGV[i] .. ':' .. ARGV[2])
end
keep(members, ttl * 2)
keep(metas, ttl * 2)
keep(index, ttl * 2)
return added
"""

#: KEYS: members, metas, index. ARGV: id, channel. Returns 1 when this call removed it.
_LEAVE_SCRIPT = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1] .. ':' .. ARGV[2])
return redis.call('HDEL', KEYS[2], ARGV[1])
"""

#: KEYS: members, metas, index. ARGV: channel. Returns {live entries: id, meta, id,
#: meta...}, {expired entries, removed by this call: id, meta...}.
_LIST_SCRIPT = """
local members, metas, index = KEYS[1], KEYS[2], KEYS[3]
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local expired = redis.call('ZRANGEBYSCORE', members, '-inf', ms)
local gone = {}
for _, id in ipairs(expired) do
  redis.call('ZREM', index, id .. ':' .. ARGV[1])
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

#: The heartbeat's sweep: every expired entry of every channel, removed atomically (one
#: caller gets each). KEYS: index. ARGV: key prefix, batch size. The channel's keys are
#: derived from the index entry (``id:channel``), as ``Presence._keys`` names them.
#: Returns channel, id, meta triples.
_SWEEP_SCRIPT = """
local index, prefix = KEYS[1], ARGV[1]
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local gone = {}
for _, entry in ipairs(redis.call('ZRANGEBYSCORE', index, '-inf', ms, 'LIMIT', 0, tonumber(ARGV[2]))) do
  redis.call('ZREM', index, entry)
  local colon = string.find(entry, ':', 1, true)
  if colon then
    local id, channel = string.sub(entry, 1, colon - 1), string.sub(entry, colon + 1)
    local metas = prefix .. 'pm:' .. channel
    redis.call('ZREM', prefix .. 'p:' .. channel, id)
    local meta = redis.call('HGET', metas, id)
    if meta then
      redis.call('HDEL', metas, id)
      table.insert(gone, channel)
      table.insert(gone, id)
      table.insert(gone, meta)
    end
  end
end
return gone
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
    entries this process holds, its heartbeat task and its listener of the other
    instances' changes, from the first join (or ``listen()``) to the Broadcast's stop."""

    def __init__(
        self, broadcast: Broadcast, heartbeat: float = PRESENCE_HEARTBEAT, ttl: float = PRESENCE_TTL
    ) -> None:
        if not 0 < heartbeat < ttl:
            raise ValueError(f"the heartbeat ({heartbeat} s) must be shorter than the ttl ({ttl} s)")
        self.heartbeat = heartbeat
        self.ttl = ttl
        self._broadcast = broadcast
        #: Tells this process's published changes from the others' (rule 3).
        self._origin = secrets.token_hex(8)
        self._local: dict[str, dict[str, Member]] = {}  # channel -> id -> entry of this process
        self._beat: asyncio.Task[None] | None = None
        self._beat_failed = False
        self._publish_failed = False
        self._listener: asyncio.Task[None] | None = None
        self._listening: asyncio.Future[None] | None = None
        #: Entries left while Redis was down, fired here already: id -> when to forget it.
        self._left_offline: dict[str, float] = {}

    def _redis(self) -> RedisBackend | None:
        from .broadcast import _MemoryBackend

        backend = self._broadcast._backend
        return None if isinstance(backend, _MemoryBackend) else backend  # type: ignore[return-value]

    def _keys(self, redis: RedisBackend, channel: str) -> list[str]:
        return [redis.key("p", channel), redis.key("pm", channel), redis.key("pi", "")]

    @property
    def channel(self) -> str | None:
        """The internal channel the changes travel on over Redis (rule 3); ``None`` in
        memory."""
        redis = self._redis()
        return None if redis is None else f"{redis.key_prefix}presence"

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
            await self.listen()
            args = [self._ttl_ms(), channel, member.id, payload]
            await redis.run_script(_script(_JOIN_SCRIPT), self._keys(redis, channel), args, "join a presence")
        self._local.setdefault(channel, {})[member.id] = member
        self._start_beat()
        await self._changed("join", channel, member)
        try:
            yield member
        finally:
            entries = self._local.get(channel)
            if entries is not None:
                entries.pop(member.id, None)
                if not entries:
                    del self._local[channel]
            if redis is None:
                self._fire("presence_leave", channel, member, True)
            elif broadcast.started:
                try:
                    removed = await redis.run_script(
                        _script(_LEAVE_SCRIPT), self._keys(redis, channel), [member.id, channel], "leave a presence"
                    )
                except BroadcastUnavailable:  # it expires by itself (rule 4)
                    self._left_offline[member.id] = monotonic() + 3 * self.ttl
                    self._fire("presence_leave", channel, member, True)
                else:
                    if removed:  # else a sweep removed it (stalled past the ttl) and said so
                        await self._changed("leave", channel, member)

    async def list(self, channel: str) -> list[Member]:
        """The entries of ``channel``: of every process over Redis, of this one in memory."""
        broadcast = self._broadcast
        if not broadcast.started:
            await broadcast.start()
        redis = self._redis()
        if redis is None:
            return list(self._local.get(channel, {}).values())
        await self.listen()
        live, gone = await redis.run_script(
            _script(_LIST_SCRIPT), self._keys(redis, channel), [channel], "list a presence"
        )
        for i in range(0, len(gone), 2):
            await self._changed("leave", channel, Member._decode(gone[i], gone[i + 1]))
        return [Member._decode(live[i], live[i + 1]) for i in range(0, len(live), 2)]

    # -- the other instances' changes (rule 3) -----------------------------------------------

    async def listen(self) -> None:
        """From now on, fire the changes every instance makes (rule 3): one subscription
        to ``channel`` for this Broadcast, until it stops. Idempotent; nothing to do in
        memory, nor when the app has no ``presence_join`` / ``presence_leave`` handler.
        The app calls it as it starts; a first ``join`` or ``list`` does too."""
        redis = self._redis()
        if redis is None or not self._handled():
            return
        broadcast = self._broadcast
        if not broadcast.started:
            await broadcast.start()
        if self._listener is None or self._listener.done():
            self._listening = asyncio.get_running_loop().create_future()
            self._listener = asyncio.get_running_loop().create_task(
                self._receive(self._listening), name="hump presence listener"
            )
            self._listener.add_done_callback(_log_failure)
            self._start_beat()
        assert self._listening is not None
        await asyncio.shield(self._listening)

    def _handled(self) -> bool:
        """The events are handled here: an app with a handler for one, or a callable."""
        events = self._broadcast.events
        if events is None:
            return False
        match = getattr(getattr(events, "__self__", None), "match_route", None)
        if match is None:
            return True
        from tiny_listener import EventNotFound

        for name in ("presence_join", "presence_leave"):
            with contextlib.suppress(EventNotFound):
                match(name)
                return True
        return False

    async def _receive(self, listening: asyncio.Future[None]) -> None:
        channel = self.channel
        assert channel is not None
        try:
            async with self._broadcast.subscribe(channel) as sub:
                listening.set_result(None)
                async for message in sub:
                    try:
                        change = json.loads(message)
                        if change["o"] == self._origin:
                            continue
                        member = Member(str(change["k"]), dict(change["m"] or {}), str(change["i"]))
                        if change["e"] == "leave" and self._left_offline.pop(member.id, None) is not None:
                            continue  # fired here when it left
                        self._fire(f"presence_{change['e']}", str(change["c"]), member, False)
                    except (ValueError, KeyError, TypeError):
                        logger.warning("presence: ignored a malformed message on %r: %.200r", channel, message)
        finally:
            if not listening.done():  # it failed (logged): listen() returns all the same
                listening.set_result(None)

    async def _changed(self, kind: str, channel: str, member: Member) -> None:
        """A change this process made: fire it here, then tell the other instances."""
        self._fire(f"presence_{kind}", channel, member, True)
        topic = self.channel
        if topic is None or not self._broadcast.started:
            return
        change = {"o": self._origin, "e": kind, "c": channel, "i": member.id, "k": member.key, "m": member.meta}
        try:
            await self._broadcast.publish_json(topic, change)
        except BroadcastUnavailable as exc:
            if not self._publish_failed:
                self._publish_failed = True
                logger.warning("presence: could not tell the other instances of a %s (%s)", kind, exc)
        else:
            self._publish_failed = False

    # -- heartbeats and events ---------------------------------------------------------------

    def _ttl_ms(self) -> int:
        return max(1, round(self.ttl * 1000))

    def _start_beat(self) -> None:
        if self._redis() is not None and (self._beat is None or self._beat.done()):
            self._beat = asyncio.get_running_loop().create_task(self._beats(), name="hump presence heartbeat")
            self._beat.add_done_callback(_log_failure)

    async def _beats(self) -> None:
        redis = self._redis()
        assert redis is not None
        while self._local or self._listener is not None:
            await asyncio.sleep(self.heartbeat)
            await self.renew(redis)
            await self.sweep(redis)
            now = monotonic()
            for id, until in list(self._left_offline.items()):
                if until < now:
                    del self._left_offline[id]

    async def renew(self, redis: RedisBackend | None = None) -> None:
        """Renew every entry this process holds (the heartbeat does it every
        ``heartbeat`` seconds); an entry Redis no longer had is re-added and joins again."""
        redis = redis or self._redis()
        if redis is None:
            return
        for channel, entries in list(self._local.items()):
            members = {member.id: member for member in entries.values()}
            args: list[Any] = [self._ttl_ms(), channel]
            for member in members.values():
                args += [member.id, member._encode()]
            try:
                added = await redis.run_script(
                    _script(_JOIN_SCRIPT), self._keys(redis, channel), args, "renew a presence"
                )
            except BroadcastUnavailable as exc:
                if not self._beat_failed:
                    self._beat_failed = True
                    logger.warning("presence: a heartbeat failed (%s); retrying at the next one", exc)
                return
            for id in added:
                await self._changed("join", channel, members[id.decode() if isinstance(id, bytes) else id])
        self._beat_failed = False

    async def sweep(self, redis: RedisBackend | None = None) -> None:
        """Remove the expired entries of every channel, crashed processes' ghosts, and
        fire (and publish) their leaves: each leaves once cluster-wide, through whichever
        process's sweep removed it (the heartbeat sweeps every ``heartbeat`` seconds)."""
        redis = redis or self._redis()
        if redis is None:
            return
        while True:
            try:
                gone = await redis.run_script(
                    _script(_SWEEP_SCRIPT), [redis.key("pi", "")], [redis.key_prefix, _SWEEP_BATCH],
                    "sweep the presence",
                )
            except BroadcastUnavailable:
                return  # the heartbeat logged it, or will
            for i in range(0, len(gone), 3):
                channel = gone[i].decode() if isinstance(gone[i], bytes) else gone[i]
                await self._changed("leave", channel, Member._decode(gone[i + 1], gone[i + 2]))
            if len(gone) < 3 * _SWEEP_BATCH:
                return

    def _fire(self, name: str, channel: str, member: Member, local: bool) -> None:
        events = self._broadcast.events
        if events is None:
            return
        from tiny_listener import EventNotFound

        data = {"channel": channel, "key": member.key, "meta": member.meta, "id": member.id, "local": local}
        # No handler for it; or no running app to run it (stopping, or outside one).
        with contextlib.suppress(EventNotFound, RuntimeError):
            events(name, data=data)

    async def _stop(self) -> None:
        beat, self._beat = self._beat, None
        listener, self._listener = self._listener, None
        tasks = [task for task in (beat, listener) if task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        self._listening = None
        self._local.clear()
        self._left_offline.clear()


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        logger.error("presence: %s failed", task.get_name(), exc_info=exc)


@functools.cache
def _script(source: str) -> Script:
    """The script object of ``source`` (made once; broadcast_redis is imported for Redis only)."""
    from .broadcast_redis import Script

    return Script(source)
