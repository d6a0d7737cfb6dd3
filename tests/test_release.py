"""Release hygiene (issue 22 item 9): ``python -m build`` makes a wheel and an sdist that
``twine check`` passes; the wheel holds every module of the tree; installed into a fresh
virtualenv, the wheel serves the demo (issue 22 item 1: its runtime dependencies are
enough for ``tiny-listener http_web:app``, WebSockets included); the version is written
in one place and the CHANGELOG names it.

Building and installing take ~20 s and depend on neither the parser nor the event loop,
so of scripts/test's three passes only the first (h11, asyncio) runs them. The fresh
virtualenv gets its dependencies from the package index, as a user's does.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import venv
import zipfile
from contextlib import AbstractContextManager
from pathlib import Path, PurePosixPath

import pytest
from conftest import TEST_LOOP
from process_helpers import ROOT, Launched, get, launch
from websockets.sync.client import connect

import hump_listener

VERSION = hump_listener.__version__
PKG = ROOT / "hump_listener"
#: What a build, a venv and a pip install may take on a slow machine (the suite's 60 s
#: per-test default is for tests, not installs).
SLOW = 300

pytestmark = pytest.mark.skipif(
    os.environ.get("HUMP_PARSER", "h11") != "h11" or TEST_LOOP != "asyncio",
    reason="packaging depends on neither the parser nor the loop: the h11/asyncio pass runs it",
)


def run(*args: str | Path, cwd: Path = ROOT) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=SLOW)
    assert done.returncode == 0, f"{' '.join(map(str, args))}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``python -m build``: the sdist, then the wheel built from it (as pip would). No
    isolation: the build backend (setuptools) is in the test extra, so no download per run."""
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ROOT)
    return out


def wheel_of(dist: Path) -> Path:
    return dist / f"hump_listener-{VERSION}-py3-none-any.whl"


def modules_in_tree() -> set[str]:
    return {
        p.relative_to(ROOT).as_posix() for p in PKG.rglob("*.py") if "__pycache__" not in p.parts
    }


# -- the build ---------------------------------------------------------------------------


@pytest.mark.timeout(SLOW)
def test_build_makes_a_wheel_and_an_sdist_of_the_version(dist: Path) -> None:
    assert sorted(p.name for p in dist.iterdir()) == [
        f"hump_listener-{VERSION}-py3-none-any.whl",
        f"hump_listener-{VERSION}.tar.gz",
    ]


@pytest.mark.timeout(SLOW)
def test_the_wheel_holds_every_module_and_the_metadata(dist: Path) -> None:
    with zipfile.ZipFile(wheel_of(dist)) as whl:
        names = set(whl.namelist())
        info = f"hump_listener-{VERSION}.dist-info"
        metadata = whl.read(f"{info}/METADATA").decode()
        entry_points = whl.read(f"{info}/entry_points.txt").decode()
    assert {n for n in names if n.endswith(".py")} == modules_in_tree()  # no subpackage left out
    assert "hump_listener/py.typed" in names  # the types, for users' mypy
    assert {PurePosixPath(n).parts[0] for n in names} == {"hump_listener", info}  # no tests, no demo
    assert f"\nVersion: {VERSION}\n" in metadata
    requires = [line.split(": ", 1)[1] for line in metadata.splitlines() if line.startswith("Requires-Dist: ")]
    runtime = sorted(re.split(r"[<>=!~; ]", r)[0] for r in requires if "extra ==" not in r)
    assert runtime == ["h11", "tiny-listener", "websockets"]
    assert "\nLicense-Expression: MIT\n" in metadata
    assert "hump-listener = hump_listener.__main__:main" in entry_points


@pytest.mark.timeout(SLOW)
def test_the_sdist_holds_what_builds_the_wheel_and_the_changelog(dist: Path) -> None:
    top = f"hump_listener-{VERSION}/"
    with tarfile.open(dist / f"hump_listener-{VERSION}.tar.gz") as sdist:
        names = {m.name.removeprefix(top) for m in sdist.getmembers() if m.isfile()}
    assert {"pyproject.toml", "README.md", "CHANGELOG.md", "LICENSE", "PKG-INFO"} <= names
    assert modules_in_tree() | {"hump_listener/py.typed"} <= names
    assert not [n for n in names if n.startswith("tests/")]  # the suite needs the checkout (MANIFEST.in)


@pytest.mark.timeout(SLOW)
def test_twine_check_passes(dist: Path) -> None:
    out = run(sys.executable, "-m", "twine", "check", "--strict", *sorted(dist.iterdir()))
    assert out.count("PASSED") == 2, out


# -- one version, one place ------------------------------------------------------------------


def test_the_version_is_written_in_one_place() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "hump_listener.__version__"}
    tracked = run("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    literal = re.compile(rf"(?<![\w.]){re.escape(VERSION)}(?![\w.])")
    places = sorted(
        name for name in tracked
        if name and (ROOT / name).is_file() and literal.search((ROOT / name).read_text(errors="replace"))
    )
    assert places == ["CHANGELOG.md", "hump_listener/__init__.py"]


def test_the_changelog_starts_with_the_version() -> None:
    headings = re.findall(r"^## \[([^\]]+)\]", (ROOT / "CHANGELOG.md").read_text(), re.MULTILINE)
    assert headings and headings[0] == VERSION


# -- the wheel, installed as a user installs it, serves the demo --------------------------------


def demo_copy(where: Path) -> Path:
    """The demo, away from the checkout: http_web.py and the folders it serves."""
    where.mkdir()
    shutil.copy(ROOT / "http_web.py", where)
    for folder in ("public", "templates"):
        shutil.copytree(ROOT / folder, where / folder)
    return where


def serve(venv_dir: Path, app_dir: Path) -> AbstractContextManager[Launched]:
    """``tiny-listener http_web:app`` from the fresh venv; nothing of the checkout on the
    path (PYTHONPATH cleared), so what runs is the installed wheel."""
    return launch([str(venv_dir / "bin" / "tiny-listener"), "http_web:app"], env={"PYTHONPATH": ""}, cwd=app_dir)


@pytest.mark.timeout(SLOW)
def test_the_wheel_serves_the_demo_from_a_fresh_venv(dist: Path, tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    venv.create(fresh, with_pip=True)
    pip = [fresh / "bin" / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    run(*pip, wheel_of(dist), cwd=tmp_path)
    app_dir = demo_copy(tmp_path / "app")
    where = run(fresh / "bin" / "python", "-c", "import hump_listener as h; print(h.__file__, h.__version__)",
                cwd=app_dir)
    assert where.startswith(str(fresh)) and where.split()[1] == VERSION

    with serve(fresh, app_dir) as server:
        port = server.serving_port()
        assert get(port, "/") == (200, "Hello, world!")
        assert get(port, "/user/bob") == (200, "Hello, bob!")
        assert json.loads(get(port, "/api/users/42")[1]) == {"id": 42, "name": "douglas"}
        assert get(port, "/static/hello.txt")[0] == 200
        with connect(f"ws://127.0.0.1:{port}/ws/echo", open_timeout=10) as ws:  # item 1: no extra needed
            ws.send("hello")
            assert ws.recv(timeout=10) == "hello"
        # The pages are templates: without the templates extra, a 500 that says what to
        # install (item 4), and the command it names, followed, makes them work.
        status, body = get(port, "/page")
        assert status == 500 and "pip install jinja2" in body

    run(*pip, "jinja2", cwd=tmp_path)
    with serve(fresh, app_dir) as server:
        status, body = get(server.serving_port(), "/page")
        assert status == 200 and '<meta name="viewport"' in body and "/static/favicon.svg" in body
