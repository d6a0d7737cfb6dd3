"""One reply path (issue 11 item 4): ``app.reconcile`` is where a recorded reply meets a
returned one; the body readers have their own names and types; one ``header_list``; a
second reply raises and, uncaught, makes the request a 500 (issue 14 item 6)."""

from __future__ import annotations

import ast
import logging
from pathlib import Path
from typing import Any

import pytest
from framework_helpers import MemoryChannel, call
from tiny_listener import Event

import hump_listener
from hump_listener import (
    App,
    FileResponse,
    HTTPContext,
    HTTPError,
    Response,
    ResponseAlreadySent,
    StreamingResponse,
)
from hump_listener.endpoints import CallNext

PKG = Path(hump_listener.__file__).parent


@pytest.fixture
def app() -> App:
    return App(access_log=False)


async def get(app: App, path: str, method: str = "GET", body: bytes = b"") -> MemoryChannel:
    return await call(app, method, path, body=body)


# -- reconcile: the rule, one case each ------------------------------------------------------


async def test_returning_the_recorded_reply_is_one_reply(app: App) -> None:
    @app.get("/r")
    async def r(ctx: HTTPContext) -> Response:
        return ctx.json({"ok": True}, status=201)

    ch = await get(app, "/r")
    assert (ch.status, ch.text) == (201, '{"ok":true}')


async def test_returned_value_alone_is_the_reply(app: App) -> None:
    @app.get("/r")
    async def r(ctx: HTTPContext) -> tuple[str, int]:
        return "made", 201

    ch = await get(app, "/r")
    assert (ch.status, ch.text) == (201, "made")


async def test_handler_replying_then_returning_another_is_a_logged_500(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    @app.get("/r")
    async def two_replies(ctx: HTTPContext) -> str:
        ctx.response(200, "recorded")
        return "returned"

    with caplog.at_level(logging.ERROR, logger="hump_listener.error"):
        ch = await get(app, "/r")
    assert (ch.status, ch.text) == (500, "Internal Server Error")
    assert "ResponseAlreadySent" in caplog.text and "two_replies" in caplog.text


async def test_middleware_may_replace_or_short_circuit(app: App) -> None:
    @app.middleware
    async def replace(ctx: HTTPContext, call_next: CallNext) -> Any:
        response = await call_next()
        if ctx.request.path == "/replaced":
            return Response(f"replaced {response.status}", 299)
        return None  # the recorded reply (the handler's) stands

    async def gate(ctx: HTTPContext, call_next: CallNext) -> None:
        ctx.response(401, "no")  # recorded, call_next never called

    @app.get("/replaced")
    async def replaced(ctx: HTTPContext) -> str:
        return "handler"

    @app.get("/kept")
    async def kept(ctx: HTTPContext) -> None:
        ctx.response(200, "handler")

    @app.get("/gated", middleware=[gate])
    async def gated(ctx: HTTPContext) -> str:
        raise AssertionError("not reached")

    assert ((await get(app, "/replaced")).status, (await get(app, "/replaced")).text) == (299, "replaced 200")
    assert (await get(app, "/kept")).text == "handler"
    ch = await get(app, "/gated")
    assert (ch.status, ch.text) == (401, "no")


async def test_http_error_after_a_reply_answers_instead(app: App) -> None:
    seen: list[int] = []

    @app.middleware
    async def look(ctx: HTTPContext, call_next: CallNext) -> Any:
        response = await call_next()
        seen.append(response.status)
        return response

    @app.get("/r")
    async def r(ctx: HTTPContext) -> None:
        ctx.response(200, "recorded")
        raise HTTPError(409)

    ch = await get(app, "/r")
    assert (ch.status, ch.text, seen) == (409, "Conflict", [409])


async def test_an_exception_discards_the_recorded_reply(app: App, caplog: pytest.LogCaptureFixture) -> None:
    @app.get("/r")
    async def r(ctx: HTTPContext) -> None:
        ctx.response(200, "half done")
        raise RuntimeError("then failed")

    @app.get("/hooked")
    async def hooked(ctx: HTTPContext) -> None:
        ctx.response(200, "half done")
        raise KeyError("k")

    @app.on_error(KeyError)
    async def on_key(event: Event) -> None:  # type: ignore[type-arg]
        event.ctx.response(400, "hook's answer")  # a fresh reply: the recorded one was dropped

    with caplog.at_level(logging.ERROR, logger="hump_listener.error"):
        assert (await get(app, "/r")).status == 500
        ch = await get(app, "/hooked")
    assert (ch.status, ch.text) == (400, "hook's answer")


async def test_none_without_a_reply_names_the_handler_or_middleware(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    async def silent_mw(ctx: HTTPContext, call_next: CallNext) -> None:
        return None

    @app.get("/mw", middleware=[silent_mw])
    async def behind(ctx: HTTPContext) -> str:
        return "x"

    with caplog.at_level(logging.ERROR, logger="hump_listener.error"):
        assert (await get(app, "/mw")).status == 500
    assert "silent_mw" in caplog.text and "returned None without replying" in caplog.text


# -- a second reply: what the README says ----------------------------------------------------


async def test_second_reply_raises_at_the_call_caught_first_stands_uncaught_500(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    raised: list[str] = []

    @app.get("/caught")
    async def caught(ctx: HTTPContext) -> None:
        ctx.response(200, "first")
        try:
            ctx.redirect("/elsewhere")
        except ResponseAlreadySent as exc:
            raised.append(str(exc))

    @app.get("/uncaught")
    async def uncaught(ctx: HTTPContext) -> None:
        ctx.response(200, "first")
        ctx.json({"second": True})

    ch = await get(app, "/caught")
    assert (ch.status, ch.text) == (200, "first") and "exactly one" in raised[0]
    with caplog.at_level(logging.ERROR, logger="hump_listener.error"):
        ch = await get(app, "/uncaught")
    assert (ch.status, ch.text) == (500, "Internal Server Error")  # neither reply is sent
    assert "ResponseAlreadySent" in caplog.text


def test_readme_states_what_a_second_reply_does() -> None:
    readme = (PKG.parent / "docs" / "responses.md").read_text()  # the README's reference moved there
    assert "the first one is what is sent" not in readme
    assert "uncaught, the request is answered 500" in readme


# -- body readers: their own names --------------------------------------------------------------


async def test_read_text_and_read_json(app: App) -> None:
    @app.post("/t")
    async def t(ctx: HTTPContext) -> dict[str, Any]:
        return {"text": await ctx.read_text(), "json": await ctx.read_json()}

    ch = await get(app, "/t", "POST", b'{"a": "\xc3\xa9"}')
    assert ch.status == 200 and ch.text == '{"text":"{\\"a\\": \\"é\\"}","json":{"a":"é"}}'
    ch = await get(app, "/t", "POST", b"{nope")
    assert ch.status == 400 and "Invalid JSON" in ch.text


async def test_text_and_json_only_reply_reading_is_read_text_and_read_json(app: App) -> None:
    """One spelling each: the argument-less readers of 0.0 are gone (issue 19 item 5)."""
    refused: list[str] = []

    @app.post("/t")
    async def t(ctx: HTTPContext) -> str:
        for reply in (ctx.text, ctx.json):
            try:
                reply()  # type: ignore[call-arg]
            except TypeError:
                refused.append(reply.__name__)
        return await ctx.read_text()

    assert (await get(app, "/t", "POST", b"[1]")).text == "[1]"
    assert refused == ["text", "json"]


def test_readers_and_repliers_are_typed_so_mypy_catches_a_missing_await(tmp_path: Path) -> None:
    mypy_api = pytest.importorskip("mypy.api")
    snippet = tmp_path / "snippet.py"
    snippet.write_text(
        "from hump_listener import HTTPContext\n"
        "async def handler(ctx: HTTPContext) -> None:\n"
        "    reveal_type(await ctx.read_text())\n"
        "    reveal_type(ctx.text('hi'))\n"
        "    reveal_type(ctx.json({'a': 1}))\n"
        "    data: dict[str, int] = ctx.read_json()\n"
    )
    out, _, status = mypy_api.run(
        ["--strict", "--no-incremental", "--cache-dir", str(tmp_path / "cache"),
         "--config-file", str(PKG.parent / "pyproject.toml"), str(snippet)]
    )
    assert 'Revealed type is "builtins.str"' in out or 'Revealed type is "str"' in out
    assert out.count('Revealed type is "hump_listener.models.Response"') == 2
    assert 'expression has type "Coroutine[Any, Any, Any]"' in out and status == 1


# -- header_list: one home -----------------------------------------------------------------------


def test_header_list_is_written_once() -> None:
    homes = []
    for path in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name == "header_list":
                homes.append(path.name)
    assert homes == ["models.py"]


def test_each_response_kind_declares_its_length(tmp_path: Path) -> None:
    plain = Response("héllo", headers={"Content-Length": "999", "X-A": "1"})
    assert plain.header_list() == [
        (b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"6"), (b"x-a", b"1")
    ]
    assert Response(b"", 304, {"ETag": '"e"'}).header_list() == [(b"etag", b'"e"')]
    f = tmp_path / "f.txt"
    f.write_bytes(b"0123456789")
    ranged = FileResponse(f, range=(2, 5)).header_list()
    assert ranged[:2] == [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"4")]

    async def chunks() -> Any:
        yield b"x"

    streamed = StreamingResponse(chunks(), headers={"Content-Length": "1", "Content-Type": "a/b"})
    assert streamed.header_list() == [(b"content-length", b"1"), (b"content-type", b"a/b")]
    assert StreamingResponse(chunks()).header_list() == [(b"content-type", b"text/plain; charset=utf-8")]


# -- replies.py, directly: to_response, error_response, reconcile ------------------------------


def bare_context(path: str = "/r") -> HTTPContext:
    from hump_listener.models import Headers, Request

    ctx = HTTPContext(App(access_log=False), "1")
    ctx.request = Request("GET", path, path.encode(), b"", "1.1", Headers([]))
    return ctx


def test_to_response_converts_each_kind_of_returned_value() -> None:
    from hump_listener.replies import to_response

    same = Response("x", 202)
    assert to_response(same) is same
    assert (to_response("hi").status, to_response("hi").body) == (200, b"hi")
    assert to_response({"a": 1}).body == b'{"a":1}'
    assert to_response(b"raw").body == b"raw"
    made = to_response(("gone", 410))
    assert (made.status, made.body) == (410, b"gone")
    with_headers = to_response(("", 204, {"X-A": "1"}))
    assert (with_headers.status, with_headers.headers.get("x-a")) == (204, "1")
    with pytest.raises(TypeError, match="must be \\(body, status\\[, headers\\]\\), got 4 items"):
        to_response(("a", 200, {}, "extra"))


def test_error_response_is_the_errors_status_detail_and_headers() -> None:
    from hump_listener.replies import error_response

    response = error_response(HTTPError(405, headers={"Allow": "GET"}))
    assert (response.status, response.body, response.headers.get("allow")) == (405, b"Method Not Allowed", "GET")


def test_reconcile_rule_1_none_or_the_recorded_reply_itself() -> None:
    from hump_listener.errors import NoResponse
    from hump_listener.replies import reconcile

    ctx = bare_context()
    recorded = ctx.text("recorded")
    assert reconcile(ctx, None, "handler h", replaces=False) is recorded
    assert reconcile(ctx, recorded, "handler h", replaces=False) is recorded
    with pytest.raises(NoResponse, match="handler h for GET /r returned None without replying"):
        reconcile(bare_context(), None, "handler h", replaces=False)


def test_reconcile_rule_2_a_returned_value_is_recorded_or_replaces() -> None:
    from hump_listener.replies import reconcile

    ctx = bare_context()
    answer = reconcile(ctx, ("made", 201), "handler h", replaces=False)
    assert ctx.reply is answer and answer.status == 201
    with pytest.raises(ResponseAlreadySent, match="handler h for GET /r returned a response after replying"):
        reconcile(ctx, "second", "handler h", replaces=False)
    replaced = reconcile(ctx, "from middleware", "middleware m", replaces=True)
    assert ctx.reply is replaced and replaced.body == b"from middleware"
