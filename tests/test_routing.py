"""routing.py: templates, the route tree, 404/405/HEAD, targets and percent-decoding."""

from __future__ import annotations

import uuid

import pytest

from hump_listener.errors import HTTPError, RouteConflict, RouteDefinitionError
from hump_listener.routing import Router, Template, decode_path, parse_event_name, split_target


def make(*routes: tuple[str, str]) -> Router[str]:
    router: Router[str] = Router()
    for method, path in routes:
        router.add(method, path, f"{method} {path}")
    return router


def test_static_route_wins_whatever_the_registration_order() -> None:
    for order in (
        [("GET", "/user/{name}"), ("GET", "/user/me")],
        [("GET", "/user/me"), ("GET", "/user/{name}")],
    ):
        router = make(*order)
        assert router.match("GET", "/user/me") == ("GET /user/me", {})
        assert router.match("GET", "/user/bob") == ("GET /user/{name}", {"name": "bob"})


@pytest.mark.parametrize(
    ("template", "path", "params"),
    [
        ("/u/{id:int}", "/u/42", {"id": 42}),
        ("/u/<int:id>", "/u/42", {"id": 42}),
        ("/u/<name>", "/u/bob", {"name": "bob"}),
        ("/f/{x:float}", "/f/1.5", {"x": 1.5}),
        ("/f/<float:x>", "/f/3", {"x": 3.0}),
        ("/s/{s:str}", "/s/abc", {"s": "abc"}),
        ("/p/{rest:path}", "/p/a/b/c", {"rest": "a/b/c"}),
        ("/p/<path:rest>", "/p/x", {"rest": "x"}),
        ("/img/{w:int}x{h:int}", "/img/3x4", {"w": 3, "h": 4}),
        (
            "/id/{u:uuid}",
            "/id/12345678-1234-5678-1234-567812345678",
            {"u": uuid.UUID("12345678-1234-5678-1234-567812345678")},
        ),
    ],
)
def test_convertors(template: str, path: str, params: dict[str, object]) -> None:
    router = make(("GET", template))
    assert router.match("GET", path)[1] == params


@pytest.mark.parametrize(
    ("template", "path"),
    [
        ("/f/{x:float}", "/f/1x5"),  # tiny-listener's unescaped dot matches this
        ("/u/{id:int}", "/u/abc"),
        ("/u/{id:int}", "/u/-1"),
        ("/u/{name}", "/u/"),
        ("/u/{name}", "/u/a/b"),
        ("/id/{u:uuid}", "/id/not-a-uuid"),
        ("/p/{rest:path}", "/p"),
    ],
)
def test_convertors_reject(template: str, path: str) -> None:
    with pytest.raises(HTTPError) as info:
        make(("GET", template)).match("GET", path)
    assert info.value.status == 404


def test_404_vs_405_with_allow() -> None:
    router = make(("GET", "/a"), ("POST", "/a"), ("PUT", "/item/{id:int}"))
    with pytest.raises(HTTPError) as info:
        router.match("DELETE", "/a")
    assert info.value.status == 405
    assert info.value.headers["Allow"] == "GET, HEAD, POST"
    with pytest.raises(HTTPError) as info:
        router.match("GET", "/item/3")
    assert (info.value.status, info.value.headers["Allow"]) == (405, "PUT")
    with pytest.raises(HTTPError) as info:
        router.match("GET", "/nope")
    assert info.value.status == 404 and "Allow" not in info.value.headers


def test_head_falls_back_to_get_and_explicit_head_wins() -> None:
    router = make(("GET", "/a"), ("GET", "/b"), ("HEAD", "/b"))
    assert router.match("HEAD", "/a")[0] == "GET /a"
    assert router.match("HEAD", "/b")[0] == "HEAD /b"


def test_wildcard_method() -> None:
    router = make(("*", "/any"), ("GET", "/x/{id}"), ("*", "/x/{id}"))
    for method in ("GET", "POST", "PATCH", "BREW"):
        assert router.match(method, "/any")[0] == "* /any"
    assert router.match("GET", "/x/1")[0] == "GET /x/{id}"
    assert router.match("DELETE", "/x/1")[0] == "* /x/{id}"


def test_static_path_with_other_method_falls_through_to_parametrised() -> None:
    router = make(("GET", "/user/me"), ("POST", "/user/{name}"))
    assert router.match("POST", "/user/me") == ("POST /user/{name}", {"name": "me"})


def test_backtracking_across_levels() -> None:
    router = make(("GET", "/a/{x}/c"), ("GET", "/a/b/d"))
    assert router.match("GET", "/a/b/c") == ("GET /a/{x}/c", {"x": "b"})
    assert router.match("GET", "/a/b/d") == ("GET /a/b/d", {})


def test_root_and_trailing_slash_are_distinct() -> None:
    router = make(("GET", "/"), ("GET", "/a"))
    assert router.match("GET", "/")[0] == "GET /"
    with pytest.raises(HTTPError):
        router.match("GET", "/a/")


def test_duplicate_route_is_rejected() -> None:
    router = make(("GET", "/a/{x}"))
    with pytest.raises(RouteConflict):
        router.add("GET", "/a/{x}", "again")
    router.add("POST", "/a/{x}", "other method is fine")


@pytest.mark.parametrize(
    "template",
    ["/u/{id:nope}", "/u/{1bad}", "/u/{a}/{a}", "/u/{open", "/u/close}", "no-slash", "/u/<bad:x>"],
)
def test_bad_templates_fail_at_definition(template: str) -> None:
    with pytest.raises(RouteDefinitionError):
        Template.compile(template)


def test_many_routes_do_not_change_the_answer() -> None:
    router: Router[int] = Router()
    for i in range(1000):
        router.add("GET", f"/r{i}/{{name}}", i)
    assert router.match("GET", "/r999/bob") == (999, {"name": "bob"})
    assert router.match("GET", "/r0/x") == (0, {"name": "x"})


def test_parse_event_name() -> None:
    assert parse_event_name("GET:/user/{name}") == ("GET", "/user/{name}")
    assert parse_event_name("get:/x") == ("GET", "/x")
    assert parse_event_name("*:/x") == ("*", "/x")
    assert parse_event_name("/x/{id:int}") == ("*", "/x/{id:int}")
    assert parse_event_name("startup_done") is None


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (b"/a/b?x=1&y=2", (b"/a/b", b"x=1&y=2")),
        (b"/a", (b"/a", b"")),
        (b"http://example.com/a/b?q=1", (b"/a/b", b"q=1")),
        (b"http://example.com", (b"/", b"")),
        (b"http://example.com?q=1", (b"/", b"q=1")),
        (b"*", (b"*", b"")),
    ],
)
def test_split_target(target: bytes, expected: tuple[bytes, bytes]) -> None:
    assert split_target(target) == expected


def test_split_target_rejects_garbage() -> None:
    with pytest.raises(HTTPError) as info:
        split_target(b"no-slash")
    assert info.value.status == 400


def test_decode_path() -> None:
    assert decode_path(b"/a%20b/%C3%A9") == "/a b/é"
    assert decode_path(b"/plain") == "/plain"


@pytest.mark.parametrize("raw", [b"/a%", b"/a%2", b"/a%zz", b"/%C3", b"/%00", b"/\xff"])
def test_decode_path_rejects_bad_encoding_with_400(raw: bytes) -> None:
    with pytest.raises(HTTPError) as info:
        decode_path(raw)
    assert info.value.status == 400


# -- one template parser: what follows a path parameter is parsed like the rest -------------


def test_params_after_a_path_param_are_named_and_converted() -> None:
    template = Template.compile("/files/{rest:path}/meta/{x}")
    assert template.param_names == ["rest", "x"]
    assert Template.compile("/f/{rest:path}/v{n:int}").param_names == ["rest", "n"]
    router = make(("GET", "/files/{rest:path}/meta/{x}"), ("GET", "/g/<path:rest>/<int:n>"))
    assert router.match("GET", "/files/a/b/meta/c")[1] == {"rest": "a/b", "x": "c"}
    assert router.match("GET", "/g/a/b/7")[1] == {"rest": "a/b", "n": 7}


@pytest.mark.parametrize(
    "template",
    [
        "/p/{rest:path}/{x:bogus}",  # was a bare KeyError
        "/p/{rest:path}/<bogus:x>",
        "/p/{rest:path}/{rest}",  # duplicate after the path param
        "/p/{x}/{rest:path}/{x}",
        "/p/{rest:path}/{1bad}",  # invalid name after the path param
        "/p/{rest:path}/{open",
        "/p/{rest:path}/:1bad",
    ],
)
def test_bad_tails_fail_at_definition(template: str) -> None:
    with pytest.raises(RouteDefinitionError):
        Template.compile(template)


def test_router_add_accepts_a_compiled_template() -> None:
    template = Template.compile("/u/{id:int}")
    router: Router[str] = Router()
    assert router.add("GET", template, "u") is template
    assert router.match("GET", "/u/3") == ("u", {"id": 3})


@pytest.mark.parametrize(
    ("template", "path", "params"),
    [
        ("/u/{id:int}", "/u/4", {"id": 4}),
        ("/u/:name", "/u/bob", {"name": "bob"}),
        ("/s/{a}x{b:int}", "/s/ux2", {"a": "u", "b": 2}),
        ("/p/{rest:path}", "/p/a/b", {"rest": "a/b"}),
        ("/p/{rest:path}/m/{x}", "/p/a/m/b", {"rest": "a", "x": "b"}),
        ("/static", "/static", {}),
    ],
)
def test_template_match_agrees_with_the_tree(template: str, path: str, params: dict[str, object]) -> None:
    assert Template.compile(template).match(path) == params
    assert make(("GET", template)).match("GET", path)[1] == params


@pytest.mark.parametrize(
    ("template", "path"),
    [("/u/{id:int}", "/u/x"), ("/u/:name", "/u/a/b"), ("/p/{rest:path}", "/p"), ("/static", "/other"), ("/a", "a")],
)
def test_template_match_refuses_what_the_tree_refuses(template: str, path: str) -> None:
    assert Template.compile(template).match(path) is None
    with pytest.raises(HTTPError):
        make(("GET", template)).match("GET", path)


def test_template_literals_are_percent_decoded_once() -> None:
    router = make(("GET", "/a%20b"), ("GET", "/caf%C3%A9/{x}"), ("GET", "/p/{rest:path}/100%25"), ("GET", "/%3Araw"))
    assert router.match("GET", decode_path(b"/a%20b"))[0] == "GET /a%20b"
    assert router.match("GET", "/café/1") == ("GET /caf%C3%A9/{x}", {"x": "1"})
    assert router.match("GET", "/p/x/100%") == ("GET /p/{rest:path}/100%25", {"rest": "x"})
    assert router.match("GET", "/:raw") == ("GET /%3Araw", {})  # %3A: a literal leading ':'
    assert Template.compile("/a%20b").match("/a b") == {}


@pytest.mark.parametrize(
    "template", ["/a b", "/a\tb", "/a\x00", "/a%", "/a%zz", "/a%2Fb", "/%C3", "/%00", "/{rest:path}/ x"]
)
def test_whitespace_and_bad_escapes_in_templates_fail_at_definition(template: str) -> None:
    with pytest.raises(RouteDefinitionError):
        Template.compile(template)


# -- the seed projects' syntax (PyMicroHTTP) ---------------------------------------------------


def test_colon_placeholder_is_a_str_parameter() -> None:
    assert Template.compile("/hello/:name").param_names == ["name"]
    router = make(("GET", "/hello/:name"), ("GET", "/a/:x/b/{y:int}"))
    assert router.match("GET", "/hello/ann") == ("GET /hello/:name", {"name": "ann"})
    assert router.match("GET", "/a/1/b/2")[1] == {"x": "1", "y": 2}
    with pytest.raises(HTTPError):
        router.match("GET", "/hello/:name/x")


def test_colon_placeholder_equals_braces_in_the_tree() -> None:
    router = make(("GET", "/u/:name"))
    with pytest.raises(RouteConflict):
        router.add("GET", "/u/{name}", "again")
    router.add("POST", "/u/<name>", "same node, other method")
    assert router.match("POST", "/u/x") == ("same node, other method", {"name": "x"})


def test_colon_inside_a_segment_is_literal() -> None:
    router = make(("POST", "/v1/things:batch"))
    assert router.match("POST", "/v1/things:batch") == ("POST /v1/things:batch", {})


@pytest.mark.parametrize("template", ["/u/:", "/u/:1x", "/u/:a-b", "/u/:name/:name", "/u/:a/{a}"])
def test_bad_colon_placeholders_fail_at_definition(template: str) -> None:
    with pytest.raises(RouteDefinitionError):
        Template.compile(template)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("GET /hello/:name", ("GET", "/hello/:name")),
        ("GET:/hello/:name", ("GET", "/hello/:name")),
        ("* /ping", ("*", "/ping")),
        ("*:/ping", ("*", "/ping")),
        ("post /x", ("POST", "/x")),
        ("BREW /pot", ("BREW", "/pot")),
        ("WS:/ws/echo", ("WS", "/ws/echo")),
        ("WS /ws/chat/{room}", ("WS", "/ws/chat/{room}")),
        ("/", ("*", "/")),
        ("GET /", ("GET", "/")),
        ("GET /a:b", ("GET", "/a:b")),
    ],
)
def test_parse_event_name_accepts_the_seed_forms(name: str, expected: tuple[str, str]) -> None:
    assert parse_event_name(name) == expected


@pytest.mark.parametrize(
    "name",
    [
        "GET:hello",
        "GET  /x",
        "GET\t/x",
        "GET /x y",
        "POST /a b",
        "GET: /x",
        "GET",  # a known method alone is not a plain event either
        "GET:",
        "DELETE:users",
        "* ping",
        "*/x",
        "GET/x",
        "*",
        "WS:chat",
        "/a b",
        "/a\x00b",
        "brew  /pot",
        "user: /x",
        " GET /x",
        "GET /x ",
    ],
)
def test_route_like_names_that_are_not_valid_fail_loudly(name: str) -> None:
    with pytest.raises(RouteDefinitionError):
        parse_event_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "user_created",
        "user.created",
        "tick",
        "get:user",
        "delete.account",
        "hello world",
        "GETTER",
        "posted",
        "user/{id}",
        "GET.user",
    ],
)
def test_plain_event_names_stay_plain(name: str) -> None:
    assert parse_event_name(name) is None


# -- WebSocket routes ---------------------------------------------------------------------------


def test_ws_routes_and_http_routes_never_answer_each_other() -> None:
    router = make(("GET", "/chat/{room}"), ("WS", "/chat/{room}"), ("*", "/any"), ("WS", "/only-ws"))
    assert router.match("WS", "/chat/x") == ("WS /chat/{room}", {"room": "x"})
    assert router.match("GET", "/chat/x") == ("GET /chat/{room}", {"room": "x"})
    assert router.match("HEAD", "/chat/x") == ("GET /chat/{room}", {"room": "x"})  # HEAD -> GET unchanged
    for method, path in (("WS", "/any"), ("POST", "/only-ws"), ("GET", "/only-ws"), ("WS", "/nowhere")):
        with pytest.raises(HTTPError) as info:
            router.match(method, path)
        assert info.value.status == 404, (method, path)


def test_ws_at_an_http_only_path_is_404_and_allow_never_lists_ws() -> None:
    router = make(
        ("GET", "/a"), ("WS", "/a"), ("POST", "/t/{rest:path}"), ("WS", "/t/{rest:path}"), ("PUT", "/s/{x}")
    )
    with pytest.raises(HTTPError) as info:
        router.match("WS", "/s/1")
    assert info.value.status == 404
    with pytest.raises(HTTPError) as info:
        router.match("DELETE", "/a")
    assert (info.value.status, info.value.headers["Allow"]) == (405, "GET, HEAD")
    with pytest.raises(HTTPError) as info:
        router.match("GET", "/t/x/y")
    assert (info.value.status, info.value.headers["Allow"]) == (405, "POST")
    assert router.match("WS", "/t/x/y") == ("WS /t/{rest:path}", {"rest": "x/y"})


def test_ws_uses_the_same_convertors() -> None:
    router = make(("WS", "/ws/{id:int}"), ("WS", "/ws/u/<uuid:u>"), ("WS", "/ws/n/:name"))
    assert router.match("WS", "/ws/3")[1] == {"id": 3}
    assert router.match("WS", "/ws/n/bob")[1] == {"name": "bob"}
    with pytest.raises(HTTPError) as info:
        router.match("WS", "/ws/abc")
    assert info.value.status == 404


def test_slash_alternative_finds_the_other_spelling_of_a_path() -> None:
    router: Router[str] = Router()
    router.add("GET", "/docs/", "docs")
    router.add("GET", "/user/{name}", "user")
    router.add("GET", "/files/{rest:path}", "files")
    assert router.slash_alternative("GET", "/docs") == "/docs/"
    assert router.slash_alternative("GET", "/user/bob/") == "/user/bob"
    assert router.slash_alternative("HEAD", "/docs") == "/docs/"  # HEAD is served by GET
    assert router.slash_alternative("POST", "/docs") is None  # a 405 there: no redirect
    assert router.slash_alternative("GET", "/") is None
    assert router.slash_alternative("GET", "/files") == "/files/"
    assert router.slash_alternative("GET", "/nothing") is None
