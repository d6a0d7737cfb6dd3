"""Fan-out: ``Broadcast`` hands every message published on a channel to every current
subscriber of that channel, within one process (the memory backend, the default) or
across processes and hosts (Redis pub/sub, ``pip install 'hump_listener[redis]'``)::

    broadcast = Broadcast()                            # or Broadcast("redis://127.0.0.1:6379/0")
    await broadcast.publish("chat", "hello")           # str or bytes; publish_json(obj) too
    async with broadcast.subscribe("chat") as sub:
        async for message in sub:                      # what was published, same type
            ...

The policy choices, in the order a message meets them:

1. **Messages** are ``str`` or ``bytes`` and come out as they went in: a ``str`` stays a
   ``str``, ``bytes`` stay ``bytes`` (``publish_json`` sends compact JSON text, and
   ``sub.get_json()`` / ``sub.iter_json()`` parse it back). Over Redis a payload is one
   type byte and the message: ``0x00`` + UTF-8 text, or ``0x01`` + the bytes. A payload
   with any other first byte (published by another client, say ``redis-cli``) is
   delivered as ``bytes``, unchanged.
2. **Delivery is at most once and never stored**, as Redis pub/sub itself: a message
   reaches the subscriptions that exist when it is delivered; nothing is replayed to a
   later subscriber or after an outage. Per publisher and channel, order is kept.
3. **Subscribers are bounded.** Each subscription has a queue of ``max_queue`` messages
   (``DEFAULT_MAX_QUEUE``). Publishing never waits for a subscriber: one that falls
   behind loses its *oldest* queued messages (it keeps the newest, which for chat,
   presence or progress updates are the ones worth showing), counted in ``sub.dropped``
   and logged once per burst on ``hump_listener.error`` at warning level (a burst ends
   when the subscriber has emptied its queue). Memory is bounded by ``max_queue`` times
   the message size per subscription.
4. **One Redis subscriber connection per Broadcast**, shared by all local subscribers:
   ``SUBSCRIBE`` is sent when a channel's first local subscriber arrives and
   ``UNSUBSCRIBE`` when its last one leaves; each message is read once and fanned out
   locally. Entering ``subscribe()`` returns once Redis has confirmed the subscription,
   so a message published after that is received. A second connection publishes
   (commands in order, one at a time). The memory backend delivers to the queues before
   ``publish`` returns.
5. **Outages.** A lost Redis connection is logged once (warning) and retried with
   exponential backoff (``BACKOFF_INITIAL`` doubling to ``BACKOFF_MAX``); when it is back,
   one info line, and every channel with local subscribers is subscribed again.
   Subscriptions stay open across the outage; messages published during it are lost.
   ``publish`` while Redis is unreachable raises ``BroadcastUnavailable`` within the
   connect/socket timeouts (``DEFAULT_TIMEOUT``), never hangs; publishers queued behind
   one that just failed fail at once instead of each waiting out the timeout. A silent
   connection (a host gone without a reset) is found by a PING after
   ``HEALTH_CHECK_INTERVAL`` seconds without traffic.
6. **Lifecycle.** ``start()`` connects (and raises ``BroadcastUnavailable`` when Redis
   cannot be reached: a wrong URL shows at deploy time, not at the first chat message);
   ``stop()`` cancels and awaits the reader task, closes the connections and ends every
   open subscription (its iteration stops after the messages already queued). Both are
   idempotent, ``async with Broadcast(...)`` calls them, a first ``publish`` or
   ``subscribe`` starts lazily, and a stopped Broadcast can be started again.
7. **One event loop.** A Broadcast serves the loop that started it; from another
   thread use ``asyncio.run_coroutine_threadsafe(broadcast.publish(...), loop)``.

The memory backend is per ``Broadcast`` instance (two instances in one process do not
see each other); that is what ``--workers N`` gets without Redis, so each worker is its
own island. Framework side: stdlib only; the Redis backend is ``broadcast_redis``,
imported (with ``redis.asyncio``) only for a Redis URL.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import urlsplit

__all__ = [
    "BACKOFF_INITIAL",
    "BACKOFF_MAX",
    "DEFAULT_MAX_QUEUE",
    "DEFAULT_TIMEOUT",
    "HEALTH_CHECK_INTERVAL",
    "Broadcast",
    "BroadcastUnavailable",
    "Message",
    "Subscription",
    "SubscriptionClosed",
]

logger = logging.getLogger("hump_listener.error")

#: What a channel carries.
Message = str | bytes

#: Messages a subscription holds for a subscriber that has not taken them yet; beyond,
#: the oldest go. websockets queues 16 incoming frames per connection and channels_redis
#: 100 messages per channel (it drops new ones beyond); chat and notification messages are
#: small, so 1000 rides out a slow client or a GC pause for well under a MiB.
DEFAULT_MAX_QUEUE = 1000
#: Seconds for connecting to Redis and for one command's reply. Jedis' default timeout is
#: 2 s, redis-rb's 1 s; redis-py has none (and retries 10 times), which is how a publish
#: hangs.
DEFAULT_TIMEOUT = 2.0
#: Reconnection delays: the first retry after 0.1 s, doubling up to 5 s. Messages
#: published while we are away are lost, so we come back quickly (redis-py's own retries
#: start at 10 ms and cap at 1 s); a flapping server is retried no more often than every
#: 5 s and so logs at most two lines per 5 s (gRPC caps at 120 s, for remote services).
BACKOFF_INITIAL = 0.1
BACKOFF_MAX = 5.0
#: Seconds of silence on the subscriber connection before a PING checks it is alive; no
#: answer within ``DEFAULT_TIMEOUT`` counts as a lost connection. websockets pings every
#: 20 s; redis-py's PubSub health checks are off unless asked for.
HEALTH_CHECK_INTERVAL = 20.0

#: Same options as the framework's JSON responses (models.dump_json): compact, UTF-8,
#: no NaN. Built once: json.dumps with options builds an encoder per call.
_JSON_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class BroadcastUnavailable(ConnectionError):
    """The broadcast backend (Redis) cannot be reached: raised by ``publish`` and
    ``start`` instead of waiting. A ``ConnectionError``, so ``except OSError`` sees it."""


class SubscriptionClosed(Exception):
    """``get()`` on a subscription that has ended (left, or its Broadcast stopped) and
    has no queued message left. ``async for`` ends instead of raising it."""




class Subscription:
    """One subscriber's view of a channel: ``async with broadcast.subscribe(ch) as sub``.

    Iterate it (``async for message in sub``) or call ``await sub.get()``; one coroutine
    at a time reads a subscription. ``dropped`` counts the messages it lost by falling
    behind (policy 3).
    """

    def __init__(self, broadcast: Broadcast, channel: str, max_queue: int) -> None:
        self.channel = channel
        self.max_queue = max_queue
        #: Messages lost because the queue was full (the oldest went).
        self.dropped = 0
        self._broadcast = broadcast
        self._queue: deque[Message] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._entered = False
        self._closed = False
        self._behind = False  # in a burst of drops (logged once until the queue empties)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open" if self._entered else "not entered"
        return f"<Subscription {self.channel!r} {state} queued={len(self._queue)} dropped={self.dropped}>"

    async def __aenter__(self) -> Subscription:
        if self._entered:
            raise RuntimeError("a Subscription can be entered once; call broadcast.subscribe() again")
        self._entered = True
        await self._broadcast._attach(self)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._broadcast._detach(self)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Message:
        try:
            return await self.get()
        except SubscriptionClosed:
            raise StopAsyncIteration from None

    @property
    def closed(self) -> bool:
        """The subscription has ended (left, or its Broadcast stopped)."""
        return self._closed

    def qsize(self) -> int:
        """Messages queued and not read yet."""
        return len(self._queue)

    async def get(self) -> Message:
        """The next message, waiting for one; ``SubscriptionClosed`` once the
        subscription ended and its queue is empty."""
        queue = self._queue
        while not queue:
            if self._closed:
                raise SubscriptionClosed(f"the subscription to {self.channel!r} has ended")
            if not self._entered:
                raise RuntimeError("use the subscription as `async with broadcast.subscribe(channel) as sub:`")
            if self._waiter is not None:
                raise RuntimeError(f"another coroutine is already reading the subscription to {self.channel!r}")
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            try:
                await waiter
            finally:
                self._waiter = None
        message = queue.popleft()
        if not queue:
            self._behind = False  # caught up: the next drop starts a new burst
        return message

    async def get_json(self) -> Any:
        """The next message parsed as JSON."""
        return json.loads(await self.get())

    async def iter_json(self) -> AsyncIterator[Any]:
        """Iterate the messages parsed as JSON."""
        async for message in self:
            yield json.loads(message)

    # -- called by the Broadcast ----------------------------------------------------------

    def _put(self, message: Message) -> None:
        queue = self._queue
        if len(queue) >= self.max_queue:
            queue.popleft()
            self.dropped += 1
            if not self._behind:
                self._behind = True
                logger.warning(
                    "broadcast: a subscriber to %r fell behind (%d messages queued); dropping its oldest "
                    "messages until it catches up (%d dropped so far)",
                    self.channel, self.max_queue, self.dropped,
                )
        queue.append(message)
        self._wake()

    def _close(self) -> None:
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


# -- backends -----------------------------------------------------------------------------


class _Backend(Protocol):
    """What a Broadcast needs from a transport; it calls ``Broadcast._deliver`` for each
    message that arrives."""

    @property
    def connected(self) -> bool: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, channel: str, message: Message) -> int: ...

    async def subscribe(self, channel: str) -> None:
        """The first local subscriber of ``channel`` arrived; return once subscribed."""

    async def ready(self, channel: str) -> None:
        """Another local subscriber arrived: return once ``channel`` is subscribed."""

    async def unsubscribe(self, channel: str) -> None:
        """The last local subscriber of ``channel`` left."""


class _MemoryBackend:
    """In-process: ``publish`` delivers to the local queues directly."""

    def __init__(self, broadcast: Broadcast) -> None:
        self._broadcast = broadcast

    @property
    def connected(self) -> bool:
        return True

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def publish(self, channel: str, message: Message) -> int:
        return self._broadcast._deliver(channel, message)

    async def subscribe(self, channel: str) -> None:
        pass

    async def ready(self, channel: str) -> None:
        pass

    async def unsubscribe(self, channel: str) -> None:
        pass


# -- the public object --------------------------------------------------------------------


class Broadcast:
    """Publish/subscribe on named channels; see the module docstring for the policies.

    ``url``: ``None`` or ``"memory://"`` for in-process fan-out; ``"redis://host:port/db"``
    (``"rediss://"`` for TLS; query options go to redis-py) for Redis pub/sub, which needs
    ``pip install 'hump_listener[redis]'``. ``max_queue`` bounds each subscription
    (``subscribe(channel, max_queue=...)`` overrides it for one); ``timeout`` bounds
    connecting and each Redis reply; ``backoff_initial`` / ``backoff_max`` pace
    reconnection; ``health_check_interval`` is the silence before a PING.
    """

    SCHEMES = ("memory", "redis", "rediss")

    def __init__(
        self,
        url: str | None = None,
        *,
        max_queue: int = DEFAULT_MAX_QUEUE,
        timeout: float = DEFAULT_TIMEOUT,
        backoff_initial: float = BACKOFF_INITIAL,
        backoff_max: float = BACKOFF_MAX,
        health_check_interval: float = HEALTH_CHECK_INTERVAL,
    ) -> None:
        if max_queue < 1:
            raise ValueError(f"max_queue must be at least 1, got {max_queue!r}")
        scheme = urlsplit(url).scheme.lower() if url else "memory"
        self.url = url or "memory://"
        self.max_queue = max_queue
        self._backend: _Backend
        if scheme == "memory":
            self._backend = _MemoryBackend(self)
        elif scheme in ("redis", "rediss"):
            assert url is not None
            from .broadcast_redis import RedisBackend  # only for Redis URLs

            self._backend = RedisBackend(
                self, url, timeout=timeout, backoff_initial=backoff_initial, backoff_max=backoff_max,
                health_check_interval=health_check_interval,
            )
        else:
            raise ValueError(
                f"unsupported broadcast URL {_redacted(url)!r}: use memory:// (in-process) or "
                "redis://host:port/db (rediss:// for TLS)"
            )
        self._subscribers: dict[str, set[Subscription]] = {}
        self._started = False
        self._start_lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"Broadcast({_redacted(self.url)!r})"

    @property
    def started(self) -> bool:
        """``start()`` has run (explicitly, by the app, or by a first publish/subscribe) and
        ``stop()`` has not."""
        return self._started

    @property
    def connected(self) -> bool:
        """Started and, for Redis, the subscriber connection is up."""
        return self._started and self._backend.connected

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
        """Send ``message`` (str or bytes) to every subscriber of ``channel``. Returns how
        many received it: local subscriptions (memory), or subscribed Broadcasts (Redis
        counts connections). ``BroadcastUnavailable`` when Redis cannot be reached."""
        if not isinstance(channel, str):
            raise TypeError(f"a channel is a str, got {type(channel).__name__}")
        if not isinstance(message, str | bytes):
            raise TypeError(
                f"a broadcast message is str or bytes, got {type(message).__name__} (publish_json sends objects)"
            )
        if not self._started:
            await self.start()
        return await self._backend.publish(channel, message)

    async def publish_json(self, channel: str, data: Any) -> int:
        """Publish ``data`` as compact JSON text (a ``str`` message)."""
        return await self.publish(channel, _JSON_ENCODER.encode(data))

    def subscribe(self, channel: str, *, max_queue: int | None = None) -> Subscription:
        """A subscription to ``channel``, active inside ``async with``."""
        if not isinstance(channel, str):
            raise TypeError(f"a channel is a str, got {type(channel).__name__}")
        size = self.max_queue if max_queue is None else max_queue
        if size < 1:
            raise ValueError(f"max_queue must be at least 1, got {size!r}")
        return Subscription(self, channel, size)

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
        subs = self._subscribers.get(sub.channel)
        if subs is None:
            self._subscribers[sub.channel] = {sub}
            waiting = self._backend.subscribe(sub.channel)
        else:
            subs.add(sub)
            waiting = self._backend.ready(sub.channel)
        try:
            await waiting
        except BaseException:
            await self._detach(sub)
            raise

    async def _detach(self, sub: Subscription) -> None:
        sub._close()
        subs = self._subscribers.get(sub.channel)
        if subs is None or sub not in subs:
            return
        subs.discard(sub)
        if not subs:
            del self._subscribers[sub.channel]
            await self._backend.unsubscribe(sub.channel)

    def _deliver(self, channel: str, message: Message) -> int:
        subs = self._subscribers.get(channel)
        if not subs:
            return 0
        for sub in subs:
            sub._put(message)
        return len(subs)


def _redacted(url: str | None) -> str:
    """``url`` with its password replaced by ``***`` (for logs and errors)."""
    if not url:
        return "memory://"
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()
