"""engine.io's refusals (Socket.IO's transport) in the JSON error shape, with a code.

engine.io answers a refused handshake or poll (bad origin, transport, protocol
version, session) with a 400 whose body is its message, plain or as a JSON string.
Socket.IO clients read only the status, so the body is free to carry the bridge's
shape. Used by web's WSGI wrapper (``web.server_errors.JsonErrorResponses``) and the
live program's ASGI one (``live.app``).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from live_events.codes import (
    INVALID_SESSION,
    INVALID_TRANSPORT,
    ORIGIN_NOT_ALLOWED,
    SOCKETIO_NOT_CONNECTED,
    UNSUPPORTED_PROTOCOL_VERSION,
)
from live_events.errors import error_bytes, shared_code_for_status
from wire.codes import INVALID_PARAMETER

# engine.io's refusals, by the text it answers with.
ENGINEIO_CODES = {
    "Not an accepted origin.": ORIGIN_NOT_ALLOWED,
    "Invalid transport": INVALID_TRANSPORT,
    "Invalid websocket upgrade": INVALID_TRANSPORT,
    "The client is using an unsupported version of the Socket.IO or Engine.IO protocols": (
        UNSUPPORTED_PROTOCOL_VERSION
    ),
    "Invalid JSONP index number": INVALID_PARAMETER,
    "Not connected": SOCKETIO_NOT_CONNECTED,
    "Unexpected HTTP request": INVALID_TRANSPORT,
}


def engineio_code(
    status: int, message: str, code_for_status: Callable[[int], str] = shared_code_for_status
) -> str:
    if message.startswith("Invalid session"):
        return INVALID_SESSION  # engine.io appends the sid
    if message.endswith(" is not an accepted origin."):
        return ORIGIN_NOT_ALLOWED  # the ASGI server names the origin
    return ENGINEIO_CODES.get(message, code_for_status(status))


def engineio_error_body(
    status: int, text: str, code_for_status: Callable[[int], str] = shared_code_for_status
) -> bytes:
    """The JSON error answer for engine.io's ``status`` and body ``text``; a message of
    its own gets the code of its status (``code_for_status``: each program has its table)."""
    try:
        message = json.loads(text)  # engine.io sends its message as a JSON string
    except ValueError:
        message = text
    if not isinstance(message, str) or not message:
        message = text or "Bad request"
    return error_bytes(message, engineio_code(status, message, code_for_status))
