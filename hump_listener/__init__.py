"""hump_listener: a fast HTTP/1.1 web framework on tiny-listener and h11.

The public API is exactly ``__all__`` (a test keeps it so): one import line serves an
app, tiny-listener's ``Param``, ``Data``, ``Depends`` and ``Event`` included; the errors
of optional subsystems live in their modules (``hump_listener.broadcast``)::

    from hump_listener import App, HTTPContext, Param

    app = App()

    @app.on_event("GET:/user/{username}")
    async def hello(ctx: HTTPContext, username: Param) -> None:
        ctx.response(200, f"Hello, {username}!")
"""

from tiny_listener import Data, Depends, Event, Param

from . import statuses
from .app import App
from .broadcast import Broadcast
from .config import ServerConfig
from .context import HTTPContext
from .errors import ClientDisconnect, HTTPError, ResponseAlreadySent, RouteDefinitionError
from .forms import FormData, UploadFile
from .models import Headers, MultiDict, MutableHeaders, Request, Response
from .responses import FileResponse, StreamingResponse
from .websocket import WebSocket, WebSocketDisconnect, WebSocketState

__version__ = "0.1.0"

__all__ = [
    "App",
    "Broadcast",
    "ClientDisconnect",
    "Data",
    "Depends",
    "Event",
    "FileResponse",
    "FormData",
    "HTTPContext",
    "HTTPError",
    "Headers",
    "MultiDict",
    "MutableHeaders",
    "Param",
    "Request",
    "Response",
    "ResponseAlreadySent",
    "RouteDefinitionError",
    "ServerConfig",
    "StreamingResponse",
    "UploadFile",
    "WebSocket",
    "WebSocketDisconnect",
    "WebSocketState",
    "__version__",
    "statuses",
]
