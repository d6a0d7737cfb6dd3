"""benchmarks/websocket.py: a hump_listener app whose only route echoes WebSocket messages.

``WS /echo`` echoes each message with its own type (text as text, binary as binary), the
handler a user would write from the README. Only the public API is used.

Run: ``HUMP_PORT=8000 tiny-listener --app-dir benchmarks/apps hump_ws:app``. With
``BENCH_LOOP=uvloop`` (``websocket.py --hump-loop uvloop``) the app installs uvloop's event
loop policy, so that the server runs on uvloop: a loop-for-loop comparison with
``--uvicorn-loop uvloop``; hump_listener itself runs on the stdlib loop.
"""

from __future__ import annotations

import asyncio
import os

from hump_listener import App, WebSocket

if os.environ.get("BENCH_LOOP") == "uvloop":
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

app = App()


@app.websocket("/echo")
async def echo(ws: WebSocket) -> None:
    await ws.accept()
    async for message in ws:
        await ws.send(message)
