"""Channels: ``Broadcast`` hands every message published on a channel to every current
subscriber of that channel, within one process (the memory backend, the default) or
across processes and hosts (Redis, ``pip install 'hump_listener[redis]'``), and keeps a
bounded history so that a subscriber that was away resumes with nothing missing::

    broadcast = Broadcast()                            # or Broadcast("redis://127.0.0.1:6379/0")
    await broadcast.publish("chat", "hello")           # str or bytes; publish_json(obj) too
    async with broadcast.subscribe("chat", since=last_id) as sub:
        async for message in sub:                      # what was published, same type
            last_id = sub.position                     # where to resume from later
            ...

The policy choices, in the order a message meets them:

1. **Messages** are ``str`` or ``bytes`` and come out as they went in (``publish_json``
   sends compact JSON text; ``sub.get_json()`` / ``sub.iter_json()`` parse it back). A
   message larger than ``max_message_size`` (``DEFAULT_MAX_MESSAGE_SIZE``, 1 MiB of UTF-8
   or bytes) is refused with ``MessageTooBig`` before it leaves the process: Redis cuts a
   pub/sub subscriber whose output buffer passes 32 MB, deaf until it reconnects.
2. **Positions and history.** Each published message gets a ``Position`` (subscription.py):
   an offset that grows by one within an epoch; the epoch changes whenever the history was
   lost. Each channel keeps its last ``history_size`` messages (``DEFAULT_HISTORY_SIZE``),
   none older than ``history_ttl`` seconds (``DEFAULT_HISTORY_TTL``; the memory backend
   drops one within ``history_ttl / 100``, at most 1 s, after that); the epoch and offset
   of an idle channel are kept for ``HISTORY_META_TTL`` (a day), after which its positions
   cannot be resumed. ``history_size=0`` turns history and positions off: delivery is then
   at most once, as plain pub/sub.
3. **Resume.** ``subscribe(channel, since=position)`` delivers exactly the messages after
   ``position``, then the live ones: no gap and no duplicate across the switch, also while
   messages are being published (subscribed first, the history read next, live messages
   held meanwhile and de-duplicated by offset). A position older than the history, of
   another epoch, or not a position at all gives one ``Reset`` item, then what the history
   still holds, then live messages: the Reset's position is the one before the oldest
   message kept (the channel's current position when none is kept), so only what the
   history lost is skipped, and it is never skipped silently. Without ``since`` a subscription starts at the
   channel's current position (``sub.position``), so resuming from it later misses nothing.
4. **Subscribers are bounded** (subscription.py rule 2): ``max_queue`` live messages each
   (``DEFAULT_MAX_QUEUE``); when full, the ``overflow`` policy drops the oldest (the
   default), drops the newest, or closes the subscription (``sub.overflowed``; the client
   resumes from ``sub.position``). Publishing never waits for a subscriber.
5. **One Redis subscriber connection per Broadcast**, shared by all local subscribers,
   and one command connection (publish, history reads). Live fan-out stays on Redis
   pub/sub; history is a Redis Stream per channel, written by the same script that
   publishes (broadcast_redis.py says why and what was measured).
6. **Outages lose nothing that was accepted.** ``publish`` raises ``BroadcastUnavailable``
   while Redis cannot be reached *or while this process's subscriber connection is not
   subscribed again* (so a message is never accepted while our own subscribers cannot
   receive it); reconnection retries with backoff (``BACKOFF_INITIAL`` doubling to
   ``BACKOFF_MAX``), at once when a publish finds it down. Once back, every channel is
   subscribed again and every subscription catches up from the history (a Redis restarted
   without its data gives each one ``Reset``). A silent connection is found by a PING
   after ``HEALTH_CHECK_INTERVAL`` seconds without traffic. ``connected`` says whether
   publishing is possible now (a ``/readyz`` route reads it).
7. **Lifecycle.** ``start()`` connects (``BroadcastUnavailable`` when Redis cannot be
   reached: a wrong URL shows at deploy time); ``stop()`` cancels its tasks, closes the
   connections and ends every open subscription (its iteration stops after the messages
   already queued). Both are idempotent, ``async with Broadcast(...)`` calls them, a first
   ``publish`` or ``subscribe`` starts lazily, and a stopped Broadcast can be started
   again (the memory backend then starts new epochs: its history went with the stop).
8. **One event loop.** A Broadcast serves the loop that started it; from another thread
   use ``asyncio.run_coroutine_threadsafe(broadcast.publish(...), loop)``.

Presence (who is in a channel, cluster-wide) is ``broadcast.presence`` (presence.py). The
memory backend is per ``Broadcast`` instance: with ``--workers N`` and no Redis each
worker is its own island. Framework side: stdlib only; the Redis backend is
``broadcast_redis``, imported (with ``redis.asyncio``) only for a Redis URL.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections import deque
from collections.abc import Callable
from time import monotonic
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from .subscription import (
    OVERFLOW_POLICIES,
    Item,
    Message,
    Overflow,
    Position,
    Publication,
    Reset,
    Subscription,
    SubscriptionClosed,
)

if TYPE_CHECKING:
    from .presence import Presence

__all__ = [
    "BACKOFF_INITIAL",
    "BACKOFF_MAX",
    "DEFAULT_HISTORY_SIZE",
    "DEFAULT_HISTORY_TTL",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_MAX_QUEUE",
    "DEFAULT_TIMEOUT",
    "HEALTH_CHECK_INTERVAL",
    "HISTORY_META_TTL",
    "Broadcast",
    "BroadcastUnavailable",
    "Item",
    "Message",
    "MessageTooBig",
    "Overflow",
    "Position",
    "Publication",
    "Reset",
    "Subscription",
    "SubscriptionClosed",
]

logger = logging.getLogger("hump_listener.error")

#: Live messages a subscription holds for a subscriber that has not taken them yet
#: (policy 4). websockets queues 16 incoming frames per connection and channels_redis 100
#: messages per channel; chat and notification messages are small, so 1000 rides out a
#: slow client or a GC pause for well under a MiB.
DEFAULT_MAX_QUEUE = 1000
#: Seconds for connecting to Redis and for one command's reply. Jedis' default timeout is
#: 2 s, redis-rb's 1 s; redis-py has none (and retries 10 times), which is how a publish
#: hangs.
DEFAULT_TIMEOUT = 2.0
#: Reconnection delays: the first retry after 0.1 s, doubling up to 2 s (and at once when
#: a publish finds the connection down), so that every instance is subscribed again within
#: a few seconds of Redis coming back; a flapping server is retried no more often than
#: every 2 s and logs at most one line per outage. gRPC caps at 120 s, for remote services.
BACKOFF_INITIAL = 0.1
BACKOFF_MAX = 2.0
#: Seconds of silence on the subscriber connection before a PING checks it is alive; no
#: answer within ``DEFAULT_TIMEOUT`` counts as a lost connection. websockets pings every
#: 20 s; redis-py's PubSub health checks are off unless asked for.
HEALTH_CHECK_INTERVAL = 20.0
#: Messages of history per channel. Centrifugo's examples use 10 to 100, Litestar's
#: history is "the last N"; 1000 covers a two-second outage at 500 messages a second on
#: one channel, or a chat room's last hour, for ~0.3 MB of Redis memory per busy channel
#: (200-byte messages). Size it to (messages per second) x (longest outage to survive).
DEFAULT_HISTORY_SIZE = 1000
#: Seconds a message stays in the history: a laptop lid closed over a coffee, a train
#: tunnel, a rolling restart. Centrifugo's examples use 300 s.
DEFAULT_HISTORY_TTL = 300.0
#: Seconds an idle channel keeps its epoch and offset, so that a client that had seen
#: every message of a channel quiet since resumes without a reset (Centrifugo keeps its
#: history meta 30 days by default; a day bounds the keys idle channels leave in Redis).
HISTORY_META_TTL = 86400.0
#: Largest message ``publish`` accepts, in bytes (UTF-8 for text): the WebSocket side's
#: ``ws_max_message_size`` is 1 MiB too; Redis disconnects a pub/sub subscriber whose
#: output buffer passes 32 MB, so one fat message must not be able to approach that.
DEFAULT_MAX_MESSAGE_SIZE = 1024 * 1024

#: Same options as the framework's JSON responses (models.dump_json): compact, UTF-8,
#: no NaN. Built once: json.dumps with options builds an encoder per call.
_JSON_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class BroadcastUnavailable(ConnectionError):
    """The broadcast backend (Redis) cannot be reached, or this process is not subscribed
    again yet after an outage: raised by ``publish`` and ``start`` instead of waiting, so
    a message is never accepted and lost. A ``ConnectionError`` (``except OSError`` sees it)."""


class MessageTooBig(ValueError):
    """``publish`` of a message larger than ``max_message_size``: refused locally."""


def new_epoch() -> str:
    """A fresh epoch: 8 random hex digits (never ``"?"``, the epoch of a non-position)."""
    return secrets.token_hex(4)


#: What a history read returns: the channel's current position, the publications (replayed)
#: and whether the asked position was resumed: then they are the ones after it; else they
#: are all the history still holds (oldest first) and the subscriber gets a ``Reset``.
Replay = tuple[Position, list[Publication], bool]


# -- backends -----------------------------------------------------------------------------


class _Backend(Protocol):
    """What a Broadcast needs from a transport; it calls ``Broadcast._deliver`` for each
    message that arrives and ``Broadcast._resubscribed`` after an outage."""

    @property
    def connected(self) -> bool: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, channel: str, message: Message) -> int: ...

    async def read(self, channel: str, since: Position | None) -> Replay:
        """The history after ``since`` (``None``: just the current position)."""

    async def subscribe(self, channel: str) -> None:
        """The first local subscriber of ``channel`` arrived; return once subscribed."""

    async def ready(self, channel: str) -> None:
        """Another local subscriber arrived: return once ``channel`` is subscribed."""

    async def unsubscribe(self, channel: str) -> None:
        """The last local subscriber of ``channel`` left."""


_new_tuple = tuple.__new__


class _MemoryChannel:
    """One channel's history in memory: its epoch, last offset and recent publications,
    and when they were published, to within the backend's clock step: ``stamps`` holds
    ``(time, offset)`` for the first message published at or after ``next_stamp``."""

    __slots__ = ("entries", "epoch", "last", "next_stamp", "stamps", "touched")

    def __init__(self, size: int) -> None:
        self.epoch = new_epoch()
        self.last = 0
        self.entries: deque[Publication] = deque(maxlen=size)
        self.stamps: deque[tuple[float, int]] = deque()
        self.next_stamp = float("-inf")
        self.touched = monotonic()


class _MemoryBackend:
    """In-process: ``publish`` records the message and delivers it to the local queues
    before it returns. State by lifetime: the history lives from start to stop (a restart
    is a loss of history: new epochs).

    The age of the history is kept to within ``clock_step`` seconds (``history_ttl / 100``,
    at most ``CLOCK_STEP``): a publish writes the time down only when the clock moved
    that far since the last note, not a time per message, and a message is dropped once
    it is surely older than the TTL (so at most ``clock_step`` later than exactly)."""

    #: Longest clock step, seconds.
    CLOCK_STEP = 1.0
    #: Seconds between two sweeps of idle channels (their memory is given back).
    SWEEP_EVERY = 10.0

    def __init__(self, broadcast: Broadcast, history_size: int, history_ttl: float, meta_ttl: float) -> None:
        self._broadcast = broadcast
        self._size = history_size
        self._ttl = history_ttl
        self._meta_ttl = meta_ttl
        self.clock_step = min(self.CLOCK_STEP, history_ttl / 100)
        self._channels: dict[str, _MemoryChannel] = {}
        self._next_sweep = float("-inf")

    @property
    def connected(self) -> bool:
        return True

    async def start(self) -> None:
        self._channels = {}

    async def stop(self) -> None:
        self._channels = {}

    def _channel(self, channel: str) -> _MemoryChannel:
        state = self._channels.get(channel)
        if state is None:
            state = self._channels[channel] = _MemoryChannel(self._size)
        return state

    async def publish(self, channel: str, message: Message) -> int:
        if not self._size:
            return self._broadcast._deliver(channel, Publication(channel, message, None))
        state = self._channels.get(channel) or self._channel(channel)
        state.last = last = state.last + 1
        # The hot path: named tuples made without their Python-level __new__, the time
        # written down once per clock step.
        pub = _new_tuple(Publication, (channel, message, _new_tuple(Position, (state.epoch, last)), False))
        state.entries.append(pub)
        now = monotonic()
        if now >= state.next_stamp:
            self._stamp(state, now, last)
        return self._broadcast._deliver(channel, pub)

    def _stamp(self, state: _MemoryChannel, now: float, offset: int) -> None:
        stamps = state.stamps
        stamps.append((now, offset))
        state.next_stamp = now + self.clock_step
        state.touched = now
        first = state.last - len(state.entries) + 1  # the oldest message kept
        while len(stamps) > 1 and stamps[1][1] <= first:
            stamps.popleft()  # its messages are gone (the history's size): so is its time
        if now >= self._next_sweep:
            self._sweep(now)

    def _trim(self, state: _MemoryChannel, now: float) -> None:
        """Drop the messages surely older than the TTL: those noted before ``now - ttl -
        clock_step`` and before the next note."""
        stamps, entries = state.stamps, state.entries
        cutoff = now - self._ttl - self.clock_step
        end = None
        while stamps and stamps[0][0] <= cutoff:
            stamps.popleft()
            end = stamps[0][1] if stamps else state.last + 1
        if end is not None:
            for _ in range(min(len(entries), end - (state.last - len(entries) + 1))):
                entries.popleft()

    async def read(self, channel: str, since: Position | None) -> Replay:
        if not self._size:
            raise ValueError("this Broadcast keeps no history (history_size=0)")
        state = self._channel(channel)
        head = Position(state.epoch, state.last)
        if since is None:
            return head, [], True
        entries = state.entries
        self._trim(state, monotonic())
        if since.epoch != state.epoch or since.offset > state.last or state.last - since.offset > len(entries):
            return head, [Publication(channel, pub.data, pub.position, True) for pub in entries], False
        missed = state.last - since.offset
        start = len(entries) - missed
        return head, [Publication(channel, pub.data, pub.position, True) for pub in list(entries)[start:]], True

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + self.SWEEP_EVERY
        for name, state in list(self._channels.items()):
            if now - state.touched > self._meta_ttl:
                del self._channels[name]
            else:
                self._trim(state, now)

    async def subscribe(self, channel: str) -> None:
        pass

    async def ready(self, channel: str) -> None:
        pass

    async def unsubscribe(self, channel: str) -> None:
        pass


# -- the public object --------------------------------------------------------------------


class Broadcast:
    """Publish/subscribe on named channels with positions, history and resume; see the
    module docstring for the policies.

    ``url``: ``None`` or ``"memory://"`` for in-process fan-out; ``"redis://host:port/db"``
    (``"rediss://"`` for TLS; query options go to redis-py) for Redis, which needs
    ``pip install 'hump_listener[redis]'``. ``max_queue`` and ``overflow`` bound each
    subscription (``subscribe()`` overrides them for one); ``history_size`` /
    ``history_ttl`` bound each channel's history (``history_size=0``: none, no positions);
    ``max_message_size`` bounds a message; ``timeout`` bounds connecting and each Redis
    reply; ``backoff_initial`` / ``backoff_max`` pace reconnection;
    ``health_check_interval`` is the silence before a PING; ``key_prefix`` starts every
    Redis key this Broadcast writes; ``events`` (the app's ``trigger_event``) receives the
    presence events.
    """

    SCHEMES = ("memory", "redis", "rediss")

    def __init__(
        self,
        url: str | None = None,
        *,
        max_queue: int = DEFAULT_MAX_QUEUE,
        overflow: Overflow = "drop_oldest",
        history_size: int = DEFAULT_HISTORY_SIZE,
        history_ttl: float = DEFAULT_HISTORY_TTL,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        timeout: float = DEFAULT_TIMEOUT,
        backoff_initial: float = BACKOFF_INITIAL,
        backoff_max: float = BACKOFF_MAX,
        health_check_interval: float = HEALTH_CHECK_INTERVAL,
        key_prefix: str = "hump:",
        events: Callable[..., Any] | None = None,
    ) -> None:
        if max_queue < 1:
            raise ValueError(f"max_queue must be at least 1, got {max_queue!r}")
        _check_overflow(overflow)
        if history_size < 0 or history_ttl <= 0:
            raise ValueError(f"history_size must be >= 0 and history_ttl > 0, got {history_size!r}, {history_ttl!r}")
        if max_message_size < 1:
            raise ValueError(f"max_message_size must be at least 1, got {max_message_size!r}")
        scheme = urlsplit(url).scheme.lower() if url else "memory"
        self.url = url or "memory://"
        self.max_queue = max_queue
        self.overflow: Overflow = overflow
        self.history_size = history_size
        self.history_ttl = history_ttl
        self.max_message_size = max_message_size
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        #: Receives presence events: called as ``events(name, data={...})``.
        self.events = events
        meta_ttl = max(HISTORY_META_TTL, history_ttl)
        self._backend: _Backend
        if scheme == "memory":
            self._backend = _MemoryBackend(self, history_size, history_ttl, meta_ttl)
        elif scheme in ("redis", "rediss"):
            assert url is not None
            from .broadcast_redis import RedisBackend  # only for Redis URLs

            self._backend = RedisBackend(
                self, url, timeout=timeout, backoff_initial=backoff_initial, backoff_max=backoff_max,
                health_check_interval=health_check_interval, history_size=history_size,
                history_ttl=history_ttl, meta_ttl=meta_ttl, key_prefix=key_prefix,
            )
        else:
            raise ValueError(
                f"unsupported broadcast URL {_redacted(url)!r}: use memory:// (in-process) or "
                "redis://host:port/db (rediss:// for TLS)"
            )
        # Per start/stop
        self._subscribers: dict[str, set[Subscription]] = {}
        self._resyncs: dict[str, asyncio.Task[None]] = {}  # a history read per channel
        self._started = False
        self._start_lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._presence: Presence | None = None

    def __repr__(self) -> str:
        return f"Broadcast({_redacted(self.url)!r})"

    @property
    def started(self) -> bool:
        """``start()`` has run (explicitly, by the app, or by a first publish/subscribe) and
        ``stop()`` has not."""
        return self._started

    @property
    def connected(self) -> bool:
        """Started and able to publish now: for Redis, the subscriber connection is up
        and subscribed again after any outage. What a ``/readyz`` route reports."""
        return self._started and self._backend.connected

    @property
    def presence(self) -> Presence:
        """Who is in a channel, cluster-wide (presence.py)."""
        if self._presence is None:
            from .presence import Presence

            self._presence = Presence(self)
        return self._presence

    @property
    def history(self) -> bool:
        """Messages get positions and a history (``history_size > 0``)."""
        return self.history_size > 0

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect (idempotent); ``BroadcastUnavailable`` if Redis cannot be reached."""
        if self._started:
            return
        loop = asyncio.get_running_loop()
        if self._start_lock is None or self._loop is not loop:
            self._start_lock, self._loop = asyncio.Lock(), loop
        async with self._start_lock:
            if not self._started:
                await self._backend.start()
                self._started = True

    async def stop(self) -> None:
        """Disconnect and end every open subscription (idempotent)."""
        if not self._started:
            return
        self._started = False
        if self._presence is not None:
            await self._presence._stop()
        resyncs, self._resyncs = self._resyncs, {}
        for task in resyncs.values():
            task.cancel()
        if resyncs:
            await asyncio.wait(resyncs.values())
        await self._backend.stop()
        subscribers, self._subscribers = self._subscribers, {}
        for subs in subscribers.values():
            for sub in subs:
                sub._close()

    async def __aenter__(self) -> Broadcast:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # -- the API ---------------------------------------------------------------------------

    async def publish(self, channel: str, message: Message) -> int:
        """Send ``message`` (str or bytes) to every subscriber of ``channel`` and record it
        in the channel's history. Returns how many received it live: local subscriptions
        (memory), or subscribed Broadcasts (Redis counts connections).
        ``BroadcastUnavailable`` when it cannot be accepted now (Redis down, or this
        process not subscribed again yet); ``MessageTooBig`` past ``max_message_size``."""
        if not isinstance(channel, str):
            raise TypeError(f"a channel is a str, got {type(channel).__name__}")
        if isinstance(message, str):
            # A str of n characters is at most 4n UTF-8 bytes: encode only near the limit.
            if len(message) * 4 > self.max_message_size:
                self._check_size(len(message.encode("utf-8", "surrogatepass")))
        elif isinstance(message, bytes):
            self._check_size(len(message))
        else:
            raise TypeError(
                f"a broadcast message is str or bytes, got {type(message).__name__} (publish_json sends objects)"
            )
        if not self._started:
            await self.start()
        return await self._backend.publish(channel, message)

    def _check_size(self, size: int) -> None:
        if size > self.max_message_size:
            raise MessageTooBig(
                f"a broadcast message has at most {self.max_message_size} bytes (max_message_size), got {size}"
            )

    async def publish_json(self, channel: str, data: Any) -> int:
        """Publish ``data`` as compact JSON text (a ``str`` message)."""
        return await self.publish(channel, _JSON_ENCODER.encode(data))

    def subscribe(
        self,
        channel: str,
        *,
        since: Position | str | None = None,
        max_queue: int | None = None,
        overflow: Overflow | None = None,
    ) -> Subscription:
        """A subscription to ``channel``, active inside ``async with``. ``since``: a
        position (or its text, e.g. a client's ``Last-Event-ID``) to resume after;
        ``max_queue`` / ``overflow`` override the Broadcast's for this one."""
        if not isinstance(channel, str):
            raise TypeError(f"a channel is a str, got {type(channel).__name__}")
        size = self.max_queue if max_queue is None else max_queue
        if size < 1:
            raise ValueError(f"max_queue must be at least 1, got {size!r}")
        policy = self.overflow if overflow is None else overflow
        _check_overflow(policy)
        position = None if since is None else Position.coerce(since)
        if position is not None and not self.history:
            raise ValueError("subscribe(since=...) needs a history: this Broadcast has history_size=0")
        return Subscription(self, channel, size, policy, position)

    async def position(self, channel: str) -> Position | None:
        """The channel's current position (of its last message; offset 0 before any);
        ``None`` without history."""
        if not self.history:
            return None
        if not self._started:
            await self.start()
        head, _, _ = await self._backend.read(channel, None)
        return head

    def subscriber_count(self, channel: str) -> int:
        """Local subscriptions open on ``channel``."""
        return len(self._subscribers.get(channel, ()))

    # -- called by subscriptions and backends ------------------------------------------------

    async def _attach(self, sub: Subscription) -> None:
        if not self._started:
            try:
                await self.start()
            except BaseException:
                sub._close()
                raise
        channel = sub.channel
        if self.history:
            sub._hold()  # live messages wait until the history read has placed the subscription
        subs = self._subscribers.get(channel)
        if subs is None:
            self._subscribers[channel] = {sub}
            waiting = self._backend.subscribe(channel)
        else:
            subs.add(sub)
            waiting = self._backend.ready(channel)
        try:
            await waiting
            if self.history:
                # Subscribed first, then the history: nothing published in between is
                # missed (it is held, and de-duplicated by offset).
                # Bounded; if it takes longer (Redis down) the catch-up goes on by itself,
                # and a catch-up cancelled by stop() ends the subscription, not this task.
                await asyncio.wait([self._resync(channel)], timeout=self._backend_timeout())
        except BroadcastUnavailable:
            pass  # still catching up: the resync goes on (after an outage, on reconnect)
        except BaseException:
            await self._detach(sub)
            raise

    def _backend_timeout(self) -> float:
        return float(getattr(self._backend, "timeout", DEFAULT_TIMEOUT))

    async def _detach(self, sub: Subscription) -> None:
        sub._close()
        subs = self._subscribers.get(sub.channel)
        if subs is None or sub not in subs:
            return
        subs.discard(sub)
        if not subs:
            del self._subscribers[sub.channel]
            await self._backend.unsubscribe(sub.channel)

    def _deliver(self, channel: str, pub: Publication) -> int:
        """A live publication: into each local subscription of ``channel``."""
        subs = self._subscribers.get(channel)
        if not subs:
            return 0
        gap = False
        for sub in subs:
            if not sub._offer(pub):
                gap = True
        if gap:
            self._resync(channel)
        return len(subs)

    def _resubscribed(self, channels: list[str]) -> None:
        """After an outage (the backend is subscribed again): every subscription catches
        up from its tail."""
        if not self.history:
            return
        for channel in channels:
            subs = self._subscribers.get(channel)
            if subs:
                for sub in subs:
                    sub._hold()
                self._resync(channel)

    def _resync(self, channel: str) -> asyncio.Task[None]:
        """The channel's catch-up task (one at a time): it reads the history for every
        subscription that holds and hands each its part."""
        task = self._resyncs.get(channel)
        if task is None or task.done():
            task = asyncio.get_running_loop().create_task(self._catch_up(channel), name=f"hump resync {channel!r}")
            self._resyncs[channel] = task
            task.add_done_callback(self._resync_done)
        return task

    def _resync_done(self, task: asyncio.Task[None]) -> None:
        for channel, known in list(self._resyncs.items()):
            if known is task:
                del self._resyncs[channel]
        if not task.cancelled() and (exc := task.exception()) is not None:
            logger.error("broadcast: catching up a channel failed", exc_info=exc)

    async def _catch_up(self, channel: str) -> None:
        delay = self.backoff_initial
        while True:
            waiting = [sub for sub in self._subscribers.get(channel, ()) if sub.catching_up]
            if not waiting:
                return
            by_tail: dict[Position | None, list[Subscription]] = {}
            for sub in waiting:
                by_tail.setdefault(sub._tail, []).append(sub)
            for tail, group in by_tail.items():
                try:
                    head, entries, resumed = await self._backend.read(channel, tail)
                except BroadcastUnavailable:
                    await asyncio.sleep(delay)  # the subscriptions keep holding meanwhile
                    delay = min(delay * 2, self.backoff_max)
                    break
                delay = self.backoff_initial
                for sub in group:
                    if sub.catching_up and sub._tail == tail:
                        sub._replay(head, entries, resumed)


def _check_overflow(policy: str) -> None:
    if policy not in OVERFLOW_POLICIES:
        raise ValueError(f"overflow must be one of {', '.join(OVERFLOW_POLICIES)}, got {policy!r}")


def _redacted(url: str | None) -> str:
    """``url`` with its password replaced by ``***`` (for logs and errors)."""
    if not url:
        return "memory://"
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()
