"""Hump's README "Usage example" (https://pypi.org/project/hump/), run on hump_listener:
only the import line changed, from ``hump`` to ``hump_listener.compat.hump``.

    $ python hello.py         # then http://localhost:8342/ answers "Hello, world!"

tests/test_examples.py runs this file over a real socket.
"""

import asyncio
from hump_listener.compat.hump import Hump, Request

app = Hump("", 8342)

@app.get("/")
async def index(request: Request):
    return "Hello, world!"

asyncio.run(app.serve())
