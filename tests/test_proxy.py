"""proxy.py: X-Forwarded-For / X-Forwarded-Proto / Forwarded, believed only from trusted
peers; and App(forwarded_allow_ips=...) applying them to ctx.request through the seam."""

from __future__ import annotations

import json

import pytest
from framework_helpers import MemoryChannel, make_head

from hump_listener import App, HTTPContext
from hump_listener.proxy import (
    DEFAULT_FORWARDED_ALLOW_IPS,
    TrustedProxies,
    effective_peer,
    parse_forwarded,
)

PROXY = ("127.0.0.1", 51000)
STRANGER = ("203.0.113.9", 40000)
LOCAL = TrustedProxies("127.0.0.1")


def peer(
    headers: list[tuple[str, str]],
    client: tuple[str, int] | None = PROXY,
    trusted: TrustedProxies = LOCAL,
    scheme: str = "http",
) -> tuple[tuple[str, int] | None, str]:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers]
    return effective_peer(client, scheme, raw, trusted)


# -- the trusted set -------------------------------------------------------------------------


def test_trusted_addresses_networks_and_ipv6_spellings() -> None:
    trusted = TrustedProxies(" 10.0.0.1, 192.168.0.0/16 ,::1,fd00::/8")
    assert "10.0.0.1" in trusted and "192.168.44.3" in trusted
    assert "0:0:0:0:0:0:0:1" in trusted and "fd12::7" in trusted
    assert "10.0.0.2" not in trusted and "172.16.0.1" not in trusted and "fe80::1" not in trusted
    assert "unknown" not in trusted and "" not in trusted and None not in trusted
    assert not trusted.empty


def test_star_trusts_everyone_and_empty_trusts_no_one() -> None:
    assert "198.51.100.7" in TrustedProxies("*") and "anything" in TrustedProxies(["*"])
    nobody = TrustedProxies("")
    assert nobody.empty and "127.0.0.1" not in nobody


def test_a_bad_entry_fails_at_construction() -> None:
    with pytest.raises(ValueError, match="'localhost'"):
        TrustedProxies("127.0.0.1,localhost")
    with pytest.raises(ValueError, match=r"10\.0\.0\.0/33"):
        TrustedProxies(["10.0.0.0/33"])


def test_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HUMP_FORWARDED_ALLOW_IPS", raising=False)
    assert TrustedProxies.from_env().spec == DEFAULT_FORWARDED_ALLOW_IPS == "127.0.0.1"
    monkeypatch.setenv("HUMP_FORWARDED_ALLOW_IPS", "10.0.0.0/8, 10.1.1.1")
    assert TrustedProxies.from_env().spec == "10.0.0.0/8,10.1.1.1"
    assert TrustedProxies.from_env("::1").spec == "::1"  # an explicit value wins


# -- X-Forwarded-For / X-Forwarded-Proto ------------------------------------------------------


def test_no_forwarding_header_never_looks_at_the_peer() -> None:
    class Counting(TrustedProxies):
        lookups = 0

        def __contains__(self, host: object) -> bool:
            Counting.lookups += 1
            return super().__contains__(host)

    headers = [(b"host", b"x"), (b"x-forwarded-host", b"evil"), (b"accept", b"*/*")]
    client, scheme = effective_peer(PROXY, "http", headers, Counting("127.0.0.1"))
    assert client is PROXY and scheme == "http"
    assert Counting.lookups == 0


def test_spoofed_headers_from_an_untrusted_peer_are_ignored() -> None:
    spoof = [("X-Forwarded-For", "1.2.3.4"), ("X-Forwarded-Proto", "https"), ("Forwarded", "for=5.6.7.8;proto=https")]
    assert peer(spoof, client=STRANGER) == (STRANGER, "http")
    assert peer(spoof, client=None) == (None, "http")


def test_trusted_peer_sets_client_and_scheme() -> None:
    assert peer([("X-Forwarded-For", "198.51.100.7"), ("X-Forwarded-Proto", "https")]) == (("198.51.100.7", 0), "https")
    assert peer([("X-Forwarded-For", "198.51.100.7:4711")]) == (("198.51.100.7", 4711), "http")
    assert peer([("X-Forwarded-For", "[2001:db8::1]:80")]) == (("2001:db8::1", 80), "http")
    assert peer([("X-Forwarded-Proto", "HTTPS")]) == (PROXY, "https")


def test_bad_proto_or_empty_for_changes_nothing() -> None:
    assert peer([("X-Forwarded-Proto", "gopher")], scheme="http") == (PROXY, "http")
    assert peer([("X-Forwarded-For", "")]) == (PROXY, "http")
    assert peer([("X-Forwarded-For", " , ")]) == (PROXY, "http")


def test_hops_are_walked_from_the_right_skipping_trusted_proxies() -> None:
    trusted = TrustedProxies("127.0.0.1,10.0.0.0/8")
    # client spoofed "6.6.6.6"; the real client 198.51.100.7 reached the edge proxy 10.0.0.5.
    xff = [("X-Forwarded-For", "6.6.6.6, 198.51.100.7, 10.0.0.5")]
    assert peer(xff, trusted=trusted)[0] == ("198.51.100.7", 0)
    # several header lines are one list, in order
    xff = [("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "198.51.100.7, 10.0.0.5")]
    assert peer(xff, trusted=trusted)[0] == ("198.51.100.7", 0)
    # every hop trusted: the leftmost is the client
    assert peer([("X-Forwarded-For", "10.1.1.1, 10.0.0.5")], trusted=trusted)[0] == ("10.1.1.1", 0)
    # "*": the leftmost, whatever it is
    assert peer(xff, trusted=TrustedProxies("*"))[0] == ("6.6.6.6", 0)


def test_proto_follows_the_chosen_hop_when_proxies_append() -> None:
    trusted = TrustedProxies("127.0.0.1,10.0.0.0/8")
    headers = [("X-Forwarded-For", "198.51.100.7, 10.0.0.5"), ("X-Forwarded-Proto", "https, http")]
    assert peer(headers, trusted=trusted) == (("198.51.100.7", 0), "https")
    headers = [("X-Forwarded-For", "198.51.100.7, 10.0.0.5"), ("X-Forwarded-Proto", "https")]
    assert peer(headers, trusted=trusted)[1] == "https"


# -- Forwarded (RFC 7239) --------------------------------------------------------------------


def test_parse_forwarded() -> None:
    value = 'for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711", for=unknown'
    assert parse_forwarded(value) == [
        {"for": "192.0.2.60", "proto": "http", "by": "203.0.113.43"},
        {"for": "[2001:db8:cafe::17]:4711"},
        {"for": "unknown"},
    ]
    assert parse_forwarded('for="a,b;c\\"d";proto=https') == [{"for": 'a,b;c"d', "proto": "https"}]
    assert parse_forwarded("garbage, ;;, for=1.2.3.4") == [{"for": "1.2.3.4"}]
    assert parse_forwarded("") == []


def test_forwarded_from_a_trusted_peer() -> None:
    header = [("Forwarded", 'for=6.6.6.6, for="[2001:db8::17]:4711";proto=https')]
    assert peer(header) == (("2001:db8::17", 4711), "https")
    trusted = TrustedProxies("127.0.0.1,2001:db8::17")
    assert peer(header, trusted=trusted) == (("6.6.6.6", 0), "http")
    # an obfuscated or unknown node is a client we cannot trust, never mistaken for the proxy
    assert peer([("Forwarded", "for=_hidden;proto=https")]) == (("_hidden", 0), "https")


def test_x_forwarded_wins_over_forwarded() -> None:
    headers = [("Forwarded", "for=6.6.6.6;proto=https"), ("X-Forwarded-For", "198.51.100.7")]
    assert peer(headers) == (("198.51.100.7", 0), "http")


# -- through the app -------------------------------------------------------------------------


def make_app(**kw: object) -> App:
    app = App(access_log=False, **kw)  # type: ignore[arg-type]

    @app.on_event("GET:/who")
    async def who(ctx: HTTPContext) -> None:
        r = ctx.request
        ctx.json({"client": r.client, "scheme": r.scheme, "url": r.url})

    return app


async def who(app: App, client: tuple[str, int] | None, headers: list[tuple[str, str]]) -> dict[str, object]:
    raw = [(b"host", b"example.org"), *[(k.lower().encode(), v.encode()) for k, v in headers]]
    channel = MemoryChannel()
    await app.handle(make_head(target=b"/who", headers=raw, client=client), channel)
    assert channel.status == 200
    result: dict[str, object] = json.loads(channel.sent)
    return result


SPOOF = [("X-Forwarded-For", "1.2.3.4"), ("X-Forwarded-Proto", "https")]


async def test_app_ignores_spoofed_headers_from_untrusted_peers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HUMP_FORWARDED_ALLOW_IPS", raising=False)
    seen = await who(make_app(), STRANGER, SPOOF)
    assert seen == {"client": list(STRANGER), "scheme": "http", "url": "http://example.org/who"}


async def test_app_honours_a_trusted_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HUMP_FORWARDED_ALLOW_IPS", raising=False)
    seen = await who(make_app(), PROXY, SPOOF)
    assert seen == {"client": ["1.2.3.4", 0], "scheme": "https", "url": "https://example.org/who"}


async def test_app_trust_from_argument_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUMP_FORWARDED_ALLOW_IPS", "203.0.113.0/24")
    assert (await who(make_app(), STRANGER, SPOOF))["client"] == ["1.2.3.4", 0]
    assert (await who(make_app(), PROXY, SPOOF))["client"] == list(PROXY)
    nobody = make_app(forwarded_allow_ips="")
    assert (await who(nobody, PROXY, SPOOF))["client"] == list(PROXY)
    listed = make_app(forwarded_allow_ips=["127.0.0.1", "10.0.0.0/8"])
    assert (await who(listed, ("10.9.9.9", 1), SPOOF))["scheme"] == "https"
    with pytest.raises(ValueError):
        make_app(forwarded_allow_ips="not-an-ip")
