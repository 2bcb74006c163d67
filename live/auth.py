"""Who is subscribing to live: the shared rules (``live_events.subscribers``: the server
key, a creator's session cookie) plus subscribe tokens and the public feed.

* SSE: ``?token=<subscribe token>``, ``?feed=public``, or what web accepts
  (``Authorization: Bearer <server key>``, ``?key=``, the session cookie).
* Socket.IO: ``auth.token``, ``auth.feed = "public"``, or what web accepts
  (``auth.key``, ``Authorization: Bearer``, the session cookie).

Refusals carry web's codes (``UNAUTHORIZED``, ``FORBIDDEN``, ``INVALID_API_KEY``),
the token codes of ``live_events.tokens``, and ``PUBLIC_FEED_OFF``.
"""

from __future__ import annotations

from typing import Any

import falcon

from live import codes
from live.audience import SERVER, Audience
from live.settings import LiveSettings
from live_events import tokens
from live_events.codes import LIVE_TOKENS_NOT_CONFIGURED
from live_events.errors import ApiError
from live_events.subscribers import Subscriber, SubscriberAuth, SubscriberRefused
from settings.config import Config
from store.database import Store
from web.sessions import SessionStore  # the one web module live uses: the sessions web writes
from wire.codes import INVALID_PARAMETER

PUBLIC = Audience("public")


def _from_subscriber(subscriber: Subscriber) -> Audience:
    if subscriber.is_server:
        return SERVER
    return Audience("creator", frozenset(subscriber.campaign_ids or ()), session_id=subscriber.session_id)


class LiveAuth:
    def __init__(self, config: Config, settings: LiveSettings, store: Store):
        self._settings = settings
        self._web = SubscriberAuth(config, SessionStore(store, cookie_secure=config.cookie_secure))

    def _from_token(self, token: Any) -> Audience:
        if self._settings.token_key is None:
            raise SubscriberRefused(503, LIVE_TOKENS_NOT_CONFIGURED, "Subscribe tokens are not configured")
        try:
            claims = tokens.verify(self._settings.token_key, token)
        except tokens.TokenRefused as ex:
            raise SubscriberRefused(401, ex.code, ex.message) from None
        if claims.audience == "patron":
            return Audience("patron", user_id=claims.user_id)
        if claims.audience == "creator":
            return Audience("creator", frozenset(claims.campaign_ids))
        return self._public()

    def _public(self) -> Audience:
        if not self._settings.public_feed:
            raise SubscriberRefused(403, codes.PUBLIC_FEED_OFF, "The public feed is turned off (LIVE_PUBLIC_FEED)")
        return PUBLIC

    def from_request(self, req: falcon.Request) -> Audience:
        """An SSE request's audience; raises ``ApiError`` with the refusal's code."""
        for name in ("token", "feed"):
            if isinstance(req.params.get(name), list):
                raise ApiError(400, INVALID_PARAMETER, f"{name} must be given once")
        try:
            token = req.get_param("token")
            if token is not None:
                return self._from_token(token)
            feed = req.get_param("feed")
            if feed is not None:
                if feed != "public":
                    raise SubscriberRefused(400, codes.INVALID_FEED, "feed must be public")
                return self._public()
        except SubscriberRefused as ex:
            raise ex.as_api_error() from None
        return _from_subscriber(self._web.from_request(req, allow_query_key=True))

    def from_environ(self, environ: dict[str, Any], auth: Any) -> Audience:
        """A Socket.IO connect's audience; raises ``SubscriberRefused``."""
        if isinstance(auth, dict):
            if auth.get("token") is not None:
                return self._from_token(auth["token"])
            if auth.get("feed") is not None:
                if auth["feed"] != "public":
                    raise SubscriberRefused(400, codes.INVALID_FEED, "feed must be public")
                return self._public()
        return _from_subscriber(self._web.from_environ(environ, auth))

    def still_authorized(self, audience: Audience) -> bool:
        """A creator's session is checked again while it is connected; a token holds
        until the connection ends (it was checked when it began)."""
        if audience.session_id is None:
            return True
        return self._web.still_authorized(Subscriber(audience.campaign_ids, audience.session_id))
