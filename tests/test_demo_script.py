"""scripts/demo starts in about a second when nothing changed (issue 22 item 5): the pip
install runs only when pyproject.toml (or the Python, or the extras) changed since the
last one. Run against a copy of the script whose .venv holds stand-ins that record what
they are asked to do, so the test needs no network and no real install."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from servers import ROOT

FAKE_PYTHON = """#!/usr/bin/env bash
echo "python $*" >> "$(dirname "$0")/../../calls.log"
[ "$1" = "-V" ] && echo "Python 3.99.0"
exit 0
"""
FAKE_SERVER = """#!/usr/bin/env bash
echo "tiny-listener $*" >> "$(dirname "$0")/../../calls.log"
"""


def make_checkout(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "demo", tmp_path / "scripts" / "demo")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name, text in (("python", FAKE_PYTHON), ("tiny-listener", FAKE_SERVER)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return tmp_path


def run_demo(checkout: Path) -> list[str]:
    log = checkout / "calls.log"
    log.unlink(missing_ok=True)
    done = subprocess.run(
        [str(checkout / "scripts" / "demo")], cwd=checkout, capture_output=True, text=True, timeout=30,
        env={k: v for k, v in os.environ.items() if k != "PYTHON"},
    )
    assert done.returncode == 0, done.stderr
    return [line for line in log.read_text().splitlines() if not line.startswith("python -V")]


def test_pip_runs_only_when_the_install_is_not_current(tmp_path: Path) -> None:
    checkout = make_checkout(tmp_path)
    install = 'python -m pip install -q -e .[multipart,templates,redis]'
    assert run_demo(checkout) == [install, "tiny-listener http_web:app"]
    assert run_demo(checkout) == ["tiny-listener http_web:app"]  # current: straight to the server
    with (checkout / "pyproject.toml").open("a") as f:
        f.write("\n# a dependency changed\n")
    assert run_demo(checkout) == [install, "tiny-listener http_web:app"]
    (checkout / ".venv" / ".demo-installed").unlink()  # the documented way to force it
    assert run_demo(checkout)[0] == install
