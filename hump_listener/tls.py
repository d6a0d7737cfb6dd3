"""TLS settings for serving HTTPS: a stdlib ``ssl.SSLContext`` built from a certificate
and key. The server only ever receives the finished context (``ServerConfig.ssl``)."""

from __future__ import annotations

import os
import ssl

__all__ = ["server_ssl_context"]


def server_ssl_context(certfile: str, keyfile: str | None = None, password: str | None = None) -> ssl.SSLContext:
    """A server-side context with the stdlib's secure defaults (TLS 1.2+, no compression,
    modern ciphers). ``keyfile`` may be omitted when ``certfile`` holds the key too.

    ALPN offers only ``http/1.1``: a client that would prefer h2 then knows, during the
    handshake, which protocol it gets.
    """
    for kind, path in (("certificate", certfile), ("key", keyfile)):
        # load_cert_chain's own error names neither the file nor which one is missing.
        if path is not None and not os.path.isfile(path):
            raise FileNotFoundError(f"TLS {kind} file not found: {path}")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile, password)
    context.set_alpn_protocols(["http/1.1"])
    return context
