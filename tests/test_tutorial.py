"""docs/tutorial.md, followed literally (issue 22 item 8): its files are written into an
empty folder in page order (a later block for the same file replaces it, as the page
says "chat.py becomes"), and its ```shell blocks are run there when the page reaches them,
each command's output compared with the lines the page shows under it:

- ``tiny-listener chat:app`` starts the reader's app (HUMP_PORT=0: the page's port 8000
  becomes the one it got), replacing the one running; its start-up line must match;
- ``curl URL`` runs curl on that server; its output must be the page's, line for line;
- ``pytest -q`` runs pytest in the folder, as a reader with only pytest installed would
  (no plugins of this suite); its report must be the page's, times aside;
- ``pip install NAME`` must name a package the reader needs and this suite has.

A block is a file when the ``test: skip`` comment before it says ``file PATH`` (so the
doc-program runner of test_readme.py leaves it to this test); any other command fails
here, so the page cannot show a command nobody checks. Chromium then follows step 3:
two windows on a room, a line typed in one appears in both.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
from doc_blocks import Block, blocks
from process_helpers import ROOT, Launched, launch

PAGE = ROOT / "docs" / "tutorial.md"
FILE = re.compile(r"^file (?P<path>[\w./-]+)\b")
PAGE_PORT = "127.0.0.1:8000"
#: What differs between runs of the same command: the port, the parser and loop of the
#: start-up line (scripts/test runs the suite on two of each), pytest's timing.
VARIES = [
    (re.compile(r"\(parser: [^)]*\)"), "(parser: ..., loop: ...)"),
    (re.compile(r" in \d+\.\d+s\b"), " in ...s"),
]


def normal(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        for pattern, replacement in VARIES:
            line = pattern.sub(replacement, line)
        out.append(line.rstrip())
    return out


@dataclass
class Command:
    where: str
    line: str
    expected: list[str]


def commands(block: Block) -> list[Command]:
    """``$ command`` lines of a shell block, each with the output lines under it."""
    out: list[Command] = []
    for offset, line in enumerate(block.text.splitlines(), start=1):
        if line.startswith("$ "):
            out.append(Command(f"{block.where}+{offset}", line[2:].strip(), []))
        else:
            assert out, f"{block.where}: output before any command"
            out[-1].expected.append(line)
    return out


class Reader:
    """The reader's folder and terminal: the files so far, the server running, if any."""

    def __init__(self, folder: Path, stack: ExitStack) -> None:
        self.folder = folder
        self.stack = stack
        self.server: Launched | None = None
        self.port = 0
        self.ran: list[str] = []

    def write(self, block: Block, path: str) -> None:
        target = self.folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(block.text + "\n")

    def run(self, command: Command) -> None:
        words = command.line.split()
        self.ran.append(words[0])
        if words[:2] == ["tiny-listener", "chat:app"]:
            self.start(command)
        elif words[0] == "curl":
            self.curl(command)
        elif words[:2] == ["pytest", "-q"]:
            self.pytest(command)
        elif words[:2] == ["pip", "install"]:
            for name in words[2:]:
                assert importlib.util.find_spec(name) is not None, f"{command.where}: no package {name}"
        else:
            pytest.fail(f"{command.where}: no rule to run `{command.line}`: add one to tests/test_tutorial.py")

    def start(self, command: Command) -> None:
        if self.server is not None:  # the reader's Ctrl+C
            self.server.proc.terminate()
            assert self.server.proc.wait(timeout=30) == 0
        args = [str(Path(sys.executable).with_name("tiny-listener")), "chat:app"]
        # PYTHONPATH: the folder, as the current directory is for the reader's shell.
        self.server = self.stack.enter_context(launch(args, env={"PYTHONPATH": str(self.folder)}, cwd=self.folder))
        self.port = self.server.serving_port()
        shown = [line.replace(PAGE_PORT, f"127.0.0.1:{self.port}") for line in command.expected]
        got = [line.rstrip("\n") for line in self.server.lines[: len(shown)]]
        assert normal(got) == normal(shown), command.where

    def curl(self, command: Command) -> None:
        assert self.server is not None, f"{command.where}: curl with no server started"
        line = command.line.replace(PAGE_PORT, f"127.0.0.1:{self.port}")
        done = subprocess.run(["bash", "-c", line], cwd=self.folder, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == command.expected, command.where

    def pytest(self, command: Command) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_", "HUMP_"))}
        # A reader with `pip install pytest` only: none of this suite's plugins or settings.
        env.update(PYTEST_ADDOPTS="-p no:asyncio -p no:cacheprovider -p no:cov -p no:timeout", COLUMNS="80",
                   PYTHONDONTWRITEBYTECODE="1")
        env.pop("PYTHONPATH", None)
        done = subprocess.run(
            [sys.executable, "-m", "pytest", *command.line.split()[1:]],
            cwd=self.folder, env=env, capture_output=True, text=True, timeout=120,
        )
        assert normal(done.stdout.splitlines()) == normal(command.expected), done.stdout + done.stderr


@pytest.fixture(scope="module")
def followed() -> Iterator[Reader]:
    """The whole page, followed in order; the reader's folder and last server stay for the
    browser test."""
    if shutil.which("curl") is None:
        if os.environ.get("CI"):
            raise RuntimeError("CI needs curl (a Debian package; ./scripts/test installs it as root)")
        pytest.skip("the tutorial's commands use curl (apt-get install curl)")
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tutorial-")))
        reader = Reader(folder, stack)
        for block in blocks(PAGE):
            directive = block.directive
            file = FILE.match(directive[1]) if directive and directive[0] == "skip" else None
            if file is not None:
                reader.write(block, file["path"])
            elif block.lang == "shell":
                for command in commands(block):
                    reader.run(command)
            else:
                pytest.fail(f"{block.where}: a {block.lang} block that is neither a file nor commands")
        yield reader


def test_the_tutorial_runs_as_written(followed: Reader) -> None:
    assert {"tiny-listener", "curl", "pytest", "pip"} <= set(followed.ran)
    assert sorted(p.relative_to(followed.folder).as_posix() for p in followed.folder.rglob("*.*")
                  if "__pycache__" not in p.parts) == ["chat.py", "templates/room.html", "test_chat.py"]


def test_every_python_block_is_a_file() -> None:
    """No block is left to the doc-program runner by mistake: each is written here."""
    for block in blocks(PAGE):
        if block.lang in ("python", "html"):
            assert block.directive is not None and FILE.match(block.directive[1]), block.where


def test_the_reader_sees_the_chat_in_two_windows(followed: Reader) -> None:
    """Step 3's promise, in Chromium: a line typed in one window appears in both, and a
    window on another room sees none of it."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    if not (chromium and chromedriver):
        if os.environ.get("CI"):
            raise RuntimeError("CI needs chromium and chromium-driver (Debian packages)")
        pytest.skip("chromium / chromedriver not installed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    profile = tempfile.mkdtemp(prefix="hump-chromium-")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--no-first-run", "--disable-background-networking", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    try:
        base = f"http://127.0.0.1:{followed.port}"
        windows = {}
        for name, room in (("ann", "lobby"), ("bob", "lobby"), ("cook", "kitchen")):
            if windows:
                driver.switch_to.new_window("window")
            driver.get(f"{base}/rooms/{room}")
            assert driver.find_element(By.TAG_NAME, "h1").text == f"Room {room}"
            # open: the socket is subscribed (the 101 comes after the subscription)
            WebDriverWait(driver, 15).until(lambda d: d.execute_script("return socket.readyState") == 1)
            windows[name] = driver.current_window_handle

        def said(name: str) -> list[str]:
            driver.switch_to.window(windows[name])
            return [li.text for li in driver.find_elements(By.CSS_SELECTOR, "#messages li")]

        driver.switch_to.window(windows["ann"])
        driver.find_element(By.ID, "text").send_keys("hello from ann", Keys.ENTER)
        for name in ("ann", "bob"):
            WebDriverWait(driver, 15).until(lambda d, name=name: said(name) == ["hello from ann"])
        driver.switch_to.window(windows["cook"])
        driver.find_element(By.ID, "text").send_keys("soup's on", Keys.ENTER)
        WebDriverWait(driver, 15).until(lambda d: said("cook") == ["soup's on"])
        assert said("ann") == said("bob") == ["hello from ann"]  # the kitchen's line stayed there
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
