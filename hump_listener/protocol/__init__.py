"""The protocol side: HTTP/1.1 over asyncio with h11, serving any ``seam.SeamApp``.

Rule: nothing here imports tiny_listener or any ``hump_listener`` module but ``seam``.
"""

from hump_listener.protocol.server import Server, ServerConfig

__all__ = ["Server", "ServerConfig"]
