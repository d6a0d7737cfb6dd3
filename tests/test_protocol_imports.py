"""The shape of protocol/ (issue 19.1): its imports form a tree, counting those made only
for type checking, and no class there inherits from another module's class (the split of
one connection into mixins, each re-declaring the attributes of ``self``, is gone)."""

from __future__ import annotations

import ast
from pathlib import Path

import hump_listener.protocol

PROTOCOL = Path(hump_listener.protocol.__file__).parent
PREFIX = "hump_listener.protocol."


def modules() -> dict[str, ast.Module]:
    return {path.stem: ast.parse(path.read_text()) for path in sorted(PROTOCOL.glob("*.py"))}


def imports(tree: ast.Module) -> set[str]:
    """Modules of protocol/ imported anywhere in ``tree`` (TYPE_CHECKING blocks and
    function bodies included)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PREFIX):
            out.add(node.module[len(PREFIX) :].split(".")[0])
        elif isinstance(node, ast.Import):
            out.update(a.name[len(PREFIX) :].split(".")[0] for a in node.names if a.name.startswith(PREFIX))
    return out


def test_protocol_imports_have_no_cycle() -> None:
    graph = {name: imports(tree) for name, tree in modules().items() if name != "__init__"}
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, " -> ".join((*path, name))
        if name in done:
            return
        for child in sorted(graph.get(name, ())):
            visit(child, (*path, name))
        done.add(name)

    for name in graph:
        visit(name, ())
    assert "http11" in graph["server"] and "websocket" in graph["ws_upgrade"]  # the walk saw edges


def test_the_protocol_side_imports_only_seam_and_config_of_the_package() -> None:
    for name, tree in modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hump_listener"):
                assert node.module.startswith(PREFIX) or node.module in (
                    "hump_listener.seam",
                    "hump_listener.config",
                ), (name, node.module)


def test_no_class_inherits_from_another_module_of_the_package() -> None:
    for name, tree in modules().items():
        ours = {  # names this module imports from the package (modules and their contents)
            alias.asname or alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hump_listener")
            for alias in node.names
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                for base in node.bases:
                    root = ast.unparse(base).split(".")[0].split("[")[0]
                    assert root not in ours, (name, node.name, ast.unparse(base))
