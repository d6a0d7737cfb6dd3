"""config.py: ServerConfig, the one place the environment is read, and the way
every runner takes its settings from ``app.config`` (precedence: flag > code > env)."""

from __future__ import annotations

import asyncio
import errno
import socket
import sys
from pathlib import Path

import pytest
from process_helpers import cli, get, launch

from hump_listener import App, HTTPContext
from hump_listener.config import (
    ENVIRONMENT,
    ConfigError,
    ServerConfig,
    bind_error,
    code_settings,
    command_line_flags,
    how_to_set,
    loop_factory,
)
from hump_listener.testing import AsyncTestClient

# -- ServerConfig.from_env: every variable, every error names it ------------------------------


def test_every_variable_is_read_into_its_field() -> None:
    environ = {
        "HUMP_HOST": " 0.0.0.0 ", "HUMP_PORT": "9001", "HUMP_WORKERS": "3", "HUMP_ACCESS_LOG": "off",
        "HUMP_LOG_LEVEL": "DEBUG", "HUMP_LOOP": "asyncio", "HUMP_SSL_CERTFILE": "c.pem",
        "HUMP_SSL_KEYFILE": "k.pem", "HUMP_FORWARDED_ALLOW_IPS": "10.0.0.0/8, ::1",
        "HUMP_BROADCAST_URL": " redis://127.0.0.1:6379/1 ", "HUMP_DEBUG": "yes", "HUMP_SECRET_KEY": "s3cret",
    }
    assert set(environ) == {variable for variable, _, _ in ENVIRONMENT.values()}
    config = ServerConfig.from_env(environ)
    assert (config.host, config.port, config.workers, config.access_log) == ("0.0.0.0", 9001, 3, False)
    assert (config.log_level, config.loop) == ("debug", "asyncio")
    assert (config.ssl_certfile, config.ssl_keyfile) == ("c.pem", "k.pem")
    assert config.forwarded_allow_ips == "10.0.0.0/8,::1"
    assert config.broadcast_url == "redis://127.0.0.1:6379/1"
    assert (config.debug, config.secret_key) == (True, "s3cret")
    assert "s3cret" not in repr(config)  # a secret is never logged with the config


def test_an_empty_environment_gives_the_defaults() -> None:
    assert ServerConfig.from_env({}) == ServerConfig()
    # An empty variable counts as unset, except an empty trust list: trust nobody.
    blank = {variable: "" for variable, _, _ in ENVIRONMENT.values()}
    assert ServerConfig.from_env(blank) == ServerConfig(forwarded_allow_ips="")


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("HUMP_PORT", "abc", "HUMP_PORT must be an integer 0-65535, got 'abc'"),
        ("HUMP_PORT", "70000", "HUMP_PORT must be an integer 0-65535, got '70000'"),
        ("HUMP_PORT", "80.5", "HUMP_PORT must be an integer 0-65535, got '80.5'"),
        ("HUMP_WORKERS", "0", "HUMP_WORKERS must be an integer of at least 1, got '0'"),
        ("HUMP_WORKERS", "many", "HUMP_WORKERS must be an integer of at least 1, got 'many'"),
        ("HUMP_ACCESS_LOG", "maybe", "HUMP_ACCESS_LOG must be 1 or 0 (or true/false, yes/no, on/off), got 'maybe'"),
        ("HUMP_LOG_LEVEL", "loud", "HUMP_LOG_LEVEL must be one of critical, error, warning, info, debug, got 'loud'"),
        ("HUMP_LOOP", "trio", "HUMP_LOOP must be one of auto, asyncio, uvloop, got 'trio'"),
        (
            "HUMP_FORWARDED_ALLOW_IPS", "10.0.0.1, proxy.local",
            "HUMP_FORWARDED_ALLOW_IPS must be comma-separated IP addresses, CIDR networks or '*', got 'proxy.local'",
        ),
    ],
)
def test_a_bad_variable_is_one_line_naming_it(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        ServerConfig.from_env({variable: value})
    assert str(exc.value) == message


def test_values_written_in_code_win_over_the_environment() -> None:
    config = ServerConfig.from_env({"HUMP_PORT": "9001", "HUMP_HOST": "0.0.0.0"}, port=9002)
    assert (config.host, config.port) == ("0.0.0.0", 9002)
    # A code value is not parsed from the environment, so a bad variable it overrides is moot.
    assert ServerConfig.from_env({"HUMP_PORT": "abc"}, port=1).port == 1


def test_an_unknown_setting_names_the_valid_ones() -> None:
    expected = r"unknown setting 'keepalive_timeout': ServerConfig has .*keep_alive_timeout"
    with pytest.raises(ConfigError, match=expected):
        ServerConfig.from_env({}, keepalive_timeout=3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"port": 70000}, "port must be an integer 0-65535, got 70000"),
        ({"port": "80"}, "port must be an integer 0-65535, got '80'"),
        ({"workers": 0}, "workers must be an integer of at least 1, got 0"),
        ({"loop": "trio"}, "loop must be one of auto, asyncio, uvloop, got 'trio'"),
        ({"access_log": "no"}, "access_log must be 1 or 0 (or true/false, yes/no, on/off), got 'no'"),
        ({"forwarded_allow_ips": ["10.0.0.1", "x"]}, "forwarded_allow_ips must be comma-separated IP addresses"),
    ],
)
def test_a_bad_value_in_code_fails_where_it_is_written(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        ServerConfig(**kwargs)  # type: ignore[arg-type]
    assert str(exc.value).startswith(message)


def test_code_settings_are_the_fields_that_differ_from_the_defaults() -> None:
    assert code_settings(ServerConfig()) == {}
    config = ServerConfig(keep_alive_timeout=30, forwarded_allow_ips=["10.0.0.1", "10.0.0.2"], log_level="WARNING")
    assert code_settings(config) == {
        "keep_alive_timeout": 30, "forwarded_allow_ips": "10.0.0.1,10.0.0.2", "log_level": "warning",
    }


# -- App: config=, the keyword arguments, the environment, configure() -------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for variable, _, _ in ENVIRONMENT.values():
        monkeypatch.delenv(variable, raising=False)
    return monkeypatch


def test_precedence_flag_then_code_then_environment_then_default(clean_env: pytest.MonkeyPatch) -> None:
    assert App().config.port == 8000
    clean_env.setenv("HUMP_PORT", "9001")
    clean_env.setenv("HUMP_WORKERS", "2")
    assert App().config.port == 9001
    app = App(port=9002)
    assert (app.config.port, app.config.workers) == (9002, 2)
    app.configure(port=9003)  # what the command line does after importing the app
    assert app.config.port == 9003


def test_config_object_keeps_the_environment_for_the_fields_it_leaves_alone(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("HUMP_PORT", "9001")
    clean_env.setenv("HUMP_KEEP_ALIVE_TIMEOUT", "1")  # not a variable we read: no effect
    app = App(config=ServerConfig(keep_alive_timeout=30, host="0.0.0.0"), access_log=False)
    assert (app.config.port, app.config.host, app.config.keep_alive_timeout) == (9001, "0.0.0.0", 30)
    assert app.config.access_log is False


def test_the_environment_is_read_when_the_app_is_used_not_when_it_is_imported(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("HUMP_PORT", "abc")
    app = App()  # a module defining `app = App()` still imports (the runner reports the error)
    with pytest.raises(ConfigError, match="HUMP_PORT must be an integer 0-65535, got 'abc'"):
        app.config  # noqa: B018


def test_a_keyword_and_the_config_object_must_agree() -> None:
    with pytest.raises(TypeError, match="give it once"):
        App(port=1, config=ServerConfig(port=2))
    assert App(port=2, config=ServerConfig(port=2)).config.port == 2
    with pytest.raises(ConfigError, match="port must be an integer 0-65535, got 70000"):
        App(port=70000)


def test_one_spelling_each_no_deprecated_aliases(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(TypeError, match="server_options"):
        App(server_options={"keep_alive_timeout": 12})  # type: ignore[call-arg]
    app = App()
    for name in ("host", "port", "workers", "shutdown_timeout", "ssl_certfile", "access_log", "forwarded_allow_ips"):
        assert not hasattr(app, name), name  # read app.config, change with app.configure


def test_configure_changes_fields_and_the_request_paths_settings(clean_env: pytest.MonkeyPatch) -> None:
    app = App()
    app.configure(workers=4, ssl_certfile="c.pem", forwarded_allow_ips=["10.0.0.0/8"], shutdown_timeout=2.5)
    assert (app.config.workers, app.config.ssl_certfile, app.config.shutdown_timeout) == (4, "c.pem", 2.5)
    settings = app.request_path.settings
    assert settings is not None
    assert "10.1.2.3" in settings.trusted and "127.0.0.1" not in settings.trusted
    with pytest.raises(ConfigError, match="unknown setting 'prot'"):
        app.configure(prot=1)


async def test_the_test_client_uses_the_apps_limits_without_filtering() -> None:
    app = App(config=ServerConfig(max_header_count=3), access_log=False)

    @app.get("/")
    async def index(ctx: HTTPContext) -> str:
        return "ok"

    async with AsyncTestClient(app) as client:
        assert client.config.max_header_count == 3
        assert (await client.get("/")).status_code == 200
        crowded = await client.get("/", headers={f"x-{i}": "1" for i in range(5)})
    assert crowded.status_code == 431


def test_the_url_follows_the_config(clean_env: pytest.MonkeyPatch) -> None:
    assert App(host="::1", port=8443).url == "http://[::1]:8443"
    clean_env.setenv("HUMP_SSL_CERTFILE", "cert.pem")
    assert App(port=8443).url == "https://127.0.0.1:8443"


# -- the event loop -----------------------------------------------------------------------------


def test_loop_factories() -> None:
    uvloop = pytest.importorskip("uvloop")
    assert loop_factory("uvloop") is uvloop.new_event_loop
    assert loop_factory("auto") is uvloop.new_event_loop  # installed: auto picks it, as uvicorn does
    # asyncio means the stdlib loop even where uvloop's policy is installed.
    assert loop_factory("asyncio") is asyncio.SelectorEventLoop


def test_without_uvloop_auto_is_asyncio_and_uvloop_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop → ImportError
    assert loop_factory("auto") is asyncio.SelectorEventLoop
    with pytest.raises(ConfigError, match=r"needs uvloop: pip install uvloop"):
        loop_factory("uvloop")


@pytest.mark.parametrize("name", ["asyncio", "uvloop"])
def test_setup_event_loop_makes_the_configured_loop(name: str) -> None:
    if name == "uvloop":
        pytest.importorskip("uvloop")
    app = App(config=ServerConfig(loop=name))
    loop = app.setup_event_loop()
    try:
        assert type(loop).__module__.split(".")[0] == name
        assert asyncio.get_event_loop_policy().get_event_loop() is loop
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def test_a_flag_beats_the_code_in_every_worker(tmp_path: Path) -> None:
    # The workers re-import the app, whose code says loop="asyncio"; --loop uvloop must
    # still reach them (the supervisor hands them its resolved config).
    pytest.importorskip("uvloop")
    (tmp_path / "coded_loop.py").write_text(
        "from hump_listener import App, HTTPContext\nfrom hump_listener import ServerConfig\n"
        "app = App(config=ServerConfig(loop='asyncio'), access_log=False)\n"
        "@app.get('/')\nasync def index(ctx: HTTPContext) -> str:\n    return 'ok'\n"
    )
    args = cli("coded_loop:app", "--app-dir", str(tmp_path), "--workers", "2", "--loop", "uvloop")
    with launch(args) as proc:
        lines = proc.wait_for_count(r"Serving on", 2)
        assert all("loop: uvloop" in line for line in lines), lines
        assert get(proc.serving_port(), "/") == (200, "ok")


# -- bind errors --------------------------------------------------------------------------------


def test_bind_errors_say_what_to_change(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["/venv/bin/hump-listener", "http_web:app"])
    busy = bind_error(OSError(errno.EADDRINUSE, "address already in use"), "127.0.0.1", 8000)
    assert str(busy).startswith("cannot listen on 127.0.0.1:8000: [Errno 98] Address already in use;")
    assert "--port or HUMP_PORT" in str(busy)
    assert "--port or HUMP_PORT" in str(bind_error(PermissionError(errno.EACCES, "denied"), "0.0.0.0", 80))
    unknown = bind_error(socket.gaierror(socket.EAI_NONAME, "Name or service not known"), "nohost", 1)
    assert "cannot resolve host 'nohost'" in str(unknown) and "--host or HUMP_HOST" in str(unknown)
    assert str(bind_error(OSError(errno.EADDRNOTAVAIL, "x"), "::2", 1)).startswith("cannot listen on [::2]:1:")
    for error in (busy, unknown):
        assert "\n" not in str(error)


@pytest.mark.parametrize(
    ("argv0", "flags"),
    [
        ("/venv/bin/hump-listener", True),
        (str(Path("/src/hump_listener/__main__.py")), True),  # python -m hump_listener
        ("/venv/bin/tiny-listener", False),
        ("serve.py", False),  # a program calling app.run(): no flags of ours
    ],
)
def test_messages_name_flags_only_under_our_command_line(
    monkeypatch: pytest.MonkeyPatch, argv0: str, flags: bool
) -> None:
    monkeypatch.setattr(sys, "argv", [argv0, "http_web:app"])
    assert command_line_flags() is flags
    assert how_to_set("broadcast_url") == ("--broadcast-url or HUMP_BROADCAST_URL" if flags else "HUMP_BROADCAST_URL")
    busy = str(bind_error(OSError(errno.EADDRINUSE, "in use"), "127.0.0.1", 8000))
    assert ("--port" in busy) is flags and "HUMP_PORT" in busy
