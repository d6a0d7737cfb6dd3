"""The demo's durable jobs (issue 21 item 9): ``POST /jobs?count=N&ms=M`` and ``GET
/jobs``, in-process through the test client (the in-process queue) and across two
``tiny-listener http_web:app`` processes sharing a real redis-server, where the counts
are aggregated in Redis whichever instance ran the jobs or is asked."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from redis_helpers import RedisServer
from servers import RunningServer, run_server

import http_web
from hump_listener.testing import TestClient

#: Bound on the polls of GET /jobs while the jobs run (each poll is one request).
MAX_POLLS = 2000


def test_post_jobs_queues_durable_jobs_that_get_jobs_counts() -> None:
    with TestClient(http_web.app) as client:
        before = client.get("/jobs").json()
        answer = client.post("/jobs?count=5&ms=1")
        assert (answer.status_code, answer.json()) == (202, {"queued": 5, "ms": 1})
        for _ in range(MAX_POLLS):
            counts = client.get("/jobs").json()
            if counts["done"] == before["done"] + 5 and counts["pending"] == 0:
                break
    assert counts["runs"] == before["runs"] + 5
    assert [counts[name] for name in ("pending", "dead", "queued", "running", "delayed")] == [0, 0, 0, 0, 0]


@pytest.mark.parametrize(
    "query", ["", "?count=0&ms=1", "?count=10001&ms=1", "?count=x&ms=1", "?count=1", "?count=1&ms=60001"]
)
def test_post_jobs_checks_its_query(query: str) -> None:
    with TestClient(http_web.app) as client:
        response = client.post(f"/jobs{query}")
    assert response.status_code == 400 and "must be an integer from" in response.text



@pytest.fixture
def instances(redis_server: RedisServer) -> Iterator[tuple[RunningServer, RunningServer]]:
    env = {"HUMP_BROADCAST_URL": redis_server.url}
    with ExitStack() as stack:
        a = stack.enter_context(run_server("http_web:app", env=env))
        b = stack.enter_context(run_server("http_web:app", env=env))
        yield a, b


async def test_jobs_queued_on_one_instance_are_counted_on_the_other(
    instances: tuple[RunningServer, RunningServer]
) -> None:
    a, b = instances
    async with httpx.AsyncClient() as http:
        answer = await http.post(f"{a.url}/jobs", params={"count": 40, "ms": 20})
        assert (answer.status_code, answer.json()) == (202, {"queued": 40, "ms": 20})
        counts: dict[str, Any] = {}
        for _ in range(MAX_POLLS):
            counts = json.loads((await http.get(f"{b.url}/jobs")).text)
            if counts["done"] == 40 and counts["pending"] == 0:
                break
            await asyncio.sleep(0.01)
    assert counts["done"] == 40 and counts["runs"] == 40  # no crash: no duplicate
    assert (counts["pending"], counts["dead"]) == (0, 0)
    assert "Durable events: redis://127.0.0.1" in a.output() + b.output()  # durable, not the in-process queue
