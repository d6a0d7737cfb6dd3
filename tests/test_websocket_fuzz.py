"""A bounded, seeded WebSocket fuzz of the demo over real sockets (issue 18, item 11),
beside the HTTP one (tests/test_fuzz.py).

Each case is a valid opening handshake to ``/ws/echo`` followed by random frames: every
opcode (reserved ones too), FIN and RSV bits, masked or not, lengths in every encoding and
around the limits, text that is or is not UTF-8, fragments in and out of order, control
frames between fragments, close frames with any code; cut into random writes, then ended
by a close frame, a half-close, a close or a reset (with a frame left unfinished only when
nobody waits for an answer). The demo runs as users run it (``tiny-listener``,
``tests/apps/demo_limits.py``) with small limits and short timeouts. Afterwards:

- every connection the client waited on was closed by the server within a bound (none
  hangs), and what it read is a 101 and then server frames (unmasked);
- the server's log has no traceback, no ERROR and no line that is not ours;
- its open files are back to their idle count, its memory grew by a bounded amount, and
  ``GET /`` still answers.

The cases are a pure function of the seed: case ``i`` comes from ``Random(f"{seed}:{i}")``.
To replay one, or run longer:

    HUMP_WSFUZZ_SEED=<seed> HUMP_WSFUZZ_ONLY=<i> pytest tests/test_websocket_fuzz.py
    HUMP_WSFUZZ_CASES=20000 pytest tests/test_websocket_fuzz.py
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import re
import struct
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

SEED = int(os.environ.get("HUMP_WSFUZZ_SEED", "20261207"))
CASES = int(os.environ.get("HUMP_WSFUZZ_CASES", "3000"))
ONLY = os.environ.get("HUMP_WSFUZZ_ONLY")
CONCURRENCY = 32
MAX_SIZE = 64 * 1024
OPTIONS = {
    "max_connections": 128,
    "ws_max_message_size": MAX_SIZE,
    "ws_max_fragments": 32,
    "ws_ping_interval": 1.0,
    "ws_ping_timeout": 1.0,
    "ws_close_timeout": 1.0,
    "send_timeout": 2.0,
}
#: A connection the client waits on must be closed within this (the timeouts above, and
#: slack for a loaded machine).
CLOSED_WITHIN = 10.0
#: What the server's memory may grow by over the whole run.
RSS_GROWTH = 48 * 1024 * 1024

# ---------------------------------------------------------------------------------------
# The case generator: pure, seeded

OPCODES = [0x0, 0x1, 0x2, 0x8, 0x9, 0xA]
RESERVED = [0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF]
CLOSE_CODES = [1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1011, 1015, 2999, 3000, 4999, 5000, 0, 65535]


def frame_bytes(rng: random.Random, opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """One client frame, sometimes odd: a reserved bit, no mask, a non-minimal length."""
    rsv = rng.choice((1, 2, 4)) if rng.random() < 0.03 else 0
    masked = rng.random() > 0.03
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    bit = 0x80 if masked else 0
    form = 7 if n < 126 else 16 if n < 65536 else 64
    if rng.random() < 0.05:
        form = 64 if form < 64 else form  # a longer encoding than needed
    if form == 7:
        head += bytes([bit | n])
    elif form == 16:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not masked:
        return head + payload
    key = rng.randbytes(4)
    if not n:
        return head + key
    repeated = (key * (n // 4 + 1))[:n]
    return head + key + (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(n, "big")


#: Text to cut payloads from: slices are valid UTF-8 or cut inside a character.
TEXT_POOL = ("aé€😀\n" * 20_000).encode()


def payload_of(rng: random.Random, opcode: int, most: int = 70_000) -> bytes:
    if opcode in (0x8,):
        if rng.random() < 0.2:
            return rng.choice((b"", b"\x03"))
        reason = rng.choice((b"", b"bye", b"\xff\xfe", "é".encode()))
        return struct.pack("!H", rng.choice(CLOSE_CODES)) + reason
    size = rng.choice((0, 1, 2, 5, 125, 126, 127, 1000, 65535, 65536, MAX_SIZE + 1))
    if opcode in (0x9, 0xA) and rng.random() < 0.9:
        size = min(size, 125)
    size = min(size, most)
    if rng.random() < 0.5:
        at = rng.randrange(0, 16)
        return TEXT_POOL[at : at + size]
    return rng.randbytes(size)


def frames_of(rng: random.Random) -> list[bytes]:
    out: list[bytes] = []
    for _ in range(rng.randint(1, 12)):
        kind = rng.random()
        if kind < 0.45:  # a whole message
            opcode = rng.choice((0x1, 0x2))
            out.append(frame_bytes(rng, opcode, payload_of(rng, opcode)))
        elif kind < 0.7:  # a fragmented message, perhaps with control frames, perhaps broken
            opcode = rng.choice((0x1, 0x2))
            pieces = rng.randint(2, 40)
            for i in range(pieces):
                op = opcode if i == 0 else 0x0
                if rng.random() < 0.05:
                    op = rng.choice(OPCODES)  # out of order
                out.append(frame_bytes(rng, op, payload_of(rng, op, 300), fin=i == pieces - 1))
                if rng.random() < 0.1:
                    out.append(frame_bytes(rng, 0x9, b"p"))
        elif kind < 0.85:  # a control frame
            opcode = rng.choice((0x8, 0x9, 0xA))
            out.append(frame_bytes(rng, opcode, payload_of(rng, opcode), fin=rng.random() > 0.03))
        else:  # a reserved opcode
            opcode = rng.choice(RESERVED)
            out.append(frame_bytes(rng, opcode, rng.randbytes(rng.randint(0, 20))))
    return out


@dataclass(frozen=True)
class Case:
    index: int
    pieces: tuple[bytes, ...]  # written after the handshake, one write (and drain) each
    ending: str  # "close-frame" or "half-close": then read to the end; "close", "reset": leave

    def describe(self, seed: int) -> str:
        data = b"".join(self.pieces)
        shown = data if len(data) <= 400 else data[:300] + b"...(%d bytes)..." % len(data)
        return (
            f"case {self.index} (seed {seed}; replay: HUMP_WSFUZZ_SEED={seed} HUMP_WSFUZZ_ONLY={self.index}), "
            f"{self.ending}: {shown!r}"
        )


def make_case(seed: int, index: int) -> Case:
    rng = random.Random(f"{seed}:{index}")
    data = b"".join(frames_of(rng))
    ending = rng.choices(("close-frame", "half-close", "close", "reset"), (5, 2, 2, 1))[0]
    if ending in ("close", "reset") and data and rng.random() < 0.5:
        data = data[: rng.randint(0, len(data) - 1)]  # leave a frame unfinished
    if ending == "close-frame":
        data += frame_bytes(random.Random(index), 0x8, struct.pack("!H", 1000))
    pieces, i = [], 0
    while i < len(data):
        step = rng.choice((1, 7, 100, 4096, 1 << 20))
        pieces.append(data[i : i + step])
        i += step
    return Case(index, tuple(pieces), ending)


def all_cases(seed: int = SEED, count: int = CASES) -> list[Case]:
    if ONLY is not None:
        return [make_case(seed, int(i)) for i in ONLY.split(",")]
    return [make_case(seed, i) for i in range(count)]


def test_the_generator_is_deterministic() -> None:
    assert [make_case(7, i) for i in range(100)] == [make_case(7, i) for i in range(100)]
    assert make_case(7, 3) != make_case(8, 3)
    assert {make_case(SEED, i).ending for i in range(300)} == {"close-frame", "half-close", "close", "reset"}


# ---------------------------------------------------------------------------------------
# The run


@pytest.fixture(scope="module")
def demo() -> Iterator[tuple[Launched, int, int]]:
    env = {"HUMP_TEST_SERVER_OPTIONS": json.dumps(OPTIONS), "HUMP_ACCESS_LOG": "0"}
    with launch(tiny_listener("apps.demo_limits:app"), env=env) as proc:
        yield proc, proc.serving_port(), open_files(proc.proc.pid)


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def handshake() -> bytes:
    key = base64.b64encode(os.urandom(16))
    return (
        b"GET /ws/echo HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )


def close_code(data: bytes) -> int | None:
    """The code of the server's close frame in ``data``, a run of unmasked frames (0 for
    none, -1 if a frame is masked)."""
    i, code = 0, 0
    while len(data) - i >= 2:
        if data[i + 1] & 0x80:
            return -1
        n, j = data[i + 1] & 0x7F, i + 2
        if n == 126:
            n, j = int.from_bytes(data[j : j + 2], "big"), j + 2
        elif n == 127:
            n, j = int.from_bytes(data[j : j + 8], "big"), j + 8
        if data[i] & 0x0F == 0x8 and n >= 2 and j + 2 <= len(data):
            code = int.from_bytes(data[j : j + 2], "big")
        i = j + n
    return code


#: Close codes the server sent, over the run (the fuzz must reach the rules it tests).
CODES: set[int] = set()


async def run_case(port: int, case: Case) -> str | None:
    """None if the case went as it must, else what went wrong."""
    async with connection(port) as (reader, writer):
        writer.write(handshake())
        async with asyncio.timeout(CLOSED_WITHIN):
            head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101 "):
            return f"the handshake was answered {head[:100]!r}"
        try:
            got = await play(reader, writer, case.pieces, case.ending, CLOSED_WITHIN)
        except NotClosed as exc:
            return f"not closed within {CLOSED_WITHIN} s ({exc})"
        if got is None:
            return None
        code = close_code(got)
        if code == -1:
            return f"read something that is not server frames: {got[:200]!r}"
        CODES.add(code)
        return None


OUR_LINE = re.compile(r"(DEBUG|INFO|WARNING|ERROR|CRITICAL) +\S")


async def test_websocket_fuzz(demo: tuple[Launched, int, int]) -> None:
    proc, port, baseline = demo
    pid = proc.proc.pid
    cases = all_cases()
    start, rss_before = len(proc.lines), rss(pid)
    limit = asyncio.Semaphore(CONCURRENCY)

    async def one(case: Case) -> str | None:
        async with limit:
            return await run_case(port, case)

    outcomes = await asyncio.gather(*(one(case) for case in cases))
    failures = [f"{problem}\n  {case.describe(SEED)}" for case, problem in zip(cases, outcomes, strict=True) if problem]
    assert not failures, f"{len(failures)} of {len(cases)} cases failed:\n" + "\n".join(failures[:10])
    if ONLY is None:  # normal closes, protocol errors, bad UTF-8, too big (size or fragments)
        assert {1000, 1002, 1007, 1009} <= CODES, CODES

    assert await until(lambda: open_files(pid) <= baseline, 20.0), (
        f"open files: {open_files(pid)} after the fuzz, {baseline} before (seed {SEED})"
    )
    assert rss(pid) - rss_before < RSS_GROWTH, f"RSS {rss_before} -> {rss(pid)} (seed {SEED})"
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    async with asyncio.timeout(5.0):
        answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200")

    log = "".join(proc.lines[start:])
    odd = [line for line in log.splitlines() if not OUR_LINE.match(line)]
    assert "Traceback" not in log and not re.search(r"^ERROR", log, re.M) and not odd, (
        f"seed {SEED}: the server's log has tracebacks, errors or lines not ours:\n"
        + "\n".join([line for line in log.splitlines() if line.startswith("ERROR")][:10] + odd[:30])
    )
