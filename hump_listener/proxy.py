"""Proxy headers: who the client really is when a reverse proxy sits in front.

Behind nginx every request arrives from nginx's address; the proxy says who it forwarded
for in ``X-Forwarded-For`` / ``X-Forwarded-Proto`` (de facto) or ``Forwarded``
(RFC 7239). Those headers are plain text any client can send, so they are believed only
when the direct peer is a trusted proxy.

Rule 1: trust is decided by the *direct peer* (``RequestHead.client``), never by a header.
Rule 2: a forwarding list is walked from the right, skipping trusted proxies: every proxy
appends the address it received from, so the rightmost untrusted entry is the first one
no trusted proxy vouches for (uvicorn's ``ProxyHeadersMiddleware`` does the same). If
every entry is trusted, the leftmost one is the client.
Rule 3: ``X-Forwarded-For`` / ``X-Forwarded-Proto`` win over ``Forwarded`` when both are
present (nginx, HAProxy and cloud load balancers set the former; uvicorn honours only
them). A proxy must therefore set or clear the header family it does not manage, or a
client could send it through: ``deploy/nginx.conf`` clears ``Forwarded``.
Rule 4: it must cost nothing when no forwarding header is present: one pass over the
header names with a C-level substring test, before any address is parsed.

Standard library only; the app calls ``effective_peer`` where it builds the ``Request``.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import TypeVar

from .seam import HeaderList

__all__ = [
    "DEFAULT_FORWARDED_ALLOW_IPS",
    "FORWARDED_ALLOW_IPS_ENV",
    "TrustedProxies",
    "effective_peer",
    "parse_forwarded",
]

#: Only a proxy on the same host is trusted by default, as uvicorn and gunicorn do
#: (``--forwarded-allow-ips`` / ``forwarded_allow_ips`` default to ``127.0.0.1``). The
#: app's setting is ``ServerConfig.forwarded_allow_ips``, whose default says the same
#: (the protocol side cannot import this module, nor this module the protocol side).
DEFAULT_FORWARDED_ALLOW_IPS = "127.0.0.1"
FORWARDED_ALLOW_IPS_ENV = "HUMP_FORWARDED_ALLOW_IPS"
#: Trust decisions are cached per peer string; a client population larger than this only
#: costs a re-parse. Bounded so a flood of distinct X-Forwarded-For values cannot grow it.
TRUST_CACHE_SIZE = 4096
#: Schemes a proxy may claim (no websockets here).
_SCHEMES = frozenset({"http", "https"})

Address = tuple[str, int]
T = TypeVar("T")


class TrustedProxies:
    """The set of peers whose forwarding headers are believed.

    Built from a comma-separated string or a list: IP addresses (``10.0.0.1``, ``::1``),
    networks (``10.0.0.0/8``) or ``*`` (trust every peer: only when the app is reachable
    through the proxy alone, e.g. on a private network or a Unix socket). An entry that is
    neither raises ``ValueError`` at construction, not on the first request.
    """

    __slots__ = ("always", "hosts", "networks", "spec", "trusts")

    def __init__(self, spec: str | Iterable[str]) -> None:
        items = spec.split(",") if isinstance(spec, str) else list(spec)
        entries = [item.strip() for item in items if item.strip()]
        self.spec = ",".join(entries)
        self.always = "*" in entries
        self.hosts: frozenset[ipaddress.IPv4Address | ipaddress.IPv6Address] = frozenset()
        self.networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
        hosts, networks = set(), []
        for entry in entries:
            if entry == "*":
                continue
            try:
                if "/" in entry:
                    networks.append(ipaddress.ip_network(entry, strict=False))
                else:
                    hosts.add(ipaddress.ip_address(entry))
            except ValueError:
                raise ValueError(f"forwarded_allow_ips: {entry!r} is not an IP address, a network or '*'") from None
        self.hosts, self.networks = frozenset(hosts), tuple(networks)
        # Many ways to spell one IPv6 address, so compare parsed addresses; cache by string.
        self.trusts = lru_cache(maxsize=TRUST_CACHE_SIZE)(self._compute)

    @classmethod
    def from_env(cls, value: str | Iterable[str] | None = None) -> TrustedProxies:
        """``value``, else ``$HUMP_FORWARDED_ALLOW_IPS``, else ``127.0.0.1``: for code
        using ``TrustedProxies`` on its own. An ``App`` does not call it: it reads the
        variable with every other one in ``ServerConfig.from_env`` (``app.config``)."""
        if value is None:
            value = os.environ.get(FORWARDED_ALLOW_IPS_ENV, DEFAULT_FORWARDED_ALLOW_IPS)
        return cls(value)

    @property
    def empty(self) -> bool:
        """True when no peer is trusted (``forwarded_allow_ips=""``): headers are never read."""
        return not (self.always or self.hosts or self.networks)

    def __contains__(self, host: object) -> bool:
        if self.always:
            return True
        if not isinstance(host, str) or not host or len(host) > 64:
            return False  # the longest IPv6 text form (with a zone) is well under 64
        return self.trusts(host)

    def _compute(self, host: str) -> bool:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False  # "unknown", an obfuscated identifier, garbage: never a proxy we know
        return ip in self.hosts or any(ip in net for net in self.networks)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r})"


def effective_peer(
    client: Address | None, scheme: str, headers: HeaderList, trusted: TrustedProxies
) -> tuple[Address | None, str]:
    """The request's ``(client, scheme)`` once trusted forwarding headers are applied.

    ``client`` / ``scheme`` are what the server saw on the socket; ``headers`` are the
    request's (names lower-case). A forwarded client's port is the one the header gives,
    ``0`` when it gives none (as uvicorn reports it).
    """
    # Rule 4: one pass, one substring test per name; all three names contain b"forwarded".
    xff: list[bytes] | None = None
    xfp: bytes | None = None
    fwd: list[bytes] | None = None
    for name, value in headers:
        if b"forwarded" in name:
            if name == b"x-forwarded-for":
                if xff is None:
                    xff = [value]
                else:
                    xff.append(value)
            elif name == b"x-forwarded-proto":
                xfp = value if xfp is None else xfp + b"," + value
            elif name == b"forwarded":
                if fwd is None:
                    fwd = [value]
                else:
                    fwd.append(value)
    if xff is None and xfp is None and fwd is None:
        return client, scheme
    if client is None or client[0] not in trusted:  # Rule 1
        return client, scheme
    if xff is not None or xfp is not None:  # Rule 3
        return _from_x_forwarded(client, scheme, xff, xfp, trusted)
    assert fwd is not None
    return _from_forwarded(client, scheme, b",".join(fwd).decode("latin-1"), trusted)


def _from_x_forwarded(
    client: Address,
    scheme: str,
    xff: list[bytes] | None,
    xfp: bytes | None,
    trusted: TrustedProxies,
) -> tuple[Address, str]:
    index = -1
    hops: list[str] = []
    if xff is not None:
        hops = [hop.strip() for hop in b",".join(xff).decode("latin-1").split(",")]
        index = _pick(hops, lambda hop: _host_port(hop)[0], trusted)
        forwarded_for = _host_port(hops[index])
        if forwarded_for[0]:  # an empty header names no one: keep the peer (as uvicorn does)
            client = forwarded_for
    if xfp is not None:
        protos = [p.strip().lower() for p in xfp.decode("latin-1").split(",")]
        # One entry per hop when the proxies append: take the chosen hop's. Otherwise the
        # last one, written by the trusted proxy that talks to us.
        proto = protos[index] if index >= 0 and len(protos) == len(hops) else protos[-1]
        if proto in _SCHEMES:
            scheme = proto
    return client, scheme


def _from_forwarded(client: Address, scheme: str, header: str, trusted: TrustedProxies) -> tuple[Address, str]:
    elements = parse_forwarded(header)
    if not elements:
        return client, scheme
    index = _pick(elements, lambda el: _host_port(el.get("for", ""))[0], trusted)
    chosen = elements[index]
    node = chosen.get("for")
    if node:
        client = _host_port(node)
    proto = chosen.get("proto", "").lower()
    if proto in _SCHEMES:
        scheme = proto
    return client, scheme


def _pick(hops: list[T], host_of: Callable[[T], str], trusted: TrustedProxies) -> int:
    """Rule 2: index of the rightmost hop whose host is not trusted, else 0; -1 if empty."""
    if not hops:
        return -1
    if trusted.always:
        return 0
    for i in range(len(hops) - 1, -1, -1):
        if host_of(hops[i]) not in trusted:
            return i
    return 0


def _host_port(value: str) -> Address:
    """``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``, ``::1`` → (host, port or 0).

    Anything else (``unknown``, ``_hidden``) is kept whole as the host: it is then never
    trusted, and the app sees a client it cannot mistake for the proxy."""
    if value.startswith("["):
        end = value.find("]")
        if end > 0:
            host, rest = value[1:end], value[end + 1 :]
            if rest.startswith(":") and rest[1:].isdigit():
                return host, int(rest[1:])
            if not rest:
                return host, 0
        return value, 0
    if value.count(":") == 1:
        host, _, port = value.partition(":")
        if port.isdigit():
            return host, int(port)
    return value, 0


def parse_forwarded(header: str) -> list[dict[str, str]]:
    """Parse an RFC 7239 ``Forwarded`` field value into its elements, left to right.

    ``for=192.0.2.60;proto=http, for="[2001:db8::17]:4711"`` →
    ``[{"for": "192.0.2.60", "proto": "http"}, {"for": "[2001:db8::17]:4711"}]``.
    Parameter names are lower-cased; quoted strings are unquoted (commas and semicolons
    inside them do not split). A malformed pair is skipped, never the whole header.
    """
    elements: list[dict[str, str]] = []
    current: dict[str, str] = {}
    key: list[str] = []
    val: list[str] = []
    in_value = in_quotes = escaped = False

    def flush_pair() -> None:
        name = "".join(key).strip().lower()
        if name and in_value:
            current.setdefault(name, "".join(val).strip())
        key.clear()
        val.clear()

    for ch in header:
        if in_quotes:
            if escaped:
                val.append(ch)
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_quotes = False
            else:
                val.append(ch)
        elif ch == '"' and in_value:
            in_quotes = True
        elif ch == "=" and not in_value:
            in_value = True
        elif ch == ";" or ch == ",":
            flush_pair()
            in_value = False
            if ch == ",":
                elements.append(current)
                current = {}
        elif in_value:
            val.append(ch)
        else:
            key.append(ch)
    flush_pair()
    elements.append(current)
    return [el for el in elements if el]
