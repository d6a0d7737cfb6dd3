"""The code blocks of README.md and docs/*.md, as programs and commands the tests run.

``tests/test_readme.py`` runs every ```python block and checks every ```console block, so
the documentation cannot drift from the code. The rules a page follows:

1. Every ```python block is part of a *program*, in page order: the blocks of a program,
   concatenated, are one module (copied into one file, they run). A page is one program,
   named after the page (``README.md`` → ``readme``, ``docs/websockets.md`` →
   ``docs_websockets``), unless a ``<!-- test: program NAME -->`` line right before a block
   starts a new program there (for pages whose examples are separate apps).
2. ``<!-- test: skip REASON -->`` right before a block leaves it out (a fragment that cannot
   run on its own, a snippet for another machine); the reason is required.
3. A program's ``test_*`` functions (the pages' own test snippets) are run as real tests by
   plain pytest (pytest-asyncio disabled), in a temporary working directory, with warnings
   as errors. ``tests/doc_checks/check_NAME.py``, when it exists, adds tests that request
   what the program registers (``from NAME import app``), so every route shown is exercised.
4. ```console blocks: every ``$ command`` line is checked against the code (flags exist,
   extras exist, files exist): see ``tests/test_readme.py``.

The directives are HTML comments: invisible on GitHub and in the MkDocs site.
"""

from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKS = Path(__file__).resolve().parent / "doc_checks"

_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w+-]*)[ \t]*$")
_DIRECTIVE = re.compile(r"^\s*<!--\s*test:\s*(?P<verb>program|skip)\b\s*(?P<arg>.*?)\s*-->\s*$")


@dataclass
class Block:
    """One fenced code block: its language, its text (dedented) and where it starts."""

    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    directive: tuple[str, str] | None = None

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


@dataclass
class Program:
    """The python blocks of one program, in order (rule 1)."""

    name: str
    blocks: list[Block] = field(default_factory=list)

    @property
    def source(self) -> str:
        parts = [f"# {block.where}\n{block.text}" for block in self.blocks]
        return "\n\n".join(parts) + "\n"

    @property
    def test_names(self) -> list[str]:
        """The top-level ``test_*`` functions: the page's own test snippets (rule 3)."""
        tree = ast.parse(self.source)
        return [
            node.name
            for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_")
        ]

    @property
    def checks(self) -> Path:
        return CHECKS / f"check_{self.name}.py"


def blocks(page: Path) -> list[Block]:
    """Every fenced block of ``page``, with the directive on the line before it, if any."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if match is None or not match["lang"]:
            i += 1
            continue
        indent, start = match["indent"], i
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i])
            i += 1
        if i == len(lines):
            raise ValueError(f"{page}:{start + 1}: unclosed code block")
        directive = None
        before = start - 1
        while before >= 0 and not lines[before].strip():
            before -= 1
        if before >= 0 and (d := _DIRECTIVE.match(lines[before])) is not None:
            directive = (d["verb"], d["arg"])
            if d["verb"] == "skip" and not d["arg"]:
                raise ValueError(f"{page}:{before + 1}: `test: skip` needs a reason")
            if d["verb"] == "program" and not re.fullmatch(r"[a-z][a-z0-9_]*", d["arg"]):
                raise ValueError(f"{page}:{before + 1}: a program name is lower_snake_case")
        text = textwrap.dedent("\n".join(line[len(indent) :] if line.startswith(indent) else line for line in body))
        found.append(Block(page, start + 1, match["lang"], text, directive))
        i += 1
    return found


def default_name(page: Path) -> str:
    rel = page.relative_to(ROOT)
    stem = rel.with_suffix("").as_posix().lower().replace("/", "_").replace("-", "_")
    return stem


def programs(page: Path) -> list[Program]:
    """The programs of ``page`` (rules 1 and 2)."""
    out: list[Program] = []
    current: Program | None = None
    for block in blocks(page):
        if block.lang != "python":
            continue
        if block.directive is not None and block.directive[0] == "skip":
            continue
        if block.directive is not None and block.directive[0] == "program":
            current = Program(block.directive[1])
            out.append(current)
        elif current is None:
            current = Program(default_name(page))
            out.append(current)
        current.blocks.append(block)
    return out


def pages() -> list[Path]:
    """The pages whose blocks are tested: the README and every docs page."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def console_commands(page: Path) -> list[tuple[str, str]]:
    """``(where, command)`` for every ``$ command`` line of the page's ```console blocks
    (a ``host$`` prompt counts too), without its trailing ``# comment``."""
    out: list[tuple[str, str]] = []
    for block in blocks(page):
        if block.lang != "console":
            continue
        for offset, line in enumerate(block.text.splitlines(), start=1):
            match = re.match(r"^(?:[\w.-]+)?\$ (?P<command>.*)$", line)
            if match is None:
                continue
            command = re.sub(r"\s+#\s.*$", "", match["command"]).strip()
            out.append((f"{block.where}+{offset}", command))
    return out
