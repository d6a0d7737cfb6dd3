"""protocol/head.py: ``read_head``, bytes in, a ``ParsedHead``, ``Incomplete`` or ``Rejection``
out, one case per policy step (pre-scan, checks beyond h11, framing, keep-alive).

The connection-level behaviour (what is written, when it closes) is in
test_protocol_framing.py and test_protocol_keepalive.py; here the pure function alone.
"""

from __future__ import annotations

from typing import Any

import pytest

from hump_listener.config import ServerConfig
from hump_listener.protocol import head as head_module
from hump_listener.protocol.head import Incomplete, ParsedHead, Rejection, read_head
from hump_listener.protocol.parser import h11

CLIENT = ("10.0.0.1", 5000)
SERVER = ("127.0.0.1", 8000)


def read(data: bytes, eof: bool = False, **config: Any) -> ParsedHead | Incomplete | Rejection:
    return read_head(data, ServerConfig(**config), eof, CLIENT, SERVER, "http")


def parsed(data: bytes, **config: Any) -> ParsedHead:
    result = read(data, **config)
    assert isinstance(result, ParsedHead), result
    return result


def test_a_complete_get_is_a_parsed_head_with_no_body() -> None:
    data = b"GET /a?b=1 HTTP/1.1\r\nHost: example.com\r\nX-Thing: 1\r\n\r\n"
    result = parsed(data)
    head = result.head
    assert (head.method, head.target, head.http_version) == ("GET", b"/a?b=1", "1.1")
    assert head.headers == [(b"host", b"example.com"), (b"x-thing", b"1")]  # names lower-cased
    assert (head.client, head.server, head.scheme) == (CLIENT, SERVER, "http")
    assert result.end == len(data)
    assert (result.length, result.decoder, result.keep_alive) == (0, None, True)
    assert (result.expect_100, result.upgrade) == (False, None)


def test_the_end_points_past_the_head_so_what_follows_is_the_body() -> None:
    head = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n"
    result = parsed(head + b"hello" + b"GET /next")
    assert result.end == len(head)
    assert result.length == 5


def test_empty_lines_before_the_request_line_are_skipped_and_counted_in_end() -> None:
    data = b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"
    assert parsed(data).end == len(data)
    assert read(b"\r\n\r\n") == Incomplete(b"")


def test_an_incomplete_head_is_kept_unless_the_client_half_closed() -> None:
    assert read(b"GET / HTTP/1.1\r\nHost:") == Incomplete(b"GET / HTTP/1.1\r\nHost:")
    assert read(b"\r\nGET / HTT") == Incomplete(b"GET / HTT")  # leading empty lines dropped
    assert read(b"GET / HTTP/1.1\r\nHost:", eof=True) == Rejection(None, "")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\x16\x03\x01\x02\x00", Rejection(None, "TLS handshake on a plain-HTTP port")),
        (b"\x80\x2b\x01", Rejection(None, "TLS handshake on a plain-HTTP port")),
        (b"\x00GET / HTTP/1.1\r\n\r\n", Rejection(400, "invalid request line")),
        (b" GET / HTTP/1.1\r\n\r\n", Rejection(400, "invalid request line")),
    ],
)
def test_a_first_byte_that_cannot_start_a_method_is_refused_at_once(data: bytes, expected: Rejection) -> None:
    assert read(data) == expected


def test_limits_are_enforced_before_the_head_is_complete_and_after() -> None:
    long_line = b"GET /" + b"a" * 100 + b" HTTP/1.1\r\n"
    assert read(long_line[:-2], max_request_line=50) == Rejection(414, "request line too long")
    assert read(long_line + b"Host: x\r\n\r\n", max_request_line=50) == Rejection(414, "request line too long")
    big = b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"v" * 200 + b"\r\n"
    assert read(big, max_head_size=100) == Rejection(431, "request head too large")
    assert read(big + b"\r\n", max_head_size=100) == Rejection(431, "request head too large")
    many = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(20))
    assert read(many, max_header_count=5) == Rejection(431, "too many header fields")
    assert read(many + b"\r\n", max_header_count=5) == Rejection(431, "too many header fields")
    assert isinstance(read(many + b"\r\n", max_header_count=21), ParsedHead)


def test_obs_fold_is_refused_instead_of_unfolded() -> None:
    data = b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: a\r\n b\r\n\r\n"
    assert read(data) == Rejection(400, "obsolete line folding")
    assert read(data.replace(b"\r\n b", b"\r\n\tb")) == Rejection(400, "obsolete line folding")


def test_h11s_own_syntax_errors_come_back_with_its_status_hint() -> None:
    result = read(b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n")
    assert isinstance(result, Rejection)
    assert result.status == 400
    assert result.reason  # h11's message, for the log
    result = read(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n")
    assert isinstance(result, Rejection) and result.status == 501


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            Rejection(400, "both Content-Length and Transfer-Encoding"),
        ),
        (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", Rejection(400, "invalid Host")),
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", Rejection(505, "unsupported HTTP version")),
        (b"GET * HTTP/1.1\r\nHost: x\r\n\r\n", Rejection(400, "invalid request-target")),
        (b"GET example.com/x HTTP/1.1\r\nHost: x\r\n\r\n", Rejection(400, "invalid request-target")),
    ],
)
def test_what_h11_lets_through_is_checked_here(data: bytes, expected: Rejection) -> None:
    assert read(data) == expected


@pytest.mark.parametrize(
    ("line", "target"),
    [
        (b"OPTIONS * HTTP/1.1", b"*"),
        (b"GET http://example.com/a HTTP/1.1", b"http://example.com/a"),
        (b"CONNECT example.com:443 HTTP/1.1", b"example.com:443"),
    ],
)
def test_the_other_three_target_forms_are_accepted(line: bytes, target: bytes) -> None:
    assert parsed(line + b"\r\nHost: example.com\r\n\r\n").head.target == target


def test_a_later_http_1_minor_version_is_served_as_1_1() -> None:
    assert parsed(b"GET / HTTP/1.2\r\nHost: x\r\n\r\n").head.http_version == "1.1"


def test_framing_content_length_counts_chunked_decodes() -> None:
    result = parsed(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\n")
    assert (result.length, result.decoder) == (12, None)
    chunked = parsed(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert chunked.length == -1
    assert chunked.decoder is not None  # the h11 connection that read the head decodes the body
    chunked.decoder.receive_data(b"3\r\nabc\r\n0\r\n\r\n")
    data = chunked.decoder.next_event()
    assert bytes(data.data) == b"abc"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("request_line", "headers", "keep_alive"),
    [
        (b"GET / HTTP/1.1", b"", True),
        (b"GET / HTTP/1.1", b"Connection: close\r\n", False),
        (b"GET / HTTP/1.1", b"Connection: keep-alive, Close\r\n", False),
        (b"GET / HTTP/1.0", b"", False),
        (b"GET / HTTP/1.0", b"Connection: keep-alive\r\n", True),
        (b"GET / HTTP/1.1", b"Connection: upgrade\r\nUpgrade: websocket\r\n", False),
        (b"CONNECT example.com:443 HTTP/1.1", b"", False),
    ],
)
def test_keep_alive_is_decided_as_h11_would(request_line: bytes, headers: bytes, keep_alive: bool) -> None:
    result = parsed(request_line + b"\r\nHost: example.com\r\n" + headers + b"\r\n")
    assert result.keep_alive is keep_alive


def test_upgrade_is_lower_cased_and_expect_100_is_seen_on_http_1_1() -> None:
    result = parsed(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: WebSocket\r\n\r\n")
    assert result.upgrade == b"websocket"
    body = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"
    assert parsed(body).expect_100 is True
    assert parsed(body.replace(b"HTTP/1.1", b"HTTP/1.0")).expect_100 is False


# -- policy 5: h11's reader without a Connection, checked against one ---------------------------

#: Heads valid and not, as the pre-scan hands them to h11 (one complete head each).
HEADS = [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /a%20b?q=1&r HTTP/1.0\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
    b"GET / HTTP/1.1\nHost: x\n\n",  # bare LF line endings
    b"GET / HTTP/1.1\r\nHost: x\r\nX-Empty:\r\nX-Spaces:   a b  \r\n\r\n",
    b"GET / HTTP/1.1\r\n\r\n",  # no Host on HTTP/1.1
    b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
    b"G@T / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /\x7f HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n",
    b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
]


def outcome(read_request: Any, head: bytes) -> object:
    try:
        return read_request(head)
    except h11.ProtocolError as exc:
        return (exc.error_status_hint, str(exc))


@pytest.mark.parametrize("data", HEADS)
def test_h11s_reader_gives_what_a_connection_gives(data: bytes) -> None:
    """The reader ``read_head`` uses is h11's own: the same event, or the same error with
    the same status hint, as a ``Connection`` fed the same head (policy 5)."""
    assert head_module._read_request is not head_module._connection_read  # this h11 has it
    assert outcome(head_module._read_request, data) == outcome(head_module._connection_read, data)


@pytest.mark.parametrize("data", HEADS)
def test_read_head_is_the_same_through_a_connection(data: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the reader is missing (another h11), ``read_head`` falls back to a
    ``Connection`` and decides the same."""
    fast = read(data)
    monkeypatch.setattr(head_module, "_read_request", head_module._connection_read)
    slow = read(data)
    if isinstance(fast, ParsedHead):
        assert isinstance(slow, ParsedHead)
        fields = ("end", "length", "keep_alive", "expect_100", "upgrade")
        assert [getattr(fast, f) for f in fields] == [getattr(slow, f) for f in fields]
        assert fast.head == slow.head and (fast.decoder is None) is (slow.decoder is None)
    else:
        assert fast == slow


def test_a_reader_that_disagrees_with_connection_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    readers = importlib.import_module(h11.__name__ + "._readers")
    monkeypatch.setattr(readers, "maybe_read_from_IDLE_client", lambda buf: None)
    assert head_module._head_reader() is head_module._connection_read
    monkeypatch.delattr(readers, "maybe_read_from_IDLE_client")
    assert head_module._head_reader() is head_module._connection_read


def test_a_chunked_decoder_has_read_the_head_and_knows_of_100_continue() -> None:
    result = parsed(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n")
    assert result.decoder is not None and result.decoder.they_are_waiting_for_100_continue
    assert result.expect_100 is True
    assert parsed(b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue, x\r\nContent-Length: 1\r\n\r\n").expect_100
    assert not parsed(b"POST / HTTP/1.1\r\nHost: x\r\nExpect: x-100-continue\r\nContent-Length: 1\r\n\r\n").expect_100


def test_accepted_hosts_are_remembered_up_to_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Host the regex accepted skips it next time; the set of them stays bounded, and
    an invalid Host is refused however often it comes."""
    monkeypatch.setattr(head_module, "_VALID_HOSTS", set())
    monkeypatch.setattr(head_module, "_VALID_HOSTS_KEPT", 2)
    for host in (b"a", b"b:80", b"c", b"a"):
        assert isinstance(read(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n"), ParsedHead)
    assert sorted(head_module._VALID_HOSTS) == [b"a", b"b:80"]
    for _ in range(2):
        assert read(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n") == Rejection(400, "invalid Host")
    assert b"a b" not in head_module._VALID_HOSTS
