"""protocol/parser.py: the compiled h11 build when installed, the pure one on request."""

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


def test_pure_h11_on_request() -> None:
    assert parser_name("h11").stdout.strip() == "h11"


def test_default_is_the_compiled_build_when_installed() -> None:
    assert parser_name(None).stdout.strip() == ("h11_mypyc" if HAVE_MYPYC else "h11")


def test_asking_for_the_compiled_build_without_it_fails_loudly() -> None:
    done = parser_name("h11_mypyc")
    if HAVE_MYPYC:
        assert done.stdout.strip() == "h11_mypyc"
    else:
        assert done.returncode != 0 and "h11_mypyc" in done.stderr


@pytest.mark.skipif(not HAVE_MYPYC, reason="h11-mypyc not installed")
def test_this_run_uses_what_hump_parser_says() -> None:
    from hump_listener.protocol import parser

    expected = "h11" if os.environ.get("HUMP_PARSER") == "h11" else "h11_mypyc"
    assert expected == parser.NAME
