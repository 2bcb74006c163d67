"""The JSON error body both programs answer: ``{"success": false, "error", "code"}``.

``ApiError`` is a ``falcon.HTTPError`` carrying a stable code (Falcon's WSGI app in
web and its ASGI app in live both raise it); ``error_bytes`` is the same body for an
answer written outside Falcon (waitress's parser, engine.io, the connection cap).
"""

from __future__ import annotations

import json
import math
from typing import Any

import falcon

from live_events.codes import BAD_REQUEST, FORBIDDEN, INTERNAL_ERROR, UNAUTHORIZED

MAX_MESSAGE_CHARS = 200  # of a message quoted from outside the app (waitress, engine.io)

# The code of an error that has none of its own, by status (each program adds its own).
SHARED_CODES_BY_STATUS = {400: BAD_REQUEST, 401: UNAUTHORIZED, 403: FORBIDDEN, 500: INTERNAL_ERROR}


class ApiError(falcon.HTTPError):
    """An error answer with a stable code: ``raise ApiError(400, INVALID_SCOPE, "...")``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        retry_after: float | None = None,
        extra: dict[str, Any] | None = None,
    ):
        headers = {"Retry-After": str(max(1, math.ceil(retry_after)))} if retry_after is not None else None
        super().__init__(
            falcon.code_to_http_status(status), title=message, description=message, headers=headers, code=code
        )
        self.extra = extra or {}


def shared_code_for_status(status: int) -> str:
    return SHARED_CODES_BY_STATUS.get(status, f"HTTP_{status}")


def error_body(message: str, code: str, **extra: Any) -> dict[str, Any]:
    return {"success": False, "error": message, "code": code, **extra}


def error_bytes(message: str, code: str) -> bytes:
    """``error_body`` as the bytes of an answer written outside Falcon."""
    return json.dumps(error_body(message[:MAX_MESSAGE_CHARS], code)).encode()
