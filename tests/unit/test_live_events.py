"""Subscribers: who may subscribe, the SSE stream body, the JSON back-fill, the stream
cap, and the Socket.IO tail's replay-then-live ordering. Sessions come from an
in-memory SessionStore with the interface of ``web.sessions``."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlencode

import falcon
import falcon.testing
import pytest

from live_events.subscribers import SERVER, Subscriber, SubscriberAuth, SubscriberRefused
from live_events.wire_format import alias_event
from settings.config import ConfigError, load_config
from store import webhook_events
from tests.fake_worker import FakeWorker
from tests.webhook_deliveries import encode, member_document
from web.app import create_app
from web.events import EventStream, StreamGate
from web.live import SERVER_ROOM, LiveEvents, LongPollGate
from web.sessions import Session

KEY = "unit-bridge-key"
SESSION_COOKIE = "bridge_session"


class FakeSessions:
    """SessionStore's reading side in memory: from_request(req) / from_cookie_header(header),
    returning the real Session type."""

    def __init__(self, sessions: dict[str, Session]):
        self._sessions = sessions

    def from_cookie_header(self, cookie_header: str | None) -> Session | None:
        for part in (cookie_header or "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == SESSION_COOKIE:
                return self._sessions.get(value)
        return None

    def from_request(self, req: falcon.Request) -> Session | None:
        return self.from_cookie_header(req.get_header("Cookie"))


SESSIONS = FakeSessions(
    {
        "creator": Session("creator", "1", ("1001",)),
        "patron": Session("patron", "2", ()),
    }
)


@pytest.fixture
def auth():
    return SubscriberAuth(load_config({"BRIDGE_API_KEY": KEY}, Path("/nonexistent/.env")), SESSIONS)


@pytest.fixture
def gate():
    return StreamGate(max_streams=2)


@pytest.fixture
def client(store, auth, gate):
    return falcon.testing.TestClient(
        create_app(auth.config, FakeWorker(), store, streams=gate, subscribers=auth)
    )


def accept_many(store, count: int, campaign_of=lambda n: "1001") -> None:
    for n in range(1, count + 1):
        webhook_events.accept(
            store, "members:update", encode(member_document(f"m-{n}", campaign_id=campaign_of(n)))
        )


BEARER = {"Authorization": f"Bearer {KEY}"}


# -- authorization -----------------------------------------------------------------------
def test_backfill_needs_the_server_key_or_a_creator_session(client, store):
    accept_many(store, 1)
    assert client.simulate_get("/api/patreon/webhooks/events").json["code"] == "UNAUTHORIZED"
    wrong = client.simulate_get("/api/patreon/webhooks/events", headers={"Authorization": "Bearer nope"})
    assert (wrong.status_code, wrong.json["code"]) == (401, "INVALID_API_KEY")
    patron = client.simulate_get(
        "/api/patreon/webhooks/events", headers={"Cookie": f"{SESSION_COOKIE}=patron"}
    )
    assert (patron.status_code, patron.json["code"]) == (403, "FORBIDDEN")
    assert client.simulate_get("/api/patreon/webhooks/events", headers=BEARER).status_code == 200
    creator = client.simulate_get(
        "/api/patreon/webhooks/events", headers={"Cookie": f"{SESSION_COOKIE}=creator"}
    )
    assert creator.status_code == 200
    # ?key= is for EventSource only: the JSON back-fill takes the header.
    assert client.simulate_get("/api/patreon/webhooks/events", params={"key": KEY}).status_code == 401


def test_socketio_connect_auth(auth):
    assert auth.from_environ({}, {"key": KEY}) == SERVER
    assert auth.from_environ({"HTTP_AUTHORIZATION": f"Bearer {KEY}"}, None) == SERVER
    assert auth.from_environ({"HTTP_COOKIE": f"a=b; {SESSION_COOKIE}=creator"}, {}) == Subscriber(
        frozenset({"1001"})
    )
    for environ, data, code in [
        ({}, None, "UNAUTHORIZED"),
        ({}, {"key": "wrong"}, "INVALID_API_KEY"),
        ({}, {"key": 12345}, "INVALID_API_KEY"),
        ({"HTTP_AUTHORIZATION": "Bearer wrong"}, None, "INVALID_API_KEY"),
        ({"HTTP_COOKIE": f"{SESSION_COOKIE}=patron"}, None, "FORBIDDEN"),
        ({"HTTP_COOKIE": f"{SESSION_COOKIE}=unknown"}, None, "UNAUTHORIZED"),
    ]:
        with pytest.raises(SubscriberRefused) as refused:
            auth.from_environ(environ, data)
        assert refused.value.code == code


def test_no_server_key_configured_means_no_key_is_accepted():
    auth = SubscriberAuth(load_config({}, Path("/nonexistent/.env")), None)
    with pytest.raises(SubscriberRefused):
        auth.from_environ({}, {"key": ""})
    with pytest.raises(SubscriberRefused):
        auth.from_environ({}, None)


# -- JSON back-fill --------------------------------------------------------------------------
def test_backfill_pages_in_order(client, store):
    accept_many(store, 5)
    first = client.simulate_get(
        "/api/patreon/webhooks/events", params={"since": "0", "limit": "2"}, headers=BEARER
    )
    assert [e["id"] for e in first.json["events"]] == [1, 2]
    assert (first.json["next"], first.json["latest"], first.json["hasMore"]) == (2, 5, True)
    rest = client.simulate_get("/api/patreon/webhooks/events", params={"since": "2"}, headers=BEARER)
    assert [e["id"] for e in rest.json["events"]] == [3, 4, 5]
    assert (rest.json["next"], rest.json["hasMore"]) == (5, False)
    event = rest.json["events"][0]
    assert set(event) == {"id", "type", "data", "included", "receivedAt"}
    assert event["type"] == "members:update" and event["data"]["id"] == "m-3"


def test_backfill_for_a_creator_holds_only_their_campaigns(client, store):
    accept_many(store, 6, campaign_of=lambda n: "1001" if n % 3 == 0 else "9999")
    result = client.simulate_get(
        "/api/patreon/webhooks/events", headers={"Cookie": f"{SESSION_COOKIE}=creator"}
    )
    assert [e["id"] for e in result.json["events"]] == [3, 6]
    # The cursor moves past other campaigns' events too.
    assert result.json["next"] == 6


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"limit": "0"}, "INVALID_LIMIT"),
        ({"limit": "1001"}, "INVALID_LIMIT"),
        ({"limit": "ten"}, "INVALID_LIMIT"),
        ({"since": "-1"}, "INVALID_SINCE"),
        ({"since": "1.5"}, "INVALID_SINCE"),
        ({"since": "99999999999999999999999"}, "INVALID_SINCE"),
        ({"since": "²"}, "INVALID_SINCE"),
        ({"limit": "١٠"}, "INVALID_LIMIT"),
        ({"since": ["1", "2"]}, "INVALID_PARAMETER"),
        ({"limit": ["1", "2"]}, "INVALID_PARAMETER"),
        ({"key": [KEY, KEY]}, "INVALID_PARAMETER"),
    ],
)
def test_backfill_rejects_bad_parameters(client, params, code):
    result = client.simulate_get("/api/patreon/webhooks/events", params=params, headers=BEARER)
    assert (result.status_code, result.json["code"]) == (400, code)


# -- SSE -----------------------------------------------------------------------------------
def parse_sse(chunks: list[bytes]) -> list[dict]:
    events = []
    for block in b"".join(chunks).decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":"))
        if "data" in fields:
            events.append(
                {"id": int(fields["id"]), "event": fields["event"], "data": json.loads(fields["data"])}
            )
    return events


def test_stream_replays_from_the_cursor_then_ends_on_shutdown(store, gate):
    accept_many(store, 4)
    assert gate.try_enter()
    stream = EventStream(store, SERVER, 1, gate, poll_interval_s=0)
    chunks = [next(stream), next(stream)]
    assert chunks[0].startswith(b"retry: ")
    events = parse_sse(chunks)
    assert [e["id"] for e in events] == [2, 3, 4]
    assert {e["event"] for e in events} == {"patreon:webhook"}
    assert events[0]["data"]["id"] == 2 and events[0]["data"]["type"] == "members:update"
    gate.stop()
    assert list(stream) == []
    stream.close()
    assert gate.open == 0


def test_stream_sends_live_events_and_keepalives(store, gate):
    now = [0.0]
    assert gate.try_enter()
    stream = EventStream(
        store,
        SERVER,
        0,
        gate,
        poll_interval_s=0,
        keepalive_interval_s=10,
        lifetime_s=100,
        clock=lambda: now[0],
    )
    next(stream)
    now[0] = 11.0
    assert next(stream) == b": keep-alive\n\n"
    accept_many(store, 1)
    assert [e["id"] for e in parse_sse([next(stream)])] == [1]
    now[0] = 200.0  # past its lifetime: the stream ends and the client reconnects
    assert list(stream) == []
    stream.close()
    stream.close()
    assert gate.open == 0


def test_a_creator_stream_skips_other_campaigns(store, gate):
    accept_many(store, 4, campaign_of=lambda n: "1001" if n == 3 else "9999")
    assert gate.try_enter()
    stream = EventStream(store, Subscriber(frozenset({"1001"})), 0, gate, poll_interval_s=0)
    next(stream)
    assert [e["id"] for e in parse_sse([next(stream)])] == [3]
    stream.close()


def open_sse(client, headers=None, params=None):
    """Call the app as a WSGI server would, without reading the endless body."""
    query = urlencode(params or {})
    environ = falcon.testing.create_environ("/api/patreon/events", query_string=query, headers=headers)
    started = {}
    body = client.app(
        environ, lambda status, hdrs: started.update(status=status, headers={k.lower(): v for k, v in hdrs})
    )
    return started, body


def test_sse_resource_headers_cursor_and_cap(client, store, gate):
    accept_many(store, 3)
    started, body = open_sse(client, headers={**BEARER, "Last-Event-ID": "1"}, params={"since": "0"})
    assert started["status"] == "200 OK"
    assert started["headers"]["content-type"].startswith("text/event-stream")
    assert started["headers"]["cache-control"] == "no-cache"
    next(body)
    assert [e["id"] for e in parse_sse([next(body)])] == [2, 3]  # Last-Event-ID wins over ?since=

    _started, second = open_sse(client, params={"key": KEY, "since": "2"})
    next(second)
    assert [e["id"] for e in parse_sse([next(second)])] == [3]
    assert gate.open == 2

    full = client.simulate_get("/api/patreon/events", headers=BEARER)
    assert (full.status_code, full.json["code"], full.headers["Retry-After"]) == (503, "STREAMS_FULL", "5")
    body.close()
    second.close()
    assert gate.open == 0


def test_sse_without_a_cursor_starts_at_the_newest_event(client, store, gate):
    accept_many(store, 3)
    _started, body = open_sse(client, headers=BEARER)
    assert body.cursor == 3
    body.close()
    # A cursor from another (reset) store is clamped to the newest event.
    _started, body = open_sse(client, headers={**BEARER, "Last-Event-ID": "500"})
    assert body.cursor == 3
    body.close()


def test_sse_rejects_bad_cursors_and_anonymous_clients(client):
    repeated = client.simulate_get("/api/patreon/events", query_string=f"key={KEY}&since=1&since=2")
    assert (repeated.status_code, repeated.json["code"]) == (400, "INVALID_PARAMETER")
    bad = client.simulate_get("/api/patreon/events", headers={**BEARER, "Last-Event-ID": "abc"})
    assert (bad.status_code, bad.json["code"]) == (400, "INVALID_LAST_EVENT_ID")
    bad = client.simulate_get("/api/patreon/events", params={"key": KEY, "since": "x"})
    assert (bad.status_code, bad.json["code"]) == (400, "INVALID_SINCE")
    assert client.simulate_get("/api/patreon/events").json["code"] == "UNAUTHORIZED"
    assert (
        client.simulate_get("/api/patreon/events", params={"key": "wrong"}).json["code"] == "INVALID_API_KEY"
    )


# -- Socket.IO ------------------------------------------------------------------------------
def test_alias_events():
    assert alias_event("members:create") == "patreon:member:create"
    assert alias_event("members:delete") == "patreon:member:delete"
    assert alias_event("members:pledge:update") == "patreon:pledge:update"
    assert alias_event("pledges:delete") == "patreon:pledge:delete"
    assert alias_event("posts:publish") is None


class Recorder:
    def __init__(self):
        self.calls: list[tuple] = []

    def __call__(self, event, data=None, to=None, namespace=None, **_kw):
        self.calls.append(
            ("emit", event, data["id"] if isinstance(data, dict) and "id" in data else data, to)
        )


def test_tail_replays_to_a_new_client_then_seats_it_in_order(store, auth, gate):
    accept_many(store, 3)
    live = LiveEvents(store, auth, gate)
    recorder = Recorder()
    live.sio.emit = recorder
    live.tail_once()  # cursor at 3, nobody connected
    sid = live.sio.manager.connect("eio-1", "/")  # a client that has connected
    live._on_connect(sid, {}, {"key": KEY, "since": 1})
    webhook_events.accept(store, "members:create", encode(member_document("m-4")))
    live.tail_once()
    webhook_events.accept(store, "members:create", encode(member_document("m-5")))
    live.tail_once()
    webhook_calls = [c for c in recorder.calls if c[1] == "patreon:webhook"]
    assert webhook_calls == [
        ("emit", "patreon:webhook", 4, SERVER_ROOM),  # live, before the client is seated
        ("emit", "patreon:webhook", 4, "campaign:1001"),
        ("emit", "patreon:webhook", 2, sid),  # its replay runs up to the tail's cursor
        ("emit", "patreon:webhook", 3, sid),
        ("emit", "patreon:webhook", 4, sid),
        ("emit", "patreon:webhook", 5, SERVER_ROOM),  # then it hears live events in its room
        ("emit", "patreon:webhook", 5, "campaign:1001"),
    ]
    assert ("emit", "patreon:member:create", 5, SERVER_ROOM) in recorder.calls
    assert SERVER_ROOM in live.sio.rooms(sid)


def test_a_client_without_a_cursor_hears_everything_accepted_after_it_connected(store, auth, gate):
    accept_many(store, 2)
    live = LiveEvents(store, auth, gate)
    recorder = Recorder()
    live.sio.emit = recorder
    live.tail_once()
    sid = live.sio.manager.connect("eio-1", "/")
    live._on_connect(sid, {"HTTP_AUTHORIZATION": f"Bearer {KEY}"}, None)
    webhook_events.accept(store, "members:update", encode(member_document("m-3")))  # before it is seated
    live.tail_once()
    to_client = [c[2] for c in recorder.calls if c[1] == "patreon:webhook" and c[3] == sid]
    assert to_client == [3]  # not 1 or 2 (before it connected), and 3 exactly once


def test_a_client_ahead_of_the_tail_waits_for_it(store, auth, gate):
    live = LiveEvents(store, auth, gate)
    recorder = Recorder()
    live.sio.emit = recorder
    live.tail_once()  # cursor at 0
    accept_many(store, 2)  # not read by the tail yet
    sid = live.sio.manager.connect("eio-1", "/")
    live._on_connect(sid, {}, {"key": KEY, "since": 2})  # it has seen both already
    live._on_connect("gone", {}, {"key": KEY, "since": 99})  # never connected: dropped
    live.tail_once()
    assert [c[3] for c in recorder.calls if c[1] == "patreon:webhook"] == [SERVER_ROOM, "campaign:1001"] * 2
    assert SERVER_ROOM in live.sio.rooms(sid)
    assert live._waiting == []


def test_socketio_connect_refusals(store, auth, gate):
    import socketio

    live = LiveEvents(store, auth, gate)
    with pytest.raises(socketio.exceptions.ConnectionRefusedError) as refused:
        live._on_connect("sid", {}, None)
    assert refused.value.error_args == {"message": "UNAUTHORIZED", "data": {"code": "UNAUTHORIZED"}}
    with pytest.raises(socketio.exceptions.ConnectionRefusedError) as refused:
        live._on_connect("sid", {}, {"key": KEY, "since": "later"})
    assert refused.value.error_args["message"] == "INVALID_SINCE"


def test_long_polls_count_against_the_stream_cap(gate):
    def app(environ, start_response):
        start_response("200 OK", [])
        return [str(gate.open).encode()]

    wrapped = LongPollGate(app, gate)
    poll = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/socket.io/",
        "QUERY_STRING": "EIO=4&transport=polling&sid=abc",
    }
    assert wrapped(poll, lambda *a: None) == [b"1"]  # held a place while it ran
    assert gate.open == 0
    handshake = {**poll, "QUERY_STRING": "EIO=4&transport=polling"}
    assert gate.try_enter() and gate.try_enter()
    assert wrapped(handshake, lambda *a: None) == [b"2"]  # a handshake does not wait: not counted
    statuses = []
    body = wrapped(poll, lambda status, headers: statuses.append((status, dict(headers))))
    assert statuses[0][0].startswith("503") and statuses[0][1]["Retry-After"] == "5"
    assert json.loads(body[0])["code"] == "STREAMS_FULL"


def test_socketio_cors_origins_come_from_the_config(store, gate):
    def live_for(value: str) -> LiveEvents:
        config = load_config({"SOCKETIO_CORS_ORIGINS": value}, Path("/nonexistent/.env"))
        return LiveEvents.for_config(config, store, gate)

    assert live_for("").sio.eio.cors_allowed_origins is None  # same origin only
    assert live_for("https://site.example, http://localhost:3000/").sio.eio.cors_allowed_origins == [
        "https://site.example",
        "http://localhost:3000",
    ]
    assert live_for("*").sio.eio.cors_allowed_origins == "*"
    with pytest.raises(ConfigError) as bad:
        load_config(
            {"SOCKETIO_CORS_ORIGINS": "site.example,https://x.example/path"}, Path("/nonexistent/.env")
        )
    assert bad.value.problems[0][0] == "SOCKETIO_CORS_ORIGINS"


# -- a subscription ends with the session -------------------------------------------------
def creator_login(store):
    """A logged-in creator session in the real SessionStore; returns (sessions, auth, cookie)."""
    from web.sessions import COOKIE_NAME, SessionStore, new_id

    sessions = SessionStore(store)
    session = sessions.login(None, new_id(), "1", ["1001"])
    auth = SubscriberAuth(load_config({"BRIDGE_API_KEY": KEY}, Path("/nonexistent/.env")), sessions)
    return sessions, session, auth, f"{COOKIE_NAME}={session.id}"


def test_a_creator_socketio_client_is_disconnected_after_logout(store, gate):
    sessions, session, auth, cookie = creator_login(store)
    now = [0.0]
    live = LiveEvents(store, auth, gate, clock=lambda: now[0])
    recorder = Recorder()
    live.sio.emit = recorder
    disconnected = []
    live.sio.disconnect = lambda sid, namespace=None: disconnected.append(sid)
    live.tail_once()
    creator = live.sio.manager.connect("eio-1", "/")
    live._on_connect(creator, {"HTTP_COOKIE": cookie}, None)
    server = live.sio.manager.connect("eio-2", "/")
    live._on_connect(server, {}, {"key": KEY})
    live.tail_once()
    assert "campaign:1001" in live.sio.rooms(creator)
    now[0] = 10.0
    live.tail_once()
    assert disconnected == []  # still logged in
    sessions.end(session.id)  # POST /api/patreon/auth/logout
    now[0] = 20.0
    live.tail_once()
    assert disconnected == [creator]  # the server-key client stays


def test_a_creator_logged_out_before_being_seated_is_not_seated(store, gate):
    sessions, session, auth, cookie = creator_login(store)
    accept_many(store, 2)
    live = LiveEvents(store, auth, gate)
    recorder = Recorder()
    live.sio.emit = recorder
    disconnected = []
    live.sio.disconnect = lambda sid, namespace=None: disconnected.append(sid)
    live.tail_once()
    sid = live.sio.manager.connect("eio-1", "/")
    live._on_connect(sid, {"HTTP_COOKIE": cookie}, {"since": 0})
    sessions.end(session.id)
    live.tail_once()
    assert disconnected == [sid]
    assert [c for c in recorder.calls if c[3] == sid] == []  # no replay either


def test_a_creator_sse_stream_ends_after_logout(store, gate):
    sessions, session, auth, _cookie = creator_login(store)
    subscriber = auth.from_environ({"HTTP_COOKIE": _cookie}, None)
    now = [0.0]
    assert gate.try_enter()
    stream = EventStream(
        store,
        subscriber,
        0,
        gate,
        poll_interval_s=0,
        keepalive_interval_s=1,
        recheck_interval_s=5,
        clock=lambda: now[0],
        still_authorized=lambda: auth.still_authorized(subscriber),
    )
    next(stream)
    now[0] = 6.0
    assert next(stream) == b": keep-alive\n\n"  # still logged in: the stream goes on
    sessions.end(session.id)
    now[0] = 12.0
    assert list(stream) == []  # the session is gone: the stream ends
    stream.close()
    assert auth.still_authorized(SERVER)


def test_the_sse_resource_rechecks_the_session(store, gate):
    sessions, session, auth, cookie = creator_login(store)
    app = create_app(auth.config, FakeWorker(), store, streams=gate, subscribers=auth)
    _started, body = open_sse(falcon.testing.TestClient(app), headers={"Cookie": cookie})
    assert body._still_authorized() is True
    sessions.end(session.id)
    assert body._still_authorized() is False
    body.close()


# -- a delivery holding a lone surrogate ----------------------------------------------------
def accept_surrogate(store):
    doc = member_document("m-1")
    doc["data"]["attributes"]["full_name"] = "\ud800"
    raw = json.dumps(doc).encode()  # ensure_ascii: the bytes hold the escape "\\ud800"
    webhook_events.accept(store, "members:update", raw)


def test_an_event_with_a_lone_surrogate_reaches_sse_backfill_and_socketio(store, client, gate, auth):
    accept_surrogate(store)
    backfill = client.simulate_get("/api/patreon/webhooks/events", headers=BEARER)
    assert backfill.status_code == 200
    assert backfill.json["events"][0]["data"]["attributes"]["full_name"] == "\ud800"
    assert gate.try_enter()
    stream = EventStream(store, SERVER, 0, gate, poll_interval_s=0)
    next(stream)
    [event] = parse_sse([next(stream)])
    assert event["data"]["data"]["attributes"]["full_name"] == "\ud800"
    stream.close()
    import socketio

    encoded = socketio.packet.Packet(
        socketio.packet.EVENT, data=["patreon:webhook", event["data"]], namespace="/"
    ).encode()
    encoded.encode("utf-8")  # Socket.IO's JSON escapes it too


def test_a_surrogate_server_key_is_refused_on_connect(auth):
    with pytest.raises(SubscriberRefused) as refused:
        auth.from_environ({}, {"key": "\ud800"})
    assert refused.value.code == "INVALID_API_KEY"


def test_backfill_clamps_a_cursor_past_the_newest_event(client, store):
    accept_many(store, 2)
    page = client.simulate_get("/api/patreon/webhooks/events", params={"since": "500"}, headers=BEARER).json
    assert (page["events"], page["next"]) == ([], 2)
    webhook_events.accept(store, "members:create", encode(member_document("m-3")))  # id 3: heard
    page = client.simulate_get(
        "/api/patreon/webhooks/events", params={"since": str(page["next"])}, headers=BEARER
    ).json
    assert [e["id"] for e in page["events"]] == [3]
