"""benchmarks/websocket.py: a Starlette app with one ``WebSocketRoute`` that echoes.

``/echo`` echoes each message with its own type, the way Starlette's documentation writes
an endpoint (``accept``, ``receive``, ``send_text``/``send_bytes``), so the figures include
Starlette's routing and ``WebSocket`` wrapper on top of uvicorn's stack.

Run: ``uvicorn --app-dir benchmarks/peers starlette_ws:app --ws websockets-sansio``.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is not None:
                await websocket.send_text(text)
            else:
                await websocket.send_bytes(message["bytes"])
    except WebSocketDisconnect:
        return


app = Starlette(routes=[WebSocketRoute("/echo", echo)])
