"""route_templates.py: the one template parser's output, the compiled ``Template`` and its
``ParamSegment``s, convertors as data, and the event-name grammar's error messages.
(Matching through the route tree is test_routing.py's.)"""

from __future__ import annotations

import re
import uuid

import pytest

from hump_listener import route_templates, routing
from hump_listener.errors import RouteDefinitionError
from hump_listener.route_templates import (
    CONVERTORS,
    KNOWN_METHODS,
    WS,
    ParamSegment,
    Template,
    parse_event_name,
    parse_template,
)


def test_routing_re_exports_the_same_objects() -> None:
    for name in ("CONVERTORS", "KNOWN_METHODS", "WS", "Convertor", "Template", "parse_event_name", "parse_template"):
        assert getattr(routing, name) is getattr(route_templates, name), name


def test_parse_template_gives_segments_of_literals_and_params() -> None:
    segments = parse_template("/img/{w:int}x<h>/:name/static/{x:string}")
    assert [[(p if isinstance(p, str) else (p.name, p.convertor)) for p in seg] for seg in segments] == [
        ["img"],
        [("w", "int"), "x", ("h", "str")],
        [("name", "str")],
        ["static"],
        [("x", "str")],  # "string" is an alias: one canonical name
    ]


def test_literal_text_is_percent_decoded_once_at_parse_time() -> None:
    assert parse_template("/caf%C3%A9/a%20b") == [["café"], ["a b"]]


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("x", "must start with '/'"),
        ("/a b", "contains whitespace or a control character"),
        ("/{1x}", "invalid parameter name '1x'"),
        ("/{x:bogus}", "unknown convertor 'bogus'"),
        ("/{x}/{x}", "parameter 'x' appears twice"),
        ("/{x", "unbalanced braces"),
        ("/:", "invalid placeholder ':'"),
        ("/%zz", "bad percent-escape"),
        ("/a%2Fb", "%2F cannot match"),
        ("/{rest:path}/{x:bogus}", "unknown convertor 'bogus'"),  # checked after a path param too
    ],
)
def test_every_check_is_a_route_definition_error_naming_the_route(template: str, message: str) -> None:
    with pytest.raises(RouteDefinitionError, match=message) as info:
        parse_template(template)
    assert repr(template) in str(info.value)


def test_convertors_are_data() -> None:
    assert set(CONVERTORS) == {"str", "string", "int", "float", "path", "uuid"}
    assert CONVERTORS["int"].to_python("42") == 42
    text = "12345678-1234-5678-1234-567812345678"
    assert CONVERTORS["uuid"].to_python(text) == uuid.UUID(text)
    assert CONVERTORS["float"].regex == r"[0-9]+(?:\.[0-9]+)?"  # the dot escaped: "1x5" is no float
    for name, convertor in CONVERTORS.items():
        assert isinstance(convertor.regex, str), name


def test_compile_sorts_segments_into_literals_params_and_a_tail() -> None:
    template = Template.compile("/u/{id:int}/files/{rest:path}/v{n:int}")
    assert template.source == "/u/{id:int}/files/{rest:path}/v{n:int}"
    assert template.segments[0] == "u" and template.segments[2] == "files"
    assert isinstance(template.segments[1], ParamSegment)
    assert template.tail is not None
    assert template.param_names == ["id", "rest", "n"]
    assert set(template.tail_convertors) == {"rest", "n"}
    assert not template.is_static
    assert Template.compile("/a/b").is_static
    assert Template.compile("/a/b").param_names == []


def test_param_segments_share_a_canonical_key_and_match_one_segment() -> None:
    segments = [Template.compile(t).segments[0] for t in ("/{x}", "/<x>", "/:x", "/{x:string}")]
    assert {s.key for s in segments if isinstance(s, ParamSegment)} == {"{x:str}"}
    assert len(segments) == 4 and all(isinstance(s, ParamSegment) for s in segments)
    lone = Template.compile("/{x}").segments[0]
    assert isinstance(lone, ParamSegment)
    assert (lone.name, lone.regex) == ("x", None)  # a lone str parameter needs no regex
    assert lone.match("bob") == {"x": "bob"}
    assert lone.match("") is None
    pair = Template.compile("/{w:int}x{h:int}").segments[0]
    assert isinstance(pair, ParamSegment)
    assert pair.match("3x4") == {"w": 3, "h": 4}
    assert pair.match("3x") is None


def test_a_lone_parameter_is_converted_whole_as_its_regex_would() -> None:
    """The lone-parameter fast paths (``int`` without a regex, others without groups)
    accept and convert exactly what the convertor's regex does."""
    digits = Template.compile("/{id:int}").segments[0]
    assert isinstance(digits, ParamSegment) and digits.digits
    for text in ("42", "007", "", "-1", "4 2", "٣", "²", "1.5", "x"):  # Arabic-Indic 3, superscript 2
        expected = {"id": int(text)} if re.fullmatch(CONVERTORS["int"].regex, text) else None
        assert digits.match(text) == expected, text
    number = Template.compile("/<float:f>").segments[0]
    assert isinstance(number, ParamSegment) and number.whole is float
    assert number.match("1.5") == {"f": 1.5}
    assert number.match("1x5") is None and number.match("") is None
    ident = Template.compile("/{u:uuid}").segments[0]
    assert isinstance(ident, ParamSegment)
    value = "12345678-1234-5678-1234-567812345678"
    assert ident.match(value) == {"u": uuid.UUID(value)} and ident.match(value[:-1]) is None


def test_template_match_alone() -> None:
    template = Template.compile("/f/{rest:path}/meta/{x}")
    assert template.match("/f/a/b/meta/y") == {"rest": "a/b", "x": "y"}
    assert template.match("/f/a/b") is None
    assert template.match("f/a/meta/y") is None  # not a path
    assert Template.compile("/a/{b}").match("/a/b/c") is None  # no tail: segment counts must agree


def test_ws_is_a_known_method() -> None:
    assert WS == "WS"
    assert WS in KNOWN_METHODS and "PATCH" in KNOWN_METHODS


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        (" GET:/x", "remove the leading or trailing whitespace"),
        ("GET", "a method needs a path: 'GET:/path' or 'GET /path'"),
        ("GET  /x", "put exactly one ':' or one space between 'GET' and the path"),
        ("GET:x", "the path must start with '/' (got 'x')"),
        ("GET /a b", "the path '/a b' must not contain whitespace or control characters"),
    ],
)
def test_a_route_like_name_that_is_not_valid_says_what_to_fix(name: str, problem: str) -> None:
    with pytest.raises(RouteDefinitionError) as info:
        parse_event_name(name)
    assert str(info.value) == f"event name {name!r} looks like an HTTP route but is not valid: {problem}"


def test_check_method_knows_http_methods_and_takes_declared_custom_ones() -> None:
    from hump_listener.route_templates import check_method

    for method in ("GET", "POST", "PATCH", "*", "WS"):
        check_method(method, f"{method}:/x")
    with pytest.raises(RouteDefinitionError, match=r"'GTE' \(did you mean GET\?\)"):
        check_method("GTE", "GTE:/x")
    with pytest.raises(RouteDefinitionError, match="custom_method=True"):
        check_method("PROPFIND", "PROPFIND:/dav")
    check_method("PROPFIND", "PROPFIND:/dav", custom=True)
