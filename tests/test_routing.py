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
