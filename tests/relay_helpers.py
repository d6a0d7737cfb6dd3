"""A TCP relay a test puts between a client (a browser) and a server, to make the
client's connections drop while the server stays up.

``Relay(port)`` listens on 127.0.0.1, port 0, and forwards each connection to
127.0.0.1:``port``. ``cut()`` closes every relayed connection (both sides see the
connection end) and holds the new ones: they are accepted, but nothing is forwarded
until ``mend()``, so a client that reconnects by itself waits, as behind a broken link.
``requests(path)`` gives the request heads the clients sent for ``path``, in the order
their connections reached the relay: a test reads the headers a reconnect carried.

Threads, blocking sockets: two pumps per connection, one accept loop; ``close()`` (the
end of the ``with``) ends them all.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Callable
from types import TracebackType

#: What is kept of what each client sent (its request heads; SSE and page loads are small).
RECORD_LIMIT = 64 * 1024
_HEAD = re.compile(rb"([A-Z]+) (\S+) HTTP/1\.1\r\n(.*?)\r\n\r\n", re.S)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class Relay:
    def __init__(self, port: int) -> None:
        self._upstream = ("127.0.0.1", port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._cond = threading.Condition()
        self._cut = False
        self._closed = False
        self._live: set[socket.socket] = set()  # relayed sockets, both sides
        self._held = 0  # connections accepted while cut, waiting for mend()
        self._sent: list[bytearray] = []  # what each relayed client sent, in order
        self._threads: list[threading.Thread] = []
        self._start(self._accept_loop)

    # -- the test's side -------------------------------------------------------------

    def cut(self) -> None:
        """Close every relayed connection; hold new ones until ``mend()``."""
        with self._cond:
            self._cut = True
            for sock in self._live:
                _shut(sock)

    def mend(self) -> None:
        """Forward again, the held connections first."""
        with self._cond:
            self._cut = False
            self._cond.notify_all()

    @property
    def held(self) -> int:
        with self._cond:
            return self._held

    def requests(self, path: str) -> list[dict[str, str]]:
        """The headers (lowercased names) of each request for ``path`` the relay forwarded."""
        with self._cond:
            sent = [bytes(s) for s in self._sent]
        heads = []
        for data in sent:
            for match in _HEAD.finditer(data):
                if match[2].decode("latin-1") == path:
                    fields = (line.split(b":", 1) for line in match[3].split(b"\r\n") if b":" in line)
                    heads.append({k.strip().lower().decode(): v.strip().decode("latin-1") for k, v in fields})
        return heads

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            for sock in self._live:
                _shut(sock)
        _shut(self._listener)  # wakes the accept loop (Linux)
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=10)

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    # -- the relay's side ------------------------------------------------------------

    def _start(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._cond:
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            self._start(self._serve, client)

    def _serve(self, client: socket.socket) -> None:
        with self._cond:
            self._held += 1
            self._cond.wait_for(lambda: not self._cut or self._closed)
            self._held -= 1
            if self._closed:
                client.close()
                return
            # Under the lock, so a cut() cannot fall between connecting and being listed.
            try:
                upstream = socket.create_connection(self._upstream, timeout=10)
            except OSError:
                client.close()
                return
            upstream.settimeout(None)
            sent = bytearray()
            self._sent.append(sent)
            self._live.update((client, upstream))
        back = threading.Thread(target=self._pump, args=(upstream, client, None), daemon=True)
        back.start()
        self._pump(client, upstream, sent)
        back.join()
        with self._cond:
            self._live.difference_update((client, upstream))
        client.close()
        upstream.close()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, record: bytearray | None) -> None:
        try:
            while data := src.recv(65536):
                if record is not None and len(record) < RECORD_LIMIT:
                    record += data
                dst.sendall(data)
        except OSError:
            pass
        finally:  # one side ended: so does the other (no half-open connections to keep)
            _shut(src)
            _shut(dst)
