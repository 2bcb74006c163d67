"""Web policy written once: who may call a route, and what a request may carry.

Falcon hooks (``@falcon.before(...)`` on a resource class, so every responder gets
them, in the order listed):

* ``require_server_key_for_management``: the server key, for webhook management
  (403 ``SERVER_KEY_NOT_CONFIGURED`` when no key is set, 401 ``API_KEY_REQUIRED``);
* ``require_server_key``: the server key, for server-only reads (401 ``UNAUTHORIZED``);
* ``refuse_query``: a route that takes no query parameters (400 ``UNKNOWN_PARAMETER``).

A wrong key is refused by ``web.serverkey`` itself (401 ``INVALID_API_KEY``). Hooks
read the resource's ``config``.

Bodies: ``read_body`` is the one bounded read (413 ``PAYLOAD_TOO_LARGE`` from the
declared length or from what arrives); ``read_json_body`` parses a JSON object.
"""

from __future__ import annotations

import json
from typing import Any

import falcon

from web.codes import (
    API_KEY_REQUIRED,
    INVALID_BODY,
    PAYLOAD_TOO_LARGE,
    SERVER_KEY_NOT_CONFIGURED,
    UNAUTHORIZED,
)
from web.errors import ApiError
from web.serverkey import is_server_request
from wire.codes import UNKNOWN_PARAMETER

MAX_JSON_BODY_BYTES = 16 * 1024


def require_server_key_for_management(
    req: falcon.Request, resp: falcon.Response, resource: Any, params
) -> None:
    if is_server_request(req, resource.config):
        return
    if not resource.config.bridge_api_keys:
        raise ApiError(403, SERVER_KEY_NOT_CONFIGURED, "Webhook management needs BRIDGE_API_KEY to be set")
    raise ApiError(401, API_KEY_REQUIRED, "Send Authorization: Bearer <BRIDGE_API_KEY>")


def require_server_key(req: falcon.Request, resp: falcon.Response, resource: Any, params) -> None:
    if not is_server_request(req, resource.config):
        raise ApiError(401, UNAUTHORIZED, "This endpoint needs the server key")


def refuse_query(req: falcon.Request, resp: falcon.Response, resource: Any, params) -> None:
    if req.params:
        raise ApiError(400, UNKNOWN_PARAMETER, f"unknown query parameter {sorted(req.params)[0][:60]!r}")


def read_body(req: falcon.Request, max_bytes: int, too_large: str) -> bytes:
    """The raw body, at most ``max_bytes`` of it; ``too_large`` is the 413's message."""
    if req.content_length is not None and req.content_length > max_bytes:
        raise ApiError(413, PAYLOAD_TOO_LARGE, too_large)
    raw = req.bounded_stream.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise ApiError(413, PAYLOAD_TOO_LARGE, too_large)
    return raw


def read_json_body(req: falcon.Request, max_bytes: int = MAX_JSON_BODY_BYTES) -> dict[str, Any]:
    raw = read_body(req, max_bytes, f"the body is limited to {max_bytes} bytes")
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as ex:
        raise ApiError(400, INVALID_BODY, "the body is not JSON") from ex
    if not isinstance(body, dict):
        raise ApiError(400, INVALID_BODY, "the body must be a JSON object")
    try:
        # "\ud800" is valid JSON but not text: it would break whatever encodes it later.
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as ex:
        raise ApiError(400, INVALID_BODY, "the body holds a string that is not valid Unicode") from ex
    return body
