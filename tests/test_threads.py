"""threads.py: ``SyncPool``, checked directly (the sync route handlers that use it are in
test_sync_handlers.py): its bound, started on demand, results and errors, contextvars,
and ``close`` that allows reuse."""

from __future__ import annotations

import contextvars
import threading

import pytest

from hump_listener.threads import DEFAULT_SYNC_WORKERS, SyncPool

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "4"])
def test_the_bound_must_be_a_positive_int(bad: object) -> None:
    with pytest.raises(ValueError, match="sync_workers must be a positive number of threads"):
        SyncPool(bad)  # type: ignore[arg-type]


async def test_threads_start_on_demand_and_run_in_a_named_worker() -> None:
    pool = SyncPool(2)
    assert pool.max_workers == 2
    assert not pool.started
    assert repr(pool) == "SyncPool(max_workers=2, started=False)"
    name = await pool.run(lambda: threading.current_thread().name, (), {})
    assert name.startswith("hump-sync")
    assert pool.started
    pool.close()


async def test_run_returns_or_raises_what_the_function_does() -> None:
    pool = SyncPool()
    assert pool.max_workers == DEFAULT_SYNC_WORKERS
    assert await pool.run(divmod, (7, 2), {}) == (3, 1)
    assert await pool.run(int, ("ff",), {"base": 16}) == 255
    with pytest.raises(ZeroDivisionError):
        await pool.run(divmod, (1, 0), {})
    pool.close()


async def test_context_variables_are_copied_into_the_thread() -> None:
    pool = SyncPool(1)
    token = REQUEST_ID.set("abc")
    try:
        assert await pool.run(REQUEST_ID.get, (), {}) == "abc"
    finally:
        REQUEST_ID.reset(token)
    pool.close()


async def test_close_stops_the_pool_and_a_later_call_starts_a_new_one() -> None:
    pool = SyncPool(1)
    await pool.run(int, (), {})
    await pool.aclose()
    assert not pool.started
    pool.close()  # idempotent
    assert await pool.run(int, ("3",), {}) == 3
    assert pool.started
    pool.close()
