"""Durable events on Redis Streams (``pip install 'hump_listener[redis]'``).

``RedisQueue`` is the queue ``durable.DurableEvents`` uses for a ``redis://`` or
``rediss://`` URL (rules 1-6 in ``durable``), through redis-py's asyncio client. The
keys, under ``prefix`` (``hump:durable``)::

    {prefix}:stream     the ready events: a stream read by the consumer group "workers"
                        (XREADGROUP), acknowledged after the run (XACK); entries older than
                        the oldest unacknowledged one are trimmed (XTRIM MINID)
    {prefix}:delayed    delayed events and retries: a sorted set scored by due time (ms,
                        Redis' clock), moved into the stream when due by any worker
    {prefix}:dead       the dead letters: a stream (MAXLEN ~ DEAD_LETTERS_KEPT)
    {prefix}:key:{key}  an idempotency key: the event id, while it is known

Every entry holds one field, ``m``: the event as JSON (``durable.decode``). Each change
that must not be half done (store with a key, retry, dead-letter, hand back, requeue,
move when due) is one Lua script, so a crash between two commands cannot lose or double
an event. The policies:

1. **Taking over.** Every ``visibility_timeout / 2`` a worker with free slots claims
   entries idle for longer than the visibility timeout (XAUTOCLAIM): their worker is
   gone. A live worker renews its entries' leases (XCLAIM ... JUSTID) every third of the
   visibility timeout, so they never look idle. An entry's delivery count (XPENDING)
   adds to its attempt: a worker that dies in every attempt cannot loop forever.
2. **Few round trips.** Stores, acknowledgements and the other writes issued in one turn
   of the event loop go to Redis in one pipeline (the acknowledgements as one XACK); a
   worker takes as many events per XREADGROUP as it has free slots.
3. **Outages.** A lost connection is logged once and retried with backoff (0.1 s
   doubling to 5 s), reset once Redis answers; a trigger during the outage raises
   ``DurableUnavailable`` within ``REDIS_TIMEOUT`` instead of hanging. Whatever a worker
   had taken stays unacknowledged in Redis and is taken over (policy 1).
4. **Leaving.** ``close()`` hands back every entry this worker still has (queued again at
   once for any worker) and removes its consumer from the group. Consumers silent for
   ``CONSUMER_FORGOTTEN`` seconds with nothing pending (workers that were killed) are
   removed by the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import uuid
from collections.abc import Iterable
from typing import Any

from .durable import DeadLetter, Delivery, DurableUnavailable, decode, encode

__all__ = [
    "BLOCK",
    "CONSUMER_FORGOTTEN",
    "DEAD_LETTERS_KEPT",
    "GROUP",
    "KEY_PENDING_TTL",
    "PROMOTE_EVERY",
    "REDIS_TIMEOUT",
    "TRIM_EVERY",
    "RedisQueue",
]

logger = logging.getLogger("hump_listener.error")

#: The consumer group every worker joins.
GROUP = "workers"
#: Longest wait of one XREADGROUP for new events (ms); an event that arrives meanwhile
#: is delivered at once. arq polls its queue every 0.5 s.
BLOCK = 1000
#: How often a worker moves due delayed events into the stream, at the longest (s): a
#: delayed event runs at most this late, less when this worker queued it. arq: 0.5 s.
PROMOTE_EVERY = 0.5
#: How often a worker trims acknowledged entries and forgets dead consumers (s).
TRIM_EVERY = 10.0
#: Dead letters kept (the oldest are trimmed): Sidekiq keeps 10,000 dead jobs too.
DEAD_LETTERS_KEPT = 10_000
#: An idempotency key of an event not yet finished expires after this (s, plus its
#: delay): a safety net for a Redis that lost the event itself (no persistence).
KEY_PENDING_TTL = 7 * 24 * 3600
#: A consumer silent this long with nothing pending is removed from the group (s).
CONSUMER_FORGOTTEN = 3600
#: Bound on connecting and on each reply (s), as for the broadcast's publish: a trigger
#: during an outage fails within this instead of hanging. Longer than ``BLOCK``.
REDIS_TIMEOUT = 5.0
#: Reconnection backoff (s): 0.1 doubling to 5, as the broadcast's.
BACKOFF_INITIAL = 0.1
BACKOFF_MAX = 5.0

# -- the scripts (KEYS and ARGV as each says) ----------------------------------------------

_NOW = "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000)\n"

#: Store one event with a key and/or a delay. KEYS: stream, delayed[, key];
#: ARGV: payload, event id, delay ms, key ttl s. Returns the stored or the known id.
_STORE = _NOW + """
if #KEYS == 3 then
  local known = redis.call('GET', KEYS[3])
  if known then return known end
  redis.call('SET', KEYS[3], ARGV[2], 'EX', ARGV[4])
end
local delay = tonumber(ARGV[3])
if delay > 0 then redis.call('ZADD', KEYS[2], now + delay, ARGV[1])
else redis.call('XADD', KEYS[1], '*', 'm', ARGV[1]) end
return ARGV[2]
"""

#: Replace a taken entry by a new one (a retry after its delay, or a hand-back now).
#: KEYS: stream, delayed; ARGV: group, entry id, payload, delay ms. 0 when the entry was
#: acknowledged already (another worker took it over and finished it).
_REPLACE = _NOW + """
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
local delay = tonumber(ARGV[4])
if delay > 0 then redis.call('ZADD', KEYS[2], now + delay, ARGV[3])
else redis.call('XADD', KEYS[1], '*', 'm', ARGV[3]) end
return 1
"""

#: Move a taken entry to the dead letters. KEYS: stream, dead[, key]; ARGV: group, entry
#: id, payload, error, traceback, attempts, dead letters kept, key retention s.
_BURY = """
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[7], '*', 'm', ARGV[3], 'e', ARGV[4], 't', ARGV[5], 'a', ARGV[6])
if #KEYS == 3 then redis.call('EXPIRE', KEYS[3], ARGV[8]) end
return 1
"""

#: Move due delayed events into the stream. KEYS: delayed, stream; ARGV: most to move.
#: Returns {moved, ms until the next one is due or -1}.
_PROMOTE = _NOW + """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, m in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'm', m)
  redis.call('ZREM', KEYS[1], m)
end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if nxt[2] then return {#due, math.max(tonumber(nxt[2]) - now, 0)} end
return {#due, -1}
"""

#: Queue dead letters again. KEYS: dead, stream; ARGV: key prefix, key ttl s, then
#: (dead entry id, payload, key or '', event id) quadruples. Returns how many were queued.
_REVIVE = """
local n = 0
for i = 3, #ARGV, 4 do
  if redis.call('XDEL', KEYS[1], ARGV[i]) == 1 then
    if ARGV[i + 2] ~= '' then redis.call('SET', ARGV[1] .. ARGV[i + 2], ARGV[i + 3], 'EX', ARGV[2]) end
    redis.call('XADD', KEYS[2], '*', 'm', ARGV[i + 1])
    n = n + 1
  end
end
return n
"""

#: Hand back every entry a consumer still has, unchanged (it never ran: read, then
#: cancelled), and remove the consumer. KEYS: stream; ARGV: group, consumer.
_LEAVE = """
local n = 0
for _, p in ipairs(redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 10000, ARGV[2])) do
  local entry = redis.call('XRANGE', KEYS[1], p[1], p[1])[1]
  if entry then redis.call('XADD', KEYS[1], '*', unpack(entry[2])) n = n + 1 end
  redis.call('XACK', KEYS[1], ARGV[1], p[1])
end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return n
"""


#: Trim acknowledged entries and forget dead consumers. KEYS: stream; ARGV: group,
#: consumer idle ms. Returns {entries trimmed, consumers removed}.
_TRIM = """
local summary = redis.call('XPENDING', KEYS[1], ARGV[1])
local minid = summary[2]
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local name, last
  for i = 1, #g, 2 do
    if g[i] == 'name' then name = g[i + 1] elseif g[i] == 'last-delivered-id' then last = g[i + 1] end
  end
  if name == ARGV[1] and not minid then minid = last end
end
local trimmed = 0
if minid then trimmed = redis.call('XTRIM', KEYS[1], 'MINID', '~', minid) end
local removed = 0
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local name, pending, idle
  for i = 1, #c, 2 do
    if c[i] == 'name' then name = c[i + 1] elseif c[i] == 'pending' then pending = c[i + 1]
    elseif c[i] == 'idle' then idle = c[i + 1] end
  end
  if pending == 0 and idle > tonumber(ARGV[2]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], name)
    removed = removed + 1
  end
end
return {trimmed, removed}
"""

#: Counts. KEYS: stream, delayed, dead; ARGV: group. Returns {queued, running, delayed, dead}.
_STATS = """
local running, queued = 0, 0
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local name, last, lag, pending
  for i = 1, #g, 2 do
    if g[i] == 'name' then name = g[i + 1] elseif g[i] == 'last-delivered-id' then last = g[i + 1]
    elseif g[i] == 'lag' then lag = g[i + 1] elseif g[i] == 'pending' then pending = g[i + 1] end
  end
  if name == ARGV[1] then
    running = pending
    if lag then queued = lag else queued = #redis.call('XRANGE', KEYS[1], '(' .. last, '+') end
  end
end
return {queued, running, redis.call('ZCARD', KEYS[2]), redis.call('XLEN', KEYS[3])}
"""

_SCRIPTS = {
    "store": _STORE, "replace": _REPLACE, "bury": _BURY, "promote": _PROMOTE, "revive": _REVIVE,
    "leave": _LEAVE, "trim": _TRIM, "stats": _STATS,
}


def _redis() -> Any:
    """``redis.asyncio``, or an ImportError that names the extra to install."""
    try:
        import redis.asyncio
        import redis.exceptions
    except ImportError as exc:
        raise ImportError(
            "durable events on Redis need the redis package: pip install redis"
        ) from exc
    return redis


class RedisQueue:
    """The durable events' queue on Redis Streams (module policies 1-4).

    State by lifetime: names and settings for the object's life; the client, the scripts'
    hashes, the writes waiting for their pipeline, the taken entries and the maintenance
    task per start/close."""

    durable = True

    def __init__(self, url: str, *, prefix: str, visibility_timeout: float, key_retention: float) -> None:
        redis = _redis()
        self._redis = redis
        options: dict[str, Any] = dict(redis.asyncio.connection.parse_url(url))
        self._address = f"{options.get('host', 'localhost')}:{options.get('port', 6379)}/{options.get('db', 0)}"
        self._url = url
        self.stream = f"{prefix}:stream"
        self.delayed = f"{prefix}:delayed"
        self.dead = f"{prefix}:dead"
        self.key_prefix = f"{prefix}:key:"
        #: This worker's name in the group: host, pid and a token (pids repeat in containers).
        self.consumer = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._visibility_ms = int(visibility_timeout * 1000)
        self._claim_every = visibility_timeout / 2
        self._lease_every = visibility_timeout / 3
        self._key_retention = max(math.ceil(key_retention), 1)
        self._lost: tuple[type[BaseException], ...] = (redis.exceptions.ConnectionError,
                                                       redis.exceptions.TimeoutError, OSError)
        self._maintenance_errors = (DurableUnavailable, *self._lost)
        # Per start/close
        self._client: Any = None
        self._shas: dict[str, str] = {}
        self._writes: list[tuple[tuple[Any, ...], dict[str, Any], asyncio.Future[Any]]] = []
        self._acks: list[tuple[bytes, asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._out: dict[bytes, Delivery] = {}  # entry id → what this worker has taken
        self._maintainer: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()  # a local delayed event: move due ones sooner
        self._next_claim = 0.0
        self._claim_cursor = "0-0"
        self._failing = False
        self._backoff = BACKOFF_INITIAL

    def describe(self) -> str:
        """``redis://host:port/db, stream hump:durable:stream, consumer ...`` (no password)."""
        scheme = self._url.split(":", 1)[0]
        return f"{scheme}://{self._address}, stream {self.stream}, consumer {self.consumer}"

    # -- start and close -------------------------------------------------------------------

    async def start(self, consumer: bool) -> None:
        """Connect, load the scripts, make the group; a consumer also starts maintenance.
        Redis unreachable: ``DurableUnavailable`` (the app does not start)."""
        client = self._redis.asyncio.Redis.from_url(
            self._url, protocol=2, socket_connect_timeout=REDIS_TIMEOUT, socket_timeout=REDIS_TIMEOUT,
        )
        try:
            await self._ensure_group(client)
            for name, source in _SCRIPTS.items():
                self._shas[name] = await client.script_load(source)
        except self._lost as exc:
            await client.aclose()
            raise DurableUnavailable(f"durable events: cannot reach Redis at {self._address}: {exc}") from None
        self._client = client
        self._consumer = consumer
        if consumer:
            self._maintainer = asyncio.get_running_loop().create_task(self._maintain(), name="hump-durable-maintenance")

    async def close(self) -> None:
        """Stop maintenance, flush the writes, hand back what this worker still has,
        leave the group, disconnect (policy 4). Never raises."""
        client = self._client
        if client is None:
            return
        maintainer, self._maintainer = self._maintainer, None
        if maintainer is not None:
            maintainer.cancel()
            # Its end is not ours to raise: whatever it ended with, the client is let go below.
            await asyncio.wait((maintainer,))
            if not maintainer.cancelled() and (exc := maintainer.exception()) is not None:
                logger.error("durable events: maintenance had stopped: %r", exc, exc_info=exc)
        if self._flusher is not None:  # the writes already made go out first
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._flusher), REDIS_TIMEOUT)
        self._client = None
        if self._consumer:
            try:
                handed = await client.evalsha(self._shas["leave"], 1, self.stream, GROUP, self.consumer)
                if handed:
                    logger.info("durable events: handed back %d event(s) this worker had taken", handed)
            except Exception as exc:
                logger.error("durable events: could not leave the group (%s): other workers take over this "
                             "worker's events after the visibility timeout", exc)
        self._out.clear()
        flusher = self._flusher  # one that took the client before it was let go: let it end
        if flusher is not None:
            await asyncio.wait((flusher,), timeout=REDIS_TIMEOUT)
        await client.aclose()

    async def _ensure_group(self, client: Any) -> None:
        try:
            await client.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except self._redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    # -- writes, pipelined (policy 2) --------------------------------------------------------

    def _write(self, *args: Any, **options: Any) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._writes.append((args, options, future))
        self._flush_soon()
        return future

    def _ack_later(self, entry: bytes) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._acks.append((entry, future))
        self._flush_soon()
        return future

    def _flush_soon(self) -> None:
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush(), name="hump-durable-writes")

    async def _flush(self) -> None:
        try:
            while self._writes or self._acks:
                await asyncio.sleep(0)  # let this turn's other writes join the pipeline
                writes, self._writes = self._writes, []
                acks, self._acks = self._acks, []
                client = self._client
                futures = [future for *_, future in acks] + [future for *_, future in writes]
                if client is None:
                    _fail(futures, DurableUnavailable("durable events: the queue is closed"))
                    continue
                pipe = client.pipeline(transaction=False)
                if acks:
                    pipe.execute_command("XACK", self.stream, GROUP, *[entry for entry, _ in acks])
                for args, options, _ in writes:
                    pipe.execute_command(*args, **options)
                try:
                    results = await pipe.execute(raise_on_error=False)
                except Exception as exc:
                    _fail(futures, DurableUnavailable(f"Redis at {self._address}: {type(exc).__name__}: {exc}"))
                    continue
                if acks:
                    ack_result = results.pop(0)
                    for _, future in acks:
                        if not future.done():
                            if isinstance(ack_result, Exception):
                                future.set_exception(ack_result)
                            else:
                                future.set_result(None)
                for (*_, future), result in zip(writes, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            self._flusher = None
            if self._writes or self._acks:  # came in while the last pipeline finished
                self._flush_soon()

    async def _script(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """Run one of the scripts through the pipeline (loaded again if Redis lost it)."""
        try:
            return await self._write("EVALSHA", self._shas[name], len(keys), *keys, *args)
        except self._redis.exceptions.NoScriptError:
            assert self._client is not None
            self._shas[name] = await self._client.script_load(_SCRIPTS[name])
            return await self._write("EVALSHA", self._shas[name], len(keys), *keys, *args)

    # -- the queue (durable.Queue) -----------------------------------------------------------

    async def enqueue(self, message: dict[str, Any], payload: str, delay: float) -> str:
        """See ``durable.Queue.enqueue``: one XADD, or the store script for a key or a delay."""
        key = message.get("key")
        try:
            if key is None and delay <= 0:
                await self._write("XADD", self.stream, "*", "m", payload)
                return str(message["id"])
            delay_ms = math.ceil(delay * 1000)
            keys = [self.stream, self.delayed] + ([self.key_prefix + key] if key is not None else [])
            ttl = KEY_PENDING_TTL + math.ceil(delay)
            stored = await self._script("store", keys, [payload, message["id"], delay_ms, ttl])
        except DurableUnavailable as exc:
            raise DurableUnavailable(f"durable event {message['name']!r} was not stored: {exc}") from None
        if delay > 0:
            self._wake.set()
        return stored.decode() if isinstance(stored, bytes) else str(stored)

    async def fetch(self, n: int) -> list[Delivery]:
        """See ``durable.Queue.fetch``: events of silent workers first (policy 1), else
        new ones (XREADGROUP, blocking up to ``BLOCK`` ms)."""
        client = self._client
        if client is None:
            raise DurableUnavailable("durable events: the queue is closed")
        loop = asyncio.get_running_loop()
        try:
            if loop.time() >= self._next_claim:
                self._next_claim = loop.time() + self._claim_every
                claimed = await self._claim(client, n)
                if claimed:
                    self._recovered()
                    return claimed
            reply = await client.xreadgroup(GROUP, self.consumer, {self.stream: ">"}, count=n, block=BLOCK)
            self._recovered()
        except self._redis.exceptions.ResponseError as exc:
            # NOGROUP: the stream was deleted before the read; UNBLOCKED: while it waited
            if not str(exc).startswith(("NOGROUP", "UNBLOCKED")):
                raise
            logger.warning("durable events: the group of %s was gone (stream deleted?): made again", self.stream)
            await self._ensure_group(client)
            return []
        except self._lost as exc:
            await self._outage(exc)
            return []
        deliveries = []
        for _stream, entries in reply or ():
            for entry, fields in entries:
                delivery = self._delivery(entry, fields, 1)
                if delivery is not None:
                    deliveries.append(delivery)
        return deliveries

    async def _claim(self, client: Any, n: int) -> list[Delivery]:
        """Take over up to ``n`` entries idle past the visibility timeout, with their
        attempts counted from their delivery counts (policy 1)."""
        found: list[tuple[bytes, dict[bytes, bytes]]] = []
        for _ in range(10):  # one pass over the pending entries, bounded
            reply = await client.xautoclaim(
                self.stream, GROUP, self.consumer, self._visibility_ms, start_id=self._claim_cursor, count=n
            )
            cursor, entries = reply[0], reply[1]
            self._claim_cursor = cursor.decode() if isinstance(cursor, bytes) else str(cursor)
            found.extend((entry[0], _pairs(entry[1])) for entry in entries if entry and entry[1] is not None)
            if found or self._claim_cursor == "0-0":
                break
        if not found:
            return []
        ids = sorted(entry for entry, _ in found)
        rows = await client.xpending_range(
            self.stream, GROUP, min=ids[0], max=ids[-1], count=len(ids) + 1000, consumername=self.consumer
        )
        times = {row["message_id"]: int(row["times_delivered"]) for row in rows}
        deliveries = []
        for entry, fields in found:
            delivery = self._delivery(entry, fields, times.get(entry, 2))
            if delivery is not None:
                deliveries.append(delivery)
        if deliveries:
            logger.warning("durable events: took over %d event(s) of a worker silent for %.3g s",
                           len(deliveries), self._visibility_ms / 1000)
        return deliveries

    def _delivery(self, entry: bytes, fields: dict[bytes, bytes], delivered: int) -> Delivery | None:
        payload = fields.get(b"m")
        try:
            message = decode(payload) if payload is not None else None
            attempt = int(message["attempt"]) + delivered - 1 if message is not None else 0
        except (ValueError, TypeError, KeyError):
            message = None
        if message is None:
            logger.error("durable events: entry %s of %s is not an event (%r): dropped", entry, self.stream, fields)
            self._ack_later(entry)
            return None
        delivery = Delivery(message, entry, attempt)
        self._out[entry] = delivery
        return delivery

    async def ack(self, delivery: Delivery) -> None:
        """See ``durable.Queue.ack``: XACK (batched), and the key's retention starts."""
        self._out.pop(delivery.handle, None)
        done = self._ack_later(delivery.handle)
        key = delivery.message.get("key")
        if key is not None:
            self._write("EXPIRE", self.key_prefix + key, self._key_retention)
        await done

    async def retry(self, delivery: Delivery, payload: str, delay: float) -> None:
        """See ``durable.Queue.retry``: the entry is replaced by its next attempt, due
        after ``delay`` (one script)."""
        self._out.pop(delivery.handle, None)
        await self._script("replace", [self.stream, self.delayed],
                           [GROUP, delivery.handle, payload, math.ceil(delay * 1000)])
        if delay > 0:
            self._wake.set()

    async def bury(self, delivery: Delivery, error: str, trace: str) -> None:
        """See ``durable.Queue.bury``: acknowledged and added to the dead letters in one
        script; the key's retention starts."""
        self._out.pop(delivery.handle, None)
        message = delivery.message
        keys = [self.stream, self.dead] + ([self.key_prefix + message["key"]] if message.get("key") else [])
        payload = encode(message)
        await self._script("bury", keys, [GROUP, delivery.handle, payload, error, trace[-8192:], delivery.attempt,
                                          DEAD_LETTERS_KEPT, self._key_retention])

    async def release(self, deliveries: list[Delivery]) -> None:
        """See ``durable.Queue.release``: each is replaced by its next attempt, queued now."""
        results = []
        for delivery in deliveries:
            self._out.pop(delivery.handle, None)
            payload = encode({**delivery.message, "attempt": delivery.attempt + 1})
            results.append(self._script("replace", [self.stream, self.delayed], [GROUP, delivery.handle, payload, 0]))
        await asyncio.gather(*results)

    async def dead_letters(self, limit: int) -> list[DeadLetter]:
        """See ``durable.Queue.dead_letters`` (XREVRANGE)."""
        try:
            entries = await self._connected().xrevrange(self.dead, count=limit)
        except self._lost as exc:
            raise DurableUnavailable(f"durable events: cannot reach Redis at {self._address}: {exc}") from None
        return [_dead_letter(entry, fields) for entry, fields in entries]

    async def requeue(self, ids: Iterable[str] | None) -> int:
        """See ``durable.Queue.requeue``: each queued again (attempt 1, its key held
        again) and removed from the dead letters, in one script."""
        wanted = None if ids is None else set(ids)
        try:
            entries = await self._connected().xrange(self.dead, count=DEAD_LETTERS_KEPT * 2)
        except self._lost as exc:
            raise DurableUnavailable(f"durable events: cannot reach Redis at {self._address}: {exc}") from None
        args: list[Any] = [self.key_prefix, KEY_PENDING_TTL]
        for entry, fields in entries:
            message = decode(fields[b"m"])
            if wanted is not None and message["id"] not in wanted:
                continue
            args += [entry, encode({**message, "attempt": 1}), message.get("key") or "", message["id"]]
        if len(args) == 2:
            return 0
        return int(await self._script("revive", [self.dead, self.stream], args))

    async def stats(self) -> dict[str, int]:
        """See ``durable.Queue.stats`` (one script over the group, the sets, the dead)."""
        queued, running, delayed, dead = await self._script("stats", [self.stream, self.delayed, self.dead], [GROUP])
        return {"queued": int(queued), "running": int(running), "delayed": int(delayed), "dead": int(dead)}

    def _connected(self) -> Any:
        if self._client is None:
            raise DurableUnavailable("durable events: the queue is closed")
        return self._client

    # -- maintenance: due events, leases, trimming (a consumer's task) ---------------------

    async def _maintain(self) -> None:
        loop = asyncio.get_running_loop()
        next_lease = next_trim = loop.time()
        while True:
            wait = PROMOTE_EVERY
            try:
                now = loop.time()
                if now >= next_lease:
                    next_lease = now + self._lease_every
                    await self._renew_leases()
                moved, due_in = await self._script("promote", [self.delayed, self.stream], [1000])
                if moved >= 1000:
                    wait = 0.0
                elif due_in >= 0:
                    wait = min(wait, due_in / 1000)
                if now >= next_trim:
                    next_trim = now + TRIM_EVERY
                    await self._script("trim", [self.stream], [GROUP, CONSUMER_FORGOTTEN * 1000])
                self._recovered()
            except self._maintenance_errors as exc:
                await self._outage(exc)
                continue
            except self._redis.exceptions.ResponseError as exc:
                # NOGROUP: the stream (and its group) was deleted under this worker; the
                # consumer makes the group again too. Any other refusal: said, and tried
                # again next turn. Maintenance never dies of it (leases, delays, trimming).
                if str(exc).startswith("NOGROUP") and self._client is not None:
                    logger.warning("durable events: the group of %s was gone (stream deleted?): made again",
                                   self.stream)
                    with contextlib.suppress(Exception):
                        await self._ensure_group(self._client)
                else:
                    logger.error("durable events: maintenance of %s failed: %s", self.stream, exc)
                wait = PROMOTE_EVERY
            self._wake.clear()
            wait = min(wait, max(next_lease - loop.time(), 0.0))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def _renew_leases(self) -> None:
        """XCLAIM ... JUSTID of the entries this worker runs: their idle time restarts
        (no delivery counted), so nobody takes them over (policy 1)."""
        if self._out:
            await self._write("XCLAIM", self.stream, GROUP, self.consumer, 0, *self._out, "JUSTID", parse_justid=True)

    # -- outages (policy 3) ------------------------------------------------------------------

    async def _outage(self, exc: BaseException) -> None:
        if not self._failing:
            self._failing = True
            logger.error("durable events: Redis at %s unreachable (%s: %s): retrying with backoff",
                         self._address, type(exc).__name__, exc)
        delay, self._backoff = self._backoff, min(self._backoff * 2, BACKOFF_MAX)
        await asyncio.sleep(delay)

    def _recovered(self) -> None:
        if self._failing:
            self._failing = False
            logger.warning("durable events: Redis at %s reachable again", self._address)
        self._backoff = BACKOFF_INITIAL


def _fail(futures: list[asyncio.Future[Any]], error: BaseException) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(error)


def _pairs(flat: Any) -> dict[bytes, bytes]:
    """A stream entry's fields, as redis-py gives them raw (a flat list) or parsed (a dict)."""
    if isinstance(flat, dict):
        return flat
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _dead_letter(entry: bytes, fields: dict[bytes, bytes]) -> DeadLetter:
    message = decode(fields[b"m"])
    millis = int(entry.split(b"-", 1)[0])
    return DeadLetter(
        id=message["id"], name=message["name"], data=message["data"], attempts=int(fields.get(b"a", b"0")),
        error=fields.get(b"e", b"").decode("utf-8", "replace"),
        traceback=fields.get(b"t", b"").decode("utf-8", "replace"), failed_at=millis / 1000,
        key=message.get("key"),
    )
