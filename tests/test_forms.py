"""forms.py + HTTPContext.form(): urlencoded and multipart bodies, UploadFile, limits,
malformed input, cleanup. Exact bodies go through the in-memory Channel (chunked as we
like); the TestClient covers the wire path."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from framework_helpers import MemoryChannel, call

from hump_listener import App, HTTPContext
from hump_listener import forms as forms_module
from hump_listener.forms import FormData, UploadFile
from hump_listener.testing import TestClient, encode_multipart

B = "XyZb0und4ry"
CT = f"multipart/form-data; boundary={B}"


def part(name: str, value: bytes, filename: str | None = None, ctype: str | None = None) -> bytes:
    disp = f'Content-Disposition: form-data; name="{name}"'
    if filename is not None:
        disp += f'; filename="{filename}"'
    head = disp + "\r\n" + (f"Content-Type: {ctype}\r\n" if ctype else "")
    return f"--{B}\r\n{head}\r\n".encode() + value + b"\r\n"


def body(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{B}--\r\n".encode()


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def form_app(**form_kw: Any) -> tuple[App, list[FormData]]:
    app = App(access_log=False, max_body_size=None)
    seen: list[FormData] = []

    @app.post("/form")
    async def handler(ctx: HTTPContext) -> None:
        form = await ctx.form(**form_kw)
        assert await ctx.form() is form  # parsed once, cached
        seen.append(form)
        out: dict[str, Any] = {}
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                out.setdefault(key, []).append(
                    {"filename": value.filename, "type": value.content_type, "size": value.size,
                     "data": (await value.read()).decode("latin-1"), "memory": value.in_memory}
                )
            else:
                out.setdefault(key, []).append(value)
        ctx.json(out)

    return app, seen


async def post(app: App, data: bytes | list[bytes], ctype: str = CT) -> MemoryChannel:
    size = sum(map(len, data)) if isinstance(data, list) else len(data)
    return await call(app, "POST", "/form", [("content-type", ctype), ("content-length", str(size))], data)


def payload(channel: MemoryChannel) -> Any:
    import json

    return json.loads(channel.sent)


# -- urlencoded ------------------------------------------------------------------------------


async def test_urlencoded_form_is_formdata() -> None:
    app, seen = form_app()
    ch = await post(app, b"a=1&b=x+y&a=2&c=%C3%A9", "application/x-www-form-urlencoded")
    assert ch.status == 200
    assert payload(ch) == {"a": ["1", "2"], "b": ["x y"], "c": ["é"]}
    assert seen[0]["a"] == "1" and seen[0].getlist("a") == ["1", "2"]


async def test_other_content_type_is_415() -> None:
    app, _ = form_app()
    assert (await post(app, b"{}", "application/json")).status == 415


# -- multipart -------------------------------------------------------------------------------


async def test_fields_and_files() -> None:
    app, seen = form_app()
    data = body(
        part("name", "Zoë".encode()),
        part("doc", b"%PDF-1.7 binary\x00\xff", "report.pdf", "application/pdf"),
        part("tags", b"a"),
        part("tags", b"b"),
        part("empty", b"", ""),
    )
    ch = await post(app, data)
    assert ch.status == 200, ch.text
    got = payload(ch)
    assert got["name"] == ["Zoë"]
    assert got["tags"] == ["a", "b"]
    assert got["doc"] == [
        {"filename": "report.pdf", "type": "application/pdf", "size": 17,
         "data": "%PDF-1.7 binary\x00\xff", "memory": True}
    ]
    assert got["empty"][0]["filename"] == "" and got["empty"][0]["size"] == 0
    doc = seen[0]["doc"]
    assert isinstance(doc, UploadFile)
    assert doc.headers["content-type"] == "application/pdf"


@pytest.mark.parametrize("size", [1, 7, 64])
async def test_parsed_across_arbitrary_chunk_boundaries(size: int) -> None:
    app, _ = form_app()
    data = body(part("a", b"alpha\r\n--notboundary"), part("f", b"x" * 300, "f.bin"))
    ch = await post(app, chunked(data, size))
    assert ch.status == 200, ch.text
    got = payload(ch)
    assert got["a"] == ["alpha\r\n--notboundary"]
    assert got["f"][0]["size"] == 300


async def test_large_file_spools_to_disk() -> None:
    app, _ = form_app(spool_max_size=1024)
    ch = await post(app, body(part("f", b"z" * 5000, "big.bin"), part("g", b"z" * 10, "small.bin")))
    got = payload(ch)
    assert got["f"][0]["memory"] is False
    assert got["g"][0]["memory"] is True
    assert got["f"][0]["data"] == "z" * 5000


async def test_uploads_are_closed_when_the_request_ends() -> None:
    app, seen = form_app()
    await post(app, body(part("f", b"data", "a.txt"), part("g", b"more", "b.txt")))
    files = seen[0].files()
    assert len(files) == 2
    assert all(f.closed for f in files)


async def test_uploads_closed_after_a_handler_error_too() -> None:
    app = App(access_log=False)
    kept: list[UploadFile] = []

    @app.post("/form")
    async def handler(ctx: HTTPContext) -> None:
        form = await ctx.form()
        kept.extend(form.files())
        raise RuntimeError("handler bug")

    ch = await post(app, body(part("f", b"data", "a.txt")))
    assert ch.status == 500
    assert kept and kept[0].closed


# -- limits ----------------------------------------------------------------------------------


async def test_too_many_fields_is_413() -> None:
    app, _ = form_app(max_fields=2)
    ok = await post(app, body(part("a", b"1"), part("b", b"2")))
    assert ok.status == 200
    ch = await post(app, body(part("a", b"1"), part("b", b"2"), part("c", b"3")))
    assert ch.status == 413


async def test_too_many_files_is_413() -> None:
    app, _ = form_app(max_files=1)
    ch = await post(app, body(part("a", b"1", "a"), part("b", b"2", "b")))
    assert ch.status == 413


async def test_field_too_large_is_413() -> None:
    app, _ = form_app(max_field_size=10)
    assert (await post(app, body(part("a", b"x" * 10)))).status == 200
    assert (await post(app, body(part("a", b"x" * 11)))).status == 413


async def test_file_too_large_is_413_before_the_body_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    created: list[UploadFile] = []
    original = forms_module.UploadFile

    class Tracked(original):  # type: ignore[misc, valid-type]
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, **kw)
            created.append(self)

    monkeypatch.setattr(forms_module, "UploadFile", Tracked)
    app, _ = form_app(max_file_size=100)
    data = chunked(body(part("f", b"y" * 10_000, "big.bin")), 50)
    ch = await post(app, data)
    assert ch.status == 413
    assert ch.reads < len(data)  # parsed as it streamed: the rest was never read
    assert created and all(f.closed for f in created)


async def test_route_body_limit_still_applies() -> None:
    app = App(access_log=False, max_body_size=100)

    @app.post("/form")
    async def handler(ctx: HTTPContext) -> None:
        await ctx.form()
        ctx.response(200, "ok")

    assert (await post(app, body(part("f", b"y" * 500, "big.bin")))).status == 413


# -- malformed -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "ctype"),
    [
        (body(part("a", b"1")), "multipart/form-data"),  # no boundary
        (body(part("a", b"1"))[:-8], CT),  # no closing boundary
        (f"--{B}\r\nContent-Type: text/plain\r\n\r\nx\r\n--{B}--\r\n".encode(), CT),  # no disposition
        (f'--{B}\r\nContent-Disposition: form-data; filename="x"\r\n\r\nx\r\n--{B}--\r\n'.encode(), CT),  # no name
        (f'--{B}\r\nContent-Disposition: attachment; name="x"\r\n\r\nx\r\n--{B}--\r\n'.encode(), CT),
        (body(part("a", b"\xff\xfe")), CT),  # field not UTF-8
        (b"garbage without any boundary", CT),
    ],
)
async def test_malformed_multipart_is_400(data: bytes, ctype: str) -> None:
    app, _ = form_app()
    ch = await post(app, data, ctype)
    assert ch.status == 400, ch.text


async def test_missing_python_multipart_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "python_multipart", None)
    monkeypatch.setitem(sys.modules, "multipart", None)
    with pytest.raises(ImportError, match=r"pip install python-multipart$"):
        forms_module._import_multipart()
    app, _ = form_app()
    assert (await post(app, body(part("a", b"1")))).status == 500


# -- FormData --------------------------------------------------------------------------------


def test_formdata_mapping_api() -> None:
    upload = UploadFile("a.txt", "text/plain")
    form = FormData([("a", "1"), ("f", upload), ("a", "2")])
    assert form["a"] == "1" and form.get("zz") is None
    assert form.getlist("a") == ["1", "2"]
    assert list(form) == ["a", "f"] and len(form) == 2
    assert form.to_dict() == {"a": ["1", "2"], "f": upload}
    assert form.files() == [upload]
    form.close()
    assert upload.closed


# -- over the wire ---------------------------------------------------------------------------


def test_upload_through_the_test_client() -> None:
    app, _ = form_app()
    with TestClient(app) as client:
        r = client.post(
            "/form", data={"title": "hi"}, files={"up": ("notes.txt", b"line1\nline2", "text/plain")}
        )
        assert r.status_code == 200
        assert r.json() == {
            "title": ["hi"],
            "up": [{"filename": "notes.txt", "type": "text/plain", "size": 11,
                    "data": "line1\nline2", "memory": True}],
        }


def test_encode_multipart_is_parseable_by_the_parser() -> None:
    data, ctype = encode_multipart({"a": "1"}, {"f": b"raw"}, boundary="bnd")
    assert ctype == "multipart/form-data; boundary=bnd"
    assert data.endswith(b"--bnd--\r\n")
