"""Every use of tiny-listener's private names, in one place.

Checked against tiny-listener **1.2.1** (the version pinned in pyproject.toml). When the
pin moves, this is the one file to re-read against the new release; ``verify()`` (run by
tests/test_tiny_internals.py) fails loudly, naming what moved, if any of these is gone
or changed shape.

What we reach into, and why:

- ``Listener._startup`` / ``Listener._shutdown``: the lists ``@app.startup`` /
  ``@app.shutdown`` append to. ``App.run_startup()`` / ``App.run_shutdown()`` run them
  with one error policy (tiny-listener only runs them inside its own ``main()`` and
  ``graceful_shutdown()``), and the worker process puts its own callback first.
- ``Listener._middleware_before_event`` / ``_middleware_after_event`` /
  ``_error_handlers``: the lists ``@app.before_event`` / ``@app.after_event`` /
  ``@app.on_error`` append to. We run the hooks ourselves (planned injection, the right
  ``Event`` for background events), so we need the lists.
- ``Hook._Hook__fn``: the function a tiny-listener ``Hook`` wraps (``Route.hook``,
  ``Depends``); tiny-listener has no public accessor. We plan its injection once.
- ``Route.__init__``'s attributes (``name``, ``path``, ``opts``, ``hook``): it compiles
  ``path`` with tiny-listener's own regex compiler (``compile_path``), which knows neither
  our convertors nor ``<int:id>`` / ``:name`` placeholders. An ``Endpoint`` matches with
  our ``routing.Template``, so ``init_route_without_regex`` sets what ``Route.__init__``
  sets without compiling anything (``path_regex``/``convertors`` stay unset: only
  ``Route.match`` reads them, and ``Endpoint`` overrides it).

Nothing else in hump_listener may use a tiny-listener name starting with ``_``: the
typing stubs (typings/tiny_listener) do not declare them, so mypy refuses any other use.
The lists returned here are tiny-listener's own (live) objects, not copies.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

import tiny_listener
from tiny_listener import Hook, Listener, Route

__all__ = [
    "CHECKED_VERSION",
    "after_event_hooks",
    "before_event_hooks",
    "error_handlers",
    "hook_fn",
    "init_route_without_regex",
    "shutdown_callbacks",
    "startup_callbacks",
    "verify",
]

#: The tiny-listener release these accessors were read against.
CHECKED_VERSION = "1.2.1"

Callback = Callable[[], Awaitable[Any]]

_LISTENER_LISTS = (
    "_startup",
    "_shutdown",
    "_middleware_before_event",
    "_middleware_after_event",
    "_error_handlers",
)
_HOOK_FN = "_Hook__fn"


def startup_callbacks(listener: Listener[Any]) -> list[Callback]:
    """The live list ``@listener.startup`` appends to."""
    return cast("list[Callback]", getattr(listener, "_startup"))  # noqa: B009


def shutdown_callbacks(listener: Listener[Any]) -> list[Callback]:
    """The live list ``@listener.shutdown`` appends to."""
    return cast("list[Callback]", getattr(listener, "_shutdown"))  # noqa: B009


def before_event_hooks(listener: Listener[Any]) -> list[Any]:
    """The live list of ``before_event`` hooks (``hook(event, params)`` callables)."""
    return cast("list[Any]", getattr(listener, "_middleware_before_event"))  # noqa: B009


def after_event_hooks(listener: Listener[Any]) -> list[Any]:
    """The live list of ``after_event`` hooks (``hook(event, params)`` callables)."""
    return cast("list[Any]", getattr(listener, "_middleware_after_event"))  # noqa: B009


def error_handlers(listener: Listener[Any]) -> list[tuple[type[Exception], Any]]:
    """The live list of ``(exception class, hook)`` pairs ``@listener.on_error`` fills."""
    return cast("list[tuple[type[Exception], Any]]", getattr(listener, "_error_handlers"))  # noqa: B009


def hook_fn(hook: Any) -> Callable[..., Awaitable[Any]]:
    """The coroutine function a tiny-listener ``Hook`` / ``Depends`` wraps."""
    return cast("Callable[..., Awaitable[Any]]", getattr(hook, _HOOK_FN))


def init_route_without_regex(
    route: Route, path: str, fn: Callable[..., Any], opts: dict[str, Any] | None
) -> None:
    """Do what tiny-listener 1.2.1's ``Route.__init__(path, fn, opts)`` does, minus
    ``compile_path``; ``Hook(fn)`` still checks that ``fn`` is a coroutine function."""
    route.name = getattr(fn, "__name__", type(fn).__name__)
    route.path = path
    route.opts = opts or {}
    route.hook = Hook(fn)


_ROUTE_ATTRIBUTES = ("name", "path", "opts", "hook")


def verify() -> list[str]:
    """What no longer holds in the installed tiny-listener (empty: all is as checked)."""
    problems: list[str] = []
    version = getattr(tiny_listener, "__version__", "?")
    if version != CHECKED_VERSION:
        problems.append(
            f"tiny-listener {version} is installed; hump_listener.tiny_internals was checked "
            f"against {CHECKED_VERSION}"
        )
    listener: Listener[Any] = Listener()
    for name in _LISTENER_LISTS:
        value = getattr(listener, name, None)
        if not isinstance(value, list):
            problems.append(f"Listener().{name} is {type(value).__name__}, expected a list")

    async def probe() -> None: ...

    # The registration methods must append to exactly those lists.
    appended: dict[str, tuple[Callable[..., None], tuple[Any, ...]]] = {
        "_startup": (listener.add_startup_callback, (probe,)),
        "_shutdown": (listener.add_shutdown_callback, (probe,)),
        "_middleware_before_event": (listener.add_before_event_hook, (probe,)),
        "_middleware_after_event": (listener.add_after_event_hook, (probe,)),
        "_error_handlers": (listener.add_on_error_hook, (probe, ValueError)),
    }
    for name, (register, args) in appended.items():
        before: Any = getattr(listener, name, None)
        if not isinstance(before, list):
            continue
        count = len(before)
        try:
            register(*args)
        except Exception as exc:
            problems.append(f"registering into Listener.{name} failed: {exc!r}")
            continue
        after: list[Any] = getattr(listener, name)
        if after is not before or len(after) != count + 1:
            problems.append(f"Listener.{name} is no longer the list its registration method appends to")
    route = Route(path="/probe", fn=probe)
    for name in _ROUTE_ATTRIBUTES:
        if not hasattr(route, name):
            problems.append(f"Route().{name} is gone: init_route_without_regex sets what Route.__init__ no longer does")
    hook = Hook(probe)
    if getattr(hook, _HOOK_FN, None) is not probe:
        problems.append(f"Hook.{_HOOK_FN} no longer holds the wrapped function")
    return problems
