"""tiny-listener's own HTTP example (its docs, "Tiny Web Framework", tiny-listener 1.2.1),
ported to hump_listener: its HTTPContext, H11 and App classes (and the h11 import and PORT
they used) are deleted and App, HTTPContext come from hump_listener; the handlers below
are the original's, byte for byte.

    $ tiny-listener http_web:app        # from this directory
    then open http://127.0.0.1:8000/user/bob: the browser shows "Hello, bob!"

tests/test_examples.py runs this file over a real socket and in Chromium.
"""

from tiny_listener import Param

from hump_listener import App, HTTPContext

app = App()
app.set_context_cls(HTTPContext)


@app.on_event("GET:/user/{username}")
async def hello(ctx: HTTPContext, username: Param):
    ctx.response(200, f"Hello, {username}!".encode())


@app.on_event("GET:/throw")
async def throw(ctx: HTTPContext):
    ctx.throw_500()


@app.on_event("GET:/")
async def home(ctx: HTTPContext):
    ctx.response(200, b"Welcome!")
