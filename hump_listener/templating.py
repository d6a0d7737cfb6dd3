"""HTML templates with Jinja2 (the ``templates`` extra, imported on first use).

    app.templates = Templates(Path(__file__).parent / "templates")   # default: ./templates

    @app.get("/hello/{name}")
    async def hello(ctx: HTTPContext, name: Param) -> None:
        ctx.render("hello.html", name=name)          # text/html; charset=utf-8

What a Flask or Starlette user expects, and what this module promises:

1. Autoescaping is on for every template (``.html`` or not): ``{{ name }}`` with
   ``name = "<script>"`` renders ``&lt;script&gt;``; ``{{ html | safe }}`` opts out.
2. Templates are compiled once and cached. In development mode (``config.debug``: on
   with ``--reload`` or ``HUMP_DEBUG=1``) a template whose file changed is read again on
   its next render, as ``--reload`` restarts the process only for ``.py`` changes.
3. An error says which template and which line: ``TemplateError("page.html, line 3:
   unexpected '}'")``, raised from Jinja2's own (a logged 500 in a handler).
4. The template sees what the handler passed, and ``request`` (the ``Request``).
5. Without Jinja2, the first render raises ``ImportError`` naming ``pip install jinja2``.
"""

from __future__ import annotations

import os
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import jinja2

    from .app import App
    from .context import HTTPContext

__all__ = ["DEFAULT_DIRECTORY", "JINJA2_HINT", "TemplateError", "Templates", "render"]

#: Where templates are looked for unless the app says otherwise (Flask's and Starlette's
#: habit), relative to the working directory, as ``app.static`` directories are.
DEFAULT_DIRECTORY = "templates"
JINJA2_HINT = "ctx.render needs the jinja2 package: pip install jinja2"


class TemplateError(Exception):
    """A template that cannot be loaded or rendered: the message names it and the line."""


class Templates:
    """A directory of Jinja2 templates. ``options`` go to ``jinja2.Environment``
    (``trim_blocks=True``, ``extensions=[...]``); ``autoescape`` stays on."""

    def __init__(self, directory: str | os.PathLike[str] = DEFAULT_DIRECTORY, **options: Any) -> None:
        if "autoescape" in options and options["autoescape"] is not True:
            raise ValueError("Templates escape everything: mark trusted HTML with `| safe` instead")
        self.directory = Path(directory)
        self._options = options
        self._environment: jinja2.Environment | None = None

    def environment(self, debug: bool = False) -> jinja2.Environment:
        """The Jinja2 environment, made on first use; ``debug`` re-reads changed files."""
        env = self._environment
        if env is None:
            try:
                import jinja2
            except ImportError as exc:
                raise ImportError(JINJA2_HINT) from exc
            env = jinja2.Environment(
                loader=jinja2.FileSystemLoader(self.directory.resolve()), autoescape=True, **self._options
            )
            self._environment = env
        env.auto_reload = debug  # checked on every get_template: cheap to set each time
        return env

    def render(self, name: str, values: dict[str, Any], debug: bool = False) -> str:
        """``name`` rendered with ``values``; ``TemplateError`` names the template and line."""
        env = self.environment(debug)
        import jinja2

        try:
            return env.get_template(name).render(values)
        except jinja2.TemplateNotFound as exc:
            raise TemplateError(f"template {exc.name!r} not found in {self.directory.resolve()}") from exc
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"{exc.name or name}, line {exc.lineno}: {exc.message}") from exc
        except Exception as exc:  # an error while rendering: find the template's line
            where, line = _template_line(exc, self.directory.resolve())
            raise TemplateError(f"{where or name}, line {line}: {type(exc).__name__}: {exc}") from exc


def _template_line(exc: BaseException, directory: Path) -> tuple[str | None, int | None]:
    """The innermost frame of ``exc``'s traceback inside a template file (Jinja2 rewrites
    the traceback so template code has the template's file name and line)."""
    found: tuple[str | None, int | None] = (None, None)
    for frame in traceback.extract_tb(exc.__traceback__):
        path = Path(frame.filename)
        if path.is_relative_to(directory):
            found = (path.relative_to(directory).as_posix(), frame.lineno)
    return found


def render(ctx: HTTPContext, name: str, values: dict[str, Any]) -> str:
    """What ``ctx.render`` renders: the app's ``templates`` in its ``config.debug`` mode,
    with ``request`` added to what the template sees."""
    app = cast("App", ctx.listener)  # an HTTPContext's listener is always the App
    templates = app.templates
    values.setdefault("request", ctx.request)
    return templates.render(name, values, app.config.debug)
