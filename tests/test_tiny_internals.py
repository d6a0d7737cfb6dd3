"""tiny_internals.py: every private tiny-listener name we use still means what it did in
the version it was checked against, and no other module reaches for one."""

from __future__ import annotations

import ast
import gc
import re
import weakref
from pathlib import Path

import pytest
import tiny_listener
from framework_helpers import call
from tiny_listener import Depends

import hump_listener
from hump_listener import App, HTTPContext, endpoints, tiny_internals

PKG = Path(hump_listener.__file__).parent

#: Private tiny-listener names: a mangled ``_Class__attr`` of its classes, or one of
#: Listener's lists.
PRIVATE = re.compile(
    r"_(Hook|Listener|Event|Context|Route|Depends)__\w+|_startup|_shutdown|"
    r"_middleware_before_event|_middleware_after_event|_error_handlers|_instances"
)
#: Known uses outside tiny_internals, each with its owner. The test fails when one
#: disappears too, so this list cannot go stale.
KNOWN: set[tuple[str, str]] = set()


def private_uses(path: Path) -> set[str]:
    """Attributes (``x._startup``) and getattr-style strings (``"_startup"``) in ``path``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and PRIVATE.fullmatch(node.attr):
            found.add(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and PRIVATE.fullmatch(node.value):
            found.add(node.value)
    return found


def test_the_private_names_still_hold() -> None:
    problems = tiny_internals.verify()
    assert problems == [], (
        f"tiny-listener {tiny_listener.__version__} changed what hump_listener relies on "
        f"(checked against {tiny_internals.CHECKED_VERSION}); update hump_listener/tiny_internals.py:\n"
        + "\n".join(problems)
    )


def test_verify_notices_a_change(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tiny_internals, "_HOOK_FN", "_Hook__gone")
    monkeypatch.setattr(tiny_listener, "__version__", "9.9.9")
    problems = tiny_internals.verify()
    monkeypatch.undo()
    assert any("9.9.9" in p for p in problems)
    assert any("_Hook__gone" in p for p in problems)


def test_no_other_module_uses_private_tiny_listener_names() -> None:
    found = {
        (str(path.relative_to(PKG)), name)
        for path in sorted(PKG.rglob("*.py"))
        if path.name != "tiny_internals.py"
        for name in private_uses(path)
    }
    assert found == KNOWN, "use hump_listener.tiny_internals for tiny-listener's private names"
    assert private_uses(PKG / "tiny_internals.py")  # the scan does see them


def test_the_lists_are_tiny_listeners_own() -> None:
    app = App()

    @app.startup
    async def up() -> None: ...

    @app.shutdown
    async def down() -> None: ...

    assert tiny_internals.startup_callbacks(app) == [up]
    assert tiny_internals.shutdown_callbacks(app) == [down]

    @app.before_event
    async def before() -> None: ...

    assert [hook.fn for hook in tiny_internals.before_event_hooks(app)] == [before]
    assert tiny_internals.hook_fn(Depends(up)) is up


async def test_dependency_plans_live_and_die_with_their_routes() -> None:
    assert not hasattr(endpoints, "_plans")  # no module-level registry

    def make() -> tuple[App, weakref.ref[object]]:
        app = App(access_log=False)

        async def dep() -> str:
            return "dep"

        @app.get("/d")
        async def d(ctx: HTTPContext, value: str = Depends(dep)) -> str:
            return value

        return app, weakref.ref(dep)

    app, dep_ref = make()
    assert (await call(app, "GET", "/d")).text == "dep"
    del app
    gc.collect()
    assert dep_ref() is None, "a dependency outlived the app that used it"
