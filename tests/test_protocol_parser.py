"""protocol/parser.py: the pure h11 by default; the compiled build only when asked."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

CODE = "from hump_listener.protocol import parser; print(parser.NAME)"


def parser_name(value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "HUMP_PARSER"}
    if value is not None:
        env["HUMP_PARSER"] = value
    done = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_pure_h11_is_the_default() -> None:
    assert parser_name(None) == "h11"
    assert parser_name("h11") == "h11"


@pytest.mark.skipif(importlib.util.find_spec("h11_mypyc") is None, reason="h11-mypyc not installed")
def test_compiled_parser_only_when_asked() -> None:
    assert parser_name("h11_mypyc") == "h11_mypyc"
