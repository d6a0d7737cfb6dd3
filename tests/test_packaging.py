"""What ``pip install`` gives a new user (issue 22 items 1 and 4): the runtime dependencies
serve the demo's WebSockets, and every "pip install ..." the package prints names a
command that works from a checkout as well as from the index."""

from __future__ import annotations

import ast
import re
from importlib import metadata
from pathlib import Path

import hump_listener

PKG = Path(hump_listener.__file__).parent
_META = metadata.metadata("hump_listener")
REQUIRES = _META.get_all("Requires-Dist") or []


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement)[0].lower()


def test_websockets_is_a_runtime_dependency() -> None:
    """Item 1: `pip install -e .` then `tiny-listener http_web:app` serves the demo, whose
    WS:/ws/echo route needs websockets (the wheel test in test_release.py runs exactly that)."""
    runtime = {_name(r) for r in REQUIRES if "extra ==" not in r}
    assert {"tiny-listener", "h11", "websockets"} <= runtime


def install_hints() -> list[tuple[str, str]]:
    """``(where, text)`` for every string literal of the package that says ``pip install``."""
    found = []
    for path in sorted(PKG.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
                and "pip install" in node.value
            ):
                found.append((f"{path.relative_to(PKG)}:{node.lineno}", node.value))
    return found


def check_hint(text: str) -> None:
    commands = re.findall(r"pip install (\S+)", text)
    assert commands, text
    packages = {_name(r) for r in REQUIRES}
    for package in commands:
        package = package.strip("'\",;:)")
        assert "[" not in package, f"{text!r}: an extra fails where hump_listener is not on the index"
        assert package.lower() in packages, f"{text!r}: {package} is none of our dependencies or extras"


def test_every_install_hint_names_a_package_we_use() -> None:
    hints = install_hints()
    assert len(hints) >= 6  # websockets, multipart, redis, watchfiles, uvloop, jinja2, itsdangerous...
    for where, text in hints:
        try:
            check_hint(text)
        except AssertionError as exc:
            raise AssertionError(f"{where}: {exc}") from None


def test_the_hint_check_can_fail() -> None:
    for bad in ("pip install 'hump_listener[redis]'", "pip install no-such-package", "install it"):
        try:
            check_hint(bad)
        except AssertionError:
            continue
        raise AssertionError(f"{bad!r} passed")
