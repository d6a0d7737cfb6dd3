"""Durable events: background work that survives a crash and runs on any worker.

``@app.on_event("resize {image_id}", durable=True)`` makes an event durable: triggering it
(``ctx.trigger_event``, ``app.trigger_event``, ``app.trigger_event_threadsafe``) stores it
in a queue, any worker process of any host on the same queue runs it, and it is
acknowledged only after its handler returned. ``DurableEvents`` (``app.durable``) is the
engine; the queue is a backend: ``durable_redis.RedisQueue`` (Redis Streams with a
consumer group) when the app has a Redis URL, else ``MemoryQueue`` (in this process, for
development and tests: not durable). The rules:

1. **At least once.** A worker takes an event (``XREADGROUP``), runs it and only then
   acknowledges it (``XACK``). A worker that dies mid-event leaves it unacknowledged;
   another worker takes it over once it has been idle for the visibility timeout
   (``XAUTOCLAIM``; ``DEFAULT_VISIBILITY_TIMEOUT``). A running event's lease is renewed
   while its worker lives, so a long handler is not taken over. Handlers should
   therefore be idempotent; the idempotency ``key=`` keeps a retried *trigger* from
   queueing the work twice.
2. **Retries, then dead letters.** A handler that raises (or outlives its ``timeout``)
   runs again after a backoff (``Durable``: ``attempts``, ``backoff``, ``backoff_max``),
   built on the delays of rule 3. After the last attempt the event goes to the dead
   letters with its error text, then the ``on_error`` hooks run (with none, one log
   line). A run cut short by a crash or a shutdown counts as an attempt too, so an event
   that kills its worker every time ends in the dead letters instead of looping.
   ``app.durable.dead_letters()`` lists them, ``app.durable.requeue()`` queues them again.
3. **Delays.** ``trigger_event(..., delay=seconds)`` runs it no earlier than asked: it
   waits in a sorted set (Redis' clock, so hosts need not agree on the time) and moves
   into the stream when due.
4. **Identity.** Every event has an id (``event.id``, 32 hex digits) that stays the same
   across its attempts; ``event.attempt`` counts from 1. ``key="..."``: while an event
   with that key is known (queued, running, or finished less than ``key_retention`` ago)
   a trigger with the same key queues nothing and returns the known event's id.
5. **Plain data, fresh context.** ``data=`` must survive JSON (checked when triggered, a
   ``TypeError`` naming the event); the handler gets it back as JSON gives it (tuples as
   lists). The handler runs in a fresh context (``app.trigger_event``'s), never the
   request's: the request may be long gone, on another host. Injection is the background
   events': ``x: Data``, ``x: Param`` from the event name, ``event: DurableEvent``.
6. **Shutdown hands work back.** On SIGTERM the worker stops taking events, gives the
   running ones the drain time, then hands back the rest unacknowledged (they are queued
   again at once for any worker) with one log line saying how many. The in-process
   backend instead runs what is queued until the drain time is up, and says how many
   events it lost.

``trigger`` returns an ``asyncio.Task`` whose result is the event id once the event is
stored: ``await ctx.trigger_event(...)`` before answering when the client must know the
work is safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import json
import logging
import math
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from tiny_listener import EventNotFound, Route

from . import tiny_internals
from .background import CANCEL_GRACE  # how long cancelled runs get to unwind, as events
from .endpoints import Handler, Plan, build_plan, call_plan
from .errors import RouteDefinitionError
from .events import Event

if TYPE_CHECKING:
    from .context import Contexts
    from .hooks import Hooks
    from .registration import RouteTable

__all__ = [
    "DEFAULT_ATTEMPTS",
    "DEFAULT_BACKOFF",
    "DEFAULT_BACKOFF_MAX",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_KEY_RETENTION",
    "DEFAULT_PREFIX",
    "DEFAULT_TIMEOUT",
    "DEFAULT_VISIBILITY_TIMEOUT",
    "DeadLetter",
    "Delivery",
    "Durable",
    "DurableEvent",
    "DurableEvents",
    "DurableUnavailable",
    "MemoryQueue",
    "Queue",
    "WorkerLost",
    "decode",
    "encode",
]

logger = logging.getLogger("hump_listener.error")

# ---------------------------------------------------------------------------------------
# Defaults, with their precedents.

#: Runs of one event before it is dead-lettered: arq's ``max_tries`` is 5 too (Celery
#: retries 3 times, Dramatiq 20, Sidekiq 25: those are for days-long outages).
DEFAULT_ATTEMPTS = 5
#: Wait before the first retry, doubling after each failure (2, 4, 8, 16 s for five
#: attempts: half a minute rides out a restarting database) ...
DEFAULT_BACKOFF = 2.0
#: ... and never more than this between two attempts (Dramatiq's min backoff is 15 s,
#: its max 7 days; five minutes keeps a retried event in the same working session).
DEFAULT_BACKOFF_MAX = 300.0
#: A run that takes longer is cancelled and counts as a failed attempt: arq's
#: ``job_timeout`` is 300 s too. ``Durable(timeout=None)`` for no limit.
DEFAULT_TIMEOUT = 300.0
#: How long an event taken by a worker that went silent (killed, frozen, cut off) waits
#: before another worker takes it over. Amazon SQS's default visibility timeout is 30 s.
#: A live worker renews the lease of its running events every third of it, so this is
#: not a limit on how long a handler may run; it is how long a crash delays an event.
DEFAULT_VISIBILITY_TIMEOUT = 30.0
#: Events one worker process runs at once: arq's ``max_jobs`` and SAQ's ``concurrency``
#: are 10 too. A process that only triggers events (a web tier) sets 0.
DEFAULT_CONCURRENCY = 10
#: How long an idempotency key is remembered after its event finished (done or dead):
#: arq keeps a job's id (and result) for ``keep_result`` = 3600 s.
DEFAULT_KEY_RETENTION = 3600.0
#: Names of the Redis keys: ``{prefix}:stream``, ``:delayed``, ``:dead``, ``:key:{key}``.
#: Give each application its own when several share a Redis.
DEFAULT_PREFIX = "hump:durable"


# ---------------------------------------------------------------------------------------
# What users see: the policy, the event, a dead letter, the errors.


@dataclass(frozen=True, slots=True)
class Durable:
    """How a durable event is retried: ``@app.on_event(name, durable=Durable(attempts=3))``
    (``durable=True`` is ``Durable()``, the defaults).

    Attempt ``n`` that fails is followed, after ``min(backoff * 2 ** (n - 1),
    backoff_max)`` seconds, by attempt ``n + 1``, up to ``attempts`` runs in all; then the
    event is dead-lettered. ``timeout``: seconds one run may take (``None``: no limit);
    ``trigger_event(..., timeout=...)`` overrides it for one event."""

    attempts: int = DEFAULT_ATTEMPTS
    backoff: float = DEFAULT_BACKOFF
    backoff_max: float = DEFAULT_BACKOFF_MAX
    timeout: float | None = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        if not isinstance(self.attempts, int) or isinstance(self.attempts, bool) or self.attempts < 1:
            raise ValueError(f"Durable(attempts=...) must be an integer of at least 1, got {self.attempts!r}")
        for name in ("backoff", "backoff_max"):
            _check_seconds(getattr(self, name), f"Durable({name}=...)")
        if self.timeout is not None:
            _check_seconds(self.timeout, "Durable(timeout=...)", positive=True)

    def retry_delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based) before the next."""
        return float(min(self.backoff * 2 ** (attempt - 1), self.backoff_max))


class DurableEvent(Event):
    """The event a durable handler runs as: ask for it with ``event: DurableEvent``.

    Besides the ``Event`` (``name``, ``data``, ``ctx``): ``id``, the event's id (the same
    for all its attempts; ``trigger_event`` returned it); ``attempt``, this run's number,
    from 1; ``attempts``, how many runs it may have; ``key``, its idempotency key or
    ``None``. ``ctx`` is a fresh context of its own, never the request's."""

    def __init__(
        self, ctx: Any, route: Route, data: dict[str, Any], *, id: str, attempt: int, attempts: int,
        key: str | None,
    ) -> None:
        super().__init__(ctx, route, data)
        self.id = id
        self.attempt = attempt
        self.attempts = attempts
        self.key = key

    @property
    def last_attempt(self) -> bool:
        """True when a failure of this run sends the event to the dead letters."""
        return self.attempt >= self.attempts

    def __repr__(self) -> str:
        return f"DurableEvent({self.name!r}, id={self.id}, attempt={self.attempt}/{self.attempts})"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event whose last attempt failed (``app.durable.dead_letters()``): its ``id``,
    ``name`` and ``data``, how many ``attempts`` it had, the ``error`` (``"ValueError:
    no such image"``) and ``traceback`` text of the last one, its ``key`` and when it
    failed (``failed_at``, seconds since the epoch). ``app.durable.requeue([id])``
    queues it again with its attempts counted afresh."""

    id: str
    name: str
    data: dict[str, Any]
    attempts: int
    error: str
    traceback: str
    failed_at: float
    key: str | None = None


class DurableUnavailable(RuntimeError):
    """The queue could not be reached: the event was not stored (``trigger``), or the
    dead letters could not be read. The message names the queue and the cause."""


class WorkerLost(Exception):
    """The ``on_error`` hooks' error for an event dead-lettered because its worker stopped
    (killed, out of memory, shut down) during each of its attempts."""


# ---------------------------------------------------------------------------------------
# The queue a backend keeps: messages in, deliveries out.
#
# A message is a dict: {"id", "name", "data", "attempt", "key"?, "timeout"?}, stored as
# its compact JSON (the payload). ``attempt`` is the run it is queued for; a delivery's
# ``attempt`` adds the times it was handed out before and never finished (a worker died).


class Delivery:
    """One message handed to this worker: the message, the backend's handle for it (a
    stream entry id), and the attempt this run is."""

    __slots__ = ("attempt", "handle", "message")

    def __init__(self, message: dict[str, Any], handle: Any, attempt: int) -> None:
        self.message = message
        self.handle = handle
        self.attempt = attempt

    def __repr__(self) -> str:
        return f"Delivery({self.message.get('name')!r}, id={self.message.get('id')}, attempt={self.attempt})"


class Queue(Protocol):
    """What ``DurableEvents`` needs of a backend (``MemoryQueue``, ``RedisQueue``)."""

    #: False for the in-process backend: events do not outlive the process.
    durable: bool

    def describe(self) -> str:
        """Where the events are, for log lines."""

    async def start(self, consumer: bool) -> None:
        """Connect; ``consumer``: this process also runs events (maintenance too)."""

    async def close(self) -> None:
        """Flush what is buffered, hand back what is still out, disconnect."""

    async def enqueue(self, message: dict[str, Any], payload: str, delay: float) -> str:
        """Store one event (after ``delay`` seconds); the id of the stored event, or of
        the known one with the same key."""

    async def fetch(self, n: int) -> list[Delivery]:
        """Up to ``n`` events to run now; may return none after a bounded wait."""

    async def ack(self, delivery: Delivery) -> None:
        """The run finished: forget the event (and start its key's retention)."""

    async def retry(self, delivery: Delivery, payload: str, delay: float) -> None:
        """Replace the event by ``payload`` (its next attempt), due after ``delay``."""

    async def bury(self, delivery: Delivery, error: str, trace: str) -> None:
        """Move the event to the dead letters."""

    async def release(self, deliveries: list[Delivery]) -> None:
        """Hand events back unfinished: queued again for any worker."""

    async def dead_letters(self, limit: int) -> list[DeadLetter]:
        """The newest ``limit`` dead letters, newest first."""

    async def requeue(self, ids: Iterable[str] | None) -> int:
        """Queue dead letters again (``None``: all); how many were."""

    async def stats(self) -> dict[str, int]:
        """``queued`` (ready), ``running`` (taken, not finished), ``delayed``, ``dead``."""


# ---------------------------------------------------------------------------------------
# The engine: app.durable.


@dataclass(frozen=True, slots=True)
class _Spec:
    """A durable event route: its handler, injection plan and policy."""

    fn: Handler
    plan: Plan
    policy: Durable


class DurableEvents:
    """The app's durable events (``app.durable``): the registered routes, the settings,
    the queue, this process's workers and their drain (rules in the module docstring).

    State by lifetime: routes and settings for the app's life; the queue, the consumer
    task and the running events per start/stop."""

    def __init__(
        self, routes: RouteTable, hooks: Hooks, contexts: Contexts, broadcast_url: Callable[[], str | None]
    ) -> None:
        #: Where events are found by name (the app's route table).
        self.routes = routes
        #: The app's hooks: the one runner and the one "on_error hooks, else log" path.
        self.hooks = hooks
        #: The one source of contexts: a durable event runs in a fresh one.
        self.contexts = contexts
        #: The app's ``config.broadcast_url``, read when the queue starts (the default URL).
        self._broadcast_url = broadcast_url
        # App lifetime: routes and settings.
        self._specs: dict[Route, _Spec] = {}
        self._url: str | None = None
        self.concurrency = DEFAULT_CONCURRENCY
        self.visibility_timeout = DEFAULT_VISIBILITY_TIMEOUT
        self.key_retention = DEFAULT_KEY_RETENTION
        self.prefix = DEFAULT_PREFIX
        # Per start/stop.
        self._queue: Queue | None = None
        self._consumer: asyncio.Task[None] | None = None
        #: Running events: task → its delivery (kept until the done-callback).
        self._running: dict[asyncio.Task[None], Delivery] = {}
        #: Triggers still storing their event (kept until stored).
        self._storing: set[asyncio.Task[str]] = set()
        self._slot_free: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None  # set while nothing runs
        self._cut = False
        self._stopping = False  # shutting down: no new events taken
        #: Runs cancelled by the drain: they are handed back, never acknowledged.
        self._handing_back: list[Delivery] = []

    # -- configuration ---------------------------------------------------------------------

    def configure(
        self,
        *,
        url: str | None = None,
        concurrency: int | None = None,
        visibility_timeout: float | None = None,
        key_retention: float | None = None,
        prefix: str | None = None,
    ) -> None:
        """Settings, before the app starts (the ``DEFAULT_*`` constants say why each
        default): ``url``, the queue (``redis://...``, or ``memory://`` for the
        in-process backend; by default the app's ``broadcast_url``); ``concurrency``,
        events this process runs at once (0: it only triggers them);
        ``visibility_timeout``, seconds before another worker takes over the event of a
        worker that went silent; ``key_retention``, seconds an idempotency key is kept
        after its event finished; ``prefix`` of the Redis key names."""
        if self._queue is not None:
            raise RuntimeError("app.durable.configure() must come before the app starts")
        if url is not None:
            if not url.startswith(("memory://", "redis://", "rediss://")):
                raise ValueError(f"durable url must be memory:// or redis://host:port/db (rediss://: TLS), got {url!r}")
            self._url = url
        if concurrency is not None:
            if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 0:
                raise ValueError(f"concurrency must be an integer of at least 0, got {concurrency!r}")
            self.concurrency = concurrency
        if visibility_timeout is not None:
            _check_seconds(visibility_timeout, "visibility_timeout", positive=True)
            self.visibility_timeout = float(visibility_timeout)
        if key_retention is not None:
            _check_seconds(key_retention, "key_retention", positive=True)
            self.key_retention = float(key_retention)
        if prefix is not None:
            if not isinstance(prefix, str) or not prefix:
                raise ValueError(f"prefix must be a non-empty string, got {prefix!r}")
            self.prefix = prefix

    @property
    def url(self) -> str:
        """The queue's URL: ``configure(url=...)``, else the app's Redis ``broadcast_url``,
        else ``memory://``."""
        if self._url is not None:
            return self._url
        broadcast = self._broadcast_url()
        if broadcast is not None and broadcast.startswith(("redis://", "rediss://")):
            return broadcast
        return "memory://"

    # -- registration (registration.py's hook) ---------------------------------------------

    def register(self, route: Route, durable: bool | Durable) -> None:
        """Make the plain event ``route`` durable (``on_event(..., durable=...)``): its
        injection is planned here, so a bad handler fails at registration."""
        policy = durable if isinstance(durable, Durable) else Durable()
        if not isinstance(durable, (bool, Durable)):
            raise RouteDefinitionError(
                f"event {route.path!r}: durable= takes True or a Durable(...), got {durable!r}"
            )
        fn = tiny_internals.hook_fn(route.hook)
        plan = build_plan(fn, list(getattr(route, "convertors", {})), f"durable event {route.path!r}")
        self._specs[route] = _Spec(fn, plan, policy)

    def handles(self, route: Route) -> bool:
        """True for a durable event's route (the trigger path asks)."""
        return route in self._specs

    # -- triggering (background.py's hook) -------------------------------------------------

    def trigger(
        self,
        route: Route,
        name: str,
        data: Mapping[str, Any] | None,
        *,
        timeout: float | None = None,
        key: str | None = None,
        delay: float | None = None,
    ) -> asyncio.Task[str]:
        """Store the durable event ``name`` (of ``route``); the task's result is its id,
        once stored (rules 3-5). Bad arguments raise here, at the call."""
        spec = self._specs.get(route)
        if spec is None:
            raise ValueError(
                f"event {name!r} is not durable: key= and delay= are for events registered "
                "with @app.on_event(..., durable=True)"
            )
        if key is not None and (not isinstance(key, str) or not key):
            raise ValueError(f"durable event {name!r}: key must be a non-empty string, got {key!r}")
        if delay is not None:
            _check_seconds(delay, f"durable event {name!r}: delay")
        if timeout is not None:
            _check_seconds(timeout, f"durable event {name!r}: timeout", positive=True)
        message: dict[str, Any] = {"id": uuid.uuid4().hex, "name": name, "data": _plain_data(name, data), "attempt": 1}
        if key is not None:
            message["key"] = key
        if timeout is not None:
            message["timeout"] = timeout
        payload = encode(message)
        queue = self._queue
        if queue is None:
            raise RuntimeError(
                f"durable event {name!r}: the app has not started (durable events need the server, "
                "the ASGI lifespan or the test client's with block)"
            )
        task = asyncio.get_running_loop().create_task(
            queue.enqueue(message, payload, delay or 0.0), name=f"hump-durable-store {name}"
        )
        self._storing.add(task)
        task.add_done_callback(partial(self._stored, name))
        return task

    def _stored(self, name: str, task: asyncio.Task[str]) -> None:
        self._storing.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            # Whoever awaits the task gets the error too; this line is for those who don't.
            logger.error("durable event %r was not stored: %s", name, exc)

    # -- lifecycle (a service of the app, and lifecycle.py's drain hooks) ------------------

    async def start(self) -> None:
        """Connect the queue and start this process's workers (the app's service start).
        Does nothing when the app has no durable event."""
        if not self._specs or self._queue is not None:
            return
        url = self.url
        queue: Queue
        if url.startswith("memory://"):
            queue = MemoryQueue(self.key_retention)
        else:
            from .durable_redis import RedisQueue

            queue = RedisQueue(
                url, prefix=self.prefix, visibility_timeout=self.visibility_timeout,
                key_retention=self.key_retention,
            )
        consumer = self.concurrency > 0
        await queue.start(consumer)
        self._queue = queue
        self._cut = self._stopping = False
        self._slot_free = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        if consumer:
            self._consumer = asyncio.get_running_loop().create_task(self._consume(queue), name="hump-durable-consumer")
            self._consumer.add_done_callback(self._consumer_done)
        if queue.durable:
            logger.info(
                "Durable events: %s, %d at a time in this process (visibility timeout %.3g s)",
                queue.describe(), self.concurrency, self.visibility_timeout,
            )
        else:
            logger.warning(
                "Durable events: in-process queue, NOT durable: events still queued or running when this "
                "process stops are lost (set HUMP_BROADCAST_URL=redis://... to keep them in Redis)"
            )

    def stop_taking(self) -> None:
        """Take no new events (SIGTERM): what runs may finish (``drain``). The in-process
        queue keeps running what is queued: nobody else would."""
        if self._queue is not None and self._queue.durable:
            self._stopping = True
            if self._consumer is not None:
                self._consumer.cancel()

    def cut(self) -> None:
        """End the drain now (a second signal): running events are handed back."""
        self._cut = True
        if self._idle is not None:
            self._idle.set()

    async def drain(self, timeout: float, why: str = "shutdown") -> int:
        """Give the running events (in-process: also the queued ones) up to ``timeout``
        seconds, then cancel the rest and hand them back (in-process: lose them), with
        one log line saying how many; returns that number."""
        queue = self._queue
        if queue is None:
            return 0
        self.stop_taking()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout, 0.0)
        busy = len(self._running) + (0 if queue.durable else _pending(queue))
        if busy and not self._cut and timeout > 0:
            logger.info("%s: waiting up to %.3g s for %d durable event(s)", why, timeout, busy)
        while not self._cut and (remaining := deadline - loop.time()) > 0:
            if queue.durable and not self._running:
                break
            if not queue.durable and not self._running and not _pending(queue):
                break
            assert self._idle is not None
            self._idle.clear()  # set by the next run that finishes (or a cut)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._idle.wait(), remaining)
        await self._stop_consumer()
        running = list(self._running)
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running, timeout=CANCEL_GRACE)
        back, self._handing_back = self._handing_back, []
        if queue.durable:
            if back:
                try:
                    await queue.release(back)
                except Exception as exc:
                    logger.error("%s: could not hand back %d durable event(s) now (%s): another worker "
                                 "takes them over after the visibility timeout", why, len(back), exc)
            if back:
                logger.warning(
                    "%s: handed back %d durable event(s) still running: another worker (or this one "
                    "after its restart) runs them again", why, len(back),
                )
            elif busy:
                logger.info("%s: the running durable event(s) finished; handed back 0", why)
            return len(back)
        lost = _pending(queue)  # the cancelled runs included: still out
        await queue.close()  # forget them; stop() reports what shutdown callbacks queue after
        if lost:
            logger.warning("%s: %d durable event(s) lost (in-process queue, not durable)", why, lost)
        return lost

    async def stop(self) -> None:
        """Stop the workers, flush, disconnect (the app's service stop, after the drain)."""
        queue, self._queue = self._queue, None
        if queue is None:
            return
        await self._stop_consumer()
        if self._storing:
            await asyncio.wait(list(self._storing), timeout=CANCEL_GRACE)
        for task in list(self._running):
            task.cancel()
        if self._running:
            await asyncio.wait(list(self._running), timeout=CANCEL_GRACE)
        if self._handing_back:
            back, self._handing_back = self._handing_back, []
            with contextlib.suppress(Exception):
                await queue.release(back)
        if not queue.durable and (lost := _pending(queue)):
            logger.warning("stop: %d durable event(s) lost (in-process queue, not durable)", lost)
        await queue.close()

    async def _stop_consumer(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer

    def _consumer_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (exc := task.exception()) is not None:
            logger.error("the durable events consumer stopped: %r", exc, exc_info=exc)

    # -- dead letters and counts -------------------------------------------------------------

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The newest ``limit`` dead letters, newest first (rule 2)."""
        return await self._started().dead_letters(limit)

    async def requeue(self, ids: Iterable[str] | None = None) -> int:
        """Queue dead letters again, their attempts counted afresh: those with these
        event ids, or all (``None``). Returns how many were queued."""
        return await self._started().requeue(None if ids is None else list(ids))

    async def stats(self) -> dict[str, int]:
        """Counts over every worker on the queue: ``queued`` (waiting to run), ``running``
        (taken by a worker, not finished), ``delayed`` (waiting for their time, retries
        included), ``dead``; ``pending`` is the first three together."""
        counts = await self._started().stats()
        counts["pending"] = counts["queued"] + counts["running"] + counts["delayed"]
        return counts

    def _started(self) -> Queue:
        if self._queue is None:
            raise RuntimeError("app.durable: the app has not started (or has no durable event)")
        return self._queue

    # -- the workers ---------------------------------------------------------------------------

    async def _consume(self, queue: Queue) -> None:
        """Take events while there are free slots, each run as a task of its own."""
        assert self._slot_free is not None
        loop = asyncio.get_running_loop()
        backoff = _FETCH_BACKOFF
        while not self._stopping:
            free = self.concurrency - len(self._running)
            if free <= 0:
                self._slot_free.clear()
                await self._slot_free.wait()
                continue
            try:
                deliveries = await queue.fetch(free)
            except Exception as exc:  # the queue's own outage handling missed it: keep consuming
                logger.error("durable events: taking events failed (%s: %s): trying again in %.3g s",
                             type(exc).__name__, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _FETCH_BACKOFF_MAX)
                continue
            backoff = _FETCH_BACKOFF
            for delivery in deliveries:
                task = loop.create_task(self._run(queue, delivery), name=f"hump-durable {delivery.message['name']}")
                self._running[task] = delivery
                task.add_done_callback(self._finished)
                if self._idle is not None:
                    self._idle.clear()

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.pop(task, None)
        if not task.cancelled() and (exc := task.exception()) is not None:
            logger.error("durable event run ended with %r", exc, exc_info=exc)
        if self._slot_free is not None:
            self._slot_free.set()
        if self._idle is not None and not self._running:
            self._idle.set()

    async def _run(self, queue: Queue, delivery: Delivery) -> None:
        """One run: a fresh context, the hooks and the handler; then ack, retry or bury."""
        message = delivery.message
        name = message["name"]
        try:
            route, params = self.routes.match_route(name)
            spec = self._specs[route]
        except (EventNotFound, KeyError):
            error = LookupError(f"no durable event {name!r} is registered in this app")
            await self._failed(queue, delivery, None, error, Durable())
            return
        # A fresh context, made as app.trigger_event makes one: never the request's.
        ctx = self.contexts.for_event()
        ctx.origin = f"durable event {message['id']}"
        ctx.hold()
        policy = spec.policy
        event = DurableEvent(
            ctx, route, message["data"], id=message["id"], attempt=delivery.attempt, attempts=policy.attempts,
            key=message.get("key"),
        )
        event.name = name
        try:
            if delivery.attempt > policy.attempts:  # its worker died during every attempt
                raise WorkerLost(
                    f"its worker stopped (killed, out of memory or shut down) during each of its "
                    f"{policy.attempts} attempt(s)"
                )
            await self._call(event, spec, params, message.get("timeout", policy.timeout))
        except asyncio.CancelledError:
            self._handing_back.append(delivery)  # the drain (or stop) hands it back
            raise
        except Exception as exc:
            event.error = exc
            await self._failed(queue, delivery, event, exc, policy)
        else:
            try:
                await queue.ack(delivery)
            except Exception as exc:
                logger.error(
                    "durable event %r (%s) ran, but could not be acknowledged (%s): it will run again",
                    name, message["id"], exc,
                )
        finally:
            event.done()
            ctx.release()

    async def _call(self, event: DurableEvent, spec: _Spec, params: dict[str, Any], timeout: float | None) -> None:
        """The before hooks, the handler (within ``timeout``), the after hooks."""
        hooks = self.hooks
        event.running = True
        try:
            await hooks.run_before(event)
            call = call_plan(spec.fn, spec.plan, event.ctx, params, event)  # type: ignore[arg-type]
            event._value = await (call if timeout is None else asyncio.wait_for(call, timeout))
            await hooks.run_after(event)
        finally:
            event.running = False

    async def _failed(
        self, queue: Queue, delivery: Delivery, event: DurableEvent | None, exc: Exception, policy: Durable
    ) -> None:
        """A failed run: retried after its backoff, or dead-lettered and reported."""
        message = delivery.message
        attempt = delivery.attempt
        if attempt < policy.attempts and not isinstance(exc, WorkerLost):
            delay = policy.retry_delay(attempt)
            logger.warning(
                "durable event %r (%s) failed attempt %d of %d: %s: %s; next attempt in %.3g s",
                message["name"], message["id"], attempt, policy.attempts, type(exc).__name__, exc, delay,
            )
            try:
                await queue.retry(delivery, encode({**message, "attempt": attempt + 1}), delay)
            except Exception as store_exc:
                logger.error("durable event %r (%s): could not queue its retry (%s): it will run again "
                             "after the visibility timeout", message["name"], message["id"], store_exc)
            return
        trace = "".join(traceback.format_exception(exc))
        try:
            await queue.bury(delivery, f"{type(exc).__name__}: {exc}", trace)
        except Exception as store_exc:
            logger.error("durable event %r (%s): could not move it to the dead letters (%s)",
                         message["name"], message["id"], store_exc)
        await self._report(message, event, exc, attempt)

    async def _report(self, message: dict[str, Any], event: DurableEvent | None, exc: Exception, attempt: int) -> None:
        """A dead-lettered event: the app's one "on_error hooks, else log" path."""
        where = (
            f"durable event {message['name']!r} ({message['id']}), which failed its last attempt "
            f"({attempt}) and went to the dead letters"
        )
        await self.hooks.report(event, exc, where)


#: After an unexpected error taking events, the consumer waits this long before trying
#: again, doubling up to the max (the Redis queue's reconnection backoff: 0.1 s to 5 s).
_FETCH_BACKOFF = 0.1
_FETCH_BACKOFF_MAX = 5.0


def _pending(queue: Queue) -> int:
    """Events the in-process queue still holds (queued, delayed, out)."""
    return queue.pending if isinstance(queue, MemoryQueue) else 0


def _check_seconds(value: Any, label: str, *, positive: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):
        rule = "a positive number of seconds" if positive else "a number of seconds, 0 or more"
        raise ValueError(f"{label} must be {rule}, got {value!r}")


def _plain_data(name: str, data: Mapping[str, Any] | None) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, Mapping) or not all(isinstance(k, str) for k in data):
        raise TypeError(f"durable event {name!r}: data= must be a dict with str keys, got {data!r:.80}")
    return dict(data)


def encode(message: dict[str, Any]) -> str:
    """A message as its stored payload, compact JSON; ``TypeError`` naming the event when
    its data is not JSON (rule 5)."""
    try:
        return json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"durable event {message.get('name')!r}: data= must be JSON-serialisable (dicts with str keys, "
            f"lists, str, int, float, bool, None), to be stored and run on any worker: {exc}"
        ) from None


def decode(payload: str | bytes) -> dict[str, Any]:
    """A stored payload back as its message."""
    message: dict[str, Any] = json.loads(payload)
    return message


# ---------------------------------------------------------------------------------------
# The in-process backend.


class MemoryQueue:
    """The queue in this process (no Redis): the same API and rules, minus durability:
    what it holds is lost when the process stops. ``clock``: seconds, the running loop's
    ``time()`` by default (tests give a manual one, then ``wake()`` after moving it)."""

    durable = False

    def __init__(self, key_retention: float = DEFAULT_KEY_RETENTION, clock: Callable[[], float] | None = None) -> None:
        self._key_retention = key_retention
        self._clock = clock
        self._ready: deque[dict[str, Any]] = deque()
        self._delayed: list[tuple[float, int, dict[str, Any]]] = []  # heap: (due, seq, message)
        self._seq = itertools.count()
        self._out: set[Delivery] = set()
        self._keys: dict[str, tuple[str, float | None]] = {}  # key → (event id, forgotten at)
        self._dead: list[tuple[DeadLetter, dict[str, Any]]] = []  # with the message to queue again
        self._wake = asyncio.Event()

    @property
    def pending(self) -> int:
        """Events queued, delayed or out (running)."""
        return len(self._ready) + len(self._delayed) + len(self._out)

    def describe(self) -> str:
        """``memory://``."""
        return "memory://"

    async def start(self, consumer: bool) -> None:
        """Nothing to connect."""

    async def close(self) -> None:
        """Nothing to disconnect; what it holds is gone."""
        self._ready.clear()
        self._delayed.clear()
        self._out.clear()

    async def enqueue(self, message: dict[str, Any], payload: str, delay: float) -> str:
        """See ``Queue.enqueue``."""
        key = message.get("key")
        if key is not None:
            known = self._keys.get(key)
            if known is not None and (known[1] is None or known[1] > self._now()):
                return known[0]
            self._keys[key] = (message["id"], None)
        self._put(decode(payload), delay)
        return str(message["id"])

    def _put(self, message: dict[str, Any], delay: float) -> None:
        if delay > 0:
            heapq.heappush(self._delayed, (self._now() + delay, next(self._seq), message))
        else:
            self._ready.append(message)
        self._wake.set()

    async def fetch(self, n: int) -> list[Delivery]:
        """See ``Queue.fetch``: waits until an event is ready."""
        while True:
            now = self._now()
            while self._delayed and self._delayed[0][0] <= now:
                self._ready.append(heapq.heappop(self._delayed)[2])
            if self._ready:
                out: list[Delivery] = []
                while self._ready and len(out) < n:
                    message = self._ready.popleft()
                    delivery = Delivery(message, None, message["attempt"])
                    self._out.add(delivery)
                    out.append(delivery)
                return out
            self._wake.clear()
            wait = self._delayed[0][0] - now if self._delayed else None
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def ack(self, delivery: Delivery) -> None:
        """See ``Queue.ack``."""
        self._out.discard(delivery)
        self._forget_key(delivery.message)

    async def retry(self, delivery: Delivery, payload: str, delay: float) -> None:
        """See ``Queue.retry``."""
        self._out.discard(delivery)
        self._put(decode(payload), delay)

    async def bury(self, delivery: Delivery, error: str, trace: str) -> None:
        """See ``Queue.bury``."""
        self._out.discard(delivery)
        message = delivery.message
        letter = DeadLetter(
            id=message["id"], name=message["name"], data=message["data"], attempts=delivery.attempt, error=error,
            traceback=trace, failed_at=time.time(), key=message.get("key"),
        )
        self._dead.append((letter, message))
        self._forget_key(message)

    async def release(self, deliveries: list[Delivery]) -> None:
        """See ``Queue.release``: queued again here, first in line."""
        for delivery in deliveries:
            self._out.discard(delivery)
            self._ready.appendleft({**delivery.message, "attempt": delivery.attempt + 1})
        self._wake.set()

    async def dead_letters(self, limit: int) -> list[DeadLetter]:
        """See ``Queue.dead_letters``."""
        return [letter for letter, _ in self._dead[::-1][:limit]]

    async def requeue(self, ids: Iterable[str] | None) -> int:
        """See ``Queue.requeue``."""
        wanted = None if ids is None else set(ids)
        keep: list[tuple[DeadLetter, dict[str, Any]]] = []
        again: list[tuple[DeadLetter, dict[str, Any]]] = []
        for letter, message in self._dead:
            (again if wanted is None or letter.id in wanted else keep).append((letter, message))
        self._dead = keep
        for letter, message in again:
            if letter.key is not None:
                self._keys[letter.key] = (letter.id, None)
            self._put({**message, "attempt": 1}, 0)
        return len(again)

    async def stats(self) -> dict[str, int]:
        """See ``Queue.stats``."""
        return {"queued": len(self._ready), "running": len(self._out), "delayed": len(self._delayed),
                "dead": len(self._dead)}

    def _forget_key(self, message: dict[str, Any]) -> None:
        key = message.get("key")
        if key is not None and key in self._keys:
            self._keys[key] = (message["id"], self._now() + self._key_retention)

    def wake(self) -> None:
        """Make a waiting ``fetch`` look at the clock again."""
        self._wake.set()

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()
