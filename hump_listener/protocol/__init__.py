"""The protocol side: HTTP/1.1 over asyncio with h11, serving any ``seam.SeamApp``.

Rule: nothing here imports tiny_listener or any ``hump_listener`` module but ``seam`` and
``config`` (``ServerConfig``, which the framework side builds and the protocol receives).

    head.py          pure: request-head bytes -> ParsedHead, or a Rejection with a status
    body.py          pure: body readers (Content-Length, chunked): bytes in, body and the rest out
    writer.py        pure: status lines, response heads, body framing
    cycle.py         RequestCycle: one request and its response (the seam's Channel)
    http11.py        H11Protocol: one connection (callbacks, timers, pipelining, closing)
    ws_upgrade.py    WebSocketOffer: the handshake; accept() writes the 101, builds the connection
    websocket.py     WebSocketProtocol: one RFC 6455 connection after the 101
    ws_assembler.py  Assembler: frames -> messages (fragments, UTF-8, the fast path)
    ws_frames.py     pure: websockets bound once, frame headers, the per-turn frame splitter
    flow_control.py  pause/resume reading and writing
    state.py         ServerState: what the connections of one server share
    server.py        Server: bind, accept, graceful drain
    memory.py        the one in-memory transport (test client, protocol tests, benchmarks)
    parser.py        which h11 build parses
"""

from hump_listener.protocol.server import Server

__all__ = ["Server"]
