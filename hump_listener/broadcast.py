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
own island. Framework side: stdlib only, plus ``redis.asyncio`` imported lazily.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from time import monotonic
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

# Wire format over Redis (policy 1): a type byte before the message.
_TEXT = b"\x00"
_BYTES = b"\x01"
#: Same options as the framework's JSON responses (models.dump_json): compact, UTF-8,
#: no NaN. Built once: json.dumps with options builds an encoder per call.
_JSON_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class BroadcastUnavailable(ConnectionError):
    """The broadcast backend (Redis) cannot be reached: raised by ``publish`` and
    ``start`` instead of waiting. A ``ConnectionError``, so ``except OSError`` sees it."""


class SubscriptionClosed(Exception):
    """``get()`` on a subscription that has ended (left, or its Broadcast stopped) and
    has no queued message left. ``async for`` ends instead of raising it."""


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


# -- subscriptions ------------------------------------------------------------------------


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


class _RedisConnection(Protocol):
    """The part of ``redis.asyncio.Connection`` we use (one socket, no pool, no retries)."""

    @property
    def is_connected(self) -> bool: ...

    async def connect(self) -> None: ...

    async def disconnect(self, nowait: bool = False) -> None: ...

    async def send_command(self, *args: Any, **kwargs: Any) -> None: ...

    async def read_response(self, *, timeout: float | None = None, disconnect_on_error: bool = True) -> Any: ...


def _redis() -> Any:
    """``redis.asyncio``, or an ImportError that names the extra to install."""
    try:
        import redis.asyncio
        import redis.exceptions
    except ImportError as exc:
        raise ImportError(
            "Broadcast('redis://...') needs the redis package: pip install 'hump_listener[redis]'"
        ) from exc
    return redis


class _RedisBackend:
    """Redis pub/sub through redis-py's asyncio ``Connection`` (policies 4 and 5).

    State by lifetime: configuration for the object's life; connections, the reader task
    and the confirmation queues per start/stop.
    """

    def __init__(
        self,
        broadcast: Broadcast,
        url: str,
        *,
        timeout: float,
        backoff_initial: float,
        backoff_max: float,
        health_check_interval: float,
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
        self._timeout = timeout
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._health_check_interval = health_check_interval
        #: Errors that mean "the connection is gone or Redis is not answering".
        self._lost_errors: tuple[type[BaseException], ...] = (redis.exceptions.RedisError, OSError)
        # Per start/stop
        self._channels: set[str] = set()  # channels with local subscribers
        self._publisher: _RedisConnection | None = None
        self._publish_lock = asyncio.Lock()
        self._publish_failures = 0  # bumped on each failure: queued publishers fail fast
        self._subscriber: _RedisConnection | None = None  # None while down
        self._subscriber_lock = asyncio.Lock()  # keeps SUBSCRIBE/UNSUBSCRIBE in call order
        #: One future per SUBSCRIBE sent, per channel, resolved by Redis' confirmations
        #: in order (so subscribe/unsubscribe/subscribe cannot be confirmed by the first).
        self._confirmations: dict[bytes, deque[asyncio.Future[None]]] = {}
        self._latest: dict[str, asyncio.Future[None]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._down = False

    @property
    def connected(self) -> bool:
        return self._subscriber is not None

    def _connection(self) -> _RedisConnection:
        return self._connection_class(**self._options)

    async def start(self) -> None:
        self._publish_lock = asyncio.Lock()
        self._subscriber_lock = asyncio.Lock()
        self._down = False
        publisher = self._connection()
        subscriber = self._connection()
        try:
            await publisher.connect()
            await subscriber.connect()
        except BaseException as exc:
            await publisher.disconnect(nowait=True)
            await subscriber.disconnect(nowait=True)
            if isinstance(exc, self._lost_errors):
                raise BroadcastUnavailable(f"Redis at {self._address} is unreachable: {exc}") from exc
            raise
        self._publisher, self._subscriber = publisher, subscriber
        self._reader = asyncio.get_running_loop().create_task(self._run(subscriber), name="hump broadcast reader")
        self._reader.add_done_callback(self._reader_done)

    async def stop(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            try:
                await reader
            except asyncio.CancelledError:
                pass
            except Exception:
                pass  # logged by _reader_done
        self._release_confirmations()
        self._channels.clear()
        self._latest.clear()
        for conn in (self._subscriber, self._publisher):
            if conn is not None:
                await conn.disconnect(nowait=True)
        self._subscriber = self._publisher = None

    def _reader_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error("broadcast: the Redis reader task failed", exc_info=task.exception())

    # -- publishing ------------------------------------------------------------------------

    async def publish(self, channel: str, message: Message) -> int:
        payload = _encode(message)
        failures = self._publish_failures
        async with self._publish_lock:
            if self._publish_failures != failures:
                raise BroadcastUnavailable(f"Redis at {self._address} is unreachable (a publish just failed)")
            conn = self._publisher
            if conn is None:
                raise BroadcastUnavailable("the Broadcast is stopped")
            # A connection from before an outage is found dead on first use: retry once on
            # a fresh one. Never after a timeout: Redis may have taken the first PUBLISH.
            for fresh in (not conn.is_connected, True):
                try:
                    if not conn.is_connected:
                        await conn.connect()
                    await conn.send_command("PUBLISH", channel, payload, check_health=False)
                    receivers: int = await conn.read_response()
                    return receivers
                except self._lost_errors as exc:
                    await conn.disconnect(nowait=True)
                    if fresh or isinstance(exc, self._redis.exceptions.TimeoutError | TimeoutError):
                        self._publish_failures += 1
                        raise BroadcastUnavailable(
                            f"cannot publish to {channel!r} on Redis at {self._address}: {exc}"
                        ) from exc
            raise AssertionError("unreachable")  # pragma: no cover

    # -- subscribing -----------------------------------------------------------------------

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)
        async with self._subscriber_lock:
            conn = self._subscriber
            if conn is None:
                return  # down: subscribed again on reconnect (policy 5)
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
            await asyncio.wait_for(asyncio.shield(future), self._timeout)

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
        while True:
            if conn is None:
                try:
                    conn = await self._reconnect()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self._lost(exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._backoff_max)
                    continue
            up_since = monotonic()
            try:
                await self._read(conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
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
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._backoff_max)

    async def _reconnect(self) -> _RedisConnection:
        conn = self._connection()
        try:
            await conn.connect()
            async with self._subscriber_lock:
                channels = sorted(self._channels)
                if channels:
                    await self._send_subscribe(conn, channels)
                self._subscriber = conn
        except BaseException:
            await conn.disconnect(nowait=True)
            raise
        if self._down:
            self._down = False
            logger.info(
                "broadcast: reconnected to Redis at %s; %d channel(s) subscribed again", self._address, len(channels)
            )
        return conn

    def _lost(self, exc: Exception) -> None:
        if isinstance(exc, self._lost_errors):
            if not self._down:
                self._down = True
                logger.warning(
                    "broadcast: lost the connection to Redis at %s (%s); reconnecting (every %.1f s at most); "
                    "messages published meanwhile are lost",
                    self._address, str(exc) or type(exc).__name__, self._backoff_max,
                )
        else:  # a bug, not an outage: say so loudly, then carry on as after a loss
            self._down = True
            logger.error("broadcast: the Redis reader failed; reconnecting", exc_info=exc)

    async def _read(self, conn: _RedisConnection) -> None:
        deliver = self._broadcast._deliver
        ping_sent = False
        while True:
            timeout = self._timeout if ping_sent else self._health_check_interval
            # With an explicit timeout, redis-py returns None when it expires (its parser
            # keeps partial input across the cancellation, as PubSub.get_message relies on).
            reply = await conn.read_response(timeout=timeout, disconnect_on_error=False)
            if reply is None:
                if ping_sent:
                    raise self._redis.exceptions.TimeoutError(f"no answer to PING within {self._timeout} s")
                async with self._subscriber_lock:
                    await conn.send_command("PING", check_health=False)
                ping_sent = True
                continue
            ping_sent = False  # any traffic shows the connection is alive
            if type(reply) is list:
                kind = reply[0]
                if kind == b"message":
                    deliver(reply[1].decode("utf-8", "replace"), _decode(reply[2]))
                elif kind == b"subscribe":
                    self._confirm(reply[1])
            # b"unsubscribe" and the PING answers ([b"pong", b""] or b"PONG") need nothing


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
            self._backend = _RedisBackend(
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
