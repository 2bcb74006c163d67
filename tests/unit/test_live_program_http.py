"""The live program's HTTP face, in process (falcon.testing on its ASGI app): SSE's
refusals and cursor rules, a creator's subscription ending with the session, and the
Socket.IO hardening of issue 16 finding 9 (JSONP refused, a malformed packet one log
line). These moved here with SSE and Socket.IO from web (web/events.py, web/live.py)."""

from __future__ import annotations

import asyncio
import json
import logging
import types
from pathlib import Path

import falcon.testing
import pytest

from live.app import LiveProgram, SseResource
from live.audience import Audience
from live.settings import load_settings
from settings.config import load_config
from store import webhook_events
from tests.webhook_deliveries import encode, member_document

KEY = "unit-bridge-key"
BEARER = {"Authorization": f"Bearer {KEY}"}
HANDSHAKE = "EIO=4&transport=polling"
NO_ENV_FILE = Path("/nonexistent/.env")


@pytest.fixture
def program(store, tmp_path):
    config = load_config({"BRIDGE_API_KEY": KEY}, NO_ENV_FILE)
    program = LiveProgram(config, load_settings("sandbox", tmp_path, {}, NO_ENV_FILE), store)
    yield program
    program.hub.close()


@pytest.fixture
def client(program):
    return falcon.testing.TestClient(program.app)


def accept_many(store, count: int) -> None:
    for n in range(1, count + 1):
        webhook_events.accept(store, "members:update", encode(member_document(f"m-{n}")))


# -- SSE -------------------------------------------------------------------------------------
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


def start_after(program: LiveProgram, headers: dict, params: dict) -> int:
    async def run() -> int:
        await program.hub.start()
        req = falcon.testing.create_asgi_req(
            path="/api/patreon/events", headers=headers, query_string="&".join(f"{k}={v}" for k, v in params.items())
        )
        return await SseResource(program).start_after(req)

    return asyncio.run(run())


def test_sse_cursor_rules(program, store):
    accept_many(store, 3)
    assert start_after(program, {"Last-Event-ID": "1"}, {"since": "0"}) == 1  # the header wins over ?since=
    assert start_after(program, {}, {"since": "2"}) == 2
    assert start_after(program, {}, {}) == 3  # no cursor: from the newest event on
    assert start_after(program, {"Last-Event-ID": "500"}, {}) == 3  # another (reset) store's cursor


def test_a_creator_subscription_lasts_as_long_as_the_session(program, store):
    from web.sessions import COOKIE_NAME, SessionStore, new_id

    sessions = SessionStore(store)
    session = sessions.login(None, new_id(), "1", ["1001"])
    audience = program.auth.from_environ({"HTTP_COOKIE": f"{COOKIE_NAME}={session.id}"}, None)
    assert audience.kind == "creator" and audience.campaign_ids == frozenset({"1001"})
    assert program.auth.still_authorized(audience)
    sessions.end(session.id)  # POST /api/patreon/auth/logout
    assert not program.auth.still_authorized(audience)  # re-checked every 5 s: it is dropped
    assert program.auth.still_authorized(Audience("server"))


# -- Socket.IO hardening (issue 16, finding 9) -------------------------------------------------
@pytest.mark.parametrize(
    "query", [HANDSHAKE + "&j=0", HANDSHAKE + "&j=x", "EIO=4&transport=polling&sid=abc&j=1"]
)
def test_jsonp_polling_is_refused_as_json(client, query):
    answer = client.simulate_get("/socket.io/", query_string=query)
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json["code"] == "JSONP_NOT_SUPPORTED"
    assert "javascript" not in answer.headers["content-type"]


async def asgi_request(app, method: str, query: str, body: bytes = b"") -> tuple[int, bytes]:
    """One HTTP request to the ASGI app, as uvicorn would make it (falcon.testing refuses
    engine.io's capitalised header names, which real servers take)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": "/socket.io/",
        "raw_path": b"/socket.io/",
        "query_string": query.encode(),
        "headers": [(b"host", b"127.0.0.1"), (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 6971),
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict] = []

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


async def polling_session(program) -> tuple[str, str]:
    """An engine.io handshake, then a Socket.IO CONNECT with the server key: (sid, query)."""
    status, answer = await asgi_request(program.app, "GET", HANDSHAKE)
    assert status == 200, answer
    sid = json.loads(answer[1:])["sid"]
    query = f"{HANDSHAKE}&sid={sid}"
    await asgi_request(program.app, "POST", query, b"40" + json.dumps({"key": KEY}).encode())
    return sid, query


def test_a_malformed_packet_is_one_line_without_a_traceback(program, caplog):
    caplog.set_level(logging.DEBUG)

    async def scenario() -> None:
        _sid, query = await polling_session(program)
        for garbage in ("42[", "4\\x00\\x01", "49{}", "42[1,2"):
            await asgi_request(program.app, "POST", query, garbage.encode())
        await asyncio.sleep(0.1)  # engine.io may handle a POSTed packet in a task of its own

    asyncio.run(scenario())
    records = [r for r in caplog.records if r.name.startswith(("engineio", "socketio"))]
    assert not any(r.exc_info for r in records), [r.getMessage() for r in records]
    assert "Traceback" not in caplog.text


# -- which pages may connect (live.origins) ---------------------------------------------------
def test_allowed_origins():
    from live.origins import AllowedOrigins

    origins = AllowedOrigins(("https://site.example",), web_port=6969)
    environ = {"HTTP_HOST": "127.0.0.1:6971", "wsgi.url_scheme": "http"}
    assert origins.engineio_allows("http://127.0.0.1:6971", environ)  # its own origin
    assert origins.engineio_allows("http://127.0.0.1:6969", environ)  # web's pages, same host
    assert origins.engineio_allows("https://site.example", environ)  # configured
    assert not origins.engineio_allows("http://evil.example:6969", environ)  # web's port, another host
    assert not origins.engineio_allows("http://127.0.0.1:8080", environ)
    assert not origins.engineio_allows("null", environ)
    behind_nginx = {**environ, "HTTP_X_FORWARDED_HOST": "site.example", "HTTP_X_FORWARDED_PROTO": "https"}
    assert AllowedOrigins((), 6969).engineio_allows("https://site.example", behind_nginx)
    assert AllowedOrigins(("*",), 6969).engineio_allows("http://anyone.example", environ)


def test_sse_answers_web_pages_with_credentials_and_others_without(client):
    page = client.simulate_get(
        "/api/patreon/live/health", headers={"Origin": "http://127.0.0.1:6969"}, host="127.0.0.1", port=6971
    )
    assert page.headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:6969"
    assert page.headers["Access-Control-Allow-Credentials"] == "true"
    other = client.simulate_get(
        "/api/patreon/live/health", headers={"Origin": "http://evil.example:6969"}, host="127.0.0.1", port=6971
    )
    assert "Access-Control-Allow-Origin" not in other.headers


def test_the_roomless_manager_disconnects_like_python_socketios_own():
    import socketio

    from live.sio import RoomlessManager

    def after_disconnects(manager) -> tuple:
        socketio.AsyncServer(client_manager=manager)  # sets the manager's server

        async def scenario() -> list[str]:
            sids = [await manager.pre_connect(f"eio-{n}", "/") for n in range(3)]
            manager.pre_disconnect(sids[2], "/")
            await manager.disconnect(sids[1], "/")
            await manager.disconnect(sids[2], "/")
            return sids

        asyncio.run(scenario())
        rooms = manager.rooms["/"]
        return dict(rooms[None]), sorted(r for r in rooms if r is not None), manager.pending_disconnect

    original, roomless = after_disconnects(socketio.AsyncManager()), after_disconnects(RoomlessManager())
    assert len(roomless[0]) == len(original[0]) == 1  # one client left
    assert len(roomless[1]) == len(original[1]) == 1  # its sid room, and no other
    assert roomless[2] == original[2] == {}


def test_a_polling_client_closed_by_its_ping_timeout_on_send_is_let_go_quietly(store, caplog):
    import engineio.exceptions

    from live.hub import Frames, Hub
    from live.sio import SioClient

    class TimedOutSocket:  # engine.io's socket, closing itself on this send (ping timeout)
        closed = closing = False
        queue = asyncio.Queue()

        async def send(self, pkt):
            raise engineio.exceptions.SocketIsClosedError()

    class Server:
        def __init__(self):
            self.eio = types.SimpleNamespace(sockets={"eio-1": TimedOutSocket()})

        def get_environ(self, sid, namespace):
            return {}

    accept_many(store, 1)
    hub = Hub(store, public_feed=False)
    client = SioClient(Audience("server"), "sid-1", "eio-1", Server(), hub, limit=10)
    hub.clients.add(client)
    [event] = webhook_events.since(store, 0, 1)
    asyncio.run(client.offer(Frames(event), wait=False))  # no exception reaches the fan-out
    assert client.closed and client not in hub.clients
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    hub.close()


def test_a_polling_client_that_closes_gets_its_pending_poll_answered_and_its_place_back(program):
    """engine.io leaves a closed client's long-poll waiting for its timeout (python-socketio's
    client then spends 30 s in ``disconnect()``) and its socket in the table that
    ``LIVE_MAX_CONNECTIONS`` counts: the live program answers the poll and frees the place."""

    async def scenario() -> None:
        sid, query = await polling_session(program)
        status, answer = await asgi_request(program.app, "GET", query)  # the CONNECT answer
        assert (status, answer[:2]) == (200, b"40"), answer
        assert program.connections == 1
        pending = asyncio.create_task(asgi_request(program.app, "GET", query))
        await asyncio.sleep(0.1)
        assert not pending.done()  # a long-poll, waiting for events
        await asgi_request(program.app, "POST", query, b"1")  # engine.io's CLOSE packet
        # Without the answer this poll waits PING_INTERVAL + PING_TIMEOUT (45 s): the guard fails first.
        status, answer = await asyncio.wait_for(pending, 5)
        assert (status, answer) == (200, b"")
        assert program.connections == 0 and sid not in program.sio.server.eio.sockets

    asyncio.run(scenario())


def test_a_refused_client_reads_its_code_and_then_loses_its_place(program):
    """A refused CONNECT is answered with its code; the engine.io socket, which a
    python-socketio client leaves open, is closed after ``REFUSED_CLOSE_AFTER_S`` so
    it does not hold a place under ``LIVE_MAX_CONNECTIONS`` until its ping timeout."""

    async def scenario() -> None:
        status, answer = await asgi_request(program.app, "GET", HANDSHAKE)
        sid = json.loads(answer[1:])["sid"]
        query = f"{HANDSHAKE}&sid={sid}"
        await asgi_request(program.app, "POST", query, b"40" + json.dumps({"token": "not-a-token"}).encode())
        status, answer = await asgi_request(program.app, "GET", query)
        assert status == 200 and answer.startswith(b"44"), answer  # CONNECT_ERROR
        assert json.loads(answer[2:])["data"] == {"code": "TOKEN_MALFORMED"}
        assert sid in program.sio.server.eio.sockets  # the client may still read it
        # The guard is generous (the close comes after 1 s): a liveness check, not a timing.
        for _ in range(100):
            if sid not in program.sio.server.eio.sockets:
                break
            await asyncio.sleep(0.05)
        assert sid not in program.sio.server.eio.sockets and program.connections == 0

    asyncio.run(scenario())
