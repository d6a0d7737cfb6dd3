"""Redis pub/sub for ``broadcast.Broadcast`` (``pip install 'hump_listener[redis]'``).

``RedisBackend`` is the backend a ``redis://`` or ``rediss://`` URL picks, through
redis-py's asyncio ``Connection`` (one socket each, no pool, no redis-py retries): the
broadcast module's policies 1 (the wire format), 4 (one subscriber connection per
Broadcast, fanned out locally; a second connection publishes) and 5 (outages: logged once,
retried with backoff, channels subscribed again, ``publish`` raising
``BroadcastUnavailable`` instead of hanging). ``broadcast.py`` imports this module only for
a Redis URL, and this module imports redis-py only when a backend is made.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Iterable
from time import monotonic
from typing import TYPE_CHECKING, Any, Protocol

from .broadcast import BroadcastUnavailable, Message

if TYPE_CHECKING:
    from .broadcast import Broadcast

__all__ = ["RedisBackend"]

logger = logging.getLogger("hump_listener.error")

# Wire format over Redis (policy 1): a type byte before the message.
_TEXT = b"\x00"
_BYTES = b"\x01"


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
            "Broadcast('redis://...') needs the redis package: pip install redis"
        ) from exc
    return redis


class RedisBackend:
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
