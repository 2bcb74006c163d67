"""The server-to-server key: ``Authorization: Bearer <BRIDGE_API_KEY>``.

The site's own backend sends it to act with the creator's token and to subscribe to
live events. ``BRIDGE_API_KEY`` may list several keys (comma-separated) while a key is
being rotated. With no key configured this mode is off: no key is ever accepted.
Comparisons are constant-time.
"""

from __future__ import annotations

import falcon

from live_events.serverkey import bearer_key, key_matches
from settings.config import WebSettings
from web.codes import INVALID_API_KEY
from web.errors import ApiError


def presented_key(req: falcon.Request) -> str | None:
    return bearer_key(req.get_header("Authorization"))


def is_server_request(req: falcon.Request, config: WebSettings) -> bool:
    """True for a request carrying the right key, False for one carrying none.

    A request carrying a wrong key (or any key while the mode is off) is refused
    with 401 ``INVALID_API_KEY``: a misconfigured backend should hear about it.
    """
    key = presented_key(req)
    if key is None:
        return False
    if key_matches(config, key):
        return True
    raise ApiError(401, INVALID_API_KEY, "The server key is not valid")
