"""Hump's README, second example: "You can also return another HTTP status code with data
attached". Its snippet continues the first ("As defined in example usage before"), so this
is the first example with the second's import and handler in place of the first's; the
import lines name ``hump_listener.compat.hump`` instead of ``hump``, and the colon the
README's snippet misses after ``async def index(request: Request)`` is added.

    $ python teapot.py        # then http://localhost:8342/ answers 418 "Howdy!"

tests/test_examples.py runs this file over a real socket.
"""

import asyncio
from hump_listener.compat.hump import Hump, Request
from hump_listener.compat.hump import Response, statuses

app = Hump("", 8342)

@app.get("/")
async def index(request: Request):
    return Response("Howdy!", statuses.IM_A_TEAPOT)

asyncio.run(app.serve())
