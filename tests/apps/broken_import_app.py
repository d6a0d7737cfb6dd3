"""A tests-only app whose import fails half-way (tests/test_small_ones.py): the
command line must say where."""

from hump_listener import App

app = App()


@app.get("/")
async def index(ctx: HTTPContex) -> str:  # type: ignore[name-defined]  # noqa: F821 (the typo is the point)
    return "never"
