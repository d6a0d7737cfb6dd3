"""The floor: a minimal asyncio.Protocol + h11 server, no framework at all.

One ``h11.Connection`` per connection; every request is answered synchronously inside
``data_received`` (Response + Data + EndOfMessage in a single ``transport.write``),
keep-alive via ``start_next_cycle``. Like the real servers it sends ``Date`` (cached per
second) and ``Server``. It has exactly the routes the benchmark scenarios need:

* ``GET /``                 -> 200 text/plain ``Hello, world!``
* ``POST /echo``            -> 200, body echoed with the request Content-Type
* ``GET /api/users/<int>``  -> 200 application/json ``{"id": <int>, "name": "user<int>"}``

It ignores write back-pressure (``pause_writing``) — acceptable for a floor whose
responses are tiny. Run: ``python benchmarks/peers/bare_h11.py --port 8000``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from email.utils import formatdate

import h11

HELLO = b"Hello, world!"
TEXT = b"text/plain; charset=utf-8"
USERS_PREFIX = b"/api/users/"
REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found"}

_date_cache: tuple[int, bytes] = (0, b"")


def _date_header() -> bytes:
    global _date_cache
    now = int(time.time())
    if now != _date_cache[0]:
        _date_cache = (now, formatdate(now, usegmt=True).encode())
    return _date_cache[1]


def _route(request: h11.Request, body: bytes) -> tuple[int, bytes, bytes]:
    """Return (status, content-type, body) for a complete request."""
    target = request.target
    if request.method == b"GET" and target == b"/":
        return 200, TEXT, HELLO
    if request.method == b"POST" and target == b"/echo":
        ctype = next((v for k, v in request.headers if k == b"content-type"), b"application/octet-stream")
        return 200, ctype, body
    if request.method == b"GET" and target.startswith(USERS_PREFIX) and target[11:].isdigit():
        user_id = int(target[11:])
        return 200, b"application/json", json.dumps({"id": user_id, "name": f"user{user_id}"}).encode()
    return 404, TEXT, b"Not Found"


class BareH11Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.conn = h11.Connection(h11.SERVER)
        self.transport: asyncio.Transport | None = None
        self.request: h11.Request | None = None
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.conn.receive_data(data)
        self._process()

    def eof_received(self) -> bool:
        return False  # close our side too

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _process(self) -> None:
        while True:
            try:
                event = self.conn.next_event()
            except h11.RemoteProtocolError:
                self._reply(400, TEXT, b"Bad Request")
                self._close()
                return
            if event is h11.NEED_DATA:
                return
            if event is h11.PAUSED or isinstance(event, h11.ConnectionClosed):
                self._close()  # a paused connection here means we must close
                return
            if isinstance(event, h11.Request):
                self.request, self.body = event, []
            elif isinstance(event, h11.Data):
                self.body.append(event.data)
            elif isinstance(event, h11.EndOfMessage) and not self._finish_request():
                return

    def _finish_request(self) -> bool:
        """Answer the request; return True if the connection stays open for the next one."""
        assert self.request is not None
        self._reply(*_route(self.request, b"".join(self.body)))
        self.request, self.body = None, []
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
            return True
        self._close()
        return False

    def _reply(self, status: int, ctype: bytes, body: bytes) -> None:
        if self.transport is None or self.conn.our_state is not h11.SEND_RESPONSE:
            return
        headers = [
            (b"date", _date_header()),
            (b"server", b"bare-h11"),
            (b"content-type", ctype),
            (b"content-length", str(len(body)).encode()),
        ]
        send = self.conn.send
        head = send(h11.Response(status_code=status, headers=headers, reason=REASONS[status]))
        parts = (head, send(h11.Data(data=body)), send(h11.EndOfMessage()))
        self.transport.write(b"".join(p for p in parts if p))


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(BareH11Protocol, host, port, backlog=2048)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
