"""The live program (live/) through the real stack: supervisord, web, live, ZeroMQ.

- the real npm ``socket.io-client`` (WebSocket only, and polling then upgrade) hears
  ``patreon:webhook`` and its aliases, with the seed's snippet as written;
- audiences: server key, a creator's session, a patron's subscribe token (only their
  own events), wrong and expired tokens refused with a code, SSE with CORS;
- the wake-up from web, and the poll when a wake-up is lost;
- backpressure (a stalled client is dropped with a reason, then resumes, and nobody
  else waits) and the connection cap;
- 1,000 clients across ``kill -9`` of live: every one reconnects and hears every event
  it missed, none twice.

npm's socket.io-client is installed into tests/live_js/ (by .ci/run, or here when npm
is on the machine); without node and npm those tests skip, loudly.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests

from harness.stack import REPO, Stack, body, free_port, wait_for
from live_events import tokens
from store import webhook_events
from store.database import Store
from tests.browser import Browser
from tests.cdp import Chromium, chromium_binary
from tests.live_clients import PollingSubscriber, SseSubscriber, WebSocketSubscriber
from tests.webhook_deliveries import PATH, encode, member_document, signed_headers

KEY = "integration-live-bridge-key"
SECRET = "integration-live-webhook-secret"
ORIGIN = "https://site.example"
PAGE_PORT = free_port()  # the cross-origin page's own server (the Chromium test)
PAGE_ORIGIN = f"http://127.0.0.1:{PAGE_PORT}"
ENV = {
    "BRIDGE_API_KEY": KEY,
    "PATREON_WEBHOOK_SECRET": SECRET,
    "SANDBOX_WEBHOOK_SECRET": SECRET,
    "PATREON_DEFAULT_SCOPES": "identity identity.memberships campaigns",
    "LIVE_CORS_ORIGINS": f"{ORIGIN},{PAGE_ORIGIN}",
}
BEARER = {"Authorization": f"Bearer {KEY}"}
JS_DIR = REPO / "tests" / "live_js"
NODE_TIMEOUT_S = 60


# -- fixtures and helpers ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def stack():
    with Stack(ENV, name="live") as running:
        running.wait_live()
        yield running


@pytest.fixture(scope="session")
def socketio_client_js() -> Path:
    """tests/live_js/ with npm's socket.io-client installed (``npm ci``)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("node and npm are not installed: apt-get install nodejs npm (.ci/run does) for the socket.io-client tests")
    if not (JS_DIR / "node_modules" / "socket.io-client").is_dir():
        out = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=JS_DIR, capture_output=True, text=True, timeout=300
        )
        if out.returncode != 0:
            pytest.skip(f"npm ci in {JS_DIR} failed (no registry?): {out.stderr[-500:]}")
    return JS_DIR / "subscriber.js"


def deliver(stack: Stack, document: dict, event: str = "members:create") -> int:
    raw = encode(document)
    resp = stack.post(PATH, data=raw, headers=signed_headers(SECRET, raw, event))
    assert resp.status_code == 200, resp.text
    return body(resp)["id"]


def mint(stack: Stack, **fields) -> str:
    resp = stack.post("/api/patreon/live/tokens", json=fields, headers=BEARER)
    assert resp.status_code == 200, resp.text
    return body(resp)["token"]


class Node:
    """One run of tests/live_js/subscriber.js: a socket.io-client subscriber."""

    def __init__(self, script: Path, url: str, auth: dict, transports: list[str] | None = None, seconds: float = 20):
        options = {"url": url, "auth": auth, "seconds": seconds}
        if transports:
            options["transports"] = transports
        self.process = subprocess.Popen(
            ["node", str(script), json.dumps(options)], stdout=subprocess.PIPE, text=True, cwd=script.parent
        )
        self.lines: list[dict] = []

    def read_until(self, predicate, timeout_s: float = NODE_TIMEOUT_S) -> list[dict]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate(self.lines):
                return self.lines
            line = self.process.stdout.readline()
            if not line:
                break
            self.lines.append(json.loads(line))
        assert predicate(self.lines), f"socket.io-client said: {self.lines}"
        return self.lines

    def heard(self, name: str = "patreon:webhook") -> list[dict]:
        return [line["data"] for line in self.lines if line["on"] == name]

    def close(self) -> None:
        self.process.kill()
        self.process.wait(10)


def on(name: str):
    return lambda lines: any(line["on"] == name for line in lines)


# -- the real socket.io-client ------------------------------------------------------------------
@pytest.mark.parametrize("transports", [["websocket"], None], ids=["websocket-only", "polling-then-upgrade"])
def test_socketio_client_hears_webhooks_and_aliases(stack: Stack, socketio_client_js: Path, transports):
    client = Node(socketio_client_js, stack.live_url, {"key": KEY}, transports)
    try:
        client.read_until(on("connect"))
        opened = next(line for line in client.lines if line["on"] == "open")
        assert opened["transport"] == ("websocket" if transports else "polling")
        if transports is None:
            client.read_until(lambda lines: any(x["on"] == "upgrade" for x in lines) or "websocket" in str(lines))
        time.sleep(0.3)  # seated after its CONNECT answer
        # Direct or upgraded from polling, its events take the WebSocket fast path (live.sio).
        wait_for(
            lambda: (h := requests.get(stack.live_url + "/api/patreon/live/health", timeout=5).json())["direct"]
            == h["socketio"] >= 1,
            5,
            what="the client on the fast path",
        )
        created = deliver(stack, member_document(f"live-js-create-{transports}"))
        updated = deliver(stack, member_document(f"live-js-update-{transports}", note="u"), "members:pledge:update")
        client.read_until(lambda lines: len([x for x in lines if x["on"].startswith("patreon:")]) >= 4)
        assert [m["id"] for m in client.heard()] == [created, updated]
        assert [m["id"] for m in client.heard("patreon:member:create")] == [created]
        assert [m["id"] for m in client.heard("patreon:pledge:update")] == [updated]
        # The same payload web's Socket.IO sends: the shape and the stored event.
        message = client.heard()[0]
        assert set(message) == {"id", "type", "data", "included", "receivedAt"}
        assert message["type"] == "members:create" and message["data"]["id"] == f"live-js-create-{transports}"
    finally:
        client.close()
    wait_for(
        lambda: requests.get(stack.live_url + "/api/patreon/live/health", timeout=5).json()["direct"] == 0,
        10,
        what="the fast-path count back to 0 once the client left",
    )


def test_socketio_client_replays_from_since_and_a_bad_token_is_refused_with_its_code(
    stack: Stack, socketio_client_js: Path
):
    first = deliver(stack, member_document("live-js-replay-1"))
    second = deliver(stack, member_document("live-js-replay-2"))
    client = Node(socketio_client_js, stack.live_url, {"key": KEY, "since": first - 1}, ["websocket"])
    try:
        client.read_until(lambda lines: len([x for x in lines if x["on"] == "patreon:webhook"]) >= 2)
        assert [m["id"] for m in client.heard()][:2] == [first, second]
    finally:
        client.close()
    for auth, code in (
        ({"token": "not-a-token"}, "TOKEN_MALFORMED"),
        ({"token": mint(stack, audience="patron", userId="2")[:-2] + "xx"}, "TOKEN_INVALID"),
        ({"key": "wrong-key"}, "INVALID_API_KEY"),
        ({}, "UNAUTHORIZED"),
        ({"feed": "public"}, "PUBLIC_FEED_OFF"),
    ):
        refused = Node(socketio_client_js, stack.live_url, auth, ["websocket"])
        try:
            lines = refused.read_until(on("connect_error"))
            error = next(line for line in lines if line["on"] == "connect_error")
            assert error["message"] == code, (auth, error)
        finally:
            refused.close()


def test_a_patron_token_hears_only_that_patrons_events(stack: Stack, socketio_client_js: Path):
    token = mint(stack, audience="patron", userId="7001", ttlSeconds=120)
    patron = Node(socketio_client_js, stack.live_url, {"token": token}, ["websocket"])
    server = Node(socketio_client_js, stack.live_url, {"key": KEY}, ["websocket"])
    sse = None
    try:
        patron.read_until(on("connect"))
        server.read_until(on("connect"))
        time.sleep(0.3)
        other = deliver(stack, member_document("live-patron-other", user_id="7002"))
        mine = deliver(stack, member_document("live-patron-mine", user_id="7001"), "members:update")
        other_again = deliver(stack, member_document("live-patron-other-2", user_id="7002"), "members:update")
        server.read_until(lambda lines: len([x for x in lines if x["on"] == "patreon:webhook"]) >= 3)
        assert [m["id"] for m in server.heard()] == [other, mine, other_again]
        last = deliver(stack, member_document("live-patron-mine-2", user_id="7001"), "members:delete")
        patron.read_until(lambda lines: len([x for x in lines if x["on"] == "patreon:webhook"]) >= 2)
        assert [m["id"] for m in patron.heard()] == [mine, last]
        assert [m["id"] for m in patron.heard("patreon:member:update")] == [mine]
        assert "7002" not in json.dumps(patron.lines)  # nothing of the other patron
        # The same token over SSE, cross-site: replay from since, and the CORS header.
        resp = requests.get(
            stack.live_url + "/api/patreon/events",
            params={"token": token, "since": other - 1},
            headers={"Origin": ORIGIN},
            stream=True,
            timeout=10,
        )
        sse = resp
        assert resp.status_code == 200
        assert resp.headers["Access-Control-Allow-Origin"] == ORIGIN
        ids = []
        for line in resp.iter_lines(decode_unicode=True):
            if line.startswith("id: "):
                ids.append(int(line[4:]))
            if len(ids) == 2:
                break
        assert ids == [mine, last]
    finally:
        patron.close()
        server.close()
        if sse is not None:
            sse.close()


# -- tokens and SSE refusals --------------------------------------------------------------------------
def test_the_token_route_needs_the_server_key_and_checks_its_input(stack: Stack):
    route = "/api/patreon/live/tokens"
    assert body(stack.post(route, json={"audience": "patron", "userId": "2"}))["code"] == "UNAUTHORIZED"
    wrong = stack.post(route, json={"audience": "patron", "userId": "2"}, headers={"Authorization": "Bearer nope"})
    assert (wrong.status_code, body(wrong)["code"]) == (401, "INVALID_API_KEY")
    for fields, code in (
        ({"audience": "everyone"}, "INVALID_AUDIENCE"),
        ({"audience": "patron"}, "INVALID_USER_ID"),
        ({"audience": "patron", "userId": "a b"}, "INVALID_USER_ID"),
        ({"audience": "creator", "campaignIds": []}, "INVALID_CAMPAIGN_IDS"),
        ({"audience": "patron", "userId": "2", "ttlSeconds": 10**9}, "INVALID_TTL"),
        ({"audience": "patron", "userId": "2", "extra": 1}, "UNKNOWN_FIELD"),
    ):
        resp = stack.post(route, json=fields, headers=BEARER)
        assert (resp.status_code, body(resp)["code"]) == (400, code), fields
    answer = body(stack.post(route, json={"audience": "patron", "userId": "2", "ttlSeconds": 60}, headers=BEARER))
    assert answer["audience"] == "patron" and answer["userId"] == "2" and answer["expiresIn"] == 60


def test_sse_refuses_wrong_and_expired_tokens_with_401_json(stack: Stack):
    key = (stack.dir / "var" / "live-token.key").read_text().strip().encode()  # sandbox mode made it
    expired = tokens.mint(key, tokens.Claims("patron", "2", (), int(time.time()) - 1))
    forged = tokens.mint(b"another-key-another-key-another-key", tokens.Claims("patron", "2", (), int(time.time()) + 60))
    for token, code in ((expired, "TOKEN_EXPIRED"), (forged, "TOKEN_INVALID"), ("x.y", "TOKEN_INVALID")):
        resp = requests.get(stack.live_url + "/api/patreon/events", params={"token": token}, timeout=10)
        assert resp.status_code == 401 and resp.headers["Content-Type"].startswith("application/json")
        assert body(resp)["code"] == code
    bad_since = requests.get(stack.live_url + "/api/patreon/events", params={"since": "x"}, headers=BEARER, timeout=10)
    assert (bad_since.status_code, body(bad_since)["code"]) == (400, "INVALID_SINCE")


def test_a_creator_session_cookie_works_on_live_and_a_patron_session_is_refused(stack: Stack):
    creator, patron = Browser(stack), Browser(stack)
    creator.login("1")  # the sandbox's creator, campaign 1001
    patron.login("2")

    async def scenario():
        refused = SseSubscriber("127.0.0.1", stack.live_port, {})
        refused_cookie = f"pb_session={patron.cookie}"
        refused.extra_headers = {"Cookie": refused_cookie}
        ws = WebSocketSubscriber("127.0.0.1", stack.live_port, {})
        ws.extra_headers = {"Cookie": f"pb_session={creator.cookie}"}
        ws.start()
        await asyncio.wait_for(ws.connected.wait(), 10)
        await asyncio.sleep(0.3)
        other = await asyncio.to_thread(deliver, stack, member_document("live-cookie-other", campaign_id="9999"))
        mine = await asyncio.to_thread(deliver, stack, member_document("live-cookie-mine"))
        for _ in range(100):
            if mine in ws.received:
                break
            await asyncio.sleep(0.05)
        await ws.stop()
        return other, mine, ws

    other, mine, ws = asyncio.run(scenario())
    assert list(ws.received) == [mine] and other not in ws.received
    resp = requests.get(
        stack.live_url + "/api/patreon/events", headers={"Cookie": f"pb_session={patron.cookie}"}, timeout=10
    )
    assert (resp.status_code, body(resp)["code"]) == (403, "FORBIDDEN")


# -- wake-up and poll ------------------------------------------------------------------------------
def test_an_event_stored_without_a_wakeup_arrives_by_the_poll(stack: Stack):
    async def scenario():
        sub = SseSubscriber("127.0.0.1", stack.live_port, {"key": KEY}).start()
        await asyncio.wait_for(sub.connected.wait(), 10)
        # Written straight into the store: nobody publishes a wake-up for it.
        store = Store(stack.dir / "var" / "bridge.sqlite3")
        raw = encode(member_document("live-no-wakeup"))
        event_id, _ = await asyncio.to_thread(webhook_events.accept, store, "members:create", raw)
        started = time.monotonic()
        while event_id not in sub.received and time.monotonic() - started < 10:
            await asyncio.sleep(0.02)
        await sub.stop()
        return event_id in sub.received, time.monotonic() - started

    arrived, after_s = asyncio.run(scenario())
    assert arrived, "the fallback poll never delivered the event"
    print(f"\nno wake-up: delivered by the poll after {after_s:.2f} s (LIVE_POLL_INTERVAL_S=1)")


def test_the_wakeup_delivers_well_before_the_poll(stack: Stack):
    """With the wake-up, a webhook is out in a fraction of the 1 s poll: five in a row
    all under 0.5 s would happen by chance 1 time in 32 without it."""

    async def scenario():
        sub = WebSocketSubscriber("127.0.0.1", stack.live_port, {"key": KEY}).start()
        await asyncio.wait_for(sub.connected.wait(), 10)
        await asyncio.sleep(0.3)
        latencies = []
        for n in range(5):
            await asyncio.sleep(0.13 * n)  # a different phase of the poll each time
            sent = time.perf_counter()
            event_id = await asyncio.to_thread(deliver, stack, member_document(f"live-wakeup-{n}"))
            while event_id not in sub.received and time.perf_counter() - sent < 5:
                await asyncio.sleep(0.005)
            latencies.append(sub.received.get(event_id, float("inf")) - sent)
        await sub.stop()
        return latencies

    latencies = asyncio.run(scenario())
    print("\nwebhook -> live client (s):", [round(x, 3) for x in latencies])
    assert max(latencies) < 0.5, latencies


@pytest.mark.parametrize("http_version", ["1.1", "1.0"])
def test_sse_events_go_straight_to_the_stream_in_order_on_http_1_1_and_1_0(stack: Stack, http_version):
    """Once a stream has begun, live writes its events to the connection itself, framed
    as uvicorn framed the body it began (uvicorn's httptools chunks it on 1.0 too): the
    strict parser of tests.live_clients reads either, and health counts the stream as
    direct. (The unchunked frames, h11's for HTTP/1.0, are in tests/unit/test_live_hub.py.)"""

    async def scenario():
        sub = SseSubscriber("127.0.0.1", stack.live_port, {"key": KEY}, http_version=http_version).start()
        await asyncio.wait_for(sub.connected.wait(), 10)
        health = await asyncio.to_thread(requests.get, stack.live_url + "/api/patreon/live/health", timeout=5)
        ids = [
            await asyncio.to_thread(deliver, stack, member_document(f"live-sse-{http_version}-{n}", note="y" * (n * 900)))
            for n in range(12)
        ]
        deadline = time.monotonic() + 10
        while not set(ids) <= set(sub.received) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await sub.stop()
        return sub, ids, health.json()

    sub, ids, health = asyncio.run(scenario())
    assert sub.chunked is not None
    assert [i for i in sub.received if i in ids] == ids and sub.duplicates == 0
    assert health["sseDirect"] >= 1 and health["sseDirect"] <= health["sse"], health


# -- backpressure and the cap ---------------------------------------------------------------------------
def test_stalled_clients_are_dropped_with_a_reason_and_resume_while_others_keep_up():
    """A stalled WebSocket client and a stalled SSE stream at once, beside a fast client."""
    with Stack({**ENV, "LIVE_CLIENT_BUFFER_EVENTS": "8"}, name="live-slow") as stack:
        stack.wait_live()

        async def scenario():
            slow = [
                kind("127.0.0.1", stack.live_port, {"key": KEY}, reconnect=True, receive_buffer=4096).start()
                for kind in (WebSocketSubscriber, SseSubscriber)
            ]
            fast = WebSocketSubscriber("127.0.0.1", stack.live_port, {"key": KEY}).start()
            await asyncio.wait_for(asyncio.gather(fast.connected.wait(), *(s.connected.wait() for s in slow)), 10)
            await asyncio.sleep(0.3)
            for sub in slow:
                sub.pause()
            ids, late = [], []
            for n in range(80):
                sent = time.perf_counter()
                event_id = await asyncio.to_thread(deliver, stack, member_document(f"live-slow-{n}", note="x" * 60_000))
                ids.append(event_id)
                while event_id not in fast.received and time.perf_counter() - sent < 5:
                    await asyncio.sleep(0.005)
                late.append(fast.received.get(event_id, float("inf")) - sent)
            health = await asyncio.to_thread(requests.get, stack.live_url + "/api/patreon/live/health", timeout=5)
            for sub in slow:
                sub.resume()
            deadline = time.monotonic() + 30
            while not all(set(ids) <= set(sub.received) for sub in slow) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            for sub in (*slow, fast):
                await sub.stop()
            return slow, fast, ids, late, health.json()

        slow_clients, fast, ids, late, health = asyncio.run(scenario())
        assert list(fast.received) == ids and fast.duplicates == 0
        assert max(late) < 2.0, f"the fast client waited for the slow ones: {max(late):.2f} s"
        for slow in slow_clients:
            what = (slow.kind, slow.disconnect_reasons, slow.connects)
            assert "SLOW_CONSUMER" in slow.disconnect_reasons or slow.connects >= 2, what
            assert slow.connects >= 2, f"the stalled {slow.kind} client was never disconnected"
            missing = sorted(set(ids) - set(slow.received))[:10]
            assert set(ids) <= set(slow.received), f"{slow.kind}: missing after resume: {missing}"
            assert slow.duplicates == 0, slow.kind
            print(f"\nstalled {slow.kind} client: {slow.connects} connections, reasons {slow.disconnect_reasons}")
        print(f"health {health}")


def test_connections_past_the_cap_get_503_with_a_code():
    with Stack({**ENV, "LIVE_MAX_CONNECTIONS": "3"}, name="live-cap") as stack:
        stack.wait_live()
        streams = [
            requests.get(stack.live_url + "/api/patreon/events", headers=BEARER, stream=True, timeout=10)
            for _ in range(3)
        ]
        try:
            assert [s.status_code for s in streams] == [200, 200, 200]
            full = requests.get(stack.live_url + "/api/patreon/events", headers=BEARER, timeout=10)
            assert (full.status_code, body(full)["code"]) == (503, "CONNECTIONS_FULL")
            assert full.headers["Retry-After"] == "5"
            handshake = requests.get(stack.live_url + "/socket.io/?EIO=4&transport=polling", timeout=10)
            assert (handshake.status_code, body(handshake)["code"]) == (503, "CONNECTIONS_FULL")

            async def websocket():
                ws = WebSocketSubscriber("127.0.0.1", stack.live_port, {"key": KEY}).start()
                await asyncio.sleep(1)
                await ws.stop()
                return ws.refused

            assert asyncio.run(websocket()) == "HTTP_503"
        finally:
            for s in streams:
                s.close()
        # A closed stream frees its place.
        wait_for(
            lambda: requests.get(stack.live_url + "/api/patreon/live/health", timeout=5).json()["connections"] < 3,
            20,
            what="the closed streams to be noticed",
        )


# -- a kill with 1,000 clients ---------------------------------------------------------------------------
CLIENTS = 1000


def test_1000_clients_survive_kill_9_of_live_with_every_event_once():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * CLIENTS)), hard))
    with Stack(ENV, name="live-kill") as stack:
        stack.wait_live()

        async def scenario():
            kinds = {0: SseSubscriber, 1: PollingSubscriber}  # 5% each; the rest WebSocket
            clients = [
                kinds.get(n % 20, WebSocketSubscriber)("127.0.0.1", stack.live_port, {"key": KEY, "since": 0}, reconnect=True)
                for n in range(CLIENTS)
            ]
            for n, client in enumerate(clients):
                client.start()
                if n % 100 == 99:
                    await asyncio.sleep(0.05)
            await asyncio.wait_for(asyncio.gather(*(c.connected.wait() for c in clients)), 60)
            ids = []
            for n in range(5):
                ids.append(await asyncio.to_thread(deliver, stack, member_document(f"live-kill-before-{n}")))
            pid = stack.pid("live:live_00")
            os.kill(pid, signal.SIGKILL)
            # Delivered while live is down and restarting: stored by web, heard after.
            for n in range(10):
                ids.append(await asyncio.to_thread(deliver, stack, member_document(f"live-kill-during-{n}")))
            await asyncio.to_thread(
                wait_for, lambda: stack.pid("live:live_00") not in (0, pid), 30, 0.2, "supervisord to restart live"
            )
            for n in range(5):
                ids.append(await asyncio.to_thread(deliver, stack, member_document(f"live-kill-after-{n}")))
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and not all(set(ids) <= set(c.received) for c in clients):
                await asyncio.sleep(0.2)
            for client in clients:
                await client.stop()
            return clients, ids

        clients, ids = asyncio.run(scenario())
        missing = [c for c in clients if not set(ids) <= set(c.received)]
        assert not missing, (
            f"{len(missing)} of {CLIENTS} clients miss events, e.g. {sorted(set(ids) - set(missing[0].received))}"
        )
        assert sum(c.duplicates for c in clients) == 0
        assert all(list(c.received) == ids for c in clients), "events out of order"
        assert all(c.connects >= 2 for c in clients), "some clients never reconnected"
        print(f"\n{CLIENTS} clients, {len(ids)} events across kill -9 of live: all heard every event once")


def test_a_graceful_restart_of_live_closes_clients_and_they_resume(stack: Stack):
    """``supervisorctl restart live``: SIGTERM closes every client (SSE hears why); each
    reconnects to the new process and hears what it missed, once."""

    async def scenario():
        start = await asyncio.to_thread(deliver, stack, member_document("live-restart-0"))
        kinds = (WebSocketSubscriber, SseSubscriber, PollingSubscriber)
        clients = [
            kinds[n % 3]("127.0.0.1", stack.live_port, {"key": KEY, "since": start}, reconnect=True) for n in range(60)
        ]
        for client in clients:
            client.start()
        await asyncio.wait_for(asyncio.gather(*(c.connected.wait() for c in clients)), 30)
        ids = [await asyncio.to_thread(deliver, stack, member_document("live-restart-1"))]
        out = await asyncio.to_thread(stack.ctl, "restart", "live:live_00")
        assert out.returncode == 0, out.stdout + out.stderr
        ids.append(await asyncio.to_thread(deliver, stack, member_document("live-restart-2")))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(set(ids) <= set(c.received) for c in clients):
            await asyncio.sleep(0.1)
        for client in clients:
            await client.stop()
        return clients, ids

    clients, ids = asyncio.run(scenario())
    assert all(list(c.received) == ids for c in clients), [list(c.received) for c in clients if list(c.received) != ids][:3]
    assert all(c.duplicates == 0 and c.connects >= 2 for c in clients)
    assert any("SHUTTING_DOWN" in c.disconnect_reasons for c in clients if c.kind == "sse")
    assert "live stopped" in stack.log_text("live")


# -- a browser on another origin ----------------------------------------------------------------------
def test_headless_chromium_on_another_origin_hears_events_over_socketio_and_eventsource(
    stack: Stack, socketio_client_js: Path, tmp_path: Path
):
    chromium_binary()  # skips, with the reason, without chromium
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(JS_DIR / "cross_origin.html", site / "index.html")
    shutil.copy(JS_DIR / "node_modules" / "socket.io-client" / "dist" / "socket.io.min.js", site)
    first = deliver(stack, member_document("live-chromium-1", user_id="8101"))
    second = deliver(stack, member_document("live-chromium-2", user_id="8101"), "members:update")
    deliver(stack, member_document("live-chromium-other", user_id="8102"))  # another patron's: never shown
    token = mint(stack, audience="patron", userId="8101", ttlSeconds=120)
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(PAGE_PORT), "--bind", "127.0.0.1"],
        cwd=site,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: requests.get(PAGE_ORIGIN + "/index.html", timeout=2).ok, 10, what="the page server")
        with Chromium() as browser:
            browser.navigate(f"{PAGE_ORIGIN}/index.html?" + urlencode({"live": stack.live_url, "token": token}))
            out = "(document.getElementById('out') || {}).textContent || ''"
            browser.wait_for(f"({out}).split('\\n').filter(Boolean).length >= 4", 30, what="the first events")
            # A live event after the page is up, too:
            third = deliver(stack, member_document("live-chromium-3", user_id="8101"), "members:update")
            browser.wait_for(f"({out}).split(' {third} ').length - 1 >= 2", 30, what="the live event on both")
            text = browser.evaluate(out)
    finally:
        server.terminate()
        server.wait(10)
    lines = sorted(text.splitlines())
    expected = [f"{kind} {event_id} {trigger}" for kind in ("socketio", "sse")
                for event_id, trigger in ((first, "members:create"), (second, "members:update"), (third, "members:update"))]
    assert lines == sorted(expected), text
