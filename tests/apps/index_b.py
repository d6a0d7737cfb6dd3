from hump_listener import App, HTTPContext


def register(app: App) -> None:
    @app.on_event("GET:/b")
    async def index(ctx: HTTPContext) -> None:
        ctx.response(200, "b")
