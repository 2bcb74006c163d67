"""Who may subscribe to live events: the server key, or a campaign creator's session.

Both programs decide it the same way: web for ``GET /api/patreon/webhooks/events``,
the live program for Socket.IO and SSE (which adds subscribe tokens and the public
feed, ``live.auth``). The server key comes as ``Authorization: Bearer <key>`` (or,
for EventSource, which cannot set headers, ``?key=``; a URL is easily logged along
the way) or Socket.IO ``auth.key``; a creator's session as its cookie. A creator's
subscription is checked again while it lasts (``still_authorized``): logging out
ends it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import falcon

from live_events.codes import FORBIDDEN, INVALID_API_KEY, UNAUTHORIZED
from live_events.errors import ApiError
from live_events.serverkey import bearer_key, key_matches
from settings.config import WebSettings


class SessionLike(Protocol):
    """What a session must tell (``web.sessions.Session``)."""

    id: str
    logged_in: bool
    campaign_ids: Any


class Sessions(Protocol):
    """Where sessions are looked up (``web.sessions.SessionStore``)."""

    def get(self, session_id: str) -> SessionLike | None: ...

    def from_request(self, req: falcon.Request) -> SessionLike | None: ...

    def from_cookie_header(self, header: str) -> SessionLike | None: ...


@dataclasses.dataclass(frozen=True)
class Subscriber:
    """Who subscribes: the site's backend (``campaign_ids`` None: every event) or a
    creator (the events of their campaigns)."""

    campaign_ids: frozenset[str] | None
    # The session a creator subscribed with: re-checked while the subscription lasts,
    # so logging out ends it. Never logged (it is the cookie value).
    session_id: str | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def is_server(self) -> bool:
        return self.campaign_ids is None


SERVER = Subscriber(None)


class SubscriberRefused(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def as_api_error(self) -> ApiError:
        return ApiError(self.status, self.code, self.message)


def invalid_key() -> SubscriberRefused:
    return SubscriberRefused(401, INVALID_API_KEY, "The server key is not valid")


class SubscriberAuth:
    """Decides who may subscribe, for HTTP requests and Socket.IO connects alike."""

    def __init__(self, config: WebSettings, sessions: Sessions | None):
        self._config = config
        self._sessions = sessions

    @property
    def config(self) -> WebSettings:
        return self._config

    def _from_session(self, session: SessionLike | None) -> Subscriber:
        if session is None:
            raise SubscriberRefused(
                401, UNAUTHORIZED, "Live events need the server key or the campaign creator's session"
            )
        campaign_ids = frozenset(session.campaign_ids or ())
        if not campaign_ids:
            raise SubscriberRefused(403, FORBIDDEN, "Only a campaign's creator may subscribe to its events")
        return Subscriber(campaign_ids, session.id)

    def _from_key(self, key: Any) -> Subscriber:
        if isinstance(key, str) and key_matches(self._config, key):
            return SERVER
        # A wrong key (or any key while the mode is off): a misconfigured backend should hear it.
        raise invalid_key()

    def still_authorized(self, subscriber: Subscriber) -> bool:
        """Whether a running subscription may go on: the server key always (it was
        checked at the start), a creator while their session lasts, logged in, with
        the campaigns they subscribed to."""
        if subscriber.is_server:
            return True
        if self._sessions is None or subscriber.session_id is None:
            return False
        session = self._sessions.get(subscriber.session_id)
        return (
            session is not None
            and session.logged_in
            and subscriber.campaign_ids <= frozenset(session.campaign_ids or ())
        )

    def from_request(self, req: falcon.Request, *, allow_query_key: bool) -> Subscriber:
        """The subscriber of an HTTP request; raises ``ApiError`` (401/403) otherwise."""
        try:
            key = bearer_key(req.get_header("Authorization"))
            if key is None and allow_query_key:
                key = req.get_param("key")
            if key is not None:
                return self._from_key(key)
            session = self._sessions.from_request(req) if self._sessions is not None else None
            return self._from_session(session)
        except SubscriberRefused as ex:
            raise ex.as_api_error() from None

    def from_environ(self, environ: dict[str, Any], auth: Any) -> Subscriber:
        """The subscriber of a Socket.IO connect: ``auth={"key": ...}``, an
        ``Authorization: Bearer`` header, or a session cookie. Raises ``SubscriberRefused``."""
        key = auth.get("key") if isinstance(auth, dict) else None
        if key is None:
            key = bearer_key(environ.get("HTTP_AUTHORIZATION"))
        if key is not None:
            return self._from_key(key)
        cookie = environ.get("HTTP_COOKIE")
        session = self._sessions.from_cookie_header(cookie) if self._sessions is not None and cookie else None
        return self._from_session(session)
