"""HTTPS: a certificate and key turn the server into an HTTPS server (hump_listener.tls).

Each test makes its own CA and certificate with trustme and verifies the server's
certificate against that CA, as a real client would.
"""

from __future__ import annotations

import signal
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trustme
from process_helpers import cli, get, launch, tiny_listener

from hump_listener import App, HTTPContext
from hump_listener.tls import server_ssl_context


@dataclass
class Certs:
    ca: trustme.CA
    certfile: Path
    keyfile: Path
    combined: Path

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context


@pytest.fixture
def certs(tmp_path: Path) -> Iterator[Certs]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile, combined = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "both.pem"
    certfile.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(keyfile))
    cert.private_key_and_cert_chain_pem.write_to_path(str(combined))
    yield Certs(ca, certfile, keyfile, combined)


def scheme_app() -> App:
    app = App(port=0, access_log=False)

    @app.get("/scheme")
    async def scheme(ctx: HTTPContext) -> str:
        return f"{ctx.request.scheme} {ctx.request.url}"

    return app


async def test_https_in_process_with_verification(certs: Certs) -> None:
    app = scheme_app()
    app.configure(ssl_certfile=str(certs.certfile), ssl_keyfile=str(certs.keyfile))
    await app.listen()
    assert app.server is not None
    try:
        port = app.server.port
        assert app.url == f"https://127.0.0.1:{port}"
        async with httpx.AsyncClient(verify=certs.client_context()) as client:
            r = await client.get(f"https://127.0.0.1:{port}/scheme")
        assert r.status_code == 200
        assert r.text == f"https https://127.0.0.1:{port}/scheme"
        # A client that does not trust our CA refuses the certificate: it really is TLS
        # with the certificate we gave.
        async with httpx.AsyncClient(verify=ssl.create_default_context()) as untrusting:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await untrusting.get(f"https://127.0.0.1:{port}/scheme")
    finally:
        await app.server.shutdown(1)


async def test_key_inside_the_certificate_file(certs: Certs) -> None:
    app = scheme_app()
    app.configure(ssl_certfile=str(certs.combined))
    await app.listen()
    assert app.server is not None
    try:
        async with httpx.AsyncClient(verify=certs.client_context()) as client:
            r = await client.get(f"https://localhost:{app.server.port}/scheme")
        assert r.text.startswith("https ")
    finally:
        await app.server.shutdown(1)


def test_plain_http_config_has_no_tls() -> None:
    app = scheme_app()
    assert app.server_config().ssl is None
    assert app.url.startswith("http://")


def test_bad_tls_settings_fail_clearly(tmp_path: Path, certs: Certs) -> None:
    with pytest.raises(FileNotFoundError, match=r"certificate file not found: .*missing\.pem"):
        server_ssl_context(str(tmp_path / "missing.pem"))
    app = scheme_app()
    app.configure(ssl_keyfile=str(certs.keyfile))
    with pytest.raises(ValueError, match="without a certificate"):
        app.server_config()


def test_context_offers_http11_and_modern_tls(certs: Certs) -> None:
    context = server_ssl_context(str(certs.certfile), str(certs.keyfile))
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert not context.check_hostname  # a server does not verify a hostname


def test_tiny_listener_reads_the_tls_environment(certs: Certs) -> None:
    env = {"HUMP_SSL_CERTFILE": str(certs.certfile), "HUMP_SSL_KEYFILE": str(certs.keyfile)}
    with launch(tiny_listener("apps.tls_app:app"), env=env) as proc:
        line = proc.wait_for_line(r"Serving on")
        assert "Serving on https://127.0.0.1:" in line
        assert get(proc.serving_port(), "/scheme", context=certs.client_context()) == (200, "https")
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(timeout=30) == 0


def test_cli_flags_with_workers(certs: Certs) -> None:
    args = cli("apps.tls_app:app", "--ssl-certfile", str(certs.certfile), "--ssl-keyfile", str(certs.keyfile),
               "--workers", "2")
    with launch(args) as proc:
        lines = proc.wait_for_count(r"Serving on https://", 2)
        assert len(lines) == 2
        assert get(proc.serving_port(), "/scheme", context=certs.client_context()) == (200, "https")
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(timeout=30) == 0
