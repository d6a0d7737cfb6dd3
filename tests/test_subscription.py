"""subscription.py: positions, the items a subscription yields and its queue rules, on
the memory backend (the same rules over Redis are in tests/test_broadcast.py)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from hump_listener.broadcast import Broadcast
from hump_listener.subscription import Position, Publication, Reset, SubscriptionClosed


def test_a_position_round_trips_through_its_text() -> None:
    position = Position("a1b2c3d4", 42)
    assert str(position) == "a1b2c3d4-42"
    assert Position.parse("a1b2c3d4-42") == position
    assert Position.coerce("a1b2c3d4-42") == position and Position.coerce(position) is position
    assert Position("e", 3).follows(Position("e", 2))
    assert not Position("e", 3).follows(Position("f", 2)) and not Position("e", 4).follows(Position("e", 2))


@pytest.mark.parametrize("text", ["", "42", "abc-", "-1", "abc-x", "abc-\u0661", "a" * 70 + "-1"])
def test_text_that_is_not_a_position_is_refused_or_resumes_as_a_reset(text: str) -> None:
    with pytest.raises(ValueError, match="not a channel position"):
        Position.parse(text)
    assert Position.coerce(text).epoch == "?"  # no real epoch: resuming from it gives a Reset


def test_since_must_be_a_position_or_text() -> None:
    with pytest.raises(TypeError, match="Position or its str"):
        Position.coerce(3)  # type: ignore[arg-type]


def test_items_name_their_position() -> None:
    pub = Publication("c", '{"a": 1}', Position("e", 1))
    assert pub.id == "e-1" and pub.json() == {"a": 1} and not pub.replayed
    assert Reset("c", Position("e", 7)).id == "e-7"


async def test_drop_newest_keeps_the_queued_ones(caplog: pytest.LogCaptureFixture) -> None:
    async with Broadcast() as b, b.subscribe("q", max_queue=2, overflow="drop_newest") as sub:
        for i in range(5):
            await b.publish("q", str(i))
        assert sub.dropped == 3
        assert [await sub.get(), await sub.get()] == ["0", "1"]
        assert sub.qsize() == 0
    assert len([r for r in caplog.records if "dropping the newest" in r.getMessage()]) == 1


async def test_close_ends_the_subscription_and_it_resumes_from_its_position(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "hump_listener.error")
    async with Broadcast() as b:
        async with b.subscribe("q", max_queue=2, overflow="close") as sub:
            await b.publish("q", "0")
            assert await sub.get() == "0"
            for i in range(1, 5):
                await b.publish("q", str(i))
            assert sub.overflowed and sub.closed
            with pytest.raises(SubscriptionClosed):
                await sub.get()
            resume = sub.position
        assert "closing it" in caplog.text and str(resume) in caplog.text
        async with b.subscribe("q", since=resume) as again:
            assert [await again.get() for _ in range(4)] == ["1", "2", "3", "4"]


async def test_replayed_history_is_not_bounded_by_max_queue() -> None:
    async with Broadcast() as b:
        start = await b.position("h")
        for i in range(10):
            await b.publish("h", str(i))
        async with b.subscribe("h", since=start, max_queue=2) as sub:
            assert sub.qsize() == 10 and sub.dropped == 0
            assert [await sub.get() for _ in range(10)] == [str(i) for i in range(10)]


async def test_a_stopped_memory_broadcast_starts_a_new_epoch() -> None:
    b = Broadcast()
    async with b:
        await b.publish("m", "old")
        before = await b.position("m")
    async with b, b.subscribe("m", since=before) as sub:
        reset = await sub.get_item()
        assert isinstance(reset, Reset) and reset.position.epoch != before.epoch  # type: ignore[union-attr]


async def test_history_older_than_its_ttl_is_not_replayed(monkeypatch: pytest.MonkeyPatch) -> None:
    from hump_listener import broadcast as module

    now = [1000.0]
    monkeypatch.setattr(module, "monotonic", lambda: now[0])
    async with Broadcast(history_ttl=60) as b:
        start = await b.position("t")
        await b.publish("t", "stale")
        now[0] += 61
        await b.publish("t", "fresh")
        async with b.subscribe("t", since=start) as sub:
            reset = await sub.get_item()
            assert isinstance(reset, Reset) and reset.position.offset == 1
            assert await sub.get() == "fresh"


async def test_the_history_age_is_kept_per_clock_step_and_trimmed_by_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The memory backend notes the time once per clock step (ttl / 100 here): a message
    is dropped once surely older than the TTL, never earlier; the notes stay bounded by
    the history's size."""
    from hump_listener import broadcast as module

    now = [1000.0]
    monkeypatch.setattr(module, "monotonic", lambda: now[0])
    async with Broadcast(history_ttl=60, history_size=3) as b:
        start = await b.position("t")
        for text, at in (("a", 1000.0), ("b", 1000.5), ("c", 1030.0), ("d", 1060.0)):
            now[0] = at
            await b.publish("t", text)
        now[0] = 1060.55  # "a" and "b" are 60.5 s old: less than 60 s + one step
        async with b.subscribe("t", since=start) as sub:
            reset = await sub.get_item()
            assert isinstance(reset, Reset) and reset.position.offset == 1  # "a" went by count
            assert [await sub.get() for _ in range(3)] == ["b", "c", "d"]
        now[0] = 1061.0  # now surely older than 60 s: dropped; "c" is 31 s old, kept
        async with b.subscribe("t", since=start) as sub:
            reset = await sub.get_item()
            assert isinstance(reset, Reset) and reset.position.offset == 2
            assert [await sub.get() for _ in range(2)] == ["c", "d"]
        for i in range(20):
            now[0] += 1
            await b.publish("t", str(i))
        state = b._backend._channels["t"]  # type: ignore[attr-defined]
        assert len(state.entries) == 3 and len(state.stamps) <= 4


async def test_one_reader_at_a_time() -> None:
    async with Broadcast() as b, b.subscribe("x") as sub:
        reader = asyncio.create_task(sub.get())
        await asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="already reading"):
            await sub.get()
        await b.publish("x", "one")
        assert await reader == "one"


def test_an_unknown_overflow_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="drop_oldest, drop_newest, close"):
        Broadcast(overflow="block")  # type: ignore[arg-type]
