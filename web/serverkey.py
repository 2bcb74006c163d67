"""The server-to-server key: ``Authorization: Bearer <BRIDGE_API_KEY>``.

The site's own backend sends it to act with the creator's token and to subscribe to
live events. With no key configured this mode is off: no Bearer header is ever
accepted. The comparison is constant-time.
"""

from __future__ import annotations

import hmac

import falcon

from web.errors import ApiError
from worker.config import Config


def presented_key(req: falcon.Request) -> str | None:
    header = req.get_header("Authorization") or ""
    scheme, _, value = header.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def is_server_request(req: falcon.Request, config: Config) -> bool:
    """True for a request carrying the right key, False for one carrying none.

    A request carrying a wrong key (or any key while the mode is off) is refused
    with 401 ``INVALID_API_KEY``: a misconfigured backend should hear about it.
    """
    key = presented_key(req)
    if key is None:
        return False
    if config.bridge_api_key and hmac.compare_digest(key.encode(), config.bridge_api_key.encode()):
        return True
    raise ApiError(401, "INVALID_API_KEY", "The server key is not valid")
