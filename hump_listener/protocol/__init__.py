"""The protocol side: HTTP/1.1 over asyncio with h11, serving any ``seam.SeamApp``.

Rule: nothing here imports tiny_listener or any ``hump_listener`` module but ``seam`` and
``config`` (``ServerConfig``, which the framework side builds and the protocol receives).

    head.py          pure: request-head bytes -> ParsedHead, or a Rejection with a status
    writer.py        pure: status lines, response heads, body framing
    cycle.py         RequestCycle: one request and its response (the seam's Channel)
    http11.py        H11Protocol: one connection (callbacks, timers, pipelining, closing)
    flow_control.py  pause/resume reading and writing
    memory.py        the one in-memory transport (test client, protocol tests, benchmarks)
    server.py        shared server state, start and graceful shutdown
    parser.py        which h11 build parses
"""

from hump_listener.protocol.server import Server

__all__ = ["Server"]
