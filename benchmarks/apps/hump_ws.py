"""benchmarks/websocket.py: a hump_listener app whose only route echoes WebSocket messages.

``WS /echo`` echoes each message with its own type (text as text, binary as binary), the
handler a user would write from the README. Only the public API is used.

Run: ``HUMP_PORT=8000 tiny-listener --app-dir benchmarks/apps hump_ws:app``.
"""

from __future__ import annotations

from hump_listener import App, WebSocket

app = App()


@app.websocket("/echo")
async def echo(ws: WebSocket) -> None:
    await ws.accept()
    async for message in ws:
        await ws.send(message)
