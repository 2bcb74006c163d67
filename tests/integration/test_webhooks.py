"""Webhooks through the real stack: receiver -> store -> the live program's SSE and
Socket.IO -> worker.

- signed deliveries over HTTP, and their rejections;
- live delivery to an SSE client and a python-socketio client of the live program
  (latency measured), and refusal of unauthorized subscribers;
- the sandbox's own signed webhook (a member upgrade) end to end, up to the member
  state the worker keeps;
- durability: 500 deliveries while the worker is kill -9'ed and web and live restarted.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import engineio.payload
import pytest
import requests
import socketio

from harness.stack import Stack, body, wait_for
from tests.browser import Browser
from tests.webhook_deliveries import EMAIL_DOMAIN, PATH, encode, member_document, signed_headers

KEY = "integration-bridge-key"
SECRET = "integration-webhook-secret"
ENV = {"BRIDGE_API_KEY": KEY, "PATREON_WEBHOOK_SECRET": SECRET, "SANDBOX_WEBHOOK_SECRET": SECRET}
# Logins ask for ``campaigns`` so a creator's session knows its campaign.
SCOPES = {"PATREON_DEFAULT_SCOPES": "identity identity.memberships campaigns"}
BEARER = {"Authorization": f"Bearer {KEY}"}
LIVE_DEADLINE_S = 1.0


class SseClient:
    """A minimal EventSource: reads ``GET /api/patreon/events`` in a thread and, when
    the stream ends or breaks, reconnects with ``Last-Event-ID`` like a browser does."""

    def __init__(
        self,
        base_url: str,
        *,
        last_event_id: int | None = None,
        reconnect_delay_s: float = 0.1,
        headers: dict[str, str] | None = None,
    ):
        self.headers = BEARER if headers is None else headers
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname, parts.port
        self.last_event_id = last_event_id
        self.reconnect_delay_s = reconnect_delay_s
        self.events: list[tuple[int, dict, float]] = []  # (id, data, received at)
        self.connections = 0
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._conn: http.client.HTTPConnection | None = None
        self._sock: socket.socket | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> SseClient:
        self._thread.start()
        wait_for(self.connected.is_set, 10, what="the SSE client to connect")
        return self

    def close(self) -> None:
        self._stop.set()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)  # wakes the reader blocked in readline
        self._thread.join(5)
        assert not self._thread.is_alive(), "the SSE reader did not stop"

    def ids(self) -> list[int]:
        return [event_id for event_id, _data, _at in self.events]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._read_one_connection()
            except (OSError, http.client.HTTPException):
                pass
            self.connected.clear()
            self._stop.wait(self.reconnect_delay_s)

    def _read_one_connection(self) -> None:
        headers = dict(self.headers)
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = str(self.last_event_id)
        self._conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        self._conn.request("GET", "/api/patreon/events", headers=headers)
        self._sock = self._conn.sock  # the response takes it over; close() shuts it down
        resp = self._conn.getresponse()
        if resp.status != 200:
            resp.read()
            return
        self.connections += 1
        self.connected.set()
        fields: dict[str, str] = {}
        while not self._stop.is_set():
            line = resp.readline()
            if not line:
                return  # the stream ended: reconnect
            line = line.decode().rstrip("\n")
            if line == "":
                # live also sends ``event: patreon:disconnect`` (no id) before it closes a stream.
                if "data" in fields and fields.get("event") == "patreon:webhook":
                    event_id = int(fields["id"])
                    self.events.append((event_id, json.loads(fields["data"]), time.monotonic()))
                    self.last_event_id = event_id
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                fields[name] = value


# python-engineio's client refuses a long-poll answer of more than 16 packets (a guard
# of its own; browsers' socket.io-client has none). A replay or a burst of webhooks
# queues more than that between two polls, so a Python subscriber raises it
# (the README says so too).
engineio.payload.Payload.max_decode_packets = 4096


class SocketIoClient:
    """python-socketio's client on long-polling, recording every event it hears."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.sio = socketio.Client(reconnection=False)
        self.events: list[tuple[str, dict, float]] = []
        self.refusal: dict | None = None
        self.sio.on("connect_error", self._refused)
        for name in (
            "patreon:webhook",
            "patreon:member:update",
            "patreon:pledge:update",
            "patreon:member:create",
        ):
            self.sio.on(name, self._recorder(name))

    def connect(
        self, auth: dict | None = None, headers: dict | None = None, wait_timeout_s: float = 10
    ) -> SocketIoClient:
        self.sio.connect(
            self.base_url,
            auth=auth,
            headers=headers or {},
            transports=["polling"],
            wait_timeout=wait_timeout_s,
        )
        return self

    def _refused(self, data) -> None:
        self.refusal = data

    def _recorder(self, name: str):
        return lambda data: self.events.append((name, data, time.monotonic()))

    def received(self, name: str = "patreon:webhook") -> list[tuple[dict, float]]:
        return [(data, at) for event, data, at in self.events if event == name]

    def close(self) -> None:
        self.sio.disconnect()


MAX_CONNECTIONS = 4  # the live program's cap (LIVE_MAX_CONNECTIONS): SSE streams and Socket.IO clients


@pytest.fixture(scope="module")
def stack():
    stack = Stack({**ENV, **SCOPES, "LIVE_MAX_CONNECTIONS": str(MAX_CONNECTIONS)})
    # The sandbox delivers its own webhooks to our receiver (SANDBOX_WEBHOOK_URI seeds one).
    stack.env["SANDBOX_WEBHOOK_URI"] = stack.url(PATH)
    with stack.start():
        stack.wait_live()
        yield stack


@pytest.fixture(autouse=True)
def places_free(request):
    """Each test starts with all ``MAX_CONNECTIONS`` places free: an earlier test's
    closed clients leave within a second (a refused one is closed 1 s after its refusal)."""
    if "stack" in request.fixturenames:
        stack = request.getfixturevalue("stack")
        wait_for(
            lambda: live_get(stack, "/api/patreon/live/health").json()["connections"] == 0,
            10,
            what="the earlier tests' live clients to be gone",
        )


def live_get(stack: Stack, path: str, **kwargs) -> requests.Response:
    return requests.get(stack.live_url + path, timeout=10, **kwargs)


def deliver(stack: Stack, document: dict, event: str = "members:create", secret: str = SECRET):
    raw = encode(document)
    return stack.post(PATH, data=raw, headers=signed_headers(secret, raw, event))


def store_rows(stack: Stack, sql: str, params=()) -> list[tuple]:
    conn = sqlite3.connect(stack.dir / "var" / "bridge.sqlite3", timeout=5)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def test_signed_deliveries_over_http(stack: Stack):
    document = member_document("it-signed-1")
    first = deliver(stack, document)
    assert first.status_code == 200, first.text
    assert body(first) | {"id": 0} == {
        "success": True,
        "processed": True,
        "event": "members:create",
        "id": 0,
        "duplicate": False,
    }
    again = deliver(stack, document)
    assert (body(again)["id"], body(again)["duplicate"]) == (body(first)["id"], True)
    raw = encode(document)
    forged = stack.post(
        PATH, data=raw.replace(b"active_patron", b"former_patron"), headers=signed_headers(SECRET, raw)
    )
    assert (forged.status_code, body(forged)["code"]) == (401, "INVALID_SIGNATURE")
    unsigned = stack.post(PATH, data=raw, headers={"X-Patreon-Event": "members:create"})
    assert (unsigned.status_code, body(unsigned)["code"]) == (400, "MISSING_SIGNATURE")
    too_big = stack.post(PATH, data=b"x" * (1024 * 1024 + 1), headers=signed_headers(SECRET, b"x"))
    assert too_big.status_code == 413
    # Stored exactly as received, once.
    rows = store_rows(stack, "SELECT body FROM webhook_events WHERE id = ?", (body(first)["id"],))
    assert rows == [(raw,)]
    log = stack.log_text("web")
    assert f"📨 Patreon webhook received: members:create id={body(first)['id']}" in log
    assert EMAIL_DOMAIN not in log and SECRET not in log


def test_sse_and_socketio_get_each_event_within_a_second(stack: Stack):
    sse = SseClient(stack.live_url).start()
    live = SocketIoClient(stack.live_url).connect(auth={"key": KEY})
    try:
        sse_latencies, sio_latencies = [], []
        for n in range(5):
            document = member_document(f"it-live-{n}")
            sent = time.monotonic()
            resp = deliver(stack, document, "members:update")
            assert resp.status_code == 200, resp.text
            event_id = body(resp)["id"]
            sse_at = wait_for(
                lambda event_id=event_id: next((at for i, _d, at in sse.events if i == event_id), None),
                5,
                0.005,
                "the SSE event",
            )
            sio_at = wait_for(
                lambda event_id=event_id: next(
                    (at for d, at in live.received() if d["id"] == event_id), None
                ),
                5,
                0.005,
                "the Socket.IO event",
            )
            sse_latencies.append(sse_at - sent)
            sio_latencies.append(sio_at - sent)
        message = live.received()[-1][0]
        assert set(message) == {"id", "type", "data", "included", "receivedAt"}
        assert message["type"] == "members:update" and message["data"]["id"] == "it-live-4"
        wait_for(lambda: len(live.received("patreon:member:update")) == 5, 5, what="the alias events")
        assert sorted(d["id"] for d, _at in live.received("patreon:member:update")) == sorted(
            d["id"] for d, _at in live.received()
        )
        print(
            f"\nlive delivery latency (POST sent -> received), 5 events: "
            f"SSE max {max(sse_latencies) * 1000:.0f} ms, median {sorted(sse_latencies)[2] * 1000:.0f} ms; "
            f"Socket.IO max {max(sio_latencies) * 1000:.0f} ms, median {sorted(sio_latencies)[2] * 1000:.0f} ms"
        )
        assert max(sse_latencies) < LIVE_DEADLINE_S
        assert max(sio_latencies) < LIVE_DEADLINE_S
    finally:
        sse.close()
        live.close()


def test_socketio_replays_from_since(stack: Stack):
    ids = [body(deliver(stack, member_document(f"it-replay-{n}"), "members:update"))["id"] for n in range(3)]
    live = SocketIoClient(stack.live_url).connect(headers=BEARER, auth={"since": ids[0]})
    try:
        wait_for(lambda: len(live.received()) >= 2, 5, what="the replay")
        later = body(deliver(stack, member_document("it-replay-live"), "members:update"))["id"]
        wait_for(lambda: len(live.received()) >= 3, 5, what="the live event after the replay")
        received = [d["id"] for d, _at in live.received()]
        assert sorted(received[:2]) == [ids[1], ids[2]] and received[2:] == [later]
    finally:
        live.close()


def test_unauthorized_subscribers_are_refused(stack: Stack):
    refused_with = []
    for auth, headers in [(None, None), ({"key": "wrong"}, None), (None, {"Authorization": "Bearer wrong"})]:
        client = SocketIoClient(stack.live_url)
        with pytest.raises(socketio.exceptions.ConnectionError):
            client.connect(auth=auth, headers=headers)
        refused_with.append(client.refusal["message"])
        assert client.events == []
    assert refused_with == ["UNAUTHORIZED", "INVALID_API_KEY", "INVALID_API_KEY"]
    anonymous = live_get(stack, "/api/patreon/events")
    assert (anonymous.status_code, body(anonymous)["code"]) == (401, "UNAUTHORIZED")
    wrong = live_get(stack, "/api/patreon/events", params={"key": "wrong"})
    assert (wrong.status_code, body(wrong)["code"]) == (401, "INVALID_API_KEY")
    backfill = stack.get("/api/patreon/webhooks/events")
    assert (backfill.status_code, body(backfill)["code"]) == (401, "UNAUTHORIZED")
    state = stack.get("/api/patreon/members/anyone/state")
    assert (state.status_code, body(state)["code"]) == (401, "UNAUTHORIZED")


def test_a_creator_session_subscribes_to_its_campaign_and_a_patron_session_is_refused(stack: Stack):
    creator, patron = Browser(stack), Browser(stack)
    creator.login("1")  # the sandbox's creator, campaign 1001
    patron.login("2")
    creator_cookie = {"Cookie": f"pb_session={creator.cookie}"}
    patron_cookie = {"Cookie": f"pb_session={patron.cookie}"}
    assert creator.cookie and patron.cookie

    refused = live_get(stack, "/api/patreon/events", headers=patron_cookie)
    assert (refused.status_code, body(refused)["code"]) == (403, "FORBIDDEN")
    patron_live = SocketIoClient(stack.live_url)
    with pytest.raises(socketio.exceptions.ConnectionError):
        patron_live.connect(headers=patron_cookie)
    assert patron_live.refusal["message"] == "FORBIDDEN"

    sse = SseClient(stack.live_url, headers=creator_cookie).start()
    live = SocketIoClient(stack.live_url)
    try:
        live.connect(headers=creator_cookie)
        other = body(deliver(stack, member_document("it-other-campaign", campaign_id="9999")))["id"]
        mine = body(deliver(stack, member_document("it-my-campaign")))["id"]
        wait_for(lambda: sse.ids() == [mine], 5, what="the creator's event over SSE")
        wait_for(lambda: [d["id"] for d, _at in live.received()] == [mine], 5, what="it over Socket.IO")
        backfill = body(
            stack.get("/api/patreon/webhooks/events", params={"since": other - 1}, headers=creator_cookie)
        )
        assert [e["id"] for e in backfill["events"]] == [mine]
    finally:
        sse.close()
        live.close()


def test_a_creator_subscription_ends_when_the_creator_logs_out(stack: Stack):
    creator = Browser(stack)
    creator.login("1")
    cookie = {"Cookie": f"pb_session={creator.cookie}"}
    conn = http.client.HTTPConnection("127.0.0.1", stack.live_port, timeout=20)
    conn.request("GET", "/api/patreon/events", headers=cookie)
    stream = conn.getresponse()
    assert stream.status == 200
    live = SocketIoClient(stack.live_url).connect(headers=cookie)
    try:
        wait_for(lambda: live.sio.connected, 5, what="the creator's Socket.IO client")
        assert creator.post("/api/patreon/auth/logout").status_code == 200
        # Re-checked every 5 s: the client is disconnected and the stream ends.
        wait_for(lambda: not live.sio.connected, 15, what="the Socket.IO client to be disconnected")
        ended_at = time.monotonic()
        stream.read()  # returns when the server ends the stream (the socket timeout is 20 s)
        assert time.monotonic() - ended_at < 15
    finally:
        live.close()
        conn.close()


def open_stream(stack: Stack) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    conn = http.client.HTTPConnection("127.0.0.1", stack.live_port, timeout=10)
    conn.request("GET", "/api/patreon/events", headers=BEARER)
    return conn, conn.getresponse()


def test_streams_are_capped_and_a_closed_one_frees_its_place(stack: Stack):
    def a_stream():
        return wait_for(
            lambda: (pair := open_stream(stack))[1].status == 200 and pair, 5, what="a stream place"
        )

    streams = []  # (connection, response): the response owns the socket, keep both
    try:
        # Places of streams whose clients went away (earlier tests) are free again.
        for _ in range(MAX_CONNECTIONS):
            streams.append(a_stream())
        conn, full = open_stream(stack)
        assert (full.status, full.getheader("Retry-After")) == (503, "5")
        assert json.loads(full.read())["code"] == "CONNECTIONS_FULL"
        conn.close()
        # Socket.IO clients count against the same cap.
        with pytest.raises(socketio.exceptions.ConnectionError):
            SocketIoClient(stack.live_url).connect(auth={"key": KEY}, wait_timeout_s=1)
        # web's API is not starved (the streams are the live program's, not web's threads).
        started = time.monotonic()
        assert stack.get("/api/patreon/health").status_code == 200
        assert time.monotonic() - started < 0.5
        # A client that goes away frees its place at once (uvicorn notices the close).
        conn, resp = streams.pop()
        resp.close()
        conn.close()
        closed_at = time.monotonic()
        streams.append(a_stream())
        print(
            f"\nstream cap: a closed stream's place was free again after {(time.monotonic() - closed_at) * 1000:.0f} ms"
        )
    finally:
        for conn, resp in streams:
            resp.close()
            conn.close()


def test_sandbox_member_upgrade_flows_end_to_end(stack: Stack):
    hooks = stack.sandbox("GET", "/_sandbox/webhooks").json()["webhooks"]
    assert [h["uri"] for h in hooks] == [stack.url(PATH)]
    members = stack.sandbox(
        "GET",
        "/api/oauth2/v2/campaigns/1001/members",
        params={"fields[member]": "patron_status", "include": "currently_entitled_tiers", "page[count]": "5"},
        headers={"Authorization": "Bearer sandbox-creator-access-token"},
    ).json()
    member = next(m for m in members["data"] if m["attributes"]["patron_status"] == "active_patron")
    member_id = member["id"]
    before = {t["id"] for t in member["relationships"]["currently_entitled_tiers"]["data"]}

    after_id = body(stack.get("/api/patreon/webhooks/events", params={"limit": "1000"}, headers=BEARER))[
        "latest"
    ]
    sse = SseClient(stack.live_url, last_event_id=after_id).start()
    live = SocketIoClient(stack.live_url).connect(auth={"key": KEY})
    try:
        upgraded = stack.sandbox("POST", f"/_sandbox/members/{member_id}/upgrade", json={})
        assert upgraded.status_code == 200, upgraded.text
        # The log also carries the entitlement:changed event the upgrade causes (issue 11).
        def deliveries() -> list:
            return [e for e in sse.events if e[1]["type"] != "entitlement:changed"]

        def heard() -> list:
            return [d for d, _at in live.received("patreon:webhook") if d["type"] != "entitlement:changed"]

        # The upgrade fires members:update and members:pledge:update with the same body:
        # dedupe is on the body (issue 16), so the first is stored and the second is
        # answered 200 as its duplicate.
        wait_for(lambda: len(deliveries()) >= 1, 15, what="the sandbox's webhook over SSE")
        wait_for(lambda: len(heard()) >= 1, 5, what="the sandbox's webhook over Socket.IO")
        wait_for(
            lambda: (
                [
                    d.get("status")
                    for d in stack.sandbox("GET", "/_sandbox/deliveries").json()["deliveries"][-2:]
                ]
                == [200, 200]
            ),
            10,
            what="both deliveries answered",
        )
        assert [data["type"] for _i, data, _at in deliveries()] == ["members:update"]
        assert {data["data"]["id"] for _i, data, _at in deliveries()} == {member_id}
        assert [d["type"] for d in heard()] == ["members:update"]
        tiers = {
            t["id"] for t in deliveries()[-1][1]["data"]["relationships"]["currently_entitled_tiers"]["data"]
        }
        assert tiers and tiers != before

        # The delivery is a hint: the worker reads the member from Patreon (the sandbox)
        # and the member table, which the state endpoint answers from, holds that.
        state = wait_for(
            lambda: (
                (r := stack.get(f"/api/patreon/members/{member_id}/state", headers=BEARER)).status_code == 200
                and set(body(r)["member"]["entitledTierIds"]) == tiers
                and body(r)["member"]
            ),
            10,
            what="the worker to refresh the upgraded member",
        )
        assert state["source"] == "refresh" and state["lastEventId"] is None
        assert state["memberId"] == member_id and state["deleted"] is False
        assert state["patronStatus"] == "active_patron" and state["campaignId"] == "1001"
        deliveries = stack.sandbox("GET", "/_sandbox/deliveries").json()["deliveries"]
        assert {d.get("status") for d in deliveries[-2:]} == {200}
    finally:
        sse.close()
        live.close()
    missing = stack.get("/api/patreon/members/no-such-member/state", headers=BEARER)
    assert (missing.status_code, body(missing)["code"]) == (404, "MEMBER_STATE_NOT_FOUND")


DURABILITY_DELIVERIES = 500
SENDERS = 4


@pytest.mark.timeout(120)
def test_500_deliveries_survive_worker_kill_9_and_web_restart():
    with Stack(ENV) as stack:
        stack.wait_live()
        sse = SseClient(stack.live_url, last_event_id=0).start()
        live = SocketIoClient(stack.live_url).connect(auth={"key": KEY, "since": 0})
        answers: dict[int, list[dict]] = {}
        timings: dict[str, float] = {}
        documents = {
            n: member_document(f"dur-{n:03d}", note=f"delivery {n}") for n in range(DURABILITY_DELIVERIES)
        }
        accepted = threading.Semaphore(0)
        session_local = threading.local()

        def send(n: int) -> None:
            """Deliver like Patreon: retry until a 2xx (connection errors during the restart)."""
            session = getattr(session_local, "session", None) or requests.Session()
            session_local.session = session
            raw = encode(documents[n])
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    resp = session.post(
                        stack.url(PATH), data=raw, headers=signed_headers(SECRET, raw), timeout=10
                    )
                except requests.RequestException:
                    session.close()
                    time.sleep(0.05)
                    continue
                if resp.status_code == 200:
                    answers.setdefault(n, []).append(body(resp))
                    accepted.release()
                    return
                time.sleep(0.05)
            raise AssertionError(f"delivery {n} was never accepted")

        def chaos() -> None:
            for _ in range(150):
                accepted.acquire()
            timings["first_150"] = time.monotonic() - started
            os.kill(stack.pid("patreon:worker_00"), signal.SIGKILL)
            for _ in range(100):
                accepted.acquire()
            restart_started = time.monotonic()
            # web takes the deliveries, live holds the subscribers: both restart.
            restarted = stack.ctl("restart", "patreon:web_00", "live:live_00")
            timings["restart"] = time.monotonic() - restart_started
            assert restarted.stdout.count("started") == 2, restarted.stdout + restarted.stderr

        web_pid, worker_pid, live_pid = stack.pid("patreon:web_00"), stack.pid("patreon:worker_00"), stack.pid("live:live_00")
        started = time.monotonic()
        chaos_thread = threading.Thread(target=chaos)
        chaos_thread.start()
        with ThreadPoolExecutor(SENDERS) as pool:
            for future in [pool.submit(send, n) for n in range(DURABILITY_DELIVERIES)]:
                future.result()
        elapsed = time.monotonic() - started
        chaos_thread.join(30)
        assert stack.pid("patreon:web_00") not in (0, web_pid)
        assert stack.pid("live:live_00") not in (0, live_pid)
        wait_for(
            lambda: stack.pid("patreon:worker_00") not in (0, worker_pid), 10, what="the worker to come back"
        )

        # Every 200-answered delivery is in the store, exactly once.
        rows = store_rows(stack, "SELECT id, body FROM webhook_events ORDER BY id")
        assert len(rows) == DURABILITY_DELIVERIES
        stored_by_id = {row_id: raw for row_id, raw in rows}
        assert sorted(stored_by_id.values()) == sorted(encode(d) for d in documents.values())
        duplicates = 0
        for n, replies in answers.items():
            for reply in replies:
                assert stored_by_id[reply["id"]] == encode(documents[n])
                duplicates += reply["duplicate"]

        # The SSE client, reconnecting with Last-Event-ID, got all 500 in order, once each.
        wait_for(lambda: len(sse.events) >= DURABILITY_DELIVERIES, 20, what="all 500 events over SSE")
        sse.close()
        ids = sse.ids()
        assert ids == sorted(stored_by_id)
        assert len(set(ids)) == len(ids) == DURABILITY_DELIVERIES
        assert {data["data"]["id"] for _i, data, _at in sse.events} == {f"dur-{n:03d}" for n in documents}

        # The Socket.IO client was dropped by the restart; reconnecting with ``since`` =
        # the last id it heard, it gets the rest: all 500, in order, once each.
        wait_for(lambda: not live.sio.connected, 10, what="the Socket.IO client to be dropped by the restart")
        heard = [data["id"] for data, _at in live.received()]
        stack.wait_live()
        again = SocketIoClient(stack.live_url).connect(auth={"key": KEY, "since": heard[-1] if heard else 0})
        wait_for(
            lambda: len(heard) + len(again.received()) >= DURABILITY_DELIVERIES,
            20,
            what="the Socket.IO replay",
        )
        again.close()
        # (python-engineio's client runs each message handler on a thread of its own, so
        # it may see them out of order; the SSE client above checks the order.)
        replayed = [data["id"] for data, _at in again.received()]
        assert len(heard) + len(replayed) == DURABILITY_DELIVERIES
        assert sorted(heard + replayed) == sorted(stored_by_id)
        assert min(replayed) > max(heard)

        # And the restarted worker consumed all of them (at least once, none failed).
        wait_for(
            lambda: (
                store_rows(stack, "SELECT COUNT(*) FROM webhook_events WHERE processed_at IS NULL")[0][0] == 0
            ),
            20,
            what="the worker to consume every stored event",
        )
        consumed = "SELECT COUNT(*) FROM webhook_events WHERE processed_at IS NOT NULL AND last_error IS NULL"
        assert store_rows(stack, consumed)[0][0] == DURABILITY_DELIVERIES
        print(
            f"\ndurability: {DURABILITY_DELIVERIES} deliveries accepted in {elapsed:.1f} s "
            f"({DURABILITY_DELIVERIES / elapsed:.0f}/s over {SENDERS} senders) across a worker kill -9 and a "
            f"web and live restart; {duplicates} answered as duplicates after a lost reply; "
            f"SSE reconnected {sse.connections - 1} time(s) and got all {len(ids)} in order; Socket.IO heard "
            f"{len(heard)} before the restart and {len(again.received())} on reconnect with since; "
            f"steady rate {150 / timings['first_150']:.0f}/s; supervisorctl restart of web and live (streams open) "
            f"took {timings['restart']:.1f} s"
        )
