"""Webhook events on web: the JSON back-fill, and where the live streams went.

* ``GET /api/patreon/webhooks/events?since=&limit=``: stored events as JSON, for
  back-fill and polling, to the server key or a creator's session
  (``live_events.subscribers``).
* ``GET /api/patreon/events`` (SSE) and ``/socket.io/`` (Socket.IO) are served by the
  live program (``live/``), which holds connections without a thread each. Behind
  nginx those paths reach it on the site's origin; without nginx it listens on its
  own port (``LIVE_PORT``, default 6971). web answers a client that still comes here
  with 410 ``LIVE_EVENTS_MOVED`` naming the path to use there, rather than a 404 that
  says nothing, or a redirect a WebSocket cannot follow.
"""

from __future__ import annotations

import json

import falcon

from live_events.cursor import is_whole_number, parse_event_id, reject_repeated
from live_events.subscribers import Subscriber, SubscriberAuth
from store import webhook_events
from store.database import Store
from web.codes import INVALID_LIMIT, INVALID_SINCE, LIVE_EVENTS_MOVED
from web.errors import ApiError

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
# What the 410 says; LIVE_PORT is the live program's (live/settings.py), not web's.
LIVE_PROGRAM_HINT = "the live program: the same path behind nginx, or port LIVE_PORT (default 6971) without it"


def events_after(store: Store, subscriber: Subscriber, after_id: int, limit: int) -> list:
    return webhook_events.since(store, after_id, limit, campaign_ids=subscriber.campaign_ids)


class LiveMovedResource:
    """``GET /api/patreon/events`` on web: 410, with where to go."""

    def __init__(self, path: str):
        self._path = path

    def _moved(self, req: falcon.Request, resp: falcon.Response) -> None:
        raise ApiError(
            410,
            LIVE_EVENTS_MOVED,
            f"Live events are served by {LIVE_PROGRAM_HINT}",
            extra={"path": self._path},
        )

    on_get = _moved


class SocketIoMovedResource(LiveMovedResource):
    """``GET, POST /socket.io/`` on web (a long-poll's POST too): 410, with where to go."""

    on_post = LiveMovedResource._moved


class EventListResource:
    """``GET /api/patreon/webhooks/events?since=&limit=``: back-fill and polling."""

    def __init__(self, store: Store, auth: SubscriberAuth):
        self._store = store
        self._auth = auth

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        reject_repeated(req)
        subscriber = self._auth.from_request(req, allow_query_key=False)
        raw_since, raw_limit = req.get_param("since"), req.get_param("limit")
        since = 0 if raw_since is None else parse_event_id(raw_since, INVALID_SINCE, "since")
        limit = DEFAULT_LIMIT
        if raw_limit is not None:
            text = raw_limit.strip()
            if not is_whole_number(text) or not 1 <= int(text) <= MAX_LIMIT:
                raise ApiError(400, INVALID_LIMIT, f"limit must be a whole number from 1 to {MAX_LIMIT}")
            limit = int(text)
        newest = webhook_events.latest_id(self._store)
        # A cursor past the newest event comes from another (reset) store: every event
        # from now on is new to that client, as on the streams.
        since = min(since, newest)
        events = events_after(self._store, subscriber, since, limit)
        has_more = len(events) == limit
        # ``next`` is the cursor for the next call. With fewer than ``limit`` events,
        # everything up to ``newest`` (read first) has been looked at.
        next_cursor = events[-1].id if has_more else max([since, newest, *(e.id for e in events[-1:])])
        body = {
            "success": True,
            "events": [event.message() for event in events],
            "next": next_cursor,
            "latest": max(newest, next_cursor),
            "hasMore": has_more,
        }
        # Not resp.media: its UTF-8 encoding fails on a lone surrogate in a delivery.
        resp.content_type = falcon.MEDIA_JSON
        resp.data = json.dumps(body, separators=(",", ":"), ensure_ascii=True).encode("ascii")
