"""staticfiles.py + responses.FileResponse / serve_file: types, validators, 304, ranges,
containment. Most requests go through the TestClient (the real protocol); sendfile use is
checked on an in-memory Channel."""

from __future__ import annotations

import os
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path
from typing import IO

import pytest
from framework_helpers import MemoryChannel, call

from hump_listener import App
from hump_listener.models import Headers
from hump_listener.responses import FileResponse, serve_file
from hump_listener.testing import TestClient

HELLO = b"Hello, static world!\n"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "public"
    (root / "sub").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "hello.txt").write_bytes(HELLO)
    (root / "style.css").write_text("body { color: red }\n")
    (root / "blob.qqq").write_bytes(bytes(range(256)))
    (root / "archive.tar.gz").write_bytes(b"\x1f\x8b fake")
    (root / "sub" / "index.html").write_text("<h1>sub index</h1>")
    (root / "sub" / "page.html").write_text("<p>page</p>")
    (tmp_path / "secret.txt").write_text("TOP SECRET")
    (root / "inside-link.txt").symlink_to(root / "hello.txt")
    (root / "outside-link.txt").symlink_to(tmp_path / "secret.txt")
    (root / "outside-dir").symlink_to(tmp_path, target_is_directory=True)
    return root


@pytest.fixture
def client(site: Path) -> Iterator[TestClient]:
    app = App(access_log=False)
    app.static("/static", site)
    with TestClient(app) as c:
        yield c


# -- serving -------------------------------------------------------------------------------


def test_serves_a_file_with_type_length_and_validators(client: TestClient, site: Path) -> None:
    r = client.get("/static/hello.txt")
    assert r.status_code == 200
    assert r.content == HELLO
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.headers["content-length"] == str(len(HELLO))
    assert r.headers["accept-ranges"] == "bytes"
    st = os.stat(site / "hello.txt")
    assert r.headers["last-modified"] == formatdate(st.st_mtime, usegmt=True)
    assert r.headers["etag"] == f'"{st.st_mtime_ns:x}-{st.st_size:x}"'


@pytest.mark.parametrize(
    ("name", "ctype"),
    [
        ("style.css", "text/css; charset=utf-8"),
        ("sub/page.html", "text/html; charset=utf-8"),
        ("blob.qqq", "application/octet-stream"),
        ("archive.tar.gz", "application/octet-stream"),  # not x-tar without Content-Encoding
    ],
)
def test_content_type_from_mimetypes(client: TestClient, name: str, ctype: str) -> None:
    r = client.get(f"/static/{name}")
    assert r.status_code == 200
    assert r.headers["content-type"] == ctype


def test_head_has_the_headers_and_no_body(client: TestClient) -> None:
    r = client.head("/static/hello.txt")
    assert r.status_code == 200
    assert r.headers["content-length"] == str(len(HELLO))
    assert r.content == b""


def test_symlink_inside_the_root_is_served(client: TestClient) -> None:
    assert client.get("/static/inside-link.txt").content == HELLO


def test_other_methods_are_405(client: TestClient) -> None:
    r = client.post("/static/hello.txt", content=b"x")
    assert r.status_code == 405
    assert "GET" in r.headers["allow"]


def test_extra_headers_option(site: Path) -> None:
    app = App(access_log=False)
    app.static("/assets", site, headers={"Cache-Control": "public, max-age=60"})
    with TestClient(app) as c:
        r = c.get("/assets/hello.txt")
        assert r.headers["cache-control"] == "public, max-age=60"
        not_modified = c.get("/assets/hello.txt", headers={"If-None-Match": r.headers["etag"]})
        assert not_modified.status_code == 304
        assert not_modified.headers["cache-control"] == "public, max-age=60"


def test_mount_at_root_is_behind_other_routes(site: Path) -> None:
    app = App(access_log=False)

    @app.get("/hello.txt")
    async def shadow() -> str:
        return "route wins"

    app.static("/", site)
    with TestClient(app) as c:
        assert c.get("/hello.txt").text == "route wins"
        assert c.get("/style.css").status_code == 200


# -- conditional requests -------------------------------------------------------------------


def test_if_none_match_gives_304(client: TestClient) -> None:
    etag = client.get("/static/hello.txt").headers["etag"]
    for value in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        r = client.get("/static/hello.txt", headers={"If-None-Match": value})
        assert r.status_code == 304, value
        assert r.content == b""
        assert r.headers["etag"] == etag
        assert "content-length" not in r.headers


def test_if_none_match_mismatch_wins_over_if_modified_since(client: TestClient) -> None:
    r0 = client.get("/static/hello.txt")
    r = client.get(
        "/static/hello.txt",
        headers={"If-None-Match": '"stale"', "If-Modified-Since": r0.headers["last-modified"]},
    )
    assert r.status_code == 200
    assert r.content == HELLO


def test_if_modified_since(client: TestClient, site: Path) -> None:
    last_modified = client.get("/static/hello.txt").headers["last-modified"]
    assert client.get("/static/hello.txt", headers={"If-Modified-Since": last_modified}).status_code == 304
    earlier = formatdate(os.stat(site / "hello.txt").st_mtime - 3600, usegmt=True)
    assert client.get("/static/hello.txt", headers={"If-Modified-Since": earlier}).status_code == 200
    assert client.get("/static/hello.txt", headers={"If-Modified-Since": "garbage"}).status_code == 200


# -- ranges ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "first", "last"),
    [("bytes=0-4", 0, 4), ("bytes=7-", 7, 255), ("bytes=-6", 250, 255), ("bytes=250-999", 250, 255)],
)
def test_single_range_is_206(client: TestClient, spec: str, first: int, last: int) -> None:
    r = client.get("/static/blob.qqq", headers={"Range": spec})
    assert r.status_code == 206
    assert r.content == bytes(range(256))[first : last + 1]
    assert r.headers["content-range"] == f"bytes {first}-{last}/256"
    assert r.headers["content-length"] == str(last - first + 1)


@pytest.mark.parametrize("spec", ["bytes=256-", "bytes=1000-2000", "bytes=-0"])
def test_unsatisfiable_range_is_416(client: TestClient, spec: str) -> None:
    r = client.get("/static/blob.qqq", headers={"Range": spec})
    assert r.status_code == 416
    assert r.headers["content-range"] == "bytes */256"


@pytest.mark.parametrize("spec", ["bytes=0-1,5-6", "items=0-1", "bytes=5-2", "bytes=x-y", "bytes=-"])
def test_multi_or_malformed_range_serves_the_whole_file(client: TestClient, spec: str) -> None:
    r = client.get("/static/blob.qqq", headers={"Range": spec})
    assert r.status_code == 200
    assert r.content == bytes(range(256))
    assert "content-range" not in r.headers


def test_if_range(client: TestClient) -> None:
    etag = client.get("/static/blob.qqq").headers["etag"]
    same = client.get("/static/blob.qqq", headers={"Range": "bytes=0-0", "If-Range": etag})
    assert same.status_code == 206
    changed = client.get("/static/blob.qqq", headers={"Range": "bytes=0-0", "If-Range": '"old"'})
    assert changed.status_code == 200
    assert len(changed.content) == 256


# -- directories ----------------------------------------------------------------------------


def test_directory_index_and_slash_redirect(client: TestClient) -> None:
    r = client.get("/static/sub/")
    assert r.status_code == 200
    assert r.text == "<h1>sub index</h1>"
    redirect = client.get("/static/sub?x=1")
    assert redirect.status_code == 307
    assert redirect.headers["location"] == "/static/sub/?x=1"


def test_directory_without_index_is_404(client: TestClient) -> None:
    assert client.get("/static/empty/").status_code == 404
    assert client.get("/static/empty").status_code == 404


def test_index_disabled(site: Path) -> None:
    app = App(access_log=False)
    app.static("/s", site, index=None)
    with TestClient(app) as c:
        assert c.get("/s/sub/").status_code == 404
        assert c.get("/s/sub/page.html").status_code == 200


def test_file_with_trailing_slash_is_404(client: TestClient) -> None:
    assert client.get("/static/hello.txt/").status_code == 404


def test_missing_directory_fails_at_registration(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        App().static("/s", tmp_path / "nope")


# -- containment ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "/static/../secret.txt",
        "/static/sub/../../secret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/%2E%2E/%2e%2e/secret.txt",
        "/static/..%2fsecret.txt",
        "/static/sub%2fpage.html",
        "/static/sub%5cpage.html",
        "/static/sub\\page.html",
        "/static/..\\secret.txt",
        "/static//etc/passwd",
        "/static/%2fetc/passwd",
        "/static/./hello.txt",
        "/static/sub//page.html",
        "/static/outside-link.txt",
        "/static/outside-dir/secret.txt",
        "/static/missing.txt",
    ],
)
def test_paths_outside_or_odd_are_404(client: TestClient, target: str) -> None:
    r = client.get(target)
    assert r.status_code == 404, target
    assert b"SECRET" not in r.content


def test_nul_is_refused(client: TestClient) -> None:
    # The router refuses a decoded NUL (400) before any route runs.
    r = client.get("/static/hello.txt%00.png")
    assert r.status_code in (400, 404)
    assert r.content != HELLO


def test_resolve_refuses_without_touching_the_file_system(site: Path) -> None:
    from hump_listener.staticfiles import StaticFiles

    files = StaticFiles(site)
    assert files.resolve("hello.txt", b"/static/hello.txt") == os.path.realpath(site / "hello.txt")
    for rel in ("../x", "a/../../x", "/etc/passwd", "a\\b", "a\x00b", "a//b", "."):
        assert files.resolve(rel, b"/static/x") is None, rel


# -- FileResponse on the seam -----------------------------------------------------------------


class RecordingChannel(MemoryChannel):
    def __init__(self) -> None:
        super().__init__()
        self.sendfile_calls: list[tuple[int, int]] = []

    async def sendfile(self, file: IO[bytes], offset: int, count: int) -> None:
        self.sendfile_calls.append((offset, count))
        await super().sendfile(file, offset, count)


async def test_file_response_uses_sendfile_for_the_range(site: Path) -> None:
    response = serve_file(site / "blob.qqq", Headers([(b"range", b"bytes=10-19")]))
    channel = RecordingChannel()
    await response.send(channel, head_only=False)
    assert channel.status == 206
    assert channel.sendfile_calls == [(10, 10)]
    assert bytes(channel.sent) == bytes(range(10, 20))
    assert channel.ended


async def test_file_response_head_sends_no_body(site: Path) -> None:
    channel = RecordingChannel()
    await FileResponse(site / "hello.txt").send(channel, head_only=True)
    assert channel.status == 200
    assert channel.header("content-length") == str(len(HELLO))
    assert channel.sent == b"" and channel.sendfile_calls == []


async def test_file_removed_before_send_is_404(site: Path) -> None:
    path = site / "gone.txt"
    path.write_text("soon gone")
    response = FileResponse(path)
    path.unlink()
    channel = RecordingChannel()
    await response.send(channel, head_only=False)
    assert channel.status == 404


def test_serve_file_of_a_directory_is_404(site: Path) -> None:
    from hump_listener import HTTPError

    with pytest.raises(HTTPError) as info:
        serve_file(site / "sub", Headers())
    assert info.value.status == 404


async def test_static_route_through_the_seam(site: Path) -> None:
    app = App(access_log=False)
    app.static("/static/", site)
    channel = await call(app, "GET", "/static/hello.txt")
    assert channel.status == 200
    assert bytes(channel.sent) == HELLO
