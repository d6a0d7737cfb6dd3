"""broadcast_redis.py on its own: the wire format and what a Redis URL configures, with
no server. Redis pub/sub itself (outages, a hung Redis, two processes) is tested against a
real redis-server in tests/test_broadcast.py, beside the memory backend's same semantics."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import pytest
from redis_helpers import RedisServer

from hump_listener.broadcast import Broadcast
from hump_listener.broadcast_redis import (
    PUBLISH_SCRIPT,
    STOP_GRACE,
    RedisBackend,
    _decode,
    _decode_publication,
    _encode,
)
from hump_listener.subscription import Position, Publication


@pytest.mark.parametrize("message", ["hello", "", "é ✓", b"", b"\x00\xff", b"plain"])
def test_a_message_comes_back_as_it_went_in(message: str | bytes) -> None:
    payload = _encode(message)
    assert payload[:1] == (b"\x00" if isinstance(message, str) else b"\x01")
    decoded = _decode(payload)
    assert decoded == message and type(decoded) is type(message)


@pytest.mark.parametrize("payload", [b"from redis-cli", b"", b"\x00\xff\xfe"])
def test_a_foreign_or_broken_payload_is_delivered_as_its_bytes(payload: bytes) -> None:
    assert _decode(payload) == payload


@pytest.mark.parametrize("message", ["hello", "é ✓", "", b"\x00\xff", b""])
def test_the_packed_publish_is_the_evalsha_redis_py_would_send(message: str | bytes) -> None:
    import redis.asyncio

    backend = Broadcast("redis://127.0.0.1:6390/0", history_size=50, history_ttl=2.5)._backend
    assert isinstance(backend, RedisBackend)
    assert backend.refresh_every == 0.25  # history_ttl / 10: the expiries are that much longer
    for refresh in (True, False, True):  # packed afresh, then from the cache
        expected = redis.asyncio.Connection().pack_command(
            "EVALSHA", PUBLISH_SCRIPT.sha, 2, "hump:m:chät", "hump:h:chät", "chät", _encode(message),
            backend._salt, 50, "2750", "86400250", "1" if refresh else "",
        )
        assert b"".join(backend._packer.publish("chät", message, refresh)) == b"".join(expected)
    plain = redis.asyncio.Connection().pack_command("PUBLISH", "chät", _encode(message))
    for _ in range(2):
        assert b"".join(backend._packer.plain("chät", message)) == b"".join(plain)


@pytest.mark.parametrize("message", ["hello", "é ✓", "", b"\x00\xff", b""])
def test_a_positioned_payload_gives_its_position_and_message(message: str | bytes) -> None:
    pub = _decode_publication("c", b"\x02" + b"ab12\x0042\x00" + _encode(message))
    assert pub == Publication("c", message, Position("ab12", 42)) and type(pub.data) is type(message)
    assert type(pub) is Publication and type(pub.position) is Position


@pytest.mark.parametrize("payload", [b"\x02ab12\x00x\x00\x00hi", b"\x02ab12\x0042", b"\x02\xff\x001\x00\x00hi"])
def test_a_broken_positioned_payload_is_delivered_as_its_bytes(payload: bytes) -> None:
    assert _decode_publication("c", payload) == Publication("c", payload, None)


def test_a_positioned_text_that_is_not_utf8_comes_as_its_bytes() -> None:
    assert _decode_publication("c", b"\x02ab\x001\x00\x00\xff") == Publication("c", b"\x00\xff", Position("ab", 1))


def test_the_url_sets_the_address_timeouts_and_resp2() -> None:
    backend = Broadcast("redis://127.0.0.1:6390/3", timeout=1.5)._backend
    assert isinstance(backend, RedisBackend)
    assert backend._address == "127.0.0.1:6390/3"
    assert backend._options["socket_connect_timeout"] == 1.5
    assert backend._options["socket_timeout"] == 1.5
    assert backend._options["protocol"] == 2
    assert not backend.connected


def test_rediss_uses_a_tls_connection() -> None:
    import redis.asyncio

    backend = Broadcast("rediss://127.0.0.1:6390/0")._backend
    assert isinstance(backend, RedisBackend)
    assert issubclass(backend._connection_class, redis.asyncio.SSLConnection)


def test_the_module_is_imported_only_for_a_redis_url() -> None:
    # In a fresh interpreter: this one has imported it already.
    check = (
        "import sys\n"
        "from hump_listener.broadcast import Broadcast\n"
        "Broadcast('memory://')\n"
        "before = 'hump_listener.broadcast_redis' in sys.modules\n"
        "Broadcast('redis://127.0.0.1:6390/0')\n"
        "print(before, 'hump_listener.broadcast_redis' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]


async def test_stop_ends_a_reader_that_lost_its_cancellation(redis_server: RedisServer) -> None:
    """``stop`` returns even when the reader swallows its cancellation inside redis-py's
    read (seen under uvloop after a Redis restart): after ``STOP_GRACE`` the connection
    under it is closed, which ends the read, and the reader does not reconnect."""
    broadcast = Broadcast(redis_server.url)
    backend = broadcast._backend
    assert isinstance(backend, RedisBackend)
    made = backend._connection
    closed = asyncio.Event()
    connections: list[Any] = []

    def connection() -> Any:
        conn = made()
        connections.append(conn)
        if len(connections) == 2:  # start() makes the commands', then the subscriber's
            disconnect, read = conn.disconnect, conn.read_response

            async def stubborn_read(**kwargs: Any) -> Any:
                if kwargs.get("disconnect_on_error", True):
                    return await read(**kwargs)  # redis-py's own (connecting): as it is
                try:
                    await asyncio.Event().wait()
                except asyncio.CancelledError:
                    await closed.wait()  # the cancellation is lost: reads on until closed
                    raise ConnectionError("closed under the read") from None

            async def disconnecting(nowait: bool = False) -> None:
                closed.set()
                await disconnect(nowait=nowait)

            conn.read_response = stubborn_read
            conn.disconnect = disconnecting
        return conn

    backend._connection = connection  # type: ignore[method-assign]
    await broadcast.start()
    stopping = asyncio.ensure_future(broadcast.stop())
    done, _ = await asyncio.wait({stopping}, timeout=STOP_GRACE + 10)  # a hang detector, generous
    assert done, "stop() hung on a reader that lost its cancellation"
    stopping.result()
    assert closed.is_set()  # the way out was closing the connection
    assert len(connections) == 2  # and the reader did not connect again
