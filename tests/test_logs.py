"""logs.py: default logging only when the program configured none, one-line start-up
errors, and ``startup_failed``'s exit status 1.

pytest itself puts handlers on the root logger (at the start of each test's call), so a
test that needs "no logging configured" takes them away inside its body
(``no_logging``), and every test restores the ``hump_listener`` logger it touched.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import pytest

from hump_listener.logs import FORMAT, configure_default_logging, log_startup_error, startup_failed


@pytest.fixture(autouse=True)
def restore_our_loggers() -> Iterator[None]:
    ours = logging.getLogger("hump_listener")
    error = logging.getLogger("hump_listener.error")
    saved = (ours.level, list(ours.handlers), error.disabled)
    yield
    ours.setLevel(saved[0])
    ours.handlers[:] = saved[1]
    error.disabled = saved[2]


@contextlib.contextmanager
def no_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = list(root.handlers)
    root.handlers.clear()
    logging.getLogger("hump_listener").handlers.clear()
    try:
        yield
    finally:
        root.handlers[:] = saved


def test_a_stderr_handler_is_added_when_nothing_is_configured() -> None:
    ours = logging.getLogger("hump_listener")
    with no_logging():
        configure_default_logging("debug")
        assert ours.level == logging.DEBUG
        [handler] = ours.handlers
        assert isinstance(handler, logging.StreamHandler)
        assert handler.formatter is not None and handler.formatter._fmt == FORMAT
        configure_default_logging(logging.WARNING)  # a level as a number too; no second handler
        assert ours.level == logging.WARNING
        assert ours.handlers == [handler]


def test_configured_logging_is_left_alone_but_the_level_applies() -> None:
    assert logging.getLogger().handlers  # pytest's
    configure_default_logging("error")
    ours = logging.getLogger("hump_listener")
    assert ours.handlers == []
    assert ours.level == logging.ERROR


def test_a_startup_error_is_one_line_on_the_error_logger(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="hump_listener.error"):
        log_startup_error("cannot listen on 127.0.0.1:8000: [Errno 98] in use")
    [record] = caplog.records
    assert (record.name, record.levelno) == ("hump_listener.error", logging.ERROR)
    assert record.getMessage() == "cannot listen on 127.0.0.1:8000: [Errno 98] in use"
    assert record.exc_info is None  # one line, no traceback


def test_a_silenced_error_logger_still_gets_the_line_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    logging.getLogger("hump_listener.error").disabled = True
    log_startup_error("bad setting")
    assert capsys.readouterr().err == "ERROR    bad setting\n"


def test_startup_failed_exits_1(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="hump_listener.error"), pytest.raises(SystemExit) as exc:
        startup_failed("HUMP_PORT must be an integer 0-65535, got 'x'")
    assert exc.value.code == 1
    assert "HUMP_PORT must be" in caplog.text
