"""Form bodies: ``FormData`` (what ``await ctx.form()`` returns) and multipart uploads.

``application/x-www-form-urlencoded`` is parsed by the stdlib (``context.py``);
``multipart/form-data`` by python-multipart, an optional extra
(``pip install hump_listener[multipart]``) imported on first use.

Rule 1: the body is parsed as it arrives (``ctx.stream()``), never buffered whole. Text
fields are kept in memory (each at most ``max_field_size``), files go to a
``SpooledTemporaryFile`` that moves to disk above ``spool_max_size``.

Rule 2: limits answer 413 (too many fields or files, a field or file too large; the
route's ``max_body_size`` still caps the whole body), a malformed body 400.

Rule 3: every ``UploadFile`` is closed when the request ends (the context's cleanups),
and at once if parsing fails: no temporary file outlives its request.

Rule 4: python-multipart's own log records (a warning per malformed body, e.g. ``Expected
boundary character 45, got 103 at index 2``) go through ``hump_listener.error`` at DEBUG:
the 400 already says it, and with no logging configured they would otherwise reach
stderr unformatted (logging's last-resort handler). A program that gives python-multipart's
logger handlers of its own keeps them.

File writes run on the event loop: chunks are network-sized and land in the page cache.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import AsyncIterable, Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .errors import HTTPError
from .models import Headers

if TYPE_CHECKING:
    from tempfile import SpooledTemporaryFile

__all__ = [
    "DEFAULT_MAX_FIELD_SIZE",
    "DEFAULT_MAX_FILES",
    "DEFAULT_SPOOL_MAX_SIZE",
    "FormData",
    "UploadFile",
    "parse_multipart",
]

#: Uploads stay in memory up to this size, then move to a temporary file on disk
#: (Starlette's UploadFile spools at 1 MiB too).
DEFAULT_SPOOL_MAX_SIZE = 1024 * 1024
#: Most file parts per form (Starlette's max_files is 1000).
DEFAULT_MAX_FILES = 1000
#: Largest text (non-file) field, which is kept in memory (Starlette's max_part_size).
DEFAULT_MAX_FIELD_SIZE = 1024 * 1024
#: Most bytes of headers one part may have (h11's limit for a whole request head).
MAX_PART_HEADER_BYTES = 16 * 1024

MISSING_EXTRA = (
    "multipart/form-data needs the python-multipart package: pip install python-multipart"
)


class UploadFile:
    """A file from a multipart form. ``await f.read()`` gives its bytes; ``f.file`` is
    the underlying ``SpooledTemporaryFile`` for code that wants a file object.

    ``filename`` is what the client sent: never use it as a path without sanitising it.
    """

    def __init__(
        self,
        filename: str,
        content_type: str | None = None,
        headers: Headers | None = None,
        *,
        spool_max_size: int = DEFAULT_SPOOL_MAX_SIZE,
    ) -> None:
        self.filename = filename
        self.content_type = content_type
        self.headers = headers if headers is not None else Headers()
        # Not a context manager: the file lives as long as the request (Rule 3).
        self.file: SpooledTemporaryFile[bytes] = tempfile.SpooledTemporaryFile(  # noqa: SIM115
            max_size=spool_max_size, mode="w+b"
        )
        self.size = 0

    @property
    def in_memory(self) -> bool:
        """False once the content was spooled to disk."""
        return not getattr(self.file, "_rolled", False)

    @property
    def closed(self) -> bool:
        """The file was closed (by ``close()``, or because the request ended)."""
        return self.file.closed

    async def read(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes (``-1``: the rest) from the current position."""
        return self.file.read(size)

    async def write(self, data: bytes) -> None:
        """Append ``data`` (the parser does; ``size`` grows), spilling to disk past
        ``spool_max_size``."""
        self.file.write(data)
        self.size += len(data)

    async def seek(self, offset: int) -> None:
        """Move to byte ``offset`` (``seek(0)`` before reading again)."""
        self.file.seek(offset)

    def close(self) -> None:
        """Close the file (and delete its temporary file, if it was spooled to disk)."""
        self.file.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(filename={self.filename!r}, "
            f"content_type={self.content_type!r}, size={self.size})"
        )


FormValue = str | UploadFile


class FormData(Mapping[str, FormValue]):
    """An immutable multi-valued mapping like ``models.MultiDict``: ``form[key]`` /
    ``form.get(key)`` give the first value, ``form.getlist(key)`` all of them. Values
    are ``str`` (fields) or ``UploadFile`` (files)."""

    __slots__ = ("_dict", "_list")

    def __init__(self, items: Iterable[tuple[str, FormValue]] = ()) -> None:
        self._list: list[tuple[str, FormValue]] = list(items)
        d: dict[str, FormValue] = {}
        for k, v in self._list:
            d.setdefault(k, v)
        self._dict = d

    def __getitem__(self, key: str) -> FormValue:
        return self._dict[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict)

    def __len__(self) -> int:
        return len(self._dict)

    def getlist(self, key: str) -> list[FormValue]:
        """Every value of the field ``key`` (strings and files), in order."""
        return [v for k, v in self._list if k == key]

    def multi_items(self) -> list[tuple[str, FormValue]]:
        """Every ``(field, value)`` pair, repeated fields included, in order."""
        return list(self._list)

    def files(self) -> list[UploadFile]:
        """Every uploaded file of the form, in order."""
        return [v for _, v in self._list if isinstance(v, UploadFile)]

    def to_dict(self) -> dict[str, FormValue | list[FormValue]]:
        """Single values as themselves, repeated keys as lists."""
        out: dict[str, FormValue | list[FormValue]] = {}
        for k in self._dict:
            values = self.getlist(k)
            out[k] = values[0] if len(values) == 1 else values
        return out

    def close(self) -> None:
        """Close every uploaded file (the app does this when the request ends)."""
        for f in self.files():
            f.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._list!r})"


# ---------------------------------------------------------------------------------------
# multipart/form-data
# ---------------------------------------------------------------------------------------


class _ToOurLog(logging.Handler):
    """Re-logs python-multipart's records on ``hump_listener.error`` at DEBUG (Rule 4)."""

    def emit(self, record: logging.LogRecord) -> None:
        ours = logging.getLogger("hump_listener.error")
        if ours.isEnabledFor(logging.DEBUG):
            ours.debug("python-multipart: %s", record.getMessage())


def _route_logging(module: Any) -> Any:
    """Route ``module``'s logger through ours (Rule 4), once, unless the program set it up."""
    library = logging.getLogger(module.__name__)
    if not library.handlers:
        library.addHandler(_ToOurLog())
        library.propagate = False
    return module


def _import_multipart() -> Any:
    try:
        import python_multipart  # >= 0.0.13

        return _route_logging(python_multipart.multipart)
    except ImportError:
        pass
    try:
        # python-multipart < 0.0.13 (defnull's unrelated "multipart" has no .multipart)
        from multipart import multipart  # type: ignore[import-untyped,unused-ignore]

        return _route_logging(multipart)
    except ImportError:
        raise ImportError(MISSING_EXTRA) from None


# Parser events, collected by the (synchronous) callbacks and handled after each chunk.
_PART_BEGIN, _HEADER_FIELD, _HEADER_VALUE, _HEADER_END, _HEADERS_DONE, _DATA, _PART_END, _END = range(8)


async def parse_multipart(
    body: AsyncIterable[bytes],
    content_type: str,
    *,
    max_fields: int,
    max_files: int = DEFAULT_MAX_FILES,
    max_field_size: int = DEFAULT_MAX_FIELD_SIZE,
    max_file_size: int | None = None,
    spool_max_size: int = DEFAULT_SPOOL_MAX_SIZE,
) -> FormData:
    """Parse a ``multipart/form-data`` body as it streams in (Rules 1-3 above)."""
    mp = _import_multipart()
    _, params = mp.parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise HTTPError(400, "multipart/form-data without a boundary")

    events: list[tuple[int, bytes]] = []
    add = events.append

    def on_data(kind: int) -> Callable[[bytes, int, int], None]:
        return lambda data, start, end: add((kind, data[start:end]))

    def on_event(kind: int) -> Callable[[], None]:
        return lambda: add((kind, b""))

    callbacks = {
        "on_part_begin": on_event(_PART_BEGIN),
        "on_header_field": on_data(_HEADER_FIELD),
        "on_header_value": on_data(_HEADER_VALUE),
        "on_header_end": on_event(_HEADER_END),
        "on_headers_finished": on_event(_HEADERS_DONE),
        "on_part_data": on_data(_DATA),
        "on_part_end": on_event(_PART_END),
        "on_end": on_event(_END),
    }
    try:
        parser = mp.MultipartParser(boundary, callbacks)
    except ValueError as e:  # python-multipart's FormParserError is a ValueError
        raise HTTPError(400, f"Invalid multipart boundary: {e}") from None

    items: list[tuple[str, FormValue]] = []
    uploads: list[UploadFile] = []
    n_fields = n_files = 0
    ended = False
    # Per-part state
    header_field = header_value = b""
    part_headers: list[tuple[bytes, bytes]] = []
    header_bytes = 0
    name = ""
    upload: UploadFile | None = None
    field = bytearray()

    try:
        async for chunk in body:
            if ended:
                continue  # epilogue after the closing boundary: ignored (RFC 2046 §5.1.1)
            try:
                parser.write(chunk)
            except ValueError as e:  # MultipartParseError is a ValueError
                raise HTTPError(400, f"Malformed multipart body: {e}") from None
            for kind, data in events:
                if kind == _DATA:
                    if upload is not None:
                        if max_file_size is not None and upload.size + len(data) > max_file_size:
                            raise HTTPError(413, f"File {upload.filename!r} larger than {max_file_size} bytes")
                        await upload.write(data)
                    else:
                        if len(field) + len(data) > max_field_size:
                            raise HTTPError(413, f"Form field {name!r} larger than {max_field_size} bytes")
                        field += data
                elif kind == _HEADER_FIELD:
                    header_field += data
                    header_bytes += len(data)
                elif kind == _HEADER_VALUE:
                    header_value += data
                    header_bytes += len(data)
                elif kind == _HEADER_END:
                    part_headers.append((header_field.strip().lower(), header_value.strip()))
                    header_field = header_value = b""
                elif kind == _PART_BEGIN:
                    part_headers, header_bytes, upload, field = [], 0, None, bytearray()
                elif kind == _HEADERS_DONE:
                    headers = Headers(part_headers)
                    name, filename = _disposition(mp, headers)
                    if filename is None:
                        n_fields += 1
                        if n_fields > max_fields:
                            raise HTTPError(413, f"Too many form fields (more than {max_fields})")
                    else:
                        n_files += 1
                        if n_files > max_files:
                            raise HTTPError(413, f"Too many files (more than {max_files})")
                        upload = UploadFile(
                            filename, headers.get("content-type"), headers, spool_max_size=spool_max_size
                        )
                        uploads.append(upload)
                elif kind == _PART_END:
                    if upload is not None:
                        await upload.seek(0)
                        items.append((name, upload))
                    else:
                        try:
                            items.append((name, field.decode("utf-8")))
                        except UnicodeDecodeError:
                            raise HTTPError(400, f"Form field {name!r} is not valid UTF-8") from None
                    upload, field = None, bytearray()
                elif kind == _END:
                    ended = True
                if header_bytes > MAX_PART_HEADER_BYTES:
                    raise HTTPError(400, "Multipart part headers too large")
            events.clear()
        if not ended:
            raise HTTPError(400, "Malformed multipart body: the closing boundary is missing")
    except BaseException:
        for f in uploads:
            f.close()
        raise
    return FormData(items)


def _disposition(mp: Any, headers: Headers) -> tuple[str, str | None]:
    """``(name, filename or None)`` from a part's Content-Disposition (400 if absent)."""
    value = headers.get("content-disposition")
    if value is None:
        raise HTTPError(400, "Multipart part without Content-Disposition")
    # Headers decode as latin-1, so the bytes survive the round trip; browsers send
    # names and file names as raw UTF-8 (RFC 7578 §4.2).
    disposition, options = mp.parse_options_header(value)
    if disposition != b"form-data" or b"name" not in options:
        raise HTTPError(400, "Multipart part is not form-data with a name")
    name = options[b"name"].decode("utf-8", "replace")
    filename = options.get(b"filename")
    return name, (filename.decode("utf-8", "replace") if filename is not None else None)
