"""Two stacks (two folders, two supervisords, their own ports) on one PostgreSQL
database behave as one event log (docs/scaling-out.md):

- 300 deliveries sent alternately to both webs are stored once each, in one id
  sequence; a delivery re-sent to the other stack is answered as the duplicate it is,
  with its first id;
- an SSE subscriber on each stack's live program receives all 300, once each, in id
  order: live programs are woken by PostgreSQL's NOTIFY whichever host accepted the
  event (the latency across hosts is printed next to the same-host one).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness.stack import Stack
from store.database import Store
from store.encryption import new_key
from tests.live_clients import SseSubscriber
from tests.webhook_deliveries import PATH, encode, member_document, signed_headers

SECRET = "two-stacks-webhook-secret"
KEY = "two-stacks-key"
DELIVERIES = 300


def post(conn: http.client.HTTPConnection, raw: bytes) -> tuple[int, dict]:
    conn.request("POST", PATH, body=raw, headers={**signed_headers(SECRET, raw), "Content-Type": "application/json"})
    resp = conn.getresponse()
    return resp.status, json.loads(resp.read() or b"{}")


@pytest.mark.timeout(240)
def test_two_stacks_on_one_postgresql_share_one_log_dedupe_and_live_delivery(postgres):
    url = postgres.create_database("two_stacks")
    # One key for both: tokens and secrets sealed by one host are opened by the other.
    env = {"DATABASE_URL": url, "BRIDGE_API_KEY": KEY, "PATREON_WEBHOOK_SECRET": SECRET, "BRIDGE_ENCRYPTION_KEY": new_key()}
    with Stack(env, name="pb-two-a") as a, Stack(env, name="pb-two-b") as b:
        stacks = (a, b)
        bodies = {n: encode(member_document(f"two-{n:03d}", note=f"delivery {n}")) for n in range(DELIVERIES)}
        accepted: dict[int, tuple[int, int, float]] = {}  # n -> (id, stack index, answered at)
        lock = threading.Lock()

        async def scenario() -> tuple[list[SseSubscriber], dict[int, tuple[int, bool]]]:
            subs = [SseSubscriber("127.0.0.1", s.live_port, {"key": KEY}).start() for s in stacks]
            for sub in subs:
                await asyncio.wait_for(sub.connected.wait(), 20)

            def send(sender: int) -> None:
                conns = [http.client.HTTPConnection("127.0.0.1", s.port, timeout=10) for s in stacks]
                for n in range(sender, DELIVERIES, 6):
                    which = n % 2  # alternately to both stacks
                    status, answer = post(conns[which], bodies[n])
                    assert status == 200, answer
                    with lock:
                        accepted[n] = (answer["id"], which, time.perf_counter())

            await asyncio.to_thread(lambda: list(ThreadPoolExecutor(6).map(send, range(6))))
            # The same bodies again, each to the stack that did not take it.
            again: dict[int, tuple[int, bool]] = {}

            def resend() -> None:
                conns = [http.client.HTTPConnection("127.0.0.1", s.port, timeout=10) for s in stacks]
                for n in range(0, DELIVERIES, 10):
                    status, answer = post(conns[1 - accepted[n][1]], bodies[n])
                    assert status == 200, answer
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
        ids = [event_id for event_id, _w, _t in accepted.values()]
        assert len(set(ids)) == DELIVERIES, "an id was given twice"
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
            assert set(ids) <= set(sub.received), f"live on stack {index} missed {len(set(ids) - set(sub.received))}"
            assert sub.duplicates == 0
            heard = list(sub.received)
            assert heard == sorted(heard), "events arrived out of id order"
            for event_id, which, answered_at in accepted.values():
                kind = "same host" if which == index else "other host"
                latencies[kind].append(sub.received[event_id] - answered_at)
        summary = ", ".join(
            f"{kind} p50 {statistics.median(v) * 1000:.0f} ms / max {max(v) * 1000:.0f} ms" for kind, v in latencies.items()
        )
        print(f"\ntwo stacks, {DELIVERIES} deliveries: live delivery after the 200: {summary}")
