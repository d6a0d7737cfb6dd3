"""The public API is exactly __all__, the two sides stay apart, and tests mirror modules."""

from __future__ import annotations

import ast
from pathlib import Path

import hump_listener

PKG = Path(hump_listener.__file__).parent


def test_all_is_curated_and_importable() -> None:
    assert sorted(hump_listener.__all__) == sorted(set(hump_listener.__all__))
    for name in hump_listener.__all__:
        assert hasattr(hump_listener, name), name
    for name in ("App", "HTTPContext", "HTTPError", "Request", "Response", "statuses"):
        assert name in hump_listener.__all__


#: The public API, exactly: adding or removing a name is a decision, made here too.
PUBLIC_API = [
    "App",
    "Broadcast",
    "ClientDisconnect",
    "Data",
    "Depends",
    "Event",
    "FileResponse",
    "FormData",
    "HTTPContext",
    "HTTPError",
    "Headers",
    "MultiDict",
    "MutableHeaders",
    "Param",
    "Request",
    "Response",
    "ResponseAlreadySent",
    "RouteDefinitionError",
    "ServerConfig",
    "StreamingResponse",
    "UploadFile",
    "WebSocket",
    "WebSocketDisconnect",
    "WebSocketState",
    "__version__",
    "statuses",
]


def test_all_is_exactly_the_pinned_list() -> None:
    assert sorted(PUBLIC_API) == PUBLIC_API
    assert hump_listener.__all__ == PUBLIC_API


def test_one_import_line_serves_an_app() -> None:
    """Issue 19 item 4: the README's names come from one place, tiny-listener's included."""
    import tiny_listener

    from hump_listener import App, Data, Depends, Event, HTTPContext, Param, ServerConfig

    assert (Param, Data, Depends, Event) == (
        tiny_listener.Param, tiny_listener.Data, tiny_listener.Depends, tiny_listener.Event
    )
    assert App.__module__ == "hump_listener.app" and HTTPContext.__module__ == "hump_listener.context"
    assert ServerConfig.__module__ == "hump_listener.config"  # the framework side configures
    assert not hasattr(hump_listener, "BroadcastUnavailable")  # an optional subsystem's error
    from hump_listener.broadcast import BroadcastUnavailable

    assert issubclass(BroadcastUnavailable, ConnectionError)


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                rel = path.relative_to(PKG).parent.parts
                prefix = ["hump_listener", *rel[: len(rel) - (node.level - 1)]]
                base = ".".join([*prefix, base] if base else prefix)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def test_protocol_side_never_imports_the_framework_or_tiny_listener() -> None:
    for path in (PKG / "protocol").glob("*.py"):
        for name in imports_of(path):
            assert not name.startswith("tiny_listener"), (path.name, name)
            if name.startswith("hump_listener") and not name.startswith("hump_listener.protocol"):
                # the two leaves the protocol receives: the seam and the configuration
                assert name.startswith(("hump_listener.seam", "hump_listener.config")), (path.name, name)


# app.py is the composition root; testing.py is the in-process test harness wiring both.
WIRING = {"app.py", "testing.py", "__main__.py", "cli.py", "workers.py"}


def test_framework_side_never_imports_h11_or_the_protocol() -> None:
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG)
        if rel.parts[0] == "protocol" or rel.name in WIRING:
            continue
        for name in imports_of(path):
            assert not name.startswith("h11"), (str(rel), name)
            assert not name.startswith("hump_listener.protocol"), (str(rel), name)


def test_seam_is_stdlib_only() -> None:
    for name in imports_of(PKG / "seam.py"):
        assert name.split(".")[0] in {"__future__", "dataclasses", "typing", "collections", "http"}, name


#: Modules whose mirror file is not named by the rule below (the name came first).
MIRROR_EXCEPTIONS: dict[str, str] = {}


def test_every_module_has_a_mirror_test_file() -> None:
    """``x.py`` ↔ ``tests/test_x.py``, ``protocol/x.py`` ↔ ``test_protocol_x.py``,
    ``middleware/x.py`` ↔ ``test_middleware_x.py`` (package and private modules aside);
    topic files (test_protocol_keepalive.py, ...) come on top."""
    tests = Path(__file__).parent
    missing = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG)
        if path.name.startswith("_"):
            continue
        prefix = "".join(f"{part}_" for part in rel.parts[:-1])
        expected = MIRROR_EXCEPTIONS.get(rel.as_posix(), f"test_{prefix}{path.stem}.py")
        if not (tests / expected).is_file():
            missing.append(f"{rel} -> tests/{expected}")
    assert missing == []
