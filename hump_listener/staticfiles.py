"""Static files: ``app.static("/static", "public")`` serves ``public/`` under ``/static/``.

Rule 1 (containment): a request names a file *inside* the root or gets 404, never 403
(no hint about what exists outside). Refused before the file system is touched:
``..`` and ``.`` segments, empty segments (``a//b``), absolute paths, backslashes, NUL,
and an encoded ``/`` or ``\\`` in the raw path (``%2f``, ``%5c``: the router has already
decoded the path, so only ``raw_path`` still shows them). Then the path is resolved
(symlinks included) and must still lie under the resolved root.

Rule 2 (what is served): regular files only. A directory serves its ``index.html`` when
``index`` is set (redirecting ``/dir`` to ``/dir/`` first, so relative links in the page
resolve), else 404. FIFOs, devices and sockets are 404.

Rule 3 (HTTP): Content-Type from ``mimetypes``, ETag + Last-Modified, 304 on
If-None-Match / If-Modified-Since, one byte range (206/416), body by ``sendfile``:
all of it is ``responses.serve_file``.

The stat and realpath calls run on the event loop: they are metadata lookups, cheap on
local disks (Starlette sends them to a thread pool; the extra hop costs more than the
call here).
"""

from __future__ import annotations

import os
import stat as stat_module
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from .context import HTTPContext
from .errors import HTTPError
from .models import Response
from .responses import serve_file

__all__ = ["StaticFiles"]

#: Name of the path parameter in the route ``App.static`` registers.
PATH_PARAM = "static_path"


class StaticFiles:
    """Serve the files under ``directory``; ``App.static`` registers it as a GET route.

    ``index``: the file served for a directory (``None``: directories are 404).
    ``headers``: added to every file response, e.g. ``{"Cache-Control": "max-age=3600"}``.
    ``check_dir``: fail at registration if ``directory`` is not a directory.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        index: str | None = "index.html",
        headers: Mapping[str, str] | None = None,
        check_dir: bool = True,
    ) -> None:
        self.directory = Path(directory)
        self.root = os.path.realpath(self.directory)
        if check_dir and not os.path.isdir(self.root):
            raise ValueError(f"static directory {os.fspath(directory)!r} does not exist")
        if index is not None and (not index or "/" in index or "\\" in index or index in (".", "..")):
            raise ValueError(f"index must be a plain file name, got {index!r}")
        self.index = index
        self.headers = dict(headers or {})

    def resolve(self, rel: str, raw_path: bytes) -> str | None:
        """The real path of the file ``rel`` names under the root, or ``None`` if the
        request must be refused (Rule 1). Directories are resolved too."""
        lowered = raw_path.lower()
        if b"%2f" in lowered or b"%5c" in lowered or b"%00" in lowered:
            return None
        if "\\" in rel or "\x00" in rel or rel.startswith("/"):
            return None
        parts = rel.split("/")
        if parts and parts[-1] == "":
            parts.pop()  # one trailing slash: a directory URL
        if any(part in ("", ".", "..") for part in parts):
            return None
        # A drive or UNC prefix on Windows would make the join absolute; refuse it.
        if parts and os.path.splitdrive(parts[0])[0]:
            return None
        real = os.path.realpath(os.path.join(self.root, *parts))
        if real != self.root and not real.startswith(self.root.rstrip(os.sep) + os.sep):
            return None  # a symlink (or a case-folding file system) leads outside the root
        return real

    async def __call__(self, ctx: HTTPContext) -> Response:
        request = ctx.request
        rel = str(ctx.params.get(PATH_PARAM, ""))
        real = self.resolve(rel, request.raw_path)
        if real is None:
            raise HTTPError(404)
        try:
            st = os.stat(real)
        except (OSError, ValueError):
            raise HTTPError(404) from None
        if stat_module.S_ISDIR(st.st_mode):
            if self.index is None:
                raise HTTPError(404)
            real = os.path.join(real, self.index)
            try:
                st = os.stat(real)
            except (OSError, ValueError):
                raise HTTPError(404) from None
            if not stat_module.S_ISREG(st.st_mode):
                raise HTTPError(404)
            if rel and not rel.endswith("/"):
                query = b"?" + request.query_string if request.query_string else b""
                location = (request.raw_path + b"/" + query).decode("latin-1")
                return Response(b"", 307, {"Location": location})
        elif rel.endswith("/"):
            raise HTTPError(404)  # "file.txt/" names a directory that is not there
        return serve_file(real, request.headers, stat_result=st, headers=self.headers)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({os.fspath(self.directory)!r})"


def static_handler(files: StaticFiles) -> Callable[[HTTPContext], Awaitable[Response]]:
    """An ``async def`` endpoint for ``files`` (the router wants a coroutine function,
    whose ``ctx: HTTPContext`` annotation it resolves in this module)."""

    async def static_files(ctx: HTTPContext) -> Response:
        return ctx.set_reply(await files(ctx))

    static_files.__qualname__ = f"static_files[{os.fspath(files.directory)}]"
    return static_files
