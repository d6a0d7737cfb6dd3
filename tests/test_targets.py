"""targets.py: ``split_target`` and ``decode_path`` as the request path uses them (the
cases test_routing.py checks through the ``routing`` re-export are not repeated)."""

from __future__ import annotations

import pytest

from hump_listener import routing
from hump_listener.errors import HTTPError
from hump_listener.targets import decode_path, parse_target, split_target


def test_routing_re_exports_the_same_functions() -> None:
    assert routing.split_target is split_target
    assert routing.decode_path is decode_path


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (b"/a?x=1#frag", (b"/a", b"x=1")),  # a fragment is never sent; tolerated and dropped
        (b"/a?", (b"/a", b"")),
        (b"/a?b?c", (b"/a", b"b?c")),  # only the first '?' splits
        (b"https://h:8443/p/q", (b"/p/q", b"")),
        (b"http://h?x=/not-a-path", (b"/", b"x=/not-a-path")),  # the '?' comes before any '/'
        (b"/%2F?q", (b"/%2F", b"q")),  # still raw: decoding is decode_path's job
    ],
)
def test_split_target(target: bytes, expected: tuple[bytes, bytes]) -> None:
    assert split_target(target) == expected


@pytest.mark.parametrize("target", [b"", b"://x/a", b"x", b"h/a"])
def test_a_target_in_no_known_form_is_a_400(target: bytes) -> None:
    with pytest.raises(HTTPError) as info:
        split_target(target)
    assert (info.value.status, info.value.detail) == (400, "Invalid request target")


@pytest.mark.parametrize(
    ("raw", "path"),
    [(b"/caf%C3%A9", "/café"), (b"/a%2Fb", "/a/b"), (b"/%41%62", "/Ab"), (b"/a+b", "/a+b"), (b"/", "/")],
)
def test_decode_path(raw: bytes, path: str) -> None:
    assert decode_path(raw) == path


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (b"/\xc3\xa9", "Invalid character in request target"),  # raw non-ASCII, unescaped
        (b"/a%g1", "Invalid percent-encoding in request target"),
        (b"/a%1", "Invalid percent-encoding in request target"),
        (b"/%FF", "Request target is not valid UTF-8"),
        (b"/a%00b", "NUL in request target"),
    ],
)
def test_each_bad_path_says_what_is_wrong(raw: bytes, detail: str) -> None:
    with pytest.raises(HTTPError) as info:
        decode_path(raw)
    assert (info.value.status, info.value.detail) == (400, detail)


@pytest.mark.parametrize(
    "target",
    [
        b"/", b"/a/b", b"/a/b?x=1", b"/caf%C3%A9", b"/a#frag", b"/a?b#c", b"http://h/a?q", b"*",
        b"/caf\xc3\xa9", b"/bad%zz", b"/%FF", b"/%00", b"nope",
    ],
)
def test_parse_target_is_split_target_then_decode_path(target: bytes) -> None:
    """The one-call form (with its shortcut for plain paths) answers exactly as the two
    steps do, errors included."""

    def two_steps() -> tuple[bytes, bytes, str]:
        raw_path, query = split_target(target)
        return raw_path, query, decode_path(raw_path)

    try:
        expected: object = two_steps()
    except HTTPError as exc:
        expected = (exc.status, exc.detail)
    try:
        got: object = parse_target(target)
    except HTTPError as exc:
        got = (exc.status, exc.detail)
    assert got == expected
