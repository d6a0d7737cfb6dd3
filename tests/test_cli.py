"""The command line (hump_listener.cli): flags → environment → App, reload, errors."""

from __future__ import annotations

import errno
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from process_helpers import ROOT, get, launch
from process_helpers import cli as cli_cmd
from process_helpers import tiny_listener as tiny_listener_cmd

from hump_listener import cli
from hump_listener.config import ENVIRONMENT

ENV_NAMES = tuple(variable for variable, _, _ in ENVIRONMENT.values())


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """Run ``cli.main`` without serving: record what it would serve, and restore the
    environment and sys.path it changes."""
    for name in ENV_NAMES:
        monkeypatch.setenv(name, "")  # recorded, so monkeypatch restores (or removes) it
        monkeypatch.delenv(name)
    monkeypatch.setattr(sys, "path", list(sys.path))
    seen: dict[str, object] = {}

    def fake_serve(import_string: str, overrides: dict[str, object]) -> int:
        seen.update(import_string=import_string, overrides=dict(overrides))
        seen["env"] = {name: os.environ.get(name) for name in ENV_NAMES}
        return 0

    monkeypatch.setattr(cli, "serve", fake_serve)
    return seen


def test_every_flag_becomes_an_env_var_and_an_override(captured: dict[str, object], tmp_path: Path) -> None:
    status = cli.main([
        "http_web:app", "--host", "0.0.0.0", "--port", "9001", "--log-level", "DEBUG", "--no-access-log",
        "--ssl-certfile", "c.pem", "--ssl-keyfile", "k.pem", "--workers", "3", "--loop", "asyncio",
        "--forwarded-allow-ips", "10.0.0.0/8, 10.1.1.1", "--broadcast-url", "redis://127.0.0.1:6379/2",
        "--app-dir", str(tmp_path),
    ])
    assert status == 0
    assert captured["import_string"] == "http_web:app"
    assert captured["overrides"] == {
        "host": "0.0.0.0", "port": 9001, "access_log": False, "ssl_certfile": "c.pem",
        "ssl_keyfile": "k.pem", "workers": 3, "log_level": "debug", "loop": "asyncio",
        "forwarded_allow_ips": "10.0.0.0/8,10.1.1.1", "broadcast_url": "redis://127.0.0.1:6379/2",
    }
    assert captured["env"] == {
        "HUMP_HOST": "0.0.0.0", "HUMP_PORT": "9001", "HUMP_LOG_LEVEL": "debug", "HUMP_ACCESS_LOG": "0",
        "HUMP_SSL_CERTFILE": "c.pem", "HUMP_SSL_KEYFILE": "k.pem", "HUMP_WORKERS": "3",
        "HUMP_LOOP": "asyncio", "HUMP_FORWARDED_ALLOW_IPS": "10.0.0.0/8,10.1.1.1",
        "HUMP_BROADCAST_URL": "redis://127.0.0.1:6379/2", "HUMP_DEBUG": None, "HUMP_SECRET_KEY": None,
    }
    assert sys.path[0] == str(tmp_path)


def test_reload_is_development_mode(captured: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> None:
    """--reload turns ``debug`` on (templates re-read, sessions may run without a secret)."""
    runs: list[tuple[str, dict[str, object]]] = []
    monkeypatch.setattr(cli, "reload", lambda app, overrides, dirs: runs.append((app, dict(overrides))) or 0)
    assert cli.main(["http_web:app", "--reload"]) == 0
    assert runs == [("http_web:app", {"debug": True})]
    assert os.environ["HUMP_DEBUG"] == "1"


def test_flags_not_given_leave_code_and_environment_alone(captured: dict[str, object]) -> None:
    assert cli.main(["http_web:app"]) == 0
    assert captured["overrides"] == {}
    env = captured["env"]
    assert isinstance(env, dict)
    assert set(env.values()) == {None}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["x:app", "--reload", "--workers", "2"], "mutually exclusive"),
        (["x:app", "--workers", "0"], "at least 1"),
        (["x:app", "--port", "70000"], "must be an integer 0-65535, got '70000'"),
        (["x:app", "--ssl-keyfile", "k.pem"], "--ssl-keyfile needs --ssl-certfile"),
        (["x:app", "--log-level", "loud"], "invalid choice"),
    ],
)
def test_usage_errors(
    captured: dict[str, object], capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
    assert captured == {}


def test_reload_without_watchfiles_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "watchfiles", None)  # import watchfiles → ImportError
    assert cli.reload("http_web:app", {}, ["."]) == 1
    assert "pip install watchfiles" in capsys.readouterr().err


def test_serve_reports_import_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.serve("no_such_module_here:app", {}) == 1
    assert "cannot import 'no_such_module_here:app'" in capsys.readouterr().err
    assert cli.serve("apps.tls_app:not_an_app", {}) == 1
    assert "is a object, not a hump_listener App" in capsys.readouterr().err


@pytest.mark.parametrize("quiet", [False, True])
def test_no_access_log_flag_wins_over_the_code(quiet: bool) -> None:
    # tests/apps/tls_app.py says App(access_log=True).
    args = cli_cmd("apps.tls_app:app", "--port", "0", *(["--no-access-log"] if quiet else []))
    with launch(args) as proc:
        assert get(proc.serving_port(), "/scheme") == (200, "http")
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(timeout=30) == 0
        proc.wait_for_line(r"Shutting down")
    logged = '"GET /scheme HTTP/1.1" 200' in proc.output()
    assert logged is not quiet


def test_console_script() -> None:
    exe = Path(sys.executable).with_name("hump-listener")
    if not exe.exists():
        pytest.skip("the package is not installed with its console script")
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.strip().startswith("hump_listener ")


APP_SOURCE = '''
from hump_listener import App, HTTPContext

app = App(access_log=False)


@app.get("/")
async def index(ctx: HTTPContext) -> str:
    return {answer!r}
'''


def test_reload_restarts_on_a_python_change(tmp_path: Path) -> None:
    pytest.importorskip("watchfiles")
    module = tmp_path / "reload_target.py"
    module.write_text(APP_SOURCE.format(answer="v1"))
    args = cli_cmd("reload_target:app", "--reload", "--app-dir", str(tmp_path), "--port", "0")
    with launch(args, env={"PYTHONDONTWRITEBYTECODE": "1"}, cwd=ROOT) as proc:
        assert get(proc.serving_port(), "/") == (200, "v1")
        seen = len(proc.lines)
        (tmp_path / "notes.txt").write_text("not python: no reload")
        module.write_text(APP_SOURCE.format(answer="version two"))
        port = proc.serving_port(after=seen)  # the new process says it serves
        assert get(port, "/") == (200, "version two")
        assert len([line for line in proc.lines if "Serving on" in line]) == 2
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(timeout=30) == 0


# -- start-up errors: one line on stderr, exit status 1, whichever command starts the app ------

COMMANDS = {
    "tiny-listener": lambda *args: tiny_listener_cmd(*args),
    "hump-listener": lambda *args: console_script(*args),
    "python -m hump_listener": lambda *args: cli_cmd(*args),
}


def console_script(*args: str) -> list[str]:
    exe = Path(sys.executable).with_name("hump-listener")
    if not exe.exists():
        pytest.skip("the package is not installed with its console script")
    return [str(exe), *args]


def start_failing(args: list[str], env: dict[str, str], pythonpath: tuple[str, ...] = ()) -> tuple[int, str]:
    """Run a command that must fail to start: ``(exit status, last stderr line)``."""
    status, lines = start_failing_lines(args, env, pythonpath)
    return status, lines[-1]


def start_failing_lines(
    args: list[str], env: dict[str, str], pythonpath: tuple[str, ...] = ()
) -> tuple[int, list[str]]:
    """Run a command that must fail to start: ``(exit status, every stderr line)``."""
    full_env = {k: v for k, v in os.environ.items() if k not in ENV_NAMES or k == "HUMP_LOOP"}
    full_env["PYTHONPATH"] = os.pathsep.join([*pythonpath, str(ROOT), str(ROOT / "tests")])
    full_env["HUMP_PORT"] = "0"  # should a case get as far as binding, no fixed port
    full_env.update(env)
    done = subprocess.run(
        args, cwd=ROOT, env=full_env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60
    )
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines, f"nothing on stderr (stdout: {done.stdout!r})"
    return done.returncode, lines


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


@pytest.mark.parametrize("command", COMMANDS)
def test_a_bad_variable_is_one_line_and_exit_1(command: str) -> None:
    status, last = start_failing(COMMANDS[command]("http_web:app"), {"HUMP_PORT": "abc"})
    assert (status, last) == (1, "ERROR    HUMP_PORT must be an integer 0-65535, got 'abc'")


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize("command", COMMANDS)
def test_a_busy_port_is_one_line_and_exit_1(command: str, workers: str, busy_port: int) -> None:
    env = {"HUMP_PORT": str(busy_port), "HUMP_WORKERS": workers}  # 2: the supervisor binds
    status, last = start_failing(COMMANDS[command]("http_web:app"), env)
    assert status == 1
    assert last.startswith(f"ERROR    cannot listen on 127.0.0.1:{busy_port}: [Errno {errno.EADDRINUSE}] ")
    if command == "tiny-listener":  # it takes no options: the message names none (issue 22 item 4)
        assert "choose another port with HUMP_PORT (0 picks a free one)" in last and "--port" not in last
    else:
        assert "choose another port with --port or HUMP_PORT" in last


@pytest.mark.parametrize("command", COMMANDS)
def test_redis_unreachable_at_start_up_is_one_line_and_exit_1(command: str) -> None:
    """Issue 22 item 4: one line (42 before), no private names, exit 1."""
    with socket.socket() as closed:  # bound, not listening: connection refused at once
        closed.bind(("127.0.0.1", 0))
        env = {"HUMP_BROADCAST_URL": f"redis://127.0.0.1:{closed.getsockname()[1]}/0"}
    status, lines = start_failing_lines(COMMANDS[command]("http_web:app"), env)
    assert status == 1
    assert len(lines) == 1, lines
    assert lines[0].startswith("ERROR    the broadcast cannot start: Redis at 127.0.0.1:")
    assert "_start_broadcast" not in lines[0] and "Traceback" not in lines[0]
    assert lines[0].endswith("(check HUMP_BROADCAST_URL)" if command == "tiny-listener"
                             else "(check --broadcast-url or HUMP_BROADCAST_URL)")


def test_the_redis_extra_missing_is_one_line_and_exit_1(tmp_path: Path) -> None:
    """Issue 22 item 4: one line (26 before) that names a command that works."""
    (tmp_path / "redis").mkdir()  # a redis package that is not there, as in a venv without it
    (tmp_path / "redis" / "__init__.py").write_text("raise ImportError(\"No module named 'redis'\")\n")
    env = {"HUMP_BROADCAST_URL": "redis://127.0.0.1:6379/0"}
    status, lines = start_failing_lines(COMMANDS["tiny-listener"]("http_web:app"), env, (str(tmp_path),))
    assert (status, len(lines)) == (1, 1), lines
    assert lines[0].startswith("ERROR    the broadcast cannot start: ")
    assert "pip install redis" in lines[0] and "hump_listener[" not in lines[0]


@pytest.mark.parametrize(
    ("env", "flags", "expected"),
    [
        ({"HUMP_SSL_CERTFILE": "/no/such/cert.pem"}, [], "TLS certificate file not found: /no/such/cert.pem"),
        ({}, ["--ssl-certfile", "README.md"], "cannot load the TLS certificate and key from README.md"),
        (
            {"HUMP_HOST": "no-such-host.invalid"}, [],
            "cannot listen on no-such-host.invalid:0: cannot resolve host 'no-such-host.invalid'",
        ),
        ({"HUMP_WORKERS": "2", "HUMP_LOG_LEVEL": "loud"}, [], "HUMP_LOG_LEVEL must be one of critical"),
    ],
)
def test_other_start_up_errors_are_one_line(env: dict[str, str], flags: list[str], expected: str) -> None:
    status, last = start_failing(cli_cmd("http_web:app", *flags), env)
    assert status == 1
    assert last.startswith(f"ERROR    {expected}")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_uvloop_asked_for_but_missing_names_the_extra(workers: str) -> None:
    script = (
        "import sys; sys.modules['uvloop'] = None; from hump_listener.cli import main; "
        "sys.exit(main(sys.argv[1:]))"
    )
    args = [sys.executable, "-c", script, "http_web:app", "--loop", "uvloop", "--workers", workers, "--port", "0"]
    status, last = start_failing(args, {})
    assert status == 1
    assert last == (
        "ERROR    loop 'uvloop' (--loop, HUMP_LOOP) needs uvloop: pip install uvloop, "
        "or use --loop asyncio"
    )


def test_a_bad_flag_is_a_usage_error_naming_the_flag() -> None:
    status, last = start_failing(cli_cmd("http_web:app", "--port", "abc"), {})
    assert (status, last) == (2, "hump-listener: error: argument --port: must be an integer 0-65535, got 'abc'")


def test_the_start_up_line_names_the_loop() -> None:
    with launch(cli_cmd("apps.tls_app:app", "--port", "0")) as proc:
        line = proc.wait_for_line(r"Serving on")
    expected = os.environ["HUMP_LOOP"]  # conftest.py: the suite's loop
    assert f"loop: {expected};" in line


# -- the documentation lists exactly what the parser and ServerConfig.from_env accept --------


def docs_section(page: str, title: str) -> str:
    """A section of a docs page (the README's reference moved there, issue 22 item 7)."""
    text = "\n" + (ROOT / "docs" / page).read_text()
    start = text.index(f"\n{title}\n")
    level = title.split(" ", 1)[0]
    end = text.find(f"\n{level} ", start + len(title) + 2)
    return text[start : end if end != -1 else len(text)]


def parser_flags() -> set[str]:
    flags = {opt for action in cli.build_parser()._actions for opt in action.option_strings}
    return flags - {"-h", "--help", "--version"}


def test_the_readme_cli_table_lists_every_flag_and_variable() -> None:
    table = [line for line in docs_section("deployment.md", "## Command line").splitlines() if line.startswith("| `--")]
    documented = {flag for line in table for flag in re.findall(r"`(--[a-z-]+)", line.split("|")[1])}
    assert documented == parser_flags()
    variables = {variable for variable, _, _ in ENVIRONMENT.values()}
    # HUMP_SECRET_KEY has no flag on purpose: a command line is visible in `ps`.
    assert {v for line in table for v in re.findall(r"HUMP_[A-Z_]+", line)} == variables - {"HUMP_SECRET_KEY"}


def test_the_readme_configuration_table_and_the_cli_docstring_list_every_variable() -> None:
    variables = {variable for variable, _, _ in ENVIRONMENT.values()}
    configuration = docs_section("configuration.md", "# Configuration")
    assert variables <= set(re.findall(r"HUMP_[A-Z_]+", configuration))
    for flag in parser_flags() - {"--reload", "--reload-dir", "--app-dir"}:
        assert f"`{flag}`" in configuration, flag
    docstring = cli.__doc__ or ""
    assert variables <= set(re.findall(r"HUMP_[A-Z_]+", docstring))
    assert parser_flags() - {"--reload-dir"} <= set(re.findall(r"--[a-z-]+", docstring))
