"""Web policy written once: who may call a route, and what a request may carry.

Falcon hooks (``@falcon.before(...)`` on a resource class, so every responder gets
them, in the order listed):

* ``require_server_key_for_management``: the server key, for webhook management
  (403 ``SERVER_KEY_NOT_CONFIGURED`` when no key is set, 401 ``API_KEY_REQUIRED``);
* ``require_server_key``: the server key, for server-only reads (401 ``UNAUTHORIZED``);
* ``refuse_query``: a route that takes no query parameters (400 ``UNKNOWN_PARAMETER``);
* ``require_same_origin_json``: a POST that a browser's cookie may authenticate
  (token exchange, refresh, logout). Unless it carries the server key, its ``Origin``
  (or, without one, its ``Referer``) must be an allowed origin (403
  ``CROSS_ORIGIN_REQUEST``), and a ``Content-Type`` must be ``application/json`` (415
  ``JSON_REQUIRED``; a POST with no body may send none). Allowed: the request's own
  origin, ``PATREON_REDIRECT_URI``'s, and ``ALLOWED_ORIGINS``. SameSite=Lax alone left
  these open to any page a user visits (issue 16, finding 8); a request with neither
  header is not a browser's cross-site request and passes.

A wrong key is refused by ``web.serverkey`` itself (401 ``INVALID_API_KEY``). Hooks
read the resource's ``config``.

Bodies: ``read_body`` is the one bounded read (413 ``PAYLOAD_TOO_LARGE`` from the
declared length or from what arrives); ``read_json_body`` parses a JSON object.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import falcon

from web.codes import (
    API_KEY_REQUIRED,
    CROSS_ORIGIN_REQUEST,
    INVALID_BODY,
    JSON_REQUIRED,
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


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of a URL (lowercase), or None when it has none."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def allowed_origins(req: falcon.Request, config: Any) -> set[str]:
    own = origin_of(req.prefix)
    redirect = origin_of(config.redirect_uri or "")
    return {o for o in (own, redirect) if o} | {o.lower() for o in config.allowed_origins}


def require_same_origin_json(req: falcon.Request, resp: falcon.Response, resource: Any, params) -> None:
    if req.method != "POST" or is_server_request(req, resource.config):
        return
    origin = req.get_header("Origin")
    referer = req.get_header("Referer")
    if origin is not None or referer is not None:
        presented = origin_of(origin) if origin is not None else origin_of(referer)
        if presented is None or presented not in allowed_origins(req, resource.config):
            raise ApiError(
                403,
                CROSS_ORIGIN_REQUEST,
                "This request comes from a page whose origin is not allowed (ALLOWED_ORIGINS)",
            )
    content_type = req.content_type
    if content_type is not None and content_type.split(";")[0].strip().lower() != "application/json":
        raise ApiError(415, JSON_REQUIRED, "Send Content-Type: application/json")
    if content_type is None and (req.content_length or req.get_header("Transfer-Encoding")):
        raise ApiError(415, JSON_REQUIRED, "Send Content-Type: application/json")


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
