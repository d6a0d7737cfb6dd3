"""protocol/parser.py: the pure h11 by default; the compiled build only when asked."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

CODE = "from hump_listener.protocol import parser; print(parser.NAME)"
HAVE_MYPYC = importlib.util.find_spec("h11_mypyc") is not None


def parser_name(value: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "HUMP_PARSER"}
    if value is not None:
        env["HUMP_PARSER"] = value
    return subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True)


def test_pure_h11_is_the_default_even_when_the_compiled_build_is_installed() -> None:
    assert parser_name(None).stdout.strip() == "h11"
    assert parser_name("h11").stdout.strip() == "h11"


def test_asking_for_the_compiled_build() -> None:
    done = parser_name("h11_mypyc")
    if HAVE_MYPYC:
        assert done.stdout.strip() == "h11_mypyc"
    else:
        assert done.returncode != 0 and "h11_mypyc" in done.stderr


@pytest.mark.skipif(not HAVE_MYPYC, reason="h11-mypyc not installed")
def test_this_run_uses_what_hump_parser_says() -> None:
    from hump_listener.protocol import parser

    expected = "h11_mypyc" if os.environ.get("HUMP_PARSER") == "h11_mypyc" else "h11"
    assert expected == parser.NAME
