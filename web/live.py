"""Socket.IO for the site's live clients: python-socketio on the WSGI app.

Path ``/socket.io/``, long-polling only (waitress gives no raw socket for WebSocket,
so upgrades are off). Every stored webhook event is emitted, in store order, as
``patreon:webhook`` with ``{"id", "type", "data", "included", "receivedAt"}``, plus
the original's second path: ``patreon:member:create|update|delete`` for
``members:*`` triggers and ``patreon:pledge:create|update|delete`` for
``members:pledge:*`` and legacy ``pledges:*`` triggers (same payload).

Connecting needs authorization (``web.events.SubscriberAuth``): the server key as
``auth={"key": ...}`` or an ``Authorization: Bearer`` header, or a session cookie of a
campaign's creator. Anything else is refused with ``connect_error`` (message = the
code). Server-key clients join the room ``server`` (every event); a creator joins
``campaign:<id>`` for each of their campaigns. The tail thread checks a creator's
session again every ``AUTH_RECHECK_INTERVAL_S`` and disconnects the client once the
session is gone (logout, expiry).

One thread per web process tails the store (the store is the source, so events
accepted by any web process reach every client) and is the only emitter. A client may
pass ``auth={"since": <id>}``: the tail thread first replays what the client missed
(up to ``REPLAY_MAX_EVENTS``), then puts it in its rooms, so replayed and live events
arrive in order without a duplicate. Each waiting long-poll holds a waitress thread:
``LongPollGate`` counts them against the same cap as SSE streams.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import socketio

from live_events.cursor import parse_event_id
from live_events.subscribers import Subscriber, SubscriberAuth, SubscriberRefused
from live_events.wire_format import WEBHOOK_EVENT, alias_event
from settings.config import WebSettings
from store import webhook_events
from store.database import Store
from web.codes import INVALID_SINCE, JSONP_NOT_SUPPORTED, STREAMS_FULL
from web.errors import ApiError, error_body
from web.events import STREAMS_FULL_RETRY_AFTER_S, StreamGate
from web.sessions import SessionStore

log = logging.getLogger(__name__)

SOCKETIO_PATH = "socket.io"
NAMESPACE = "/"
SERVER_ROOM = "server"
TAIL_INTERVAL_S = 0.1
TAIL_BATCH = 500
REPLAY_MAX_EVENTS = 10_000
# A waiting long-poll returns at least every PING_INTERVAL_S, so a client that went
# away holds its waitress thread no longer than that.
PING_INTERVAL_S = 10
PING_TIMEOUT_S = 10
PENDING_CONNECT_TIMEOUT_S = 10.0
AUTH_RECHECK_INTERVAL_S = 5.0  # how long a creator's client outlives their logout


def rooms_for(subscriber: Subscriber) -> list[str]:
    if subscriber.is_server:
        return [SERVER_ROOM]
    return [f"campaign:{campaign_id}" for campaign_id in sorted(subscriber.campaign_ids or ())]


class _Join:
    """A connected client waiting for the tail thread to replay and seat it."""

    def __init__(self, sid: str, subscriber: Subscriber, since: int, deadline: float):
        self.sid = sid
        self.subscriber = subscriber
        self.since = since
        self.deadline = deadline


class OneLineHandlerErrors(logging.Filter):
    """python-socketio/engine.io log a client's malformed packet with a full traceback
    (``logger.exception("message handler error")``): bad input is the client's fault,
    so it becomes one warning line naming the exception type (issue 16, finding 9)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            name = type(record.exc_info[1]).__name__
            record.msg = f"{record.getMessage()}: {name} (a malformed packet from a client?)"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


class LiveEvents:
    def __init__(
        self,
        store: Store,
        auth: SubscriberAuth,
        gate: StreamGate,
        *,
        cors_allowed_origins: list[str] | str | None = None,
        tail_interval_s: float = TAIL_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._store = store
        self._auth = auth
        self._gate = gate
        self._tail_interval_s = tail_interval_s
        self._clock = clock
        self.sio = socketio.Server(
            async_mode="threading",
            allow_upgrades=False,
            transports=["polling"],
            cors_allowed_origins=cors_allowed_origins,
            cors_credentials=True,
            ping_interval=PING_INTERVAL_S,
            ping_timeout=PING_TIMEOUT_S,
            logger=False,
            engineio_logger=False,
        )
        for logger in (self.sio.logger, self.sio.eio.logger):
            if not any(isinstance(f, OneLineHandlerErrors) for f in logger.filters):
                logger.addFilter(OneLineHandlerErrors())
        self.sio.on("connect", self._on_connect)
        self._joins: queue.SimpleQueue[_Join] = queue.SimpleQueue()
        self._waiting: list[_Join] = []
        self._cursor: int | None = None
        self._thread: threading.Thread | None = None
        # Seated clients that subscribed with a session, re-checked by the tail thread.
        self._session_clients: dict[str, Subscriber] = {}
        self._checked_at = self._clock()

    @classmethod
    def for_config(cls, config: WebSettings, store: Store, gate: StreamGate) -> LiveEvents:
        origins = config.socketio_cors_origins
        # python-socketio: None = same origin only, "*" = any, a list = those.
        allowed = None if not origins else "*" if "*" in origins else list(origins)
        sessions = SessionStore(store, cookie_secure=config.cookie_secure)
        return cls(store, SubscriberAuth(config, sessions), gate, cors_allowed_origins=allowed)

    # -- WSGI ------------------------------------------------------------------------
    def wsgi_app(self, app: Callable) -> Callable:
        """The app to serve: Socket.IO under ``/socket.io/``, ``app`` for the rest."""
        return LongPollGate(socketio.WSGIApp(self.sio, app, socketio_path=SOCKETIO_PATH), self._gate)

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        self._cursor = webhook_events.latest_id(self._store)
        self._thread = threading.Thread(target=self._tail, name="socketio-tail", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Shut down: close every client so their waiting long-polls return now."""
        self._gate.stop()
        eio = self.sio.eio
        for client in list(eio.sockets.values()):
            try:
                # wait=False: engine.io's own disconnect() waits for each client to
                # fetch its queue, which a gone client never does.
                client.close(wait=False, reason=eio.reason.SERVER_DISCONNECT)
            except Exception:
                log.exception("closing a Socket.IO client failed")

    # -- connect -------------------------------------------------------------------------
    def _on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        try:
            subscriber = self._auth.from_environ(environ, auth)
        except SubscriberRefused as ex:
            raise socketio.exceptions.ConnectionRefusedError(ex.code, {"code": ex.code}) from None
        since = None
        if isinstance(auth, dict) and auth.get("since") is not None:
            try:
                since = parse_event_id(auth["since"], INVALID_SINCE, "since")
            except ApiError:
                raise socketio.exceptions.ConnectionRefusedError(
                    INVALID_SINCE, {"code": INVALID_SINCE}
                ) from None
        # Without a cursor the client hears what is accepted from now on. A cursor past
        # the newest event comes from another (reset) store.
        newest = webhook_events.latest_id(self._store)
        since = newest if since is None else min(since, newest)
        self._joins.put(_Join(sid, subscriber, since, self._clock() + PENDING_CONNECT_TIMEOUT_S))

    # -- the tail thread -----------------------------------------------------------------
    def _tail(self) -> None:
        stopping = self._gate.stopping
        while not stopping.is_set():
            try:
                self.tail_once()
            except Exception:
                log.exception("Socket.IO tail: store error, retrying")
            stopping.wait(self._tail_interval_s)

    def tail_once(self) -> None:
        """Emit new events to the rooms, then seat new clients (after their replay)."""
        if self._cursor is None:
            self._cursor = webhook_events.latest_id(self._store)
        while True:
            events = webhook_events.since(self._store, self._cursor, TAIL_BATCH)
            for event in events:
                self._emit(event)
                self._cursor = event.id
            if len(events) < TAIL_BATCH:
                break
        # Seated after the emits: a client's replay runs up to the cursor, and it hears
        # live only what comes after it.
        self._seat_waiting()
        if self._clock() - self._checked_at >= AUTH_RECHECK_INTERVAL_S:
            self._checked_at = self._clock()
            self.recheck_sessions()

    def recheck_sessions(self) -> None:
        """Disconnect the session clients whose session ended (logout, expiry)."""
        for sid, subscriber in list(self._session_clients.items()):
            if not self.sio.manager.is_connected(sid, NAMESPACE):
                del self._session_clients[sid]
            elif not self._auth.still_authorized(subscriber):
                del self._session_clients[sid]
                self.sio.disconnect(sid, namespace=NAMESPACE)

    def _seat_waiting(self) -> None:
        while True:
            try:
                self._waiting.append(self._joins.get_nowait())
            except queue.Empty:
                break
        still_waiting = []
        for join in self._waiting:
            manager = self.sio.manager
            if manager.is_connected(join.sid, NAMESPACE):
                if join.since > self._cursor:
                    still_waiting.append(join)  # it has seen events this tail has not read yet
                else:
                    self._seat(join)
            elif manager.is_pre_connected(join.sid, NAMESPACE) and self._clock() < join.deadline:
                still_waiting.append(join)  # the CONNECT answer is not out yet
            # else: refused or gone already
        self._waiting = still_waiting

    def _seat(self, join: _Join) -> None:
        if not join.subscriber.is_server and not self._auth.still_authorized(join.subscriber):
            self.sio.disconnect(join.sid, namespace=NAMESPACE)  # logged out before it was seated
            return
        if join.since < self._cursor:
            self._replay(join)
        for room in rooms_for(join.subscriber):
            self.sio.enter_room(join.sid, room, namespace=NAMESPACE)
        if not join.subscriber.is_server:
            self._session_clients[join.sid] = join.subscriber

    def _replay(self, join: _Join) -> None:
        after, sent = join.since, 0
        while after < self._cursor and sent < REPLAY_MAX_EVENTS:
            limit = min(TAIL_BATCH, REPLAY_MAX_EVENTS - sent)
            events = [
                e
                for e in webhook_events.since(
                    self._store, after, limit, campaign_ids=join.subscriber.campaign_ids
                )
                if e.id <= self._cursor
            ]
            if not events:
                return
            for event in events:
                self._emit(event, to=join.sid)
            sent += len(events)
            after = events[-1].id
        if after < self._cursor:
            # Too much to replay here: the client back-fills the rest from the JSON API.
            self.sio.emit(
                "patreon:replay:truncated",
                {"next": after, "until": self._cursor},
                to=join.sid,
                namespace=NAMESPACE,
            )

    def _emit(self, event: webhook_events.StoredEvent, to: str | None = None) -> None:
        message = event.message()
        targets = (
            [to] if to else [SERVER_ROOM] + ([f"campaign:{event.campaign_id}"] if event.campaign_id else [])
        )
        alias = alias_event(event.event)
        for target in targets:
            self.sio.emit(WEBHOOK_EVENT, message, to=target, namespace=NAMESPACE)
            if alias:
                self.sio.emit(alias, message, to=target, namespace=NAMESPACE)


class LongPollGate:
    """Counts waiting Socket.IO long-polls (GETs of a session) against the stream cap."""

    def __init__(self, app: Callable, gate: StreamGate, path: str = f"/{SOCKETIO_PATH}"):
        self._app = app
        self._gate = gate
        self._path = path

    def _is_long_poll(self, environ: dict[str, Any]) -> bool:
        return (
            environ.get("REQUEST_METHOD") == "GET"
            and environ.get("PATH_INFO", "").startswith(self._path)
            and "sid" in parse_qs(environ.get("QUERY_STRING", ""))
        )

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Any:
        if environ.get("PATH_INFO", "").startswith(self._path) and "j" in parse_qs(
            environ.get("QUERY_STRING", ""), keep_blank_values=True
        ):
            # JSONP polling answers as a script any page may load, cookies and all: a
            # way around CORS that no client of ours needs (issue 16, finding 9).
            body = json.dumps(error_body("JSONP polling (j=) is not supported", JSONP_NOT_SUPPORTED)).encode()
            start_response(
                "400 Bad Request", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            )
            return [body]
        if not self._is_long_poll(environ):
            return self._app(environ, start_response)
        if not self._gate.try_enter():
            body = json.dumps(
                error_body("Too many live event streams are open; retry later", STREAMS_FULL)
            ).encode()
            start_response(
                "503 Service Unavailable",
                [
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(body))),
                    ("Retry-After", str(STREAMS_FULL_RETRY_AFTER_S)),
                ],
            )
            return [body]
        try:
            # engine.io answers a long-poll with a list, built while this call waits.
            return self._app(environ, start_response)
        finally:
            self._gate.leave()
