"""forms.py rule 4: python-multipart's own log records go through our logger (issue 10,
item 7); without it they reach stderr unformatted through logging's last resort."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from hump_listener.errors import HTTPError
from hump_listener.forms import parse_multipart


async def malformed() -> AsyncIterator[bytes]:
    yield b"xxgg"  # no boundary where one must be


async def test_python_multipart_warnings_become_our_debug_lines(caplog: pytest.LogCaptureFixture) -> None:
    from hump_listener import forms

    caplog.set_level(logging.DEBUG)
    with pytest.raises(HTTPError) as raised:
        await parse_multipart(malformed(), "multipart/form-data; boundary=abc", max_fields=10)
    assert raised.value.status == 400  # the answer itself says what was wrong
    ours = [r for r in caplog.records if r.name == "hump_listener.error"]
    assert ours and all(r.levelno == logging.DEBUG for r in ours)
    assert "Expected boundary character" in ours[0].getMessage()
    # Its records stop at its own logger, whose one handler of ours re-logs them: logging's
    # last resort (stderr, unformatted) is never reached. (pytest attaches its capture
    # handlers to non-propagating loggers too, so caplog cannot show that part.)
    library = logging.getLogger(forms._import_multipart().__name__)
    assert not library.propagate
    assert [type(h) for h in library.handlers if type(h).__module__ != "_pytest.logging"] == [forms._ToOurLog]


async def test_a_program_that_configured_python_multipart_keeps_its_handlers() -> None:
    from hump_listener import forms

    class Module:
        __name__ = "fake_multipart_for_test"

    library = logging.getLogger(Module.__name__)
    mine = logging.NullHandler()
    library.addHandler(mine)
    try:
        forms._route_logging(Module)
        assert library.handlers == [mine] and library.propagate
    finally:
        library.removeHandler(mine)
