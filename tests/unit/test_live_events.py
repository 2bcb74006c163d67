"""Subscribers (``live_events.subscribers``: who may subscribe, on web and live alike),
web's JSON back-fill, the event aliases, and web's answer on the live paths it no longer
serves. Sessions come from an in-memory SessionStore with the interface of
``web.sessions``. The live program's own SSE and Socket.IO: test_live_program_http.py,
test_live_hub.py."""

from __future__ import annotations

import json
from pathlib import Path

import falcon
import falcon.testing
import pytest

from live_events.subscribers import SERVER, Subscriber, SubscriberAuth, SubscriberRefused
from live_events.wire_format import alias_event, format_sse
from settings.config import load_config
from store import webhook_events
from tests.fake_worker import FakeWorker
from tests.webhook_deliveries import encode, member_document
from web.app import create_app
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
def client(store, auth):
    return falcon.testing.TestClient(create_app(auth.config, FakeWorker(), store, subscribers=auth))


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


# -- Socket.IO ------------------------------------------------------------------------------
def test_alias_events():
    assert alias_event("members:create") == "patreon:member:create"
    assert alias_event("members:delete") == "patreon:member:delete"
    assert alias_event("members:pledge:update") == "patreon:pledge:update"
    assert alias_event("pledges:delete") == "patreon:pledge:delete"
    assert alias_event("posts:publish") is None


# -- a subscription ends with the session -------------------------------------------------
def creator_login(store):
    """A logged-in creator session in the real SessionStore; returns (sessions, auth, cookie)."""
    from web.sessions import COOKIE_NAME, SessionStore, new_id

    sessions = SessionStore(store)
    session = sessions.login(None, new_id(), "1", ["1001"])
    auth = SubscriberAuth(load_config({"BRIDGE_API_KEY": KEY}, Path("/nonexistent/.env")), sessions)
    return sessions, session, auth, f"{COOKIE_NAME}={session.id}"


# -- a delivery holding a lone surrogate ----------------------------------------------------
def accept_surrogate(store):
    doc = member_document("m-1")
    doc["data"]["attributes"]["full_name"] = "\ud800"
    raw = json.dumps(doc).encode()  # ensure_ascii: the bytes hold the escape "\\ud800"
    webhook_events.accept(store, "members:update", raw)


def test_an_event_with_a_lone_surrogate_reaches_sse_backfill_and_socketio(store, client):
    accept_surrogate(store)
    backfill = client.simulate_get("/api/patreon/webhooks/events", headers=BEARER)
    assert backfill.status_code == 200
    assert backfill.json["events"][0]["data"]["attributes"]["full_name"] == "\ud800"
    # The SSE frame both programs' streams send (live_events.wire_format).
    [event] = parse_sse([format_sse(e) for e in webhook_events.since(store, 0, 10)])
    assert event["data"]["data"]["attributes"]["full_name"] == "\ud800"
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


# -- web no longer serves the live streams -----------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "query"),
    [
        ("GET", "/api/patreon/events", f"key={KEY}&since=0"),
        ("GET", "/socket.io/", "EIO=4&transport=polling"),
        ("POST", "/socket.io/", "EIO=4&transport=polling&sid=abc"),
    ],
)
def test_web_answers_its_old_live_paths_with_410_and_where_to_go(client, method, path, query):
    answer = client.simulate_request(method, path, query_string=query, headers=BEARER)
    assert (answer.status_code, answer.json["code"]) == (410, "LIVE_EVENTS_MOVED")
    assert answer.json["path"] == path and "LIVE_PORT" in answer.json["error"]
