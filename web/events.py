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

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator

import falcon

from live_events.cursor import is_whole_number, parse_event_id, reject_repeated
from live_events.subscribers import Subscriber, SubscriberAuth
from live_events.wire_format import WEBHOOK_EVENT, format_sse
from store import webhook_events
from store.database import Store
from web.codes import INVALID_LAST_EVENT_ID, INVALID_LIMIT, INVALID_SINCE, STREAMS_FULL
from web.errors import ApiError

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
SSE_EVENT = WEBHOOK_EVENT


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


def events_after(store: Store, subscriber: Subscriber, after_id: int, limit: int) -> list:
    return webhook_events.since(store, after_id, limit, campaign_ids=subscriber.campaign_ids)


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
                except sqlite3.Error:
                    log.exception("event stream: store error; ending the stream so the client reconnects")
                    return
                if not authorized:
                    return  # logged out: the reconnect is refused
            try:
                newest = webhook_events.latest_id(self._store)
                batch = events_after(self._store, self._subscriber, self.cursor, BATCH_SIZE)
            except sqlite3.Error:
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
