"""A WebSocket app for real-process tests: an echo that logs how its connection ended."""

import logging

from hump_listener import App, WebSocket, WebSocketDisconnect

app = App()
log = logging.getLogger("hump_listener.error")


@app.websocket("/ws")
async def echo(ws: WebSocket) -> None:
    await ws.accept()
    try:
        while True:
            await ws.send(await ws.receive())
    except WebSocketDisconnect as exc:
        log.warning("ws handler saw close %d", exc.code)
        raise


@app.shutdown
async def done() -> None:
    log.warning("shutdown callback ran")
