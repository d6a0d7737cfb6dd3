"""responses.py on its own: the pure helpers (``guess_type``, ``content_disposition``,
``encode_sse``), ``FileResponse``'s head, ``serve_file``'s conditional and range
decisions, and both kinds' ``send`` over a ``MemoryChannel``. Streams and SSE through an
app are in test_streaming.py, files through ``app.static`` in test_staticfiles.py."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from email.utils import formatdate
from pathlib import Path

import pytest
from framework_helpers import MemoryChannel

from hump_listener import FileResponse, HTTPError, StreamingResponse
from hump_listener.models import Headers
from hump_listener.responses import content_disposition, encode_sse, guess_type, serve_file


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("a.txt", "text/plain; charset=utf-8"),
        ("a.html", "text/html; charset=utf-8"),
        ("a.png", "image/png"),
        ("a.tar.gz", "application/octet-stream"),  # compressed: octets, not x-tar
        ("no-extension", "application/octet-stream"),
    ],
)
def test_guess_type(name: str, media_type: str) -> None:
    assert guess_type(name) == media_type


def test_content_disposition_has_an_ascii_fallback_for_other_names() -> None:
    assert content_disposition("report.pdf") == 'attachment; filename="report.pdf"'
    assert content_disposition("r.pdf", "inline") == 'inline; filename="r.pdf"'
    assert content_disposition('résumé "1".pdf') == (
        "attachment; filename=\"r_sum_ _1_.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%221%22.pdf"
    )


def test_encode_sse_writes_each_field_and_one_data_line_per_line() -> None:
    assert encode_sse("hi") == b"data: hi\n\n"
    assert encode_sse({"event": "tick", "id": 3, "retry": 1500, "data": "a\nb"}) == (
        b"event: tick\nid: 3\nretry: 1500\ndata: a\ndata: b\n\n"
    )
    assert encode_sse({"data": {"n": 1}}) == b'data: {"n":1}\n\n'
    assert encode_sse({"comment": "keep"}) == b": keep\n\n"


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"nope": 1}, "unknown SSE field"),
        ({"event": "a\nb"}, "SSE event may not contain a line break"),
        ({"id": "a\0b"}, "SSE id may not contain a line break"),
        ({}, "needs at least one of"),
    ],
)
def test_encode_sse_refuses_what_would_break_the_stream(event: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        encode_sse(event)  # type: ignore[arg-type]


@pytest.fixture
def ten_bytes(tmp_path: Path) -> Path:
    path = tmp_path / "f.txt"
    path.write_bytes(b"0123456789")
    return path


def test_a_file_response_declares_its_validators_and_length(ten_bytes: Path) -> None:
    response = FileResponse(ten_bytes, filename="f.txt")
    st = os.stat(ten_bytes)
    assert response.content_length() == 10
    assert response.headers.get("accept-ranges") == "bytes"
    assert response.headers.get("last-modified") == formatdate(st.st_mtime, usegmt=True)
    assert response.headers.get("etag") == f'"{st.st_mtime_ns:x}-{st.st_size:x}"'
    assert response.headers.get("content-disposition") == 'attachment; filename="f.txt"'
    ranged = FileResponse(ten_bytes, range=(2, 4))
    assert (ranged.status, ranged.content_length(), ranged.headers.get("content-range")) == (206, 3, "bytes 2-4/10")
    with pytest.raises(ValueError, match="outside a file of 10 bytes"):
        FileResponse(ten_bytes, range=(5, 10))


async def test_a_file_is_opened_when_sent_and_a_removed_one_is_404(ten_bytes: Path) -> None:
    channel = MemoryChannel()
    await FileResponse(ten_bytes, range=(1, 3)).send(channel, head_only=False)
    assert (channel.status, bytes(channel.sent), channel.ended) == (206, b"123", True)
    head = MemoryChannel()
    await FileResponse(ten_bytes).send(head, head_only=True)
    assert (head.status, head.sent, head.header("content-length")) == (200, bytearray(), "10")
    response = FileResponse(ten_bytes)
    ten_bytes.unlink()
    gone = MemoryChannel()
    await response.send(gone, head_only=False)
    assert gone.status == 404


def served(path: Path, **headers: str) -> tuple[int, str | None]:
    response = serve_file(path, Headers([(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]))
    return response.status, response.headers.get("content-range")


def test_serve_file_decides_200_206_304_and_416(ten_bytes: Path) -> None:
    etag = FileResponse(ten_bytes).headers.get("etag")
    assert etag is not None
    assert served(ten_bytes) == (200, None)
    assert served(ten_bytes, range="bytes=2-") == (206, "bytes 2-9/10")
    assert served(ten_bytes, range="bytes=-3") == (206, "bytes 7-9/10")
    assert served(ten_bytes, range="bytes=20-") == (416, "bytes */10")
    assert served(ten_bytes, range="bytes=1-2,4-5") == (200, None)  # several ranges: ignored
    assert served(ten_bytes, range="items=1-2") == (200, None)
    assert served(ten_bytes, if_none_match=etag) == (304, None)
    assert served(ten_bytes, if_none_match=f"W/{etag}") == (304, None)  # the weak comparison
    assert served(ten_bytes, range="bytes=2-", if_range='"stale"') == (200, None)
    assert served(ten_bytes, range="bytes=2-", if_range=etag) == (206, "bytes 2-9/10")


def test_serve_file_of_something_that_is_not_a_regular_file_is_404(tmp_path: Path) -> None:
    for path in (tmp_path, tmp_path / "missing"):
        with pytest.raises(HTTPError) as info:
            serve_file(path, Headers([]))
        assert info.value.status == 404


async def test_a_stream_is_written_as_it_comes_and_always_closed() -> None:
    closed: list[bool] = []

    async def chunks() -> AsyncIterator[str | bytes]:
        try:
            yield "a"
            yield b""
            yield b"b"
        finally:
            closed.append(True)

    channel = MemoryChannel()
    response = StreamingResponse(chunks())
    assert response.content_length() is None
    await response.send(channel, head_only=False)
    assert (channel.status, bytes(channel.sent), channel.ended, closed) == (200, b"ab", True, [True])
    head = MemoryChannel()
    await StreamingResponse(chunks()).send(head, head_only=True)
    assert (head.sent, closed) == (bytearray(), [True])  # never iterated: nothing to close
