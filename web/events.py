"""Live webhook events for subscribers: Server-Sent Events and a JSON back-fill.

* ``GET /api/patreon/events``: an SSE stream. Each stored event is sent as
  ``id: <sequence>`` / ``event: patreon:webhook`` / ``data: <json>``. A client that
  sends ``Last-Event-ID`` (EventSource does on reconnect) or ``?since=<id>`` first
  gets every event it missed, from the store, then live ones. Without either it
  starts at the newest event.
* ``GET /api/patreon/webhooks/events?since=&limit=``: the same events as JSON.

The store is the source, not memory: each stream polls the event log, so an event
accepted by any web process reaches the subscribers of every web process, and a web
restart loses nothing (the client reconnects with ``Last-Event-ID``).

Subscribers must be authorized (``SubscriberAuth``): the server key (``Authorization:
Bearer <BRIDGE_API_KEY>``; for EventSource, which cannot set headers, ``?key=`` too:
use that only from a server or over a trusted connection, a URL is easily logged
along the way), or a session whose campaigns include the event's campaign. Member
data never reaches an anonymous client. A creator's session is checked again every
``AUTH_RECHECK_INTERVAL_S`` while the stream runs: logging out ends the stream.

A stream holds a waitress thread for its whole life, so ``StreamGate`` caps the
number of streams (SSE here and Socket.IO long-polls in ``web.live`` together) at
``MAX_STREAMS``, below ``WEB_THREADS``; past it the answer is 503 ``STREAMS_FULL``
with ``Retry-After``. A stream ends when the process shuts down (the gate's
``stopping`` flag, set by the SIGTERM handler) and after ``STREAM_MAX_LIFETIME_S``;
EventSource reconnects on its own and resumes with ``Last-Event-ID``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import falcon

from settings.config import WebSettings
from store import webhook_events
from store.database import Store, StoreError
from web.codes import (
    FORBIDDEN,
    INVALID_API_KEY,
    INVALID_LAST_EVENT_ID,
    INVALID_LIMIT,
    INVALID_SINCE,
    STREAMS_FULL,
    UNAUTHORIZED,
)
from web.errors import ApiError
from web.serverkey import bearer_key, is_server_request, key_matches
from web.sessions import Session, SessionStore
from wire.codes import INVALID_PARAMETER

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.1
KEEPALIVE_INTERVAL_S = 15.0
STREAM_MAX_LIFETIME_S = 300.0
AUTH_RECHECK_INTERVAL_S = 5.0  # how long a creator's stream outlives their logout
RECONNECT_DELAY_MS = 1000  # the SSE ``retry:`` hint
STREAMS_FULL_RETRY_AFTER_S = 5
BATCH_SIZE = 500
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_EVENT_ID = 2**63 - 1
SSE_EVENT = "patreon:webhook"
_WHOLE_NUMBER = re.compile(r"[0-9]{1,19}")  # ASCII digits only: str.isdigit() also takes "²"


class StreamGate:
    """Counts long-lived responses against a cap, and says when the process stops."""

    def __init__(self, max_streams: int):
        self.max_streams = max_streams
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._open = 0

    @property
    def open(self) -> int:
        return self._open

    def try_enter(self) -> bool:
        with self._lock:
            if self.stopping.is_set() or self._open >= self.max_streams:
                return False
            self._open += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self._open = max(0, self._open - 1)

    def stop(self) -> None:
        self.stopping.set()


def streams_full() -> ApiError:
    return ApiError(
        503,
        STREAMS_FULL,
        "Too many live event streams are open; retry later",
        retry_after=STREAMS_FULL_RETRY_AFTER_S,
    )


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


class SubscriberAuth:
    """Decides who may subscribe, for HTTP requests and Socket.IO connects alike."""

    def __init__(self, config: WebSettings, sessions: SessionStore | None):
        self._config = config
        self._sessions = sessions

    @property
    def config(self) -> WebSettings:
        return self._config

    def _from_session(self, session: Session | None) -> Subscriber:
        if session is None:
            raise SubscriberRefused(
                401, UNAUTHORIZED, "Live events need the server key or the campaign creator's session"
            )
        campaign_ids = frozenset(session.campaign_ids or ())
        if not campaign_ids:
            raise SubscriberRefused(403, FORBIDDEN, "Only a campaign's creator may subscribe to its events")
        return Subscriber(campaign_ids, session.id)

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
        if is_server_request(req, self._config):  # raises 401 INVALID_API_KEY for a wrong key
            return SERVER
        if allow_query_key:
            key = req.get_param("key")
            if key is not None:
                if key_matches(self._config, key):
                    return SERVER
                raise ApiError(401, INVALID_API_KEY, "The server key is not valid")
        session = self._sessions.from_request(req) if self._sessions is not None else None
        try:
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
            if isinstance(key, str) and key_matches(self._config, key):
                return SERVER
            raise SubscriberRefused(401, INVALID_API_KEY, "The server key is not valid")
        cookie = environ.get("HTTP_COOKIE")
        session = self._sessions.from_cookie_header(cookie) if self._sessions is not None and cookie else None
        return self._from_session(session)


def parse_event_id(raw: Any, code: str, what: str) -> int:
    """A client's event cursor: a whole number from 0."""
    text = str(raw).strip()
    if not _WHOLE_NUMBER.fullmatch(text) or int(text) > MAX_EVENT_ID:
        raise ApiError(400, code, f"{what} must be a whole number from 0")
    return int(text)


def reject_repeated(req: falcon.Request, names: tuple[str, ...] = ("since", "limit", "key")) -> None:
    """400 for a parameter given more than once, as every other endpoint answers."""
    for name in names:
        if isinstance(req.params.get(name), list):
            raise ApiError(400, INVALID_PARAMETER, f"{name} must be given once")


def events_after(store: Store, subscriber: Subscriber, after_id: int, limit: int) -> list:
    return webhook_events.since(store, after_id, limit, campaign_ids=subscriber.campaign_ids)


def format_sse(event: webhook_events.StoredEvent) -> bytes:
    # ensure_ascii: a delivery may hold a lone surrogate ("\ud800"), which UTF-8 cannot encode.
    data = json.dumps(event.message(), separators=(",", ":"), ensure_ascii=True)
    return f"id: {event.id}\nevent: {SSE_EVENT}\ndata: {data}\n\n".encode()


class EventStream:
    """The body of one SSE response: replay, then live events, until stop or lifetime.

    An iterator with ``close()``: the WSGI server calls it when the response ends or
    the client goes away, and that frees the stream's place in the gate.
    """

    def __init__(
        self,
        store: Store,
        subscriber: Subscriber,
        after_id: int,
        gate: StreamGate,
        *,
        poll_interval_s: float = POLL_INTERVAL_S,
        keepalive_interval_s: float = KEEPALIVE_INTERVAL_S,
        lifetime_s: float = STREAM_MAX_LIFETIME_S,
        clock: Callable[[], float] = time.monotonic,
        client_gone: Callable[[], bool] = lambda: False,
        still_authorized: Callable[[], bool] = lambda: True,
        recheck_interval_s: float = AUTH_RECHECK_INTERVAL_S,
    ):
        self._store = store
        self._client_gone = client_gone
        self._still_authorized = still_authorized
        self._recheck_interval_s = recheck_interval_s
        self._subscriber = subscriber
        self.cursor = after_id
        self._gate = gate
        self._poll_interval_s = poll_interval_s
        self._keepalive_interval_s = keepalive_interval_s
        self._lifetime_s = lifetime_s
        self._clock = clock
        self._chunks = self._generate()
        self._closed = False

    def __iter__(self) -> EventStream:
        return self

    def __next__(self) -> bytes:
        return next(self._chunks)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._chunks.close()
            self._gate.leave()

    def _generate(self) -> Iterator[bytes]:
        started = last_write = last_check = self._clock()
        # The reconnect hint, and a first chunk so the client knows it is subscribed.
        yield f"retry: {RECONNECT_DELAY_MS}\n: subscribed after {self.cursor}\n\n".encode()
        stopping = self._gate.stopping
        while (
            not stopping.is_set() and not self._client_gone() and self._clock() - started < self._lifetime_s
        ):
            if self._clock() - last_check >= self._recheck_interval_s:
                last_check = self._clock()
                try:
                    authorized = self._still_authorized()
                except StoreError:
                    log.exception("event stream: store error; ending the stream so the client reconnects")
                    return
                if not authorized:
                    return  # logged out: the reconnect is refused
            try:
                newest = webhook_events.latest_id(self._store)
                batch = events_after(self._store, self._subscriber, self.cursor, BATCH_SIZE)
            except StoreError:
                log.exception("event stream: store error; ending the stream so the client reconnects")
                return
            if batch:
                self.cursor = batch[-1].id
                yield b"".join(format_sse(event) for event in batch)
                last_write = self._clock()
                if len(batch) == BATCH_SIZE:
                    continue
            elif newest > self.cursor:
                # Nothing for this subscriber up to ``newest`` (read before the query):
                # skip past it so the next query starts there.
                self.cursor = newest
            if self._clock() - last_write >= self._keepalive_interval_s:
                yield b": keep-alive\n\n"
                last_write = self._clock()
            stopping.wait(self._poll_interval_s)


class EventStreamResource:
    """``GET /api/patreon/events``: Server-Sent Events."""

    def __init__(self, store: Store, auth: SubscriberAuth, gate: StreamGate):
        self._store = store
        self._auth = auth
        self._gate = gate

    def start_after(self, req: falcon.Request) -> int:
        # EventSource resends the original URL on reconnect: the header is newer than ?since=.
        last_event_id = (req.get_header("Last-Event-ID") or "").strip()
        since = req.get_param("since")
        newest = webhook_events.latest_id(self._store)
        if last_event_id:
            after = parse_event_id(last_event_id, INVALID_LAST_EVENT_ID, "Last-Event-ID")
        elif since is not None:
            after = parse_event_id(since, INVALID_SINCE, "since")
        else:
            return newest
        # A cursor past the newest event comes from another store (a reset one): every
        # event from now on is new to that client.
        return min(after, newest)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        reject_repeated(req)
        subscriber = self._auth.from_request(req, allow_query_key=True)
        after = self.start_after(req)
        if not self._gate.try_enter():
            raise streams_full()
        resp.content_type = "text/event-stream; charset=utf-8"
        resp.set_header("Cache-Control", "no-cache")
        resp.set_header("X-Accel-Buffering", "no")  # nginx: do not buffer the stream
        # waitress tells a running request that its client went away (web/__main__.py
        # sets channel_request_lookahead for it); elsewhere the next write finds out.
        client_gone = req.env.get("waitress.client_disconnected") or (lambda: False)
        resp.stream = EventStream(
            self._store,
            subscriber,
            after,
            self._gate,
            client_gone=client_gone,
            still_authorized=lambda: self._auth.still_authorized(subscriber),
        )


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
            if not _WHOLE_NUMBER.fullmatch(text) or not 1 <= int(text) <= MAX_LIMIT:
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
