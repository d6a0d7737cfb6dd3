"""The demo app (``http_web:app``) with test-chosen server limits, for attack tests.

``$HUMP_TEST_SERVER_OPTIONS`` (JSON) are ``ServerConfig`` fields set on the app (e.g.
``{"max_connections": 64}``); ``$HUMP_TEST_STATIC_DIR`` is served at ``/big`` (large
files for slow-reader tests). Everything else is the demo as a user runs it.
"""

from __future__ import annotations

import json
import os

from http_web import app

app.configure(**json.loads(os.environ.get("HUMP_TEST_SERVER_OPTIONS") or "{}"))
if os.environ.get("HUMP_TEST_STATIC_DIR"):
    app.static("/big", os.environ["HUMP_TEST_STATIC_DIR"])

__all__ = ["app"]
