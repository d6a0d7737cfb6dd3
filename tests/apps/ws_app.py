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


@app.websocket("/ws/deny")
async def deny(ws: WebSocket) -> None:
    await ws.deny(401, "who are you?")


@app.websocket("/ws/bye")
async def bye(ws: WebSocket) -> None:
    await ws.accept(subprotocol="v2" if "v2" in ws.subprotocols else None)
    await ws.send_json({"scheme": ws.request.scheme, "path": ws.request.path})
    await ws.close(4001, "done")


