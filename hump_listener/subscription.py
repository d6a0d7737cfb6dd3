"""What a subscriber holds: positions, the items it receives and its bounded queue.

``Position`` places a message in its channel: an ``offset`` that grows by one per message
within an ``epoch``; the epoch changes whenever the channel's history was lost (a Redis
restarted without its data, a memory backend restarted), so a position of another epoch
cannot be resumed from. Its text form, ``"<epoch>-<offset>"``, is what clients keep (an
SSE ``id:``, a chat message's ``"id"``) and give back (``Last-Event-ID``, ``?since=``).

A subscription receives two kinds of items, in channel order:

- ``Publication(channel, data, position, replayed)``: a message; ``replayed`` when it came
  from the history (a resume, or a catch-up after an outage) rather than live;
- ``Reset(channel, position)``: the subscription could not be resumed (its position is
  older than the history, of another epoch, or not a position at all): what was published
  up to ``position`` is skipped, what follows is delivered. One marker, never a silent gap.

Rules of a subscription (``Subscription``), enforced here:

1. **Sequence.** Within an epoch each publication is queued at most once and in offset
   order: one at or before the tail (the last position queued) is a duplicate and dropped;
   one past ``tail + 1`` (or of another epoch) reveals a gap: the subscription *holds*
   what arrives (bounded) while its Broadcast reads the missing part from the history,
   then queues that part (or one ``Reset`` and what the history still holds) and replays
   what it held through this rule.
2. **Bounded.** At most ``max_queue`` live items wait for the reader (history being
   replayed is bounded by the history size instead). When a live item finds the queue
   full, the ``overflow`` policy decides: ``"drop_oldest"`` (the default: the oldest
   queued item goes), ``"drop_newest"`` (the arriving one goes), or ``"close"`` (the
   subscription ends at once, ``sub.overflowed`` is set, its queue is discarded: the
   reader resumes later from ``sub.position``, which is the last item it took). Drops are
   counted in ``dropped`` and logged once per burst.
3. **One reader.** One coroutine at a time reads; ``get()`` gives the data of the next
   publication (a ``Reset`` is counted in ``resets`` and skipped), ``get_item()`` gives
   the items themselves. ``position`` is the position of the last item taken.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import AsyncIterator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

if TYPE_CHECKING:
    from .broadcast import Broadcast

__all__ = [
    "OVERFLOW_POLICIES",
    "Item",
    "Message",
    "Overflow",
    "Position",
    "Publication",
    "Reset",
    "Subscription",
    "SubscriptionClosed",
]

logger = logging.getLogger("hump_listener.error")

#: What a channel carries.
Message = str | bytes
#: What a full queue does with the next live item (rule 2).
Overflow = Literal["drop_oldest", "drop_newest", "close"]
OVERFLOW_POLICIES: tuple[Overflow, ...] = ("drop_oldest", "drop_newest", "close")

#: Epoch of a position that a client sent but that is not one (never a real epoch: real
#: epochs are hex): resuming from it yields a Reset.
_UNKNOWN_EPOCH = "?"


class SubscriptionClosed(Exception):
    """``get()`` on a subscription that has ended (left, its Broadcast stopped, or closed
    by the ``"close"`` overflow policy) with nothing queued. ``async for`` ends instead."""


class Position(NamedTuple):
    """Where a message sits in its channel: ``offset`` within ``epoch``. ``str()`` gives
    ``"<epoch>-<offset>"``; ``Position.parse`` reads it back. (A named tuple: made once per
    message, it is the cheapest immutable record.)"""

    epoch: str
    offset: int

    def __str__(self) -> str:
        return f"{self.epoch}-{self.offset}"

    @classmethod
    def parse(cls, text: str) -> Position:
        """``"<epoch>-<offset>"`` back to a Position; ``ValueError`` if it is not one."""
        epoch, sep, offset = text.rpartition("-")
        if not sep or not epoch or not offset.isdigit() or not offset.isascii() or len(text) > 64:
            raise ValueError(f"not a channel position: {text[:70]!r}")
        return cls(epoch, int(offset))

    @classmethod
    def coerce(cls, value: Position | str) -> Position:
        """A Position from a Position or its text; text that is not a position (a
        client's header) becomes a position of no epoch, which resumes as a Reset."""
        if isinstance(value, Position):
            return value
        if not isinstance(value, str):
            raise TypeError(f"since must be a Position or its str, got {type(value).__name__}")
        try:
            return cls.parse(value)
        except ValueError:
            return cls(_UNKNOWN_EPOCH, 0)

    def follows(self, other: Position) -> bool:
        """``self`` is the position right after ``other``."""
        return self.offset == other.offset + 1 and self.epoch == other.epoch


class Publication(NamedTuple):
    """A message as a subscriber receives it: its channel, its data (``str`` or ``bytes``,
    as published), its position (``None`` when the Broadcast keeps no history) and
    whether it was replayed from the history."""

    channel: str
    data: Message
    position: Position | None
    replayed: bool = False

    @property
    def id(self) -> str:
        """The position as text (``""`` without one): an SSE ``id:``, a client's cursor."""
        return "" if self.position is None else str(self.position)

    def json(self) -> Any:
        """The data parsed as JSON."""
        return json.loads(self.data)


class Reset(NamedTuple):
    """The subscription could not resume: what was published up to ``position`` is
    skipped (too old for the history, or of another epoch); what follows is delivered."""

    channel: str
    position: Position

    @property
    def id(self) -> str:
        """The position as text."""
        return str(self.position)


Item = Publication | Reset


class Subscription:
    """One subscriber's view of a channel: ``async with broadcast.subscribe(ch) as sub``
    (see the module docstring for its rules).

    State by lifetime: configuration (channel, bounds, policy) for its life; the queue,
    the tail and the held items while it is entered.
    """

    def __init__(
        self, broadcast: Broadcast, channel: str, max_queue: int, overflow: Overflow, since: Position | None
    ) -> None:
        self.channel = channel
        self.max_queue = max_queue
        self.overflow: Overflow = overflow
        #: Items lost by falling behind (rule 2).
        self.dropped = 0
        #: Reset markers skipped by ``get()`` (``get_item()`` returns them).
        self.resets = 0
        #: The ``"close"`` policy ended this subscription: resume from ``position``.
        self.overflowed = False
        self._broadcast = broadcast
        self._since = since
        self._position: Position | None = since
        self._tail: Position | None = since  # last position queued (rule 1)
        self._queue: deque[Item] = deque()
        self._replayed = 0  # replayed items in the queue: not counted against max_queue
        self._held: deque[Publication] | None = None  # not None while catching up
        self._waiter: asyncio.Future[None] | None = None
        self._entered = False
        self._closed = False
        self._behind = False  # in a burst of drops (logged once until the queue empties)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open" if self._entered else "not entered"
        return (
            f"<Subscription {self.channel!r} {state} position={self.position} queued={len(self._queue)} "
            f"dropped={self.dropped}>"
        )

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

    # -- what the reader sees --------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """The subscription has ended (left, its Broadcast stopped, or overflowed)."""
        return self._closed

    @property
    def position(self) -> Position | None:
        """The position of the last item taken (or, before any, where the subscription
        starts: the channel's position when it was entered, or ``since``); resuming from
        it later misses nothing. ``None`` when the Broadcast keeps no history."""
        return self._position

    @property
    def catching_up(self) -> bool:
        """Reading the history to fill a gap (or to resume ``since``)."""
        return self._held is not None

    def qsize(self) -> int:
        """Items queued and not taken yet."""
        return len(self._queue)

    async def get_item(self) -> Item:
        """The next ``Publication`` or ``Reset``, waiting for one; ``SubscriptionClosed``
        once the subscription has ended and its queue is empty."""
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
        item = queue.popleft()
        if type(item) is Publication and item.replayed:
            self._replayed -= 1
        position = item.position
        if position is not None:
            self._position = position
        if not queue:
            self._behind = False  # caught up: the next drop starts a new burst
        return item

    async def get(self) -> Message:
        """The data of the next publication (a ``Reset`` is counted in ``resets`` and
        skipped); ``SubscriptionClosed`` once the subscription ended and its queue is empty."""
        while True:
            item = await self.get_item()
            if type(item) is Publication:
                return item.data
            self.resets += 1

    async def get_json(self) -> Any:
        """The next message parsed as JSON."""
        return json.loads(await self.get())

    async def iter_json(self) -> AsyncIterator[Any]:
        """Iterate the messages parsed as JSON."""
        async for message in self:
            yield json.loads(message)

    async def iter_items(self) -> AsyncIterator[Item]:
        """Iterate the items (publications and resets) until the subscription ends."""
        while True:
            try:
                yield await self.get_item()
            except SubscriptionClosed:
                return

    # -- called by the Broadcast (rule 1) ------------------------------------------------------

    def _offer(self, pub: Publication) -> bool:
        """A live publication: queue it in sequence; ``False`` when it reveals a gap and
        the subscription must catch up from its tail (the Broadcast reads the history)."""
        if self._closed:
            return True
        position = pub.position
        if position is None:
            self._put(pub)
            return True
        held = self._held
        if held is not None:
            if len(held) >= self.max_queue:
                held.popleft()  # read again from the history when replaying what is held
            held.append(pub)
            return True
        tail = self._tail
        if tail is None or (position[1] == tail[1] + 1 and position[0] == tail[0]):  # follows (hot path)
            self._tail = position
            self._put(pub)
            return True
        if tail.epoch == position.epoch and position.offset <= tail.offset:
            return True  # a duplicate: queued already (history and live overlapped)
        self._held = deque((pub,))
        return False

    def _hold(self) -> None:
        """Start catching up (an outage, or entering with ``since``)."""
        if self._held is None:
            self._held = deque()

    def _replay(self, head: Position, entries: list[Publication], resumed: bool) -> bool:
        """The history read for a catch-up: the ``entries`` after the tail (in order) when
        ``resumed``; else the tail cannot be resumed and ``entries`` are all the history
        still holds: one ``Reset`` at the position before them (``head`` when there are
        none), then them, so that only what the history lost is skipped. Replays what was
        held; ``False`` when that reveals another gap."""
        if self._closed:
            return True
        tail = self._tail
        if not resumed:
            first = entries[0].position if entries else None
            start = head if first is None else Position(first.epoch, first.offset - 1)
            self._put(Reset(self.channel, start), replay=True)
            tail = start
        elif tail is None:
            tail = head  # entered without ``since``: start at the channel's position
            if self._position is None:
                self._position = head
            entries = []
        for pub in entries:
            position = pub.position
            assert position is not None
            if position.follows(tail):
                self._put(pub, replay=True)
                tail = position
        self._tail = tail
        held = list(self._held or ())
        self._held = None
        for i, pub in enumerate(held):
            if not self._offer(pub):
                again = self._held
                assert again is not None
                again.extend(held[i + 1 :])
                return False
        return True

    def _put(self, item: Item, replay: bool = False) -> None:
        queue = self._queue
        if replay:
            if type(item) is Publication:
                self._replayed += 1
            queue.append(item)
            self._wake()
            return
        if len(queue) - self._replayed >= self.max_queue:
            policy = self.overflow
            if policy == "close":
                self._overflow()
                return
            self.dropped += 1
            if policy == "drop_newest":
                self._warn_behind("newest")
                return
            dropped = queue.popleft()
            if type(dropped) is Publication and dropped.replayed:
                self._replayed -= 1
            self._warn_behind("oldest")
        queue.append(item)
        self._wake()

    def _warn_behind(self, which: str) -> None:
        if not self._behind:
            self._behind = True
            logger.warning(
                "broadcast: a subscriber to %r fell behind (%d messages queued); dropping the %s "
                "messages until it catches up (%d dropped so far)",
                self.channel, self.max_queue, which, self.dropped,
            )

    def _overflow(self) -> None:
        self.overflowed = True
        self.dropped += len(self._queue) + 1
        self._queue.clear()
        self._replayed = 0
        if not self._behind:
            self._behind = True
            logger.warning(
                "broadcast: a subscriber to %r fell behind (%d messages queued); closing it (overflow='close'), "
                "it can resume from position %s",
                self.channel, self.max_queue, self._position,
            )
        self._close()

    def _close(self) -> None:
        self._closed = True
        self._held = None
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
