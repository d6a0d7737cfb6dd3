"""Shared fixtures. Tests mirror modules: test_routing.py ↔ routing.py and so on.

The event loop the suite runs on is chosen by ``HUMP_TEST_LOOP`` (``asyncio``, the
default, or ``uvloop``; ``scripts/test`` runs the suite once on each):

- ``uvloop`` installs uvloop's event-loop policy, as a deployment calling
  ``uvloop.install()`` does, so pytest-asyncio's loops, the ``TestClient``'s loop thread
  and every ``asyncio.new_event_loop()`` in a test are uvloop loops;
- ``HUMP_LOOP`` is set to the same name for the whole run, so every server a test starts
  in a subprocess (``tiny-listener``, ``python -m hump_listener``, workers) and every
  ``App()`` runs on that loop too. Tests of ``HUMP_LOOP`` itself set their own.
"""

from __future__ import annotations

import asyncio
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis_helpers import RedisServer, running_redis

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
for p in (str(ROOT), str(TESTS)):
    if p not in sys.path:
        sys.path.insert(0, p)

TEST_LOOPS = ("asyncio", "uvloop")
TEST_LOOP = os.environ.get("HUMP_TEST_LOOP", "asyncio").strip().lower() or "asyncio"


def pytest_configure(config: pytest.Config) -> None:
    if TEST_LOOP not in TEST_LOOPS:
        raise pytest.UsageError(f"HUMP_TEST_LOOP must be one of {', '.join(TEST_LOOPS)}, got {TEST_LOOP!r}")
    os.environ["HUMP_LOOP"] = TEST_LOOP
    if TEST_LOOP == "uvloop":
        try:
            import uvloop
        except ImportError:
            raise pytest.UsageError(
                "HUMP_TEST_LOOP=uvloop needs uvloop: pip install uvloop"
            ) from None
        with warnings.catch_warnings():
            # Python 3.14 deprecates event-loop policies; uvloop's is still how
            # deployments install it, and what this run exists to test.
            warnings.simplefilter("ignore", DeprecationWarning)
            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def pytest_report_header(config: pytest.Config) -> str:
    return f"event loop: {TEST_LOOP} (HUMP_TEST_LOOP)"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own on a loopback port (skipped when redis-server is not
    installed); a module that shares one across its tests overrides this fixture."""
    with running_redis(tmp_path) as server:
        yield server
