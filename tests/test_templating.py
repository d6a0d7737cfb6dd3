"""templating.py: ctx.render with Jinja2 (issue 22 item 6): autoescaping, the request in
the template, errors that name the template and line, re-reading in development mode,
and the message when Jinja2 is missing."""

from __future__ import annotations

import builtins
import logging
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from process_helpers import ROOT, get, launch
from process_helpers import cli as cli_cmd
from tiny_listener import Param

from hump_listener import App, HTTPContext
from hump_listener.templating import JINJA2_HINT, TemplateError, Templates
from hump_listener.testing import TestClient


@pytest.fixture
def app(tmp_path: Path) -> App:
    app = App(access_log=False)
    app.templates = Templates(tmp_path)
    (tmp_path / "hello.html").write_text("<p>Hello, {{ name }}! ({{ request.path }})</p>")

    @app.get("/hello/{name}")
    async def hello(ctx: HTTPContext, name: Param) -> None:
        ctx.render("hello.html", name=name)

    return app


def test_render_is_autoescaped_html_that_sees_the_request(app: App) -> None:
    with TestClient(app) as client:
        r = client.get("/hello/%3Cscript%3E")
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.text == "<p>Hello, &lt;script&gt;! (/hello/&lt;script&gt;)</p>"


def test_autoescape_cannot_be_turned_off(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="escape everything"):
        Templates(tmp_path, autoescape=False)


def test_a_syntax_error_names_the_template_and_line(tmp_path: Path) -> None:
    (tmp_path / "broken.html").write_text("<h1>ok</h1>\n{% if x %}\n<p>{{ x }</p>\n")
    with pytest.raises(TemplateError, match=r"^broken\.html, line 3: unexpected '}'"):
        Templates(tmp_path).render("broken.html", {})


def test_an_error_while_rendering_names_the_template_and_line(tmp_path: Path) -> None:
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "div.html").write_text("one\ntwo\n{{ 1 // zero }}\n")
    with pytest.raises(TemplateError, match=r"^parts/div\.html, line 3: ZeroDivisionError"):
        Templates(tmp_path).render("parts/div.html", {"zero": 0})


def test_a_missing_template_names_the_directory(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match=rf"template 'nope\.html' not found in {tmp_path}"):
        Templates(tmp_path).render("nope.html", {})


def test_a_handlers_template_error_is_a_logged_500(app: App, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "hello.html").write_text("{{ name.missing.deeper }}")
    with caplog.at_level(logging.ERROR, "hump_listener.error"), TestClient(app) as client:
        assert client.get("/hello/bob").status_code == 500
    assert "hello.html, line 1: UndefinedError" in caplog.text


@pytest.mark.parametrize("debug", [False, True])
def test_templates_are_reread_only_in_development_mode(tmp_path: Path, debug: bool) -> None:
    """--reload restarts the process for .py changes only: a changed template must be
    read again in development mode (config.debug), and cached in production."""
    page = tmp_path / "page.html"
    page.write_text("first")
    templates = Templates(tmp_path)
    assert templates.render("page.html", {}, debug) == "first"
    page.write_text("second")
    os.utime(page, (page.stat().st_atime, page.stat().st_mtime + 10))  # a later mtime, surely
    assert templates.render("page.html", {}, debug) == ("second" if debug else "first")


def test_the_app_renders_in_its_configured_mode(app: App, tmp_path: Path) -> None:
    app.configure(debug=True)
    with TestClient(app) as client:
        assert "Hello, bob!" in client.get("/hello/bob").text
        page = tmp_path / "hello.html"
        page.write_text("changed {{ name }}")
        os.utime(page, (page.stat().st_atime, page.stat().st_mtime + 10))
        assert client.get("/hello/bob").text == "changed bob"


RELOAD_APP = """
from pathlib import Path

from hump_listener import App, HTTPContext
from hump_listener.templating import Templates

app = App(access_log=False)
app.templates = Templates(Path(__file__).parent / "templates")


@app.get("/")
async def index(ctx: HTTPContext) -> None:
    ctx.render("index.html", name="bob")
"""


def test_a_changed_template_is_served_under_reload_without_a_restart(tmp_path: Path) -> None:
    """Issue 22 item 6, end to end: ``--reload`` restarts the process for ``.py`` changes;
    an edited template shows on the next request of the same process."""
    pytest.importorskip("watchfiles")
    (tmp_path / "reload_templates.py").write_text(RELOAD_APP)
    (tmp_path / "templates").mkdir()
    page = tmp_path / "templates" / "index.html"
    page.write_text("<p>Hello, {{ name }}!</p>")
    args = cli_cmd("reload_templates:app", "--reload", "--app-dir", str(tmp_path), "--port", "0")
    with launch(args, env={"PYTHONDONTWRITEBYTECODE": "1"}, cwd=ROOT) as proc:
        port = proc.serving_port()
        assert get(port, "/") == (200, "<p>Hello, bob!</p>")
        page.write_text("<p>Goodbye, {{ name }}!</p>")
        os.utime(page, (page.stat().st_atime, page.stat().st_mtime + 10))  # a later mtime, surely
        assert get(port, "/") == (200, "<p>Goodbye, bob!</p>")  # the same port: the same process
        assert len([line for line in proc.lines if "Serving on" in line]) == 1
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(timeout=30) == 0


def test_without_jinja2_the_error_names_a_command_that_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_import = builtins.__import__

    def no_jinja(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "jinja2":
            raise ImportError("No module named 'jinja2'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_jinja)
    with pytest.raises(ImportError, match=f"^{JINJA2_HINT}$"):
        Templates(tmp_path).render("x.html", {})
