"""Sync handlers: plain ``def`` route handlers run in a bounded thread pool.

Flask, Bottle and PyMicroHTTP users write ``def`` handlers; a blocking call in one must
not stall the event loop, so a route whose handler is not a coroutine function is run
with ``SyncPool.run()``: its arguments are injected on the loop exactly as for an
``async def`` handler (``Depends`` of async dependencies included, awaited there), then
the function itself runs in a worker thread and its return value comes back to the loop,
where it becomes the response as any handler's would.

Policy choices:

1. The pool is bounded (``DEFAULT_SYNC_WORKERS`` threads, ``App(sync_workers=N)``);
   calls beyond it wait in the queue, not in new threads. Threads are started on demand
   (an app without sync handlers starts none) and live as long as the pool.
2. ``contextvars`` are copied into the thread for each call (as ``asyncio.to_thread``
   and anyio do), so a context variable set by middleware is visible to the handler.
3. A request cancelled while its handler runs (client gone, ``handler_timeout``) stops
   waiting at once; the thread runs the function to its end and the result is dropped:
   Python cannot interrupt a thread (Starlette and uvicorn behave the same).
4. ``close()`` runs with the app's shutdown (it is registered as a shutdown callback
   when the first sync route is added): queued calls are cancelled, idle threads exit;
   a function still running keeps its thread until it returns, so a handler blocked
   for ever delays the exit of the process (as with any Python thread). The pool may
   be used again after ``close()``: a new executor is started on the next call.

Sync middleware, dependencies and tiny-listener hooks are refused at registration:
they run on the event loop and would block it (tiny-listener's ``Depends`` refuses a
plain function itself).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

__all__ = ["DEFAULT_SYNC_WORKERS", "SyncPool"]

#: Worker threads for sync handlers: anyio's default ``CapacityLimiter`` for
#: ``to_thread.run_sync`` (what Starlette and FastAPI run ``def`` endpoints on) has 40
#: tokens; Django's ``sync_to_async`` uses one thread, ``asyncio.to_thread`` the default
#: executor's ``min(32, cpus + 4)``. 40 keeps a Starlette user's expectation.
DEFAULT_SYNC_WORKERS = 40
_THREAD_NAME = "hump-sync"


class SyncPool:
    """A bounded pool of threads for sync handlers (server lifetime)."""

    def __init__(self, max_workers: int = DEFAULT_SYNC_WORKERS) -> None:
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise ValueError(f"sync_workers must be a positive number of threads, got {max_workers!r}")
        self.max_workers = max_workers
        self._executor: ThreadPoolExecutor | None = None

    @property
    def started(self) -> bool:
        """True while an executor (and perhaps threads) exist."""
        return self._executor is not None

    async def run(self, fn: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        """Call ``fn(*args, **kwargs)`` in a worker thread; return (or raise) what it does."""
        executor = self._executor
        if executor is None:
            executor = self._executor = ThreadPoolExecutor(self.max_workers, thread_name_prefix=_THREAD_NAME)
        call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(executor, call)

    def close(self) -> None:
        """Stop the pool: queued calls are cancelled, idle threads exit (policy 4)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    async def aclose(self) -> None:
        """``close()`` as a shutdown callback."""
        self.close()

    def __repr__(self) -> str:
        return f"SyncPool(max_workers={self.max_workers}, started={self.started})"
