"""Redis for ``broadcast.Broadcast`` (``pip install 'hump_listener[redis]'``): live fan-out
on Redis pub/sub, positions and history in a Redis Stream per channel.

``RedisBackend`` is the backend a ``redis://`` or ``rediss://`` URL picks, through
redis-py's asyncio ``Connection`` (one socket each, no pool, no redis-py retries). Its
rules, in the order a message meets them:

1. **One script publishes.** ``PUBLISH_SCRIPT`` runs atomically in Redis: it takes the
   channel's epoch (a new one, and an emptied stream, when the channel's meta hash is
   gone: a Redis restarted without its data, or a channel idle past its meta TTL), bumps
   its offset, ``XADD``s the message to the channel's stream bounded by ``MAXLEN ~ size``
   (by age at read time, rule 3), and ``PUBLISH``es it with its position. So a message is
   in the history exactly when it was fanned out, with the position it was fanned out
   with. The keys' expiries (an idle channel's memory back) are set once per refresh step
   per publisher, each one step longer than its TTL (``PUBLISH_SCRIPT`` says why).
2. **Live fan-out stays on pub/sub.** One subscriber connection per Broadcast, shared by
   its local subscriptions (``SUBSCRIBE`` for a channel's first one, ``UNSUBSCRIBE`` when
   its last one leaves). Pub/sub costs Redis one write per message per subscribed
   connection and keeps no per-reader state; a blocking ``XREAD`` over every subscribed
   stream would cost a command per batch per connection and has to be interrupted to
   change its channel list. The stream is read only to resume and after outages (the
   positions in the pub/sub payload tell a subscriber when it missed something).
   ``benchmarks/broadcast.py`` measures the publish cost of the history beside plain
   pub/sub ("hump, no history").
3. **History reads** (``READ_SCRIPT``): the entries after a position are the newest
   ``last - offset`` of the stream (offsets are contiguous), read with one ``XREVRANGE
   ... COUNT``; a position of another epoch, from the future, or older than what the
   stream still holds (after trimming by count and by age, done exactly at read time) is
   answered "reset" with what the stream holds (the subscriber gets a ``Reset`` first).
4. **Wire format.** A message is one type byte and the message: ``0x00`` + UTF-8 text,
   ``0x01`` + bytes; what pub/sub carries for a positioned message is ``0x02``, the epoch,
   NUL, the offset in decimal, NUL, then that. A payload with any other first byte
   (published by another client, say ``redis-cli``) is delivered as ``bytes``, unchanged
   and without a position.
5. **Outages.** A lost subscriber connection is logged once and retried with backoff, at
   once when a publish finds it down; the new connection subscribes every channel again
   and only once Redis confirmed them all is the backend ``connected`` and publishing
   accepted again (issue 18: a message is never accepted while our own subscribers could
   not receive it); then the Broadcast makes every subscription catch up from the
   history. ``publish`` while down raises ``BroadcastUnavailable`` within the timeouts.

``broadcast.py`` imports this module only for a Redis URL, and this module imports
redis-py only when a backend is made.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
from collections import deque
from collections.abc import Callable, Iterable
from time import monotonic
from typing import TYPE_CHECKING, Any, Protocol

from .broadcast import BroadcastUnavailable, Message, Replay, new_epoch
from .subscription import Position, Publication

if TYPE_CHECKING:
    from .broadcast import Broadcast

__all__ = ["PUBLISH_SCRIPT", "READ_SCRIPT", "RedisBackend", "Script"]

logger = logging.getLogger("hump_listener.error")

#: Seconds ``stop`` waits for the cancelled reader before it closes the connection under it.
STOP_GRACE = 1.0

# Wire format over Redis (rule 4): a type byte before the message.
_TEXT = b"\x00"
_BYTES = b"\x01"
_POSITIONED = b"\x02"


def _encode(message: Message) -> bytes:
    if isinstance(message, str):
        return _TEXT + message.encode("utf-8")
    return _BYTES + message


def _decode(payload: bytes) -> Message:
    kind = payload[:1]
    if kind == _TEXT:
        try:
            return payload[1:].decode("utf-8")
        except UnicodeDecodeError:
            return payload
    if kind == _BYTES:
        return payload[1:]
    return payload


_new_tuple = tuple.__new__


def _decode_publication(channel: str, payload: bytes) -> Publication:
    """A pub/sub message (rule 4): with its position when it has one. The hot path of
    every subscriber: ``_decode`` inlined, named tuples made without their Python-level
    ``__new__``, the epoch's text cached."""
    if payload[:1] == _POSITIONED:
        parts = payload.split(b"\x00", 2)
        if len(parts) == 3 and parts[1].isdigit():
            try:
                epoch = _epoch(parts[0])
            except UnicodeDecodeError:
                return Publication(channel, payload, None)
            data = parts[2]
            kind = data[:1]
            message: Message
            if kind == _TEXT:
                try:
                    message = data[1:].decode("utf-8")
                except UnicodeDecodeError:
                    message = data
            else:
                message = data[1:] if kind == _BYTES else data
            return _new_tuple(Publication, (channel, message, _new_tuple(Position, (epoch, int(parts[1]))), False))
    return Publication(channel, _decode(payload), None)


@functools.lru_cache(maxsize=1024)
def _epoch(header: bytes) -> str:
    """The epoch of a positioned payload's header (``0x02`` + epoch): cached, as a channel
    keeps its epoch, so each message does not decode it again."""
    return header[1:].decode("ascii")


def _bulk(value: str | bytes) -> bytes:
    """One RESP bulk string."""
    data = value.encode("utf-8") if isinstance(value, str) else value
    return b"$%d\r\n%s\r\n" % (len(data), data)


class _Packer:
    """A publish packed in RESP by hand: ``EVALSHA`` of ``PUBLISH_SCRIPT`` (with history),
    or ``PUBLISH`` (without). What is constant for a channel (the keys, the channel, the
    script's other arguments) is packed once (a bounded cache), so a publish only frames
    its message. redis-py's generic packer encodes and frames every argument on every
    call: for the script's 11 that was most of the client-side cost of the history; both
    are packed the same way so that benchmarks/broadcast.py's "history cost" compares
    like with like."""

    #: Channels whose packed head is kept; past this the cache starts afresh.
    CACHED = 1024

    def __init__(self, sha: str, tail: list[str], key: Callable[[str, str], str], refresh_every: float) -> None:
        self._start = b"*12\r\n" + _bulk("EVALSHA") + _bulk(sha) + _bulk("2")
        tail_bytes = b"\r\n" + b"".join(_bulk(arg) for arg in tail)
        self._tail = tail_bytes + _bulk("")
        self._tail_refresh = tail_bytes + _bulk("1")
        self._key = key
        self._refresh_every = refresh_every
        #: Per channel: its packed head and when its keys' expiries are due (monotonic).
        self._heads: dict[str, list[Any]] = {}
        self._plain_heads: dict[str, bytes] = {}

    def _head(self, channel: str) -> list[Any]:
        if len(self._heads) >= self.CACHED:
            self._heads.clear()
        head = self._heads[channel] = [
            self._start + _bulk(self._key("m", channel)) + _bulk(self._key("h", channel)) + _bulk(channel),
            float("-inf"),
        ]
        return head

    def refresh(self, channel: str, now: float) -> bool:
        """Whether this publish is to set the keys' expiries (rule 1)."""
        cached = self._heads.get(channel) or self._head(channel)
        due: bool = now >= cached[1]
        return due

    def refreshed(self, channel: str, now: float) -> None:
        """A publish that set the expiries succeeded: the next is due in ``refresh_every``."""
        cached = self._heads.get(channel)
        if cached is not None:
            cached[1] = now + self._refresh_every

    def _plain_head(self, channel: str) -> bytes:
        if len(self._plain_heads) >= self.CACHED:
            self._plain_heads.clear()
        head = self._plain_heads[channel] = b"*3\r\n" + _bulk("PUBLISH") + _bulk(channel)
        return head

    def publish(self, channel: str, message: Message, refresh: bool) -> list[bytes]:
        """``EVALSHA`` for ``message`` (wire format of rule 4), as parts to send."""
        head = (self._heads.get(channel) or self._head(channel))[0]
        tail = self._tail_refresh if refresh else self._tail
        if isinstance(message, str):
            data = message.encode("utf-8")
            return [head, b"$%d\r\n\x00" % (len(data) + 1), data, tail]
        return [head, b"$%d\r\n\x01" % (len(message) + 1), message, tail]

    def plain(self, channel: str, message: Message) -> list[bytes]:
        """``PUBLISH`` of ``message`` (no position), as parts to send."""
        head = self._plain_heads.get(channel) or self._plain_head(channel)
        if isinstance(message, str):
            data = message.encode("utf-8")
            return [head, b"$%d\r\n\x00" % (len(data) + 1), data, b"\r\n"]
        return [head, b"$%d\r\n\x01" % (len(message) + 1), message, b"\r\n"]


class Script:
    """A Lua script run with ``EVALSHA`` (``EVAL`` once when Redis does not know it)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()


#: Rule 1. KEYS: meta hash, stream. ARGV: channel, payload, epoch salt, history size,
#: stream expiry (ms), meta expiry (ms), refresh ("1" or ""). Returns the receivers. A new
#: epoch is Redis' clock in hex (seconds and microseconds) and the publisher's salt: never
#: the same twice for a channel. Age trimming happens exactly at read time (READ_SCRIPT);
#: the keys' expiry frees an idle channel. The expiries are set when a publisher asks
#: (``refresh``: once per ``RedisBackend.refresh_every`` per channel, the expiries being
#: that much longer than the TTLs) and whenever a new epoch starts: two PEXPIREs per
#: message were ~40 % of the script's time in Redis (8.1 -> 5.0 us per call).
PUBLISH_SCRIPT = Script("""
local meta, stream = KEYS[1], KEYS[2]
local epoch = redis.call('HGET', meta, 'e')
local refresh = ARGV[7] ~= ''
if not epoch then
  local now = redis.call('TIME')
  epoch = string.format('%x%05x', tonumber(now[1]), tonumber(now[2])) .. ARGV[3]
  redis.call('DEL', stream)
  redis.call('HSET', meta, 'e', epoch, 'o', 0)
  refresh = true
end
local offset = redis.call('HINCRBY', meta, 'o', 1)
redis.call('XADD', stream, 'MAXLEN', '~', ARGV[4], '*', 'o', offset, 'd', ARGV[2])
if refresh then
  redis.call('PEXPIRE', stream, ARGV[5])
  redis.call('PEXPIRE', meta, ARGV[6])
end
return redis.call('PUBLISH', ARGV[1], '\2' .. epoch .. '\0' .. offset .. '\0' .. ARGV[2])
""")

#: Rule 3. KEYS: meta hash, stream. ARGV: epoch ('' for the head only), offset, epoch if
#: new, history ttl (ms), meta ttl (ms), history size. Returns {epoch, last} (the head), or
#: {epoch, last, resumed, first offset, data...}: resumed (1), the messages after the
#: offset; else (0) all the stream still holds. Flat, oldest first: one bulk string per
#: message is the cheapest reply to parse (offsets are contiguous: the first is enough).
READ_SCRIPT = Script("""
local meta, stream = KEYS[1], KEYS[2]
local epoch = redis.call('HGET', meta, 'e')
if not epoch then
  epoch = ARGV[3]
  redis.call('DEL', stream)
  redis.call('HSET', meta, 'e', epoch, 'o', 0)
  redis.call('PEXPIRE', meta, ARGV[5])
end
local last = tonumber(redis.call('HGET', meta, 'o'))
if ARGV[1] == '' then return {epoch, last} end
local since = tonumber(ARGV[2])
local now = redis.call('TIME')
local oldest = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(ARGV[4])
redis.call('XTRIM', stream, 'MINID', string.format('%d', oldest))
local missed = last - since
-- XADD trims by whole nodes (MAXLEN ~): the history is the newest `size` entries exactly
local held = math.min(redis.call('XLEN', stream), tonumber(ARGV[6]))
local resumed, count = 1, missed
if ARGV[1] ~= epoch or missed < 0 or missed > held then resumed, count = 0, held end
local out = {epoch, last, resumed, 0}
if count == 0 then return out end
local entries = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', count)
out[4] = tonumber(entries[#entries][2][2])
for i = #entries, 1, -1 do out[#out + 1] = entries[i][2][4] end
return out
""")


class _RedisConnection(Protocol):
    """The part of ``redis.asyncio.Connection`` we use (one socket, no pool, no retries)."""

    @property
    def is_connected(self) -> bool: ...

    async def connect(self) -> None: ...

    async def disconnect(self, nowait: bool = False) -> None: ...

    async def send_command(self, *args: Any, **kwargs: Any) -> None: ...

    async def send_packed_command(self, command: list[bytes], check_health: bool = True) -> None: ...

    async def read_response(self, *, timeout: float | None = None, disconnect_on_error: bool = True) -> Any: ...


def _redis() -> Any:
    """``redis.asyncio``, or an ImportError that names the extra to install."""
    try:
        import redis.asyncio
        import redis.exceptions
    except ImportError as exc:
        raise ImportError(
            "Broadcast('redis://...') needs the redis package: pip install redis"
        ) from exc
    return redis


class RedisBackend:
    """Redis pub/sub for live messages, one stream per channel for history (rules 1-5).

    State by lifetime: configuration for the object's life; connections, the reader task
    and the confirmation queues per start/stop.
    """

    #: Longest time between two refreshes of a channel's expiries by one publisher,
    #: seconds (``history_ttl / 10`` when that is shorter).
    REFRESH_EVERY = 1.0

    def __init__(
        self,
        broadcast: Broadcast,
        url: str,
        *,
        timeout: float,
        backoff_initial: float,
        backoff_max: float,
        health_check_interval: float,
        history_size: int = 0,
        history_ttl: float = 300.0,
        meta_ttl: float = 86400.0,
        key_prefix: str = "hump:",
    ) -> None:
        redis = _redis()
        self._redis = redis
        options: dict[str, Any] = dict(redis.asyncio.connection.parse_url(url))
        self._connection_class: Callable[..., _RedisConnection] = options.pop(
            "connection_class", redis.asyncio.Connection
        )
        # RESP2 always: pub/sub replies are then plain arrays; socket timeouts bound every
        # connect and reply (the subscriber's reads set their own, see _read).
        options.update(socket_connect_timeout=timeout, socket_timeout=timeout, protocol=2)
        self._options = options
        self._address = f"{options.get('host', 'localhost')}:{options.get('port', 6379)}/{options.get('db', 0)}"
        self._broadcast = broadcast
        self.timeout = timeout
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._health_check_interval = health_check_interval
        self._history_size = history_size
        self._history_ms = str(max(1, round(history_ttl * 1000)))
        self._meta_ms = str(max(1, round(meta_ttl * 1000)))
        #: A publisher sets a channel's expiries at most this often (rule 1), each that
        #: much longer than the TTL, so that what it published since its last refresh
        #: stays for the whole TTL.
        self.refresh_every = min(self.REFRESH_EVERY, history_ttl / 10)
        self._expiries = [
            str(max(1, round((ttl + self.refresh_every) * 1000))) for ttl in (history_ttl, meta_ttl)
        ]
        self.key_prefix = key_prefix
        #: Ends the epochs this publisher starts (rule 1).
        self._salt = new_epoch()[:4]
        self._packer = _Packer(
            PUBLISH_SCRIPT.sha, [self._salt, str(history_size), *self._expiries], self.key, self.refresh_every
        )
        #: Errors that mean "the connection is gone or Redis is not answering".
        self._lost_errors: tuple[type[BaseException], ...] = (
            redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError,
        )
        # Per start/stop
        self._channels: set[str] = set()  # channels with local subscribers
        self._commands: _RedisConnection | None = None  # publish, history reads, presence
        self._command_lock = asyncio.Lock()
        self._command_failures = 0  # bumped on each failure: queued commands fail fast
        self._subscriber: _RedisConnection | None = None  # None while down or resubscribing
        self._subscriber_lock = asyncio.Lock()  # keeps SUBSCRIBE/UNSUBSCRIBE in call order
        #: One future per SUBSCRIBE sent, per channel, resolved by Redis' confirmations
        #: in order (so subscribe/unsubscribe/subscribe cannot be confirmed by the first).
        self._confirmations: dict[bytes, deque[asyncio.Future[None]]] = {}
        self._latest: dict[str, asyncio.Future[None]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._kick = asyncio.Event()  # a publish found us down: retry now
        self._down = False
        #: ``stop`` is ending the reader: ``_run`` neither reads on nor reconnects.
        self._stopping = False

    @property
    def connected(self) -> bool:
        return self._subscriber is not None

    def _connection(self) -> _RedisConnection:
        return self._connection_class(**self._options)

    def key(self, kind: str, channel: str) -> str:
        """The Redis key of ``channel``'s ``kind`` (``m`` meta, ``h`` history stream...)."""
        return f"{self.key_prefix}{kind}:{channel}"

    async def start(self) -> None:
        self._command_lock = asyncio.Lock()
        self._subscriber_lock = asyncio.Lock()
        self._kick = asyncio.Event()
        self._down = False
        commands = self._connection()
        subscriber = self._connection()
        try:
            await commands.connect()
            await subscriber.connect()
        except BaseException as exc:
            await commands.disconnect(nowait=True)
            await subscriber.disconnect(nowait=True)
            if isinstance(exc, self._lost_errors):
                raise BroadcastUnavailable(f"Redis at {self._address} is unreachable: {exc}") from exc
            raise
        self._commands, self._subscriber = commands, subscriber
        self._reader = asyncio.get_running_loop().create_task(self._run(subscriber), name="hump broadcast reader")
        self._reader.add_done_callback(self._reader_done)

    async def stop(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            await self._end_reader(reader)
        self._release_confirmations()
        self._channels.clear()
        self._latest.clear()
        for conn in (self._subscriber, self._commands):
            if conn is not None:
                await conn.disconnect(nowait=True)
        self._subscriber = self._commands = None

    async def _end_reader(self, reader: asyncio.Task[None]) -> None:
        """Cancel the reader task and wait for it to end. A cancellation can be lost inside
        redis-py's ``read_response`` (seen under uvloop after a Redis restart, about one
        stop in seven: the task stays "cancelling" and reads on), so after
        ``STOP_GRACE`` seconds the connection under it is closed, which ends any read, and
        it is cancelled again; ``_stopping`` keeps ``_run`` from reconnecting."""
        self._stopping = True
        try:
            while True:
                reader.cancel()
                done, _ = await asyncio.wait({reader}, timeout=STOP_GRACE)
                if done:
                    break
                logger.warning("broadcast: the Redis reader did not stop when cancelled; closing its connection")
                subscriber = self._subscriber
                if subscriber is not None:
                    with contextlib.suppress(Exception):
                        await subscriber.disconnect(nowait=True)
            if not reader.cancelled():
                reader.exception()  # retrieved (logged by _reader_done)
        finally:
            self._stopping = False

    def _reader_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error("broadcast: the Redis reader task failed", exc_info=task.exception())

    # -- commands: publish, history, presence ------------------------------------------------

    async def command(self, *args: Any, what: str = "run a command", packed: list[bytes] | None = None) -> Any:
        """One command on the command connection, in call order; ``BroadcastUnavailable``
        when Redis cannot be reached (queued commands then fail at once too). A connection
        from before an outage is found dead on first use and the command is sent once more
        on a fresh one; never after a timeout: Redis may have run the first. ``packed``:
        the command already in RESP (``_Packer``), sent instead of ``args``."""
        failures = self._command_failures
        async with self._command_lock:
            if self._command_failures != failures:
                raise BroadcastUnavailable(f"Redis at {self._address} is unreachable (a command just failed)")
            conn = self._commands
            if conn is None:
                raise BroadcastUnavailable("the Broadcast is stopped")
            for fresh in (not conn.is_connected, True):
                try:
                    if not conn.is_connected:
                        await conn.connect()
                    if packed is None:
                        await conn.send_command(*args, check_health=False)
                    else:
                        await conn.send_packed_command(packed, check_health=False)
                    return await conn.read_response()
                except self._lost_errors as exc:
                    await conn.disconnect(nowait=True)
                    if fresh or isinstance(exc, self._redis.exceptions.TimeoutError | TimeoutError):
                        self._command_failures += 1
                        raise BroadcastUnavailable(f"cannot {what} on Redis at {self._address}: {exc}") from exc
            raise AssertionError("unreachable")  # pragma: no cover

    async def run_script(self, script: Script, keys: list[str], args: list[Any], what: str) -> Any:
        """``EVALSHA``, and ``EVAL`` when Redis does not have the script (restarted)."""
        try:
            return await self.command("EVALSHA", script.sha, len(keys), *keys, *args, what=what)
        except self._redis.exceptions.NoScriptError:
            return await self.command("EVAL", script.source, len(keys), *keys, *args, what=what)

    async def publish(self, channel: str, message: Message) -> int:
        if self._subscriber is None:
            # Rule 5: not while our own subscriptions are not in place; try again now.
            self._kick.set()
            raise BroadcastUnavailable(
                f"cannot publish to {channel!r}: not connected to Redis at {self._address} (reconnecting)"
            )
        if not self._history_size:
            packed = self._packer.plain(channel, message)
            published: int = await self.command(packed=packed, what=f"publish to {channel!r}")
            return published
        packer = self._packer
        now = monotonic()
        refresh = packer.refresh(channel, now)
        try:
            packed = packer.publish(channel, message, refresh)
            receivers: int = await self.command(packed=packed, what=f"publish to {channel!r}")
        except self._redis.exceptions.NoScriptError:  # a Redis restarted: EVAL loads the script again
            receivers = await self.command(
                "EVAL", PUBLISH_SCRIPT.source, 2, self.key("m", channel), self.key("h", channel), channel,
                _encode(message), self._salt, self._history_size, *self._expiries, "1",
                what=f"publish to {channel!r}",
            )
            refresh = True
        if refresh:
            packer.refreshed(channel, now)  # only once Redis has set them
        return receivers

    async def read(self, channel: str, since: Position | None) -> Replay:
        epoch, offset = ("", 0) if since is None else (since.epoch, since.offset)
        reply = await self.run_script(
            READ_SCRIPT, [self.key("m", channel), self.key("h", channel)],
            [epoch, offset, new_epoch(), self._history_ms, self._meta_ms, max(1, self._history_size)],
            f"read the history of {channel!r}",
        )
        head = Position(reply[0].decode("ascii"), int(reply[1]))
        if since is None:
            return head, [], True
        resumed, first, data = bool(reply[2]), int(reply[3]), reply[4:]
        epoch = head.epoch
        entries = [
            Publication(channel, _decode(payload), Position(epoch, offset), True)
            for offset, payload in enumerate(data, first)
        ]
        if data and first + len(data) - 1 != head.offset:
            return head, [], False  # never, with contiguous offsets: then it is not resumable
        if resumed and data and first != since.offset + 1:
            resumed = False
        return head, entries, resumed

    # -- subscribing -----------------------------------------------------------------------

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)
        async with self._subscriber_lock:
            conn = self._subscriber
            if conn is None:
                return  # down: subscribed again on reconnect (rule 5)
            try:
                (future,) = await self._send_subscribe(conn, [channel])
            except self._lost_errors:
                return  # the reader sees the loss and reconnects
        await self._confirmed(future)

    async def ready(self, channel: str) -> None:
        future = self._latest.get(channel)
        if future is not None:
            await self._confirmed(future)

    async def _confirmed(self, future: asyncio.Future[None]) -> None:
        # Bounded: if Redis does not confirm in time the subscription still stands and the
        # health check decides whether the connection is lost.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(future), self.timeout)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        self._latest.pop(channel, None)
        async with self._subscriber_lock:
            conn = self._subscriber
            if conn is None:
                return
            with contextlib.suppress(*self._lost_errors):  # nothing to undo on a lost connection
                await conn.send_command("UNSUBSCRIBE", channel, check_health=False)

    async def _send_subscribe(self, conn: _RedisConnection, channels: Iterable[str]) -> list[asyncio.Future[None]]:
        names = list(channels)
        loop = asyncio.get_running_loop()
        futures = []
        for name in names:
            future: asyncio.Future[None] = loop.create_future()
            self._confirmations.setdefault(name.encode("utf-8"), deque()).append(future)
            self._latest[name] = future
            futures.append(future)
        await conn.send_command("SUBSCRIBE", *names, check_health=False)
        return futures

    def _confirm(self, channel: bytes) -> None:
        pending = self._confirmations.get(channel)
        if pending:
            future = pending.popleft()
            if not pending:
                del self._confirmations[channel]
            if not future.done():
                future.set_result(None)

    def _release_confirmations(self) -> None:
        # A lost connection will confirm nothing: let waiting subscribers go on (they are
        # registered, and subscribed again on reconnect).
        for pending in self._confirmations.values():
            for future in pending:
                if not future.done():
                    future.set_result(None)
        self._confirmations.clear()

    # -- the reader task -------------------------------------------------------------------

    async def _run(self, conn: _RedisConnection | None) -> None:
        """Read and fan out messages; on a lost connection, reconnect with backoff."""
        delay = self._backoff_initial
        while not self._stopping:
            if conn is None:
                try:
                    conn = await self._reconnect()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self._lost(exc)
                    await self._pause(delay)
                    delay = min(delay * 2, self._backoff_max)
                    continue
            up_since = monotonic()
            try:
                await self._read(conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._stopping:
                    return  # stop() closed the connection under the read: not an outage
                self._lost(exc)
            self._subscriber = None
            self._release_confirmations()
            with contextlib.suppress(Exception):  # closing a broken socket: nothing to report
                await conn.disconnect(nowait=True)
            conn = None
            # A connection that stayed up a while starts the backoff afresh; one that
            # drops at once (a server refusing us) keeps backing off.
            if monotonic() - up_since > self._backoff_max:
                delay = self._backoff_initial
            await self._pause(delay)
            delay = min(delay * 2, self._backoff_max)

    async def _pause(self, delay: float) -> None:
        """The backoff delay, cut short when a publish finds us down (rule 5)."""
        self._kick.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._kick.wait(), delay)

    async def _reconnect(self) -> _RedisConnection:
        conn = self._connection()
        try:
            await conn.connect()
            async with self._subscriber_lock:
                channels = sorted(self._channels)
                futures = await self._send_subscribe(conn, channels) if channels else []
            # Connected only once Redis confirmed every channel (rule 5); messages of the
            # channels confirmed first are delivered meanwhile.
            while not all(future.done() for future in futures):
                reply = await conn.read_response(timeout=self.timeout, disconnect_on_error=False)
                if reply is None:
                    raise self._redis.exceptions.TimeoutError("Redis did not confirm the subscriptions in time")
                self._handle(reply)
            async with self._subscriber_lock:
                # Channels subscribed or left while we waited: bring the new connection in line.
                now = self._channels
                added = sorted(now.difference(channels))
                if added:
                    await self._send_subscribe(conn, added)
                gone = sorted(set(channels).difference(now))
                if gone:
                    await conn.send_command("UNSUBSCRIBE", *gone, check_health=False)
                self._subscriber = conn
        except BaseException:
            await conn.disconnect(nowait=True)
            raise
        if self._down:
            self._down = False
            logger.info(
                "broadcast: reconnected to Redis at %s; %d channel(s) subscribed again", self._address, len(channels)
            )
        self._broadcast._resubscribed(sorted(self._channels))
        return conn

    def _lost(self, exc: Exception) -> None:
        if isinstance(exc, self._lost_errors):
            if not self._down:
                self._down = True
                logger.warning(
                    "broadcast: lost the connection to Redis at %s (%s); reconnecting (every %.1f s at most); "
                    "publishing is refused until then, subscribers catch up from the history once back",
                    self._address, str(exc) or type(exc).__name__, self._backoff_max,
                )
        else:  # a bug, not an outage: say so loudly, then carry on as after a loss
            self._down = True
            logger.error("broadcast: the Redis reader failed; reconnecting", exc_info=exc)

    async def _read(self, conn: _RedisConnection) -> None:
        ping_sent = False
        while not self._stopping:
            timeout = self.timeout if ping_sent else self._health_check_interval
            # With an explicit timeout, redis-py returns None when it expires (its parser
            # keeps partial input across the cancellation, as PubSub.get_message relies on).
            reply = await conn.read_response(timeout=timeout, disconnect_on_error=False)
            if reply is None:
                if ping_sent:
                    raise self._redis.exceptions.TimeoutError(f"no answer to PING within {self.timeout} s")
                async with self._subscriber_lock:
                    await conn.send_command("PING", check_health=False)
                ping_sent = True
                continue
            ping_sent = False  # any traffic shows the connection is alive
            self._handle(reply)

    def _handle(self, reply: Any) -> None:
        if type(reply) is list:
            kind = reply[0]
            if kind == b"message":
                channel = reply[1].decode("utf-8", "replace")
                self._broadcast._deliver(channel, _decode_publication(channel, reply[2]))
            elif kind == b"subscribe":
                self._confirm(reply[1])
        # b"unsubscribe" and the PING answers ([b"pong", b""] or b"PONG") need nothing
