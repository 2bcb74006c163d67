"""Two stacks (two folders, two supervisords, their own ports) on one PostgreSQL
database behave as one (docs/scaling-out.md, "Two stacks on one PostgreSQL"). Both
talk to ONE sandbox (stack b uses stack a's: one rate limit, one token table), each
runs one worker, so everything they agree on goes through PostgreSQL:

- 300 deliveries sent alternately to both webs, while stack a's worker is ``kill -9``ed
  and stack b's web restarted, are stored once each, in one id sequence (a delivery
  that got no answer is re-sent to the same stack, as Patreon does; dedupe keeps it
  once); a delivery re-sent to the other stack is answered as the duplicate it is;
- an SSE and a Socket.IO (WebSocket) subscriber on each stack's live program receive
  all 300, once each, in id order: live programs are woken by PostgreSQL's NOTIFY
  whichever host accepted the event (the latency across hosts is printed);
- 20 concurrent reads on an expired token spread over both stacks: one refresh at the
  sandbox, every read 200 with the session's user;
- 300 calls spread over both stacks under the sandbox's real 100 per 2 s: no 429.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from harness.stack import Stack, body, wait_for
from store.database import Store
from store.encryption import new_key
from tests.browser import Browser
from tests.live_clients import SseSubscriber, WebSocketSubscriber
from tests.webhook_deliveries import PATH, encode, member_document, signed_headers

pytestmark = pytest.mark.timeout(300)

SECRET = "two-stacks-webhook-secret"
KEY = "two-stacks-key"
DELIVERIES = 300


SERVER = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def two_stacks(postgres):
    url = postgres.create_database("two_stacks")
    env = {
        "DATABASE_URL": url,
        "BRIDGE_API_KEY": KEY,
        "PATREON_WEBHOOK_SECRET": SECRET,
        # One key for both: tokens and secrets sealed by one host are opened by the other.
        "BRIDGE_ENCRYPTION_KEY": new_key(),
        # As in test_workers: only the sandbox's real 2-second window (100; ours 95) is
        # in play, so a budget kept per stack instead of one shows as a sandbox 429.
        "PATREON_RATE_LIMIT_REQUESTS_PER_MINUTE": "100000",
        "SANDBOX_RATE_LIMIT_PER_MINUTE": "1000000",
        "SANDBOX_RATE_LIMIT_PER_2_SECONDS": "100",
    }
    with Stack(env, name="pb-two-a") as a, Stack(env, name="pb-two-b", sandbox_of=a) as b:
        yield url, a, b


def post(conn: http.client.HTTPConnection, raw: bytes) -> tuple[int, dict]:
    conn.request("POST", PATH, body=raw, headers={**signed_headers(SECRET, raw), "Content-Type": "application/json"})
    resp = conn.getresponse()
    return resp.status, json.loads(resp.read() or b"{}")


def deliver(stack: Stack, raw: bytes, conn: list[http.client.HTTPConnection], give_up_s: float = 60.0) -> tuple[dict, int]:
    """POST until answered 200, as Patreon re-sends a delivery that got no answer (or
    a 5xx) to the same URL; returns the answer and how many attempts failed."""
    failed = 0
    deadline = time.monotonic() + give_up_s
    while True:
        try:
            status, answer = post(conn[0], raw)
            if status == 200:
                return answer, failed
        except (OSError, http.client.HTTPException, json.JSONDecodeError):
            status, answer = None, {}
        failed += 1
        conn[0].close()
        conn[0] = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=10)
        assert time.monotonic() < deadline, f"no 200 from {stack.base_url} for {give_up_s} s: {status} {answer}"
        time.sleep(0.1)


def test_two_stacks_share_one_log_dedupe_and_live_delivery_through_a_kill_and_a_restart(two_stacks):
    url, a, b = two_stacks
    stacks = (a, b)
    for stack in stacks:
        stack.wait_live()
    bodies = {n: encode(member_document(f"two-{n:03d}", note=f"delivery {n}")) for n in range(DELIVERIES)}
    accepted: dict[int, tuple[int, int, float]] = {}  # n -> (id, stack index, answered at)
    retried: dict[int, int] = {}  # n -> failed attempts before its 200
    lock = threading.Lock()
    chaos: list[str] = []

    worker = a.pid("patreon:worker_00")  # looked up before the load: supervisorctl is slow
    restarted_at: list[float] = []

    def break_things() -> None:
        # Stack a's worker is SIGKILLed after a fifth of the deliveries, stack b's web
        # restarted (SIGTERM, then started again) after a third: both mid-load.
        wait_for(lambda: len(accepted) >= DELIVERIES // 5, 60, interval_s=0.005, what="a fifth accepted")
        os.kill(worker, signal.SIGKILL)
        chaos.append(f"kill -9 of stack a's worker (pid {worker}) at {len(accepted)} accepted")
        wait_for(lambda: len(accepted) >= DELIVERIES // 3, 60, interval_s=0.005, what="a third accepted")
        at = len(accepted)
        restart = b.ctl("restart", "patreon:web_00")
        restarted_at.append(time.perf_counter())
        chaos.append(f"restart of stack b's web at {at} accepted: {restart.stdout.strip()!r}")

    async def scenario() -> tuple[list, dict[int, tuple[int, bool]]]:
        subs = []
        for s in stacks:
            subs.append(SseSubscriber("127.0.0.1", s.live_port, {"key": KEY}).start())
            subs.append(WebSocketSubscriber("127.0.0.1", s.live_port, {"key": KEY}).start())
        for sub in subs:
            await asyncio.wait_for(sub.connected.wait(), 20)

        def send(sender: int) -> None:
            conns = [[http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)] for s in stacks]
            for n in range(sender, DELIVERIES, 6):
                which = n % 2  # alternately to both stacks
                answer, failed = deliver(stacks[which], bodies[n], conns[which])
                with lock:
                    accepted[n] = (answer["id"], which, time.perf_counter())
                    if failed:
                        retried[n] = failed
                time.sleep(0.15)  # ~40 a second: the load lasts well past the restart

        breaker = threading.Thread(target=break_things, daemon=True)
        breaker.start()
        await asyncio.to_thread(lambda: list(ThreadPoolExecutor(6).map(send, range(6))))
        await asyncio.to_thread(breaker.join, 60)
        # The same bodies again, each to the stack that did not take it.
        again: dict[int, tuple[int, bool]] = {}

        def resend() -> None:
            conns = [[http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)] for s in stacks]
            for n in range(0, DELIVERIES, 10):
                other = 1 - accepted[n][1]
                answer, _failed = deliver(stacks[other], bodies[n], conns[other])
                again[n] = (answer["id"], answer["duplicate"])

        await asyncio.to_thread(resend)
        wanted = {event_id for event_id, _w, _t in accepted.values()}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(wanted <= set(sub.received) for sub in subs):
            await asyncio.sleep(0.05)
        for sub in subs:
            await sub.stop()
        return subs, again

    subs, again = asyncio.run(scenario())
    print(f"\ntwo stacks, {DELIVERIES} deliveries: " + "; ".join(chaos))
    print(f"{len(retried)} deliveries got no 200 at first and were re-sent ({sum(retried.values())} failed attempts)")
    assert len(chaos) == 2, chaos
    assert "patreon:web_00: started" in chaos[1]
    assert retried, "the web restart met no delivery: the load ended too early"
    after_restart = sum(1 for _id, which, at in accepted.values() if which == 1 and at > restarted_at[0])
    print(f"stack b's restarted web answered {after_restart} deliveries after its restart")
    assert after_restart > 0
    ids = [event_id for event_id, _w, _t in accepted.values()]
    assert len(accepted) == DELIVERIES and len(set(ids)) == DELIVERIES, "an id was given twice"
    assert all(duplicate and event_id == accepted[n][0] for n, (event_id, duplicate) in again.items())
    store = Store(url)
    try:
        with store.read() as conn:
            rows = {r["id"]: bytes(r["body"]) for r in conn.execute("SELECT id, body FROM webhook_events WHERE event = 'members:create'")}
    finally:
        store.close()
    assert len(rows) == DELIVERIES
    for n, (event_id, _which, _at) in accepted.items():
        assert rows[event_id] == bodies[n]
    latencies: dict[str, list[float]] = {"same host": [], "other host": []}
    for index, sub in enumerate(subs):
        host = index // 2
        assert set(ids) <= set(sub.received), f"{sub.kind} on stack {host} missed {len(set(ids) - set(sub.received))}"
        assert sub.duplicates == 0
        heard = list(sub.received)
        assert heard == sorted(heard), f"{sub.kind} on stack {host}: events arrived out of id order"
        for event_id, which, answered_at in accepted.values():
            kind = "same host" if which == host else "other host"
            latencies[kind].append(sub.received[event_id] - answered_at)
    summary = ", ".join(
        f"{kind} p50 {statistics.median(v) * 1000:.0f} ms / max {max(v) * 1000:.0f} ms" for kind, v in latencies.items()
    )
    print(f"live delivery after the 200 (SSE and Socket.IO, both stacks): {summary}")
    # The killed worker came back (supervisord), the restarted web serves.
    wait_for(lambda: a.state("patreon:worker_00") == "RUNNING", 30, what="stack a's worker RUNNING again")
    assert a.pid("patreon:worker_00") not in (0, worker)
    b.wait_healthy()


def sandbox_state(stack: Stack) -> dict:
    return body(stack.sandbox("GET", "/_sandbox/state"))


def test_twenty_reads_on_an_expired_token_over_both_stacks_cause_one_refresh(two_stacks):
    url, a, b = two_stacks
    assert a.sandbox_url == b.sandbox_url  # one "patreon.com" for both
    browser = Browser(a)
    browser.login("7")
    cookie = browser.cookie
    store = Store(url)
    try:
        with store.read() as conn:
            sealed = conn.execute(
                "SELECT access_token FROM tokens WHERE principal = :p", {"p": "session:" + cookie}
            ).fetchone()["access_token"]
    finally:
        store.close()
    before = sandbox_state(a)["token_grants"]["refresh_token"]
    assert a.sandbox("POST", "/_sandbox/tokens/expire", json={"access_token": a.cipher().open(sealed)}).status_code == 200

    def read(n: int) -> tuple[int, str]:
        stack = (a, b)[n % 2]  # spread over both stacks (the session lives in PostgreSQL)
        resp = requests.get(stack.url("/api/patreon/user"), cookies={"pb_session": cookie}, timeout=30)
        return resp.status_code, body(resp).get("data", {}).get("id", resp.text[:200])

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(read, range(20)))
    refreshes = sandbox_state(a)["token_grants"]["refresh_token"] - before
    print(f"\n20 concurrent reads on an expired token over 2 stacks: {refreshes} refresh")
    assert answers == [(200, "7")] * 20
    assert refreshes == 1
    # The session kept a working pair: later reads on either stack need no new refresh.
    for stack in (a, b):
        resp = requests.get(stack.url("/api/patreon/user"), cookies={"pb_session": cookie}, timeout=30)
        assert resp.status_code == 200 and body(resp)["data"]["id"] == "7"
    assert sandbox_state(a)["token_grants"]["refresh_token"] - before == 1


def member_page_calls(stack: Stack) -> int:
    """How many member-page calls the stack's worker made to the sandbox (its log lines)."""
    return stack.log_text("worker").count("patreon GET /api/oauth2/v2/campaigns/1001/members")


def test_300_calls_over_both_stacks_without_a_single_sandbox_429(two_stacks):
    _url, a, b = two_stacks
    for stack in (a, b):
        stack.wait_healthy()
    a.sandbox("POST", "/_sandbox/state/reset-counters")
    time.sleep(2.1)  # earlier tests' slots age out of the 2 s window
    before = [member_page_calls(s) for s in (a, b)]

    def read(n: int) -> int:
        return requests.get(
            (a, b)[n % 2].url("/api/patreon/campaigns/1001/members"),
            params={"page[count]": "5"},
            headers=SERVER,
            timeout=90,
        ).status_code

    started = time.perf_counter()
    with ThreadPoolExecutor(300) as pool:
        statuses = list(pool.map(read, range(300)))
    elapsed_s = time.perf_counter() - started
    state = sandbox_state(a)
    served = [member_page_calls(s) - n for s, n in zip((a, b), before, strict=True)]
    print(
        f"\n300 calls over 2 stacks (one worker each): {elapsed_s:.1f} s, statuses {sorted(set(statuses))}, "
        f"sandbox saw {state['api_requests']} API requests and {state['throttled']} 429s; "
        f"stack a's worker made {served[0]}, stack b's {served[1]}"
    )
    assert set(statuses) == {200}
    assert state["throttled"] == 0 and state["api_requests"] == 300
    assert served == [150, 150]
    # Two budgets (one per stack) would finish in about half this: one budget held.
    assert elapsed_s >= 2 * (300 - 95) / 95 - 0.5
