"""``POST /api/patreon/live/tokens``: the site's backend mints a subscribe token.

Server key only (``Authorization: Bearer <BRIDGE_API_KEY>``). The body says who the
browser is and what it may hear:

    {"audience": "patron", "userId": "<Patreon user id>", "ttlSeconds": 600}
    {"audience": "creator", "campaignIds": ["<campaign id>", ...]}
    {"audience": "public"}

and the answer is ``{"success": true, "token", "audience", "userId", "campaignIds",
"expiresAt", "expiresIn"}``. The browser passes the token to the live program as
``auth.token`` (Socket.IO) or ``?token=`` (SSE); ``live_events.tokens`` owns the format.
``ttlSeconds`` defaults to, and may not exceed, ``LIVE_TOKEN_TTL_S``. Without a
usable key (live mode, no ``LIVE_TOKEN_KEY``) the answer is 503
``LIVE_TOKENS_NOT_CONFIGURED``.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

import falcon

from live_events import tokens
from live_events.settings import token_settings
from settings.config import Config, ConfigError
from web import codes
from web.auth import read_json_body
from web.errors import ApiError
from web.serverkey import is_server_request

log = logging.getLogger(__name__)

MIN_TTL_S = 10
MAX_BODY_BYTES = 4096
_FIELDS = {"audience", "userId", "campaignIds", "ttlSeconds"}


class LiveTokenResource:
    def __init__(self, config: Config):
        self._config = config
        self._lock = threading.Lock()
        self._settings: tuple[bytes, float] | None = None

    def _token_settings(self) -> tuple[bytes, float]:
        # Read on first use: a missing key costs this route a 503, never web's start.
        with self._lock:
            if self._settings is None:
                try:
                    self._settings = token_settings(self._config.mode, self._config.data_dir)
                except ConfigError as ex:
                    log.error("subscribe tokens are off: %s", ex)
                    raise ApiError(
                        503,
                        codes.LIVE_TOKENS_NOT_CONFIGURED,
                        "Subscribe tokens need LIVE_TOKEN_KEY (required in live mode)",
                    ) from None
            return self._settings

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        if not is_server_request(req, self._config):  # a wrong key: 401 INVALID_API_KEY
            raise ApiError(401, codes.UNAUTHORIZED, "Minting subscribe tokens needs the server key")
        body = read_json_body(req, MAX_BODY_BYTES)
        unknown = sorted(set(body) - _FIELDS)
        if unknown:
            raise ApiError(400, codes.UNKNOWN_FIELD, f"unknown field {unknown[0][:60]!r}")
        audience = body.get("audience")
        if audience not in tokens.AUDIENCES:
            raise ApiError(400, codes.INVALID_AUDIENCE, f"audience must be one of {', '.join(tokens.AUDIENCES)}")
        user_id = body.get("userId")
        campaign_ids = body.get("campaignIds")
        if audience == "patron":
            if not tokens.valid_id(user_id):
                raise ApiError(400, codes.INVALID_USER_ID, "a patron token needs userId, a Patreon user id")
        elif user_id is not None:
            raise ApiError(400, codes.INVALID_USER_ID, f"a {audience} token has no userId")
        if audience == "creator":
            if (
                not isinstance(campaign_ids, list)
                or not 0 < len(campaign_ids) <= tokens.MAX_CAMPAIGNS
                or not all(tokens.valid_id(c) for c in campaign_ids)
            ):
                raise ApiError(
                    400,
                    codes.INVALID_CAMPAIGN_IDS,
                    f"a creator token needs campaignIds, 1 to {tokens.MAX_CAMPAIGNS} campaign ids",
                )
        elif campaign_ids is not None:
            raise ApiError(400, codes.INVALID_CAMPAIGN_IDS, f"a {audience} token has no campaignIds")
        key, max_ttl = self._token_settings()
        ttl = body.get("ttlSeconds", max_ttl)
        if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not MIN_TTL_S <= ttl <= max_ttl:
            raise ApiError(400, codes.INVALID_TTL, f"ttlSeconds must be from {MIN_TTL_S} to {max_ttl:g}")
        expires_at = int(time.time() + ttl)
        claims = tokens.Claims(audience, user_id, tuple(dict.fromkeys(campaign_ids or ())), expires_at)
        resp.media = {
            "success": True,
            "token": tokens.mint(key, claims),
            "audience": audience,
            "userId": user_id,
            "campaignIds": list(claims.campaign_ids),
            "expiresAt": datetime.fromtimestamp(expires_at, UTC).isoformat().replace("+00:00", "Z"),
            "expiresIn": int(ttl),
        }


def add_routes(app: falcon.App, config: Config) -> None:
    app.add_route("/api/patreon/live/tokens", LiveTokenResource(config))
