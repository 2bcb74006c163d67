"""The store's failure, on PostgreSQL, through the real stack (docs/scaling-out.md).

- PostgreSQL killed (``pg_ctl stop -m immediate``) for a few seconds while deliveries
  keep arriving: each is answered fast with 200 or 503 ``STORE_UNAVAILABLE`` +
  ``Retry-After`` while it is down, 200 after it is back, every 200 is stored once,
  and ``/api/patreon/status`` keeps answering without waiting on the store.
- A foreign ``ACCESS EXCLUSIVE`` lock on the event log with a pool of 2 connections
  and many concurrent requests: writes meet ``lock_timeout``, reads queue for the pool
  past ``WEB_DATABASE_POOL_TIMEOUT_S``; both are answered 503 fast, then 200.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from harness.stack import Stack
from store.database import Store
from tests.webhook_deliveries import PATH, encode, member_document, signed_headers

SECRET = "pg-failure-webhook-secret"
KEY = "pg-failure-key"
ENV = {"BRIDGE_API_KEY": KEY, "PATREON_WEBHOOK_SECRET": SECRET}
ANSWER_WITHIN_S = 1.5
DOWN_S = 10.0  # the outage: PostgreSQL gone for 10 s under webhook load


def post(conn: http.client.HTTPConnection, raw: bytes) -> tuple[int, dict, dict[str, str]]:
    conn.request("POST", PATH, body=raw, headers={**signed_headers(SECRET, raw), "Content-Type": "application/json"})
    resp = conn.getresponse()
    return resp.status, json.loads(resp.read() or b"{}"), {k.lower(): v for k, v in resp.getheaders()}


def stored(url: str) -> dict[int, bytes]:
    store = Store(url)
    try:
        with store.read() as conn:
            return {row["id"]: bytes(row["body"]) for row in conn.execute("SELECT id, body FROM webhook_events")}
    finally:
        store.close()


class Deliveries:
    """Senders that deliver each body until it is answered 200, as Patreon retries."""

    def __init__(self, stack: Stack, prefix: str, count: int):
        self.stack = stack
        self.bodies = {n: encode(member_document(f"{prefix}-{n:03d}", note=f"delivery {n}")) for n in range(count)}
        self.attempts: list[tuple[float, float, int, dict, dict]] = []  # (sent at, seconds, status, body, headers)
        self.accepted: dict[int, int] = {}
        self.lock = threading.Lock()

    def deliver(self, n: int, deadline: float) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.stack.port, timeout=10)
        while time.monotonic() < deadline:
            started = time.monotonic()
            status, answer, headers = post(conn, self.bodies[n])
            with self.lock:
                self.attempts.append((started, time.monotonic() - started, status, answer, headers))
            if status == 200:
                self.accepted[n] = answer["id"]
                return
            time.sleep(0.1)

    def check(self, url: str) -> tuple[float, int]:
        """Every attempt answered fast with 200 or 503 STORE_UNAVAILABLE + Retry-After,
        every delivery stored exactly once under the id its 200 named."""
        slowest = max(seconds for _at, seconds, *_ in self.attempts)
        assert slowest < ANSWER_WITHIN_S, f"an answer took {slowest:.2f} s"
        assert {status for _at, _s, status, *_ in self.attempts} <= {200, 503}
        refused = [(answer, headers) for _at, _s, status, answer, headers in self.attempts if status == 503]
        for answer, headers in refused:
            assert answer["code"] == "STORE_UNAVAILABLE" and int(headers["retry-after"]) >= 1
        assert len(self.accepted) == len(self.bodies), "some deliveries were never accepted"
        rows = stored(url)
        assert len(rows) == len(self.bodies)
        for n, event_id in self.accepted.items():
            assert rows[event_id] == self.bodies[n]
        return slowest, len(refused)


@pytest.mark.timeout(180)
def test_postgresql_killed_under_webhook_load_is_503_while_down_and_loses_no_200(postgres):
    url = postgres.create_database("failure_stop")
    with Stack({**ENV, "DATABASE_URL": url}, name="pb-pgstop") as stack:
        deliveries = Deliveries(stack, "stop", 300)
        stop = threading.Event()
        status_s: list[float] = []
        down: list[float] = []

        def watch_status() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=10)
            while not stop.is_set():
                started = time.monotonic()
                conn.request("GET", "/api/patreon/status")
                resp = conn.getresponse()
                resp.read()
                status_s.append(time.monotonic() - started)
                assert resp.status == 200
                time.sleep(0.05)

        def take_postgres_away() -> None:
            time.sleep(1.0)
            down.append(time.monotonic())
            postgres.stop("immediate")  # as if killed: no clean shutdown
            time.sleep(DOWN_S)
            postgres.start()
            down.append(time.monotonic())

        watcher = threading.Thread(target=watch_status)
        outage = threading.Thread(target=take_postgres_away)
        watcher.start()
        outage.start()
        deadline = time.monotonic() + 60
        try:
            with ThreadPoolExecutor(8) as pool:
                # Spread over ~18 s around the outage: a new delivery every 60 ms, 8 at a time.
                futures = []
                for n in deliveries.bodies:
                    futures.append(pool.submit(deliveries.deliver, n, deadline))
                    time.sleep(0.06)
                for future in futures:
                    future.result()
        finally:
            outage.join(30)
            stop.set()
            watcher.join(10)
        slowest, refused = deliveries.check(url)
        went_down, came_back = down
        during = [a for a in deliveries.attempts if went_down + 0.2 < a[0] < came_back - 0.2]
        assert during and all(status == 503 for _at, _s, status, *_ in during), "answered 200 while down"
        after = [a for a in deliveries.attempts if a[0] > came_back + 1.0]
        assert after and all(status == 200 for _at, _s, status, *_ in after), "not 200 again after the restart"
        assert max(status_s) < ANSWER_WITHIN_S
        print(
            f"\npostgres down {came_back - went_down:.1f} s: {len(deliveries.attempts)} attempts,"
            f" {refused} answered 503, slowest answer {slowest * 1000:.0f} ms; status slowest"
            f" {max(status_s) * 1000:.0f} ms over {len(status_s)} requests"
        )


@pytest.mark.timeout(120)
def test_a_locked_event_log_and_an_exhausted_pool_are_answered_503_fast(postgres):
    url = postgres.create_database("failure_lock")
    env = {**ENV, "DATABASE_URL": url, "DATABASE_POOL_SIZE": "2"}
    with Stack(env, name="pb-pglock") as stack:
        deliveries = Deliveries(stack, "lock", 40)
        reads: list[tuple[float, int, dict, dict]] = []
        locker = psycopg.connect(postgres.url("failure_lock"))
        locker.execute("LOCK TABLE webhook_events IN ACCESS EXCLUSIVE MODE")
        locked_until = time.monotonic() + 3.0

        def read_events() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=10)
            while time.monotonic() < locked_until:
                started = time.monotonic()
                conn.request("GET", "/api/patreon/webhooks/events?since=0", headers={"Authorization": f"Bearer {KEY}"})
                resp = conn.getresponse()
                answer = json.loads(resp.read() or b"{}")
                reads.append((time.monotonic() - started, resp.status, answer, dict(resp.getheaders())))

        def unlock() -> None:
            time.sleep(max(0.0, locked_until - time.monotonic()))
            locker.rollback()
            locker.close()

        unlocker = threading.Thread(target=unlock)
        unlocker.start()
        deadline = time.monotonic() + 30
        with ThreadPoolExecutor(24) as pool:
            futures = [pool.submit(read_events) for _ in range(8)]
            futures += [pool.submit(deliveries.deliver, n, deadline) for n in deliveries.bodies]
            for future in futures:
                future.result()
        unlocker.join(10)
        slowest, refused = deliveries.check(url)
        assert refused, "the lock never refused a delivery: the test did not press on it"
        assert reads and max(seconds for seconds, *_ in reads) < ANSWER_WITHIN_S
        assert {status for _s, status, *_ in reads} <= {200, 503}
        assert all(answer["code"] == "STORE_UNAVAILABLE" for _s, status, answer, _h in reads if status == 503)
        web_log = stack.log_text("web")
        assert "QueuePool limit" in web_log, "no request met the exhausted pool"
        assert "lock timeout" in web_log, "no statement met lock_timeout"
        print(
            f"\nlocked event log, pool of 2: {len(deliveries.attempts)} delivery attempts ({refused} 503),"
            f" {len(reads)} reads ({sum(1 for r in reads if r[1] == 503)} 503); slowest delivery"
            f" {slowest * 1000:.0f} ms, slowest read {max(r[0] for r in reads) * 1000:.0f} ms"
        )
