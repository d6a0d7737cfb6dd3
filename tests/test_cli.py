"""The command line (hump_listener.cli): flags → environment → App, reload, errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from process_helpers import ROOT, get, launch
from process_helpers import cli as cli_cmd

from hump_listener import cli

ENV_NAMES = (
    "HUMP_HOST", "HUMP_PORT", "HUMP_LOG_LEVEL", "HUMP_ACCESS_LOG",
    "HUMP_SSL_CERTFILE", "HUMP_SSL_KEYFILE", "HUMP_WORKERS",
)


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
        "--ssl-certfile", "c.pem", "--ssl-keyfile", "k.pem", "--workers", "3", "--app-dir", str(tmp_path),
    ])
    assert status == 0
    assert captured["import_string"] == "http_web:app"
    assert captured["overrides"] == {
        "host": "0.0.0.0", "port": 9001, "access_log": False, "ssl_certfile": "c.pem",
        "ssl_keyfile": "k.pem", "workers": 3,
    }
    assert captured["env"] == {
        "HUMP_HOST": "0.0.0.0", "HUMP_PORT": "9001", "HUMP_LOG_LEVEL": "debug", "HUMP_ACCESS_LOG": "0",
        "HUMP_SSL_CERTFILE": "c.pem", "HUMP_SSL_KEYFILE": "k.pem", "HUMP_WORKERS": "3",
    }
    assert sys.path[0] == str(tmp_path)


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
        (["x:app", "--port", "70000"], "0..65535"),
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
    assert "pip install 'hump_listener[reload]'" in capsys.readouterr().err


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
