"""A bounded, seeded raw-bytes fuzz of the demo over real sockets (issue 10, item 8).

A few thousand cases, each a request (or a pipeline) built from the demo's routes and then
mangled: mutated request lines, odd header bytes, Content-Length / Transfer-Encoding
mixtures, chunked errors, truncations, random segmentation, early closes and resets. The
demo runs as users run it (``tiny-listener``, ``tests/apps/demo_limits.py``) with short
timeouts, so that a client the server waits on costs a second, not ten. Afterwards:

- every connection that waited for it was answered or closed (within a bound), and what it
  read is HTTP;
- the server's log has no traceback, no ERROR, and no line that is not ours;
- its open files are back to their idle count, and ``GET /`` still answers, promptly.

The cases are a pure function of the seed: case ``i`` comes from ``Random(f"{seed}:{i}")``.
A failure prints the seed and the case; to replay:

    HUMP_FUZZ_SEED=<seed> HUMP_FUZZ_ONLY=<i> pytest tests/test_fuzz.py
    HUMP_FUZZ_CASES=20000 pytest tests/test_fuzz.py   # a longer run
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fuzz_helpers import NotClosed, connection, play
from process_helpers import Launched, launch, open_files, tiny_listener, until

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts open files in /proc"),
]

SEED = int(os.environ.get("HUMP_FUZZ_SEED", "20240610"))
CASES = int(os.environ.get("HUMP_FUZZ_CASES", "3000"))
ONLY = os.environ.get("HUMP_FUZZ_ONLY")
#: Clients at once: well below the server's max_connections (a 503 is an answer, but then
#: the case tests nothing else).
CONCURRENCY = 24
#: Short server timeouts: a client the server waits on costs about a second.
OPTIONS = {
    "max_connections": 64,
    "first_byte_timeout": 1.0,
    "head_timeout": 1.0,
    "keep_alive_timeout": 1.0,
    "body_timeout": 1.0,
    "linger_timeout": 1.0,
    "send_timeout": 2.0,
}
#: A case's connection must be answered or closed within this (the timeouts above, slack
#: for a loaded 2-core machine).
ANSWER_WITHIN = 10.0

# ---------------------------------------------------------------------------------------
# The case generator: pure, seeded


@dataclass(frozen=True)
class Case:
    index: int
    pieces: tuple[bytes, ...]  # what is written, one write (and drain) each
    ending: str  # "half-close" or "keep-open": then read to the end; "close" or "reset": leave

    @property
    def data(self) -> bytes:
        return b"".join(self.pieces)

    def describe(self, seed: int) -> str:
        data = self.data
        shown = data if len(data) <= 600 else data[:500] + b"...(%d bytes)..." % len(data) + data[-80:]
        return (
            f"case {self.index} (seed {seed}; replay: HUMP_FUZZ_SEED={seed} HUMP_FUZZ_ONLY={self.index}), "
            f"{self.ending}, {len(self.pieces)} pieces: {shown!r}"
        )


#: The demo's routes. Not /clock: a mutated ``?n=`` makes its handler raise (``int("=1")``,
#: an app error, rightly logged with a traceback) or stream for ever; SSE clients that
#: leave are tested in test_protocol_attacks.py.
ROUTES = [
    b"/", b"/user/bob", b"/user/b%C3%B6b", b"/api/users/42", b"/api/users/x", b"/search?q=a&q=b&n=3",
    b"/teapot", b"/page", b"/static/hello.txt", b"/static/../etc/passwd", b"/static/",
    b"/nope", b"*", b"http://a/", b"//x", b"/%zz", b"/a b",
]
ODD_HEADERS = [
    b"X: \x01", b"X: \x7f", b"X: \xff\xfe", b"Bad Name: v", b" Lead: space", b"X :v", b"X:\tv\t", b"X:",
    b":no-name", b"X-\x00: v", b"Host: b", b"Host: a b", b"Host:", b"Content-Length: 5, 5",
    b"Content-Length: -1", b"Content-Length: +5", b"Content-Length: 99999999999999999999",
    b"Content-Length: 0x10", b"Content-Length:  3 ", b"Transfer-Encoding: chunked",
    b"Transfer-Encoding: gzip, chunked", b"Transfer-Encoding: chunked, gzip", b"Transfer-Encoding: xchunked",
    b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked", b"Connection: close",
    b"Connection: keep-alive, Upgrade", b"Upgrade: websocket", b"Expect: 100-continue", b"Expect: 200-ok",
    b"Content-Type: multipart/form-data; boundary=zz", b"Content-Type: multipart/form-data",
    b"Content-Type: application/x-www-form-urlencoded", b"X: a\r\n b", b"Cookie: " + b"c" * 9000,
    b"Range: bytes=0-3", b"Range: bytes=9-1", b"Range: bytes=-0", b"X-Forwarded-For: 1.2.3.4",
]
CHUNK_BODIES = [
    b"5\r\nhello\r\n0\r\n\r\n", b"5\nhello\n0\n\n", b"5\r\nhello\r\n0\n\n", b"5;a=b\r\nhello\r\n0\r\n\r\n",
    b"5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n", b"5\r\nhello\r\n0\r\nX-T: 1\n\n", b"zz\r\nhello\r\n0\r\n\r\n",
    b"-5\r\nhello\r\n0\r\n\r\n", b"0x5\r\nhello\r\n0\r\n\r\n", b"5\r\nhelloXX\r\n0\r\n\r\n", b"5\r\nhello",
    b"5\r\nhello\r\n", b"ffffffffffffffff\r\nhello", b"5 \r\nhello\r\n0\r\n\r\n", b"5\rhello\r0\r\r",
    b"\r\nhello\r\n0\r\n\r\n", b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
]
JUNK = [
    b"\x16\x03\x01\x00\xf5\x01", b"\x00\x01\x02", b"\xff\xfe\r\n\r\n", b"\x01\r\n\r\n",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
]
BYTES = [0, 1, 9, 10, 13, 32, 34, 37, 47, 58, 59, 127, 128, 255]


def multipart(rng: random.Random) -> bytes:
    part = b'--zz\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\n' + b"x" * rng.randrange(50)
    return part + rng.choice([b"\r\n--zz--\r\n", b"\r\n--zz", b"--zz--", b"\r\n--zq--\r\n", b""])


def request(rng: random.Random) -> bytes:
    """One request from the demo's routes, its framing chosen, then maybe mangled."""
    method = rng.choice([b"GET", b"GET", b"GET", b"HEAD", b"POST", b"POST", b"PUT", b"OPTIONS", b"DELETE"])
    target = rng.choice(ROUTES)
    if method == b"POST":
        target = rng.choice([b"/echo", b"/echo", b"/upload", b"/"])
    version = rng.choice([b"HTTP/1.1"] * 16 + [b"HTTP/1.0"] * 2 + [b"HTTP/1.2", b"HTTP/2.0", b"HTTP/0.9", b"http/1.1"])
    headers = [b"Host: a"] if rng.random() < 0.95 else []
    body = b""
    if method in (b"POST", b"PUT") or rng.random() < 0.05:
        if target == b"/upload":
            headers.append(b"Content-Type: multipart/form-data; boundary=zz")
            body = multipart(rng)
        else:
            body = rng.randbytes(rng.choice([0, 1, 5, 100, 1000, 70_000]))
        framing = rng.choice(["length", "length", "chunked", "short", "long", "both", "none"])
        if framing == "length":
            headers.append(b"Content-Length: %d" % len(body))
        elif framing == "short":  # declares more than it sends: the server must not wait forever
            headers.append(b"Content-Length: %d" % (len(body) + rng.choice([1, 1000, 10 * 2**30])))
        elif framing == "long":  # sends more than it declares: the rest is a "pipelined request"
            headers.append(b"Content-Length: %d" % max(len(body) - rng.randrange(1, 10), 0))
        elif framing == "chunked":
            headers.append(b"Transfer-Encoding: chunked")
            body = rng.choice(CHUNK_BODIES) if rng.random() < 0.6 else b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        elif framing == "both":
            headers += [b"Content-Length: %d" % len(body), b"Transfer-Encoding: chunked"]
    for _ in range(rng.choice([0] * 9 + [1, 1, 2])):
        headers.insert(rng.randrange(len(headers) + 1), rng.choice(ODD_HEADERS))
    if rng.random() < 0.03:
        headers += [b"X-%d: v" % i for i in range(rng.choice([99, 150, 2000]))]
    line_end = b"\r\n" if rng.random() < 0.92 else rng.choice([b"\n", b"\n", b"\r", b"\r\r\n"])
    head = b" ".join((method, target, version)) + line_end + b"".join(h + line_end for h in headers) + line_end
    if rng.random() < 0.05:
        head = rng.choice([b"\r\n", b"\r\n\r\n", b"\n"]) + head
    return mutate(rng, head + body)


def mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.choice([0] * 12 + [1, 1, 2, 3])):
        kind = rng.randrange(5)
        at = rng.randrange(len(buf) + 1)
        if kind == 0 and buf:  # flip a byte
            buf[min(at, len(buf) - 1)] = rng.choice(BYTES) if rng.random() < 0.6 else rng.randrange(256)
        elif kind == 1:  # insert bytes
            buf[at:at] = bytes(rng.choice(BYTES) for _ in range(rng.randrange(1, 4)))
        elif kind == 2:  # delete a range
            del buf[at : at + rng.randrange(1, 8)]
        elif kind == 3:  # duplicate a range
            buf[at:at] = buf[max(at - rng.randrange(1, 40), 0) : at]
        else:  # truncate
            del buf[at:]
    return bytes(buf)


def make_case(seed: int, index: int) -> Case:
    rng = random.Random(f"{seed}:{index}")
    roll = rng.random()
    if roll < 0.03:
        data = rng.choice(JUNK) + rng.randbytes(rng.randrange(20))
    elif roll < 0.06:
        data = rng.randbytes(rng.randrange(1, 200))
    else:
        data = b"".join(request(rng) for _ in range(rng.choice([1, 1, 1, 1, 2, 3, 6])))
    if not data:
        data = b"\r\n"
    if len(data) < 300 and rng.random() < 0.1:  # byte by byte
        pieces = tuple(data[i : i + 1] for i in range(len(data)))
    else:
        cuts = sorted(rng.randrange(1, len(data)) for _ in range(rng.choice([0, 0, 1, 2, 4]))) if len(data) > 1 else []
        bounds = [0, *cuts, len(data)]
        pieces = tuple(data[a:b] for a, b in itertools.pairwise(bounds) if b > a)
    ending = rng.choices(["half-close", "keep-open", "close", "reset"], weights=[70, 4, 14, 12])[0]
    return Case(index, pieces, ending)


def all_cases(seed: int = SEED, count: int = CASES) -> list[Case]:
    if ONLY is not None:
        return [make_case(seed, int(i)) for i in ONLY.split(",")]
    return [make_case(seed, i) for i in range(count)]


def test_the_generator_is_deterministic() -> None:
    assert [make_case(7, i) for i in range(200)] == [make_case(7, i) for i in range(200)]
    assert make_case(7, 3) != make_case(8, 3)
    kinds = {make_case(SEED, i).ending for i in range(500)}
    assert kinds == {"half-close", "keep-open", "close", "reset"}


# ---------------------------------------------------------------------------------------
# The run




@pytest.fixture(scope="module")
def demo() -> Iterator[tuple[Launched, int, int]]:
    env = {"HUMP_TEST_SERVER_OPTIONS": json.dumps(OPTIONS), "HUMP_ACCESS_LOG": "0"}
    with launch(tiny_listener("apps.demo_limits:app"), env=env) as proc:
        port = proc.serving_port()
        yield proc, port, open_files(proc.proc.pid)


async def run_case(port: int, case: Case) -> str | None:
    """None if the case went as it must, else what went wrong."""
    async with connection(port) as (reader, writer):
        try:
            got = await play(reader, writer, case.pieces, case.ending, ANSWER_WITHIN)
        except NotClosed as exc:
            return f"neither answered nor closed within {ANSWER_WITHIN} s ({exc})"
        if got and not got.startswith(b"HTTP/1.1 "):
            return f"answered with something that is not HTTP/1.1: {got[:200]!r}"
        return None


OUR_LINE = re.compile(r"(DEBUG|INFO|WARNING|ERROR|CRITICAL) +\S")


async def test_fuzz(demo: tuple[Launched, int, int]) -> None:
    proc, port, baseline = demo
    cases = all_cases()
    start = len(proc.lines)
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(case: Case) -> str | None:
        async with limit:
            return await run_case(port, case)

    outcomes = await asyncio.gather(*(one(case) for case in cases))
    failures = [f"{problem}\n  {case.describe(SEED)}" for case, problem in zip(cases, outcomes, strict=True) if problem]
    assert not failures, f"{len(failures)} of {len(cases)} cases failed:\n" + "\n".join(failures[:10])

    pid = proc.proc.pid
    assert await until(lambda: open_files(pid) <= baseline, 20.0), (
        f"open files: {open_files(pid)} after the fuzz, {baseline} before (seed {SEED})"
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    async with asyncio.timeout(2.0):  # promptly: nothing left behind keeps the server busy
        answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"Hello, world!")

    log = "".join(proc.lines[start:])
    odd = [line for line in log.splitlines() if not OUR_LINE.match(line)]
    assert "Traceback" not in log and not re.search(r"^ERROR", log, re.M) and not odd, (
        f"seed {SEED}: the server's log has tracebacks, errors or lines not ours:\n"
        + "\n".join([line for line in log.splitlines() if line.startswith("ERROR")][:10] + odd[:30])
    )
