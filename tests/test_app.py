"""app.py + context.py + endpoints.py through the seam, with an in-memory Channel:
routing outcomes, injection, replies, errors, middleware, hooks, logging."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from framework_helpers import MemoryChannel, call
from tiny_listener import Depends, Event, Param

from hump_listener import App, HTTPContext, HTTPError, Response, ResponseAlreadySent, statuses
from hump_listener.errors import RouteDefinitionError


@pytest.fixture
def app() -> App:
    return App(access_log=False)


async def get(app: App, target: str, method: str = "GET", **kw: Any) -> MemoryChannel:
    return await call(app, method, target, **kw)


# -- contexts ------------------------------------------------------------------------------


async def test_one_context_per_request_dropped_when_done(app: App) -> None:
    seen: list[tuple[str, int]] = []

    @app.on_event("GET:/x")
    async def x(ctx: HTTPContext) -> None:
        seen.append((ctx.cid, len(app.ctxs)))
        assert app.ctxs[ctx.cid] is ctx
        ctx.response(200, "ok")

    for _ in range(3):
        assert (await get(app, "/x")).status == 200
    assert len({cid for cid, _ in seen}) == 3
    assert [n for _, n in seen] == [1, 1, 1]
    assert app.ctxs == {}


async def test_context_dropped_after_errors_too(app: App) -> None:
    @app.on_event("GET:/boom")
    async def boom(ctx: HTTPContext) -> None:
        raise RuntimeError("boom")

    assert (await get(app, "/boom")).status == 500
    assert (await get(app, "/missing")).status == 404
    assert app.ctxs == {}


async def test_event_name_path_is_decoded_and_query_free(app: App) -> None:
    @app.on_event("GET:/user/{name}")
    async def user(ctx: HTTPContext, name: Param) -> None:
        ctx.response(200, f"{name}|{ctx.request.path}|{ctx.request.query_string.decode()}")

    ch = await get(app, "/user/b%C3%B6b?x=1")
    assert ch.text == "böb|/user/böb|x=1"


# -- routing through the app ---------------------------------------------------------------


async def test_two_handlers_with_the_same_function_name_both_work(app: App) -> None:
    from apps import index_a, index_b

    index_a.register(app)
    index_b.register(app)
    assert (await get(app, "/a")).text == "a"
    assert (await get(app, "/b")).text == "b"


async def test_404_405_and_head(app: App) -> None:
    @app.get("/thing")
    async def thing(ctx: HTTPContext) -> None:
        ctx.response(200, "body!")

    assert (await get(app, "/nope")).status == 404
    ch = await get(app, "/thing", "POST")
    assert ch.status == 405 and ch.header("allow") == "GET, HEAD"
    ch = await get(app, "/thing", "HEAD")
    assert ch.status == 200 and ch.sent == b"" and ch.header("content-length") == "5"


async def test_method_sugar_and_wildcard(app: App) -> None:
    for verb in ("get", "post", "put", "patch", "delete"):

        async def handler(ctx: HTTPContext) -> str:
            return ctx.request.method

        getattr(app, verb)("/v")(handler)

    @app.on_event("*:/any")
    async def anything(ctx: HTTPContext) -> str:
        return f"any {ctx.request.method}"

    for verb in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        assert (await get(app, "/v", verb)).text == verb
    assert (await get(app, "/any", "BREW")).text == "any BREW"


async def test_fallback_handles_not_found(app: App) -> None:
    @app.on_event("GET:/known")
    async def known(ctx: HTTPContext) -> str:
        return "known"

    @app.on_event()
    async def fallback(ctx: HTTPContext, _: Param) -> None:
        ctx.response(404, f"no route for {_}")

    assert (await get(app, "/known")).text == "known"
    ch = await get(app, "/some/where")
    assert (ch.status, ch.text) == (404, "no route for /some/where")


async def test_remove_route(app: App) -> None:
    @app.get("/gone")
    async def gone(ctx: HTTPContext) -> str:
        return "here"

    assert (await get(app, "/gone")).status == 200
    assert app.remove_on_event_hook(gone)
    assert (await get(app, "/gone")).status == 404


# -- injection -----------------------------------------------------------------------------


async def test_injection_of_ctx_event_params_and_depends(app: App) -> None:
    calls: list[str] = []

    async def current_user(ctx: HTTPContext) -> str:
        calls.append("dep")
        return ctx.request.headers.get("x-user", "anon")

    @app.on_event("GET:/who/{id:int}")
    async def who(
        ctx: HTTPContext,
        event: Event,  # type: ignore[type-arg]
        id: Param,
        user: str = Depends(current_user),
        again: str = Depends(current_user),
    ) -> dict[str, Any]:
        return {"id": id, "user": user, "again": again, "event": event.route.path, "ctx": ctx is event.ctx}

    ch = await get(app, "/who/7", headers=[("X-User", "ann")])
    assert json.loads(ch.sent) == {"id": 7, "user": "ann", "again": "ann", "event": "GET:/who/{id:int}", "ctx": True}
    assert calls == ["dep"]  # cached per context, as tiny-listener does


async def test_future_annotations_module_is_injected(app: App) -> None:
    from apps import future_handlers

    future_handlers.register(app)
    assert (await get(app, "/future/zed")).text == "zed Event HTTPContext"


def test_unresolvable_annotation_fails_at_registration(app: App) -> None:
    async def handler(ctx: NotDefinedAnywhere) -> None:  # type: ignore[name-defined]  # noqa: F821
        pass

    with pytest.raises(RouteDefinitionError, match="cannot resolve the annotations"):
        app.on_event("GET:/x")(handler)


def test_unknown_param_or_uninjectable_arg_fails_at_registration(app: App) -> None:
    async def wrong_param(ctx: HTTPContext, nam: Param) -> None:
        pass

    async def mystery(ctx: HTTPContext, thing: int) -> None:
        pass

    def not_async(event: Event) -> None:  # type: ignore[type-arg]
        pass

    with pytest.raises(RouteDefinitionError, match="'nam'"):
        app.on_event("GET:/u/{name}")(wrong_param)
    with pytest.raises(RouteDefinitionError, match="'thing'"):
        app.on_event("GET:/m")(mystery)
    # Route handlers may be plain `def` (tests/test_sync_handlers.py); hooks may not.
    with pytest.raises(RouteDefinitionError, match="async def"):
        app.before_event(not_async)


def test_duplicate_event_fails(app: App) -> None:
    async def one(ctx: HTTPContext) -> None:
        pass

    app.on_event("GET:/d")(one)
    with pytest.raises(RouteDefinitionError):
        app.on_event("GET:/d")(one)


# -- replies ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "status", "ctype", "body"),
    [
        ("hi", 200, "text/plain; charset=utf-8", b"hi"),
        (b"\x00\x01", 200, "application/octet-stream", b"\x00\x01"),
        ({"a": 1}, 200, "application/json", b'{"a":1}'),
        ([1, "é"], 200, "application/json", '[1,"é"]'.encode()),
        (Response("made", 201), 201, "text/plain; charset=utf-8", b"made"),
        (("created", 201), 201, "text/plain; charset=utf-8", b"created"),
        (({"x": 1}, 202, {"X-Extra": "yes"}), 202, "application/json", b'{"x":1}'),
    ],
)
async def test_return_values(app: App, value: Any, status: int, ctype: str, body: bytes) -> None:
    @app.get("/r")
    async def r(ctx: HTTPContext) -> Any:
        return value

    ch = await get(app, "/r")
    assert (ch.status, ch.header("content-type"), bytes(ch.sent)) == (status, ctype, body)
    assert ch.header("content-length") == str(len(body))
    if isinstance(value, tuple) and len(value) == 3:
        assert ch.header("x-extra") == "yes"


async def test_context_helpers(app: App) -> None:
    @app.get("/text")
    async def text(ctx: HTTPContext) -> None:
        ctx.text("plain", 201)

    @app.get("/html")
    async def html(ctx: HTTPContext) -> None:
        ctx.html("<b>x</b>")

    @app.get("/json")
    async def as_json(ctx: HTTPContext) -> None:
        ctx.json({"ok": True}, 202, {"X-A": "1"})

    @app.get("/redirect")
    async def redirect(ctx: HTTPContext) -> None:
        ctx.redirect("/text")

    @app.get("/typed")
    async def typed(ctx: HTTPContext) -> None:
        ctx.response(200, "<p>", content_type="text/html")

    ch = await get(app, "/text")
    assert (ch.status, ch.text, ch.header("content-type")) == (201, "plain", "text/plain; charset=utf-8")
    assert (await get(app, "/html")).header("content-type") == "text/html; charset=utf-8"
    ch = await get(app, "/json")
    assert (ch.status, json.loads(ch.sent), ch.header("x-a")) == (202, {"ok": True}, "1")
    ch = await get(app, "/redirect")
    assert (ch.status, ch.header("location")) == (307, "/text")
    assert (await get(app, "/typed")).header("content-type") == "text/html; charset=utf-8"


async def test_throw_helpers_and_http_error(app: App) -> None:
    @app.get("/t404")
    async def t404(ctx: HTTPContext) -> None:
        ctx.throw_404()

    @app.get("/t500")
    async def t500(ctx: HTTPContext) -> None:
        ctx.throw_500()

    @app.get("/t403")
    async def t403(ctx: HTTPContext) -> None:
        ctx.throw(403, "go away")

    @app.get("/raise")
    async def raising(ctx: HTTPContext) -> None:
        raise HTTPError(429, headers={"Retry-After": "3"})

    assert ((await get(app, "/t404")).status, (await get(app, "/t404")).text) == (404, "Not Found")
    assert (await get(app, "/t500")).status == 500
    ch = await get(app, "/t403")
    assert (ch.status, ch.text) == (403, "go away")
    ch = await get(app, "/raise")
    assert (ch.status, ch.text, ch.header("retry-after")) == (429, "Too Many Requests", "3")


async def test_unhandled_exception_gives_500_logs_traceback_and_runs_on_error(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    @app.on_error(ValueError)
    async def on_value_error(event: Event) -> None:  # type: ignore[type-arg]
        seen.append(repr(event.error))

    @app.get("/bad")
    async def bad(ctx: HTTPContext) -> None:
        raise ValueError("secret detail")

    with caplog.at_level(logging.ERROR, logger="hump_listener.error"):
        ch = await get(app, "/bad")
    assert ch.status == 500 and ch.text == "Internal Server Error"
    assert "secret" not in ch.text
    assert seen == ["ValueError('secret detail')"]
    record = next(r for r in caplog.records if r.name == "hump_listener.error")
    assert record.exc_info is not None and "secret detail" in caplog.text
    assert "bad" in record.getMessage()


async def test_on_error_hook_may_reply(app: App) -> None:
    @app.on_error(KeyError)
    async def on_key_error(event: Event) -> None:  # type: ignore[type-arg]
        event.ctx.response(400, f"missing {event.error}")

    @app.get("/k")
    async def k(ctx: HTTPContext) -> None:
        raise KeyError("name")

    ch = await get(app, "/k")
    assert (ch.status, ch.text) == (400, "missing 'name'")


async def test_returning_none_without_reply_is_a_logged_500(app: App, caplog: pytest.LogCaptureFixture) -> None:
    @app.get("/silent")
    async def silent_handler(ctx: HTTPContext) -> None:
        pass

    with caplog.at_level(logging.ERROR, logger="hump_listener.error"):
        assert (await get(app, "/silent")).status == 500
    assert "silent_handler" in caplog.text and "returned None" in caplog.text


async def test_second_reply_raises_clear_error_and_first_stands(app: App) -> None:
    errors: list[str] = []

    @app.get("/twice")
    async def twice(ctx: HTTPContext) -> None:
        ctx.response(200, "first")
        try:
            ctx.response(200, "second")
        except ResponseAlreadySent as e:
            errors.append(str(e))

    ch = await get(app, "/twice")
    assert (ch.status, ch.text) == (200, "first")
    assert errors and "already" in errors[0]


async def test_second_reply_uncaught_is_500_not_a_corrupt_connection(app: App) -> None:
    @app.get("/twice")
    async def twice(ctx: HTTPContext) -> None:
        ctx.response(200, "first")
        ctx.response(200, "second")

    ch = await get(app, "/twice")
    assert ch.status == 500  # exactly one response was written (MemoryChannel asserts it)


def test_statuses() -> None:
    assert statuses.IM_A_TEAPOT == 418
    assert statuses.NOT_FOUND == 404
    assert statuses.reason(418) == "I'm a Teapot"
    assert statuses.reason(299) == "Success"  # the class phrase, as on the status line


# -- request model and body --------------------------------------------------------------------


async def test_request_model(app: App) -> None:
    @app.post("/req%20x")  # templates are written percent-encoded, matched decoded
    async def req(ctx: HTTPContext) -> dict[str, Any]:
        r = ctx.request
        return {
            "method": r.method, "path": r.path, "raw": r.raw_path.decode(), "qs": r.query_string.decode(),
            "q": r.query.get("q"), "ql": r.query.getlist("q"), "ua": r.headers["USER-AGENT"],
            "accepts": r.headers.getlist("accept"), "cookies": r.cookies, "v": r.http_version,
            "client": list(r.client or ()), "scheme": r.scheme,
        }

    ch = await get(
        app, "/req%20x?q=1&q=2&e=", "POST",
        headers=[("User-Agent", "t"), ("Accept", "a"), ("Accept", "b"), ("Cookie", 'a=1; bad; b="2"')],
    )
    assert json.loads(ch.sent) == {
        "method": "POST", "path": "/req x", "raw": "/req%20x", "qs": "q=1&q=2&e=", "q": "1", "ql": ["1", "2"],
        "ua": "t", "accepts": ["a", "b"], "cookies": {"a": "1", "b": "2"}, "v": "1.1",
        "client": ["127.0.0.1", 50000], "scheme": "http",
    }


async def test_body_helpers(app: App) -> None:
    @app.post("/body")
    async def body(ctx: HTTPContext) -> dict[str, Any]:
        raw = await ctx.body()
        return {"len": len(raw), "text": await ctx.read_text(), "again": (await ctx.body()) == raw}

    @app.post("/json")
    async def parse_json(ctx: HTTPContext) -> Any:
        return {"got": await ctx.read_json()}

    @app.post("/form")
    async def form(ctx: HTTPContext) -> Any:
        data = await ctx.form()
        return {"a": data.getlist("a"), "b": data.get("b")}

    @app.post("/stream")
    async def stream(ctx: HTTPContext) -> Any:
        return [len(chunk) async for chunk in ctx.stream()]

    ch = await get(app, "/body", "POST", body=[b"h\xc3", b"\xa9llo"])
    assert json.loads(ch.sent) == {"len": 6, "text": "héllo", "again": True}
    assert json.loads((await get(app, "/json", "POST", body=b'{"x": [1]}')).sent) == {"got": {"x": [1]}}
    ch = await get(app, "/json", "POST", body=b"{nope")
    assert ch.status == 400 and "Invalid JSON" in ch.text
    ch = await get(
        app, "/form", "POST", body=b"a=1&a=%C3%A9&b=x+y",
        headers=[("Content-Type", "application/x-www-form-urlencoded")],
    )
    assert json.loads(ch.sent) == {"a": ["1", "é"], "b": "x y"}
    assert json.loads((await get(app, "/stream", "POST", body=[b"ab", b"cde"])).sent) == [2, 3]


async def test_form_field_limit_is_413(app: App) -> None:
    @app.post("/form")
    async def form(ctx: HTTPContext) -> Any:
        return len(await ctx.form(max_fields=3))

    ch = await get(app, "/form", "POST", body=b"a=1&b=2&c=3&d=4")
    assert ch.status == 413


async def test_max_body_size_app_and_route(app: App) -> None:
    small = App(access_log=False, max_body_size=4)

    @small.post("/up")
    async def up(ctx: HTTPContext) -> str:
        return str(len(await ctx.body()))

    @small.post("/big", max_body_size=10)
    async def big(ctx: HTTPContext) -> str:
        return str(len(await ctx.body()))

    declared = await call(small, "POST", "/up", body=b"12345")
    assert declared.status == 413 and declared.reads == 0  # refused before reading
    streamed = await call(small, "POST", "/up", body=[b"123", b"45"], headers=[("Content-Length", "x")])
    assert streamed.status == 413
    assert (await call(small, "POST", "/up", body=b"1234")).text == "4"
    assert (await call(small, "POST", "/big", body=b"123456789")).text == "9"


# -- middleware and hooks -----------------------------------------------------------------------


async def test_middleware_order_short_circuit_and_response_change(app: App) -> None:
    order: list[str] = []

    @app.middleware
    async def outer(ctx: HTTPContext, call_next: Any) -> Any:
        order.append("outer>")
        response = await call_next()
        order.append("<outer")
        response.headers["X-Outer"] = "1"
        return response

    async def auth(ctx: HTTPContext, call_next: Any) -> Any:
        order.append("auth")
        if ctx.request.headers.get("authorization") != "yes":
            ctx.response(401, "who are you?")
            return None
        return await call_next()

    async def deny(ctx: HTTPContext, call_next: Any) -> Any:
        raise HTTPError(403)

    async def log(ctx: HTTPContext, call_next: Any) -> Any:
        order.append("log")
        response = await call_next()
        response.status = 203
        return response

    @app.get("/private", middleware=[auth, log])
    async def private(ctx: HTTPContext) -> str:
        order.append("handler")
        return "secret"

    @app.get("/denied", middleware=[deny])
    async def denied(ctx: HTTPContext) -> str:
        return "never"

    ch = await get(app, "/private")
    assert (ch.status, ch.text, ch.header("x-outer")) == (401, "who are you?", "1")
    assert order == ["outer>", "auth", "<outer"]
    order.clear()
    ch = await get(app, "/private", headers=[("Authorization", "yes")])
    assert (ch.status, ch.text) == (203, "secret")
    assert order == ["outer>", "auth", "log", "handler", "<outer"]
    ch = await get(app, "/denied")
    assert (ch.status, ch.header("x-outer")) == (403, "1")
    ch = await get(app, "/missing")
    assert (ch.status, ch.header("x-outer")) == (404, "1")  # global middleware sees 404s


async def test_before_and_after_event_hooks(app: App) -> None:
    seen: list[str] = []

    @app.before_event
    async def before(event: Event) -> None:  # type: ignore[type-arg]
        seen.append(f"before {event.route.path}")

    @app.after_event
    async def after(ctx: HTTPContext) -> None:
        seen.append(f"after {ctx.reply.status if ctx.reply else None}")

    @app.get("/h")
    async def h(ctx: HTTPContext) -> str:
        seen.append("handler")
        return "x"

    assert (await get(app, "/h")).status == 200
    assert seen == ["before GET:/h", "handler", "after 200"]


# -- logging ---------------------------------------------------------------------------------


async def test_access_log_line_and_extra(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    app = App(access_log=True)
    clock = [100.0]  # the request path's clock, moved by the handler: duration is exact
    monkeypatch.setattr("hump_listener.dispatch.perf_counter", lambda: clock[0])
    monkeypatch.setattr("hump_listener.logs.perf_counter", lambda: clock[0])

    @app.get("/user/{name}")
    async def user(ctx: HTTPContext, name: Param) -> str:
        clock[0] += 0.25  # the handler "takes" 250 ms
        return name

    with caplog.at_level(logging.INFO, logger="hump_listener.access"):
        await call(app, "GET", "/user/bob?x=1")
    record = next(r for r in caplog.records if r.name == "hump_listener.access")
    assert record.getMessage() == '127.0.0.1:50000 - "GET /user/bob?x=1 HTTP/1.1" 200 OK'
    assert (record.method, record.path, record.status) == ("GET", "/user/bob?x=1", 200)  # type: ignore[attr-defined]
    assert record.duration == 0.25  # type: ignore[attr-defined]  # from arrival to the reply sent


async def test_access_log_off_by_env(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("HUMP_ACCESS_LOG", "0")
    app = App()
    assert app.config.access_log is False

    @app.get("/")
    async def root(ctx: HTTPContext) -> str:
        return "x"

    with caplog.at_level(logging.INFO, logger="hump_listener.access"):
        await call(app, "GET", "/")
    assert not [r for r in caplog.records if r.name == "hump_listener.access"]


def test_host_and_port_from_arguments_env_and_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HUMP_HOST", raising=False)
    monkeypatch.delenv("HUMP_PORT", raising=False)
    assert (App().config.host, App().config.port) == ("127.0.0.1", 8000)
    monkeypatch.setenv("HUMP_HOST", "0.0.0.0")
    monkeypatch.setenv("HUMP_PORT", "9001")
    assert (App().config.host, App().config.port) == ("0.0.0.0", 9001)
    assert (App("::1", 1234).config.host, App("::1", 1234).config.port) == ("::1", 1234)


# -- main(): the built-in server, in process (real socket on 127.0.0.1, port 0) --------------


async def test_main_serves_until_a_signal_then_shuts_down_once() -> None:
    import asyncio
    import gc
    import signal

    log: list[str] = []
    app = App("127.0.0.1", 0, access_log=False)

    @app.get("/")
    async def root() -> str:
        return "up"

    @app.shutdown
    async def down() -> None:
        log.append("shutdown")

    main = asyncio.ensure_future(app.main())
    try:
        for _ in range(10_000):  # bounded: binding takes a few loop turns
            if app.server is not None or main.done():
                break
            await asyncio.sleep(0)
        assert app.server is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", app.server.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        reply = await reader.read()
        writer.close()
        assert reply.startswith(b"HTTP/1.1 200 OK") and reply.endswith(b"up")
        assert app.url == f"http://127.0.0.1:{app.server.port}"
        await app.graceful_shutdown(signal.SIGTERM)
        await asyncio.wait_for(main, 10)
    finally:
        main.cancel()
        gc.unfreeze()  # listen() froze the test process's objects
    assert log == ["shutdown"]
    assert app.lifecycle.exit_status == 0


async def test_main_after_a_failed_startup_exits_1_without_listening(caplog: pytest.LogCaptureFixture) -> None:
    app = App("127.0.0.1", 0, access_log=False)

    @app.startup
    async def boom() -> None:
        raise ValueError("no database")

    with caplog.at_level(logging.ERROR, logger="hump_listener.error"):
        await app.main()
    assert (app.lifecycle.exit_status, app.server) == (1, None)
    assert "Application startup failed" in caplog.text


async def test_main_when_listen_fails_logs_one_line_and_still_shuts_down(caplog: pytest.LogCaptureFixture) -> None:
    log: list[str] = []
    app = App("127.0.0.1", 0, access_log=False)
    app.configure(ssl_keyfile="key.pem")  # a key without a certificate: a ConfigError at listen()

    @app.shutdown
    async def down() -> None:
        log.append("shutdown")

    with caplog.at_level(logging.ERROR, logger="hump_listener.error"):
        await app.main()
    assert (app.lifecycle.exit_status, app.server, log) == (1, None, ["shutdown"])
    [record] = [r for r in caplog.records if r.name == "hump_listener.error" and r.levelno >= logging.ERROR]
    assert "an SSL key file was given without a certificate file" in record.getMessage()
    assert record.exc_info is None  # one line, no traceback
