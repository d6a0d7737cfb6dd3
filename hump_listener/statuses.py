"""Named HTTP status codes (RFC 9110 and friends), as plain ints.

``statuses.IM_A_TEAPOT == 418``; ``statuses.reason(404) == "Not Found"``.
Generated from :class:`http.HTTPStatus` so names and phrases match the stdlib.
"""

from __future__ import annotations

from http import HTTPStatus

from .seam import reason_phrase

CONTINUE: int = 100
SWITCHING_PROTOCOLS: int = 101
PROCESSING: int = 102
EARLY_HINTS: int = 103
OK: int = 200
CREATED: int = 201
ACCEPTED: int = 202
NON_AUTHORITATIVE_INFORMATION: int = 203
NO_CONTENT: int = 204
RESET_CONTENT: int = 205
PARTIAL_CONTENT: int = 206
MULTI_STATUS: int = 207
ALREADY_REPORTED: int = 208
IM_USED: int = 226
MULTIPLE_CHOICES: int = 300
MOVED_PERMANENTLY: int = 301
FOUND: int = 302
SEE_OTHER: int = 303
NOT_MODIFIED: int = 304
USE_PROXY: int = 305
TEMPORARY_REDIRECT: int = 307
PERMANENT_REDIRECT: int = 308
BAD_REQUEST: int = 400
UNAUTHORIZED: int = 401
PAYMENT_REQUIRED: int = 402
FORBIDDEN: int = 403
NOT_FOUND: int = 404
METHOD_NOT_ALLOWED: int = 405
NOT_ACCEPTABLE: int = 406
PROXY_AUTHENTICATION_REQUIRED: int = 407
REQUEST_TIMEOUT: int = 408
CONFLICT: int = 409
GONE: int = 410
LENGTH_REQUIRED: int = 411
PRECONDITION_FAILED: int = 412
REQUEST_ENTITY_TOO_LARGE: int = 413
REQUEST_URI_TOO_LONG: int = 414
UNSUPPORTED_MEDIA_TYPE: int = 415
REQUESTED_RANGE_NOT_SATISFIABLE: int = 416
EXPECTATION_FAILED: int = 417
IM_A_TEAPOT: int = 418
MISDIRECTED_REQUEST: int = 421
UNPROCESSABLE_ENTITY: int = 422
LOCKED: int = 423
FAILED_DEPENDENCY: int = 424
TOO_EARLY: int = 425
UPGRADE_REQUIRED: int = 426
PRECONDITION_REQUIRED: int = 428
TOO_MANY_REQUESTS: int = 429
REQUEST_HEADER_FIELDS_TOO_LARGE: int = 431
UNAVAILABLE_FOR_LEGAL_REASONS: int = 451
INTERNAL_SERVER_ERROR: int = 500
NOT_IMPLEMENTED: int = 501
BAD_GATEWAY: int = 502
SERVICE_UNAVAILABLE: int = 503
GATEWAY_TIMEOUT: int = 504
HTTP_VERSION_NOT_SUPPORTED: int = 505
VARIANT_ALSO_NEGOTIATES: int = 506
INSUFFICIENT_STORAGE: int = 507
LOOP_DETECTED: int = 508
NOT_EXTENDED: int = 510
NETWORK_AUTHENTICATION_REQUIRED: int = 511

#: Reason phrase per status code.
REASONS: dict[int, str] = {s.value: s.phrase for s in HTTPStatus}


def reason(status: int) -> str:
    """The reason phrase for ``status``: the registered one, else its class's ("Client
    Error" for 499); the same phrase the status line carries (``seam.reason_phrase``)."""
    return REASONS.get(status) or reason_phrase(status)


def is_valid(status: int) -> bool:
    """True for a status code a server may send (100-599)."""
    return 100 <= status <= 599
