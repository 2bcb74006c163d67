"""The webhook write path through the real stack, when the store is not ours to have.

- A foreign lock (another process holding a write transaction on the SQLite file for
  12 s) while 40 deliveries keep arriving: ``/api/patreon/status`` keeps answering
  fast (it never touches the store's write path), every delivery is answered within
  1.5 s with 200 or 503 ``STORE_UNAVAILABLE`` + ``Retry-After``, no delivery is stored
  twice and every 200 is stored (issue 16, finding 2).
- Durability: web killed with SIGKILL right after it answered 200s: every one of them
  is in the store (a commit is in the WAL before the answer; docs/operations.md).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness.stack import Stack, wait_for
from tests.webhook_deliveries import PATH, encode, member_document, signed_headers

SECRET = "store-lock-webhook-secret"
ENV = {"BRIDGE_API_KEY": "store-lock-key", "PATREON_WEBHOOK_SECRET": SECRET}
LOCK_S = 12.0
DELIVERIES = 40
ANSWER_WITHIN_S = 1.5
STATUS_P99_MS = 50.0

# Another process: holds a write transaction on the store for LOCK_S seconds.
LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("ROLLBACK")
"""


def store_rows(stack: Stack, sql: str) -> list[tuple]:
    conn = sqlite3.connect(stack.dir / "var" / "bridge.sqlite3", timeout=10)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def post(conn: http.client.HTTPConnection, raw: bytes) -> tuple[int, dict, dict[str, str]]:
    conn.request(
        "POST", PATH, body=raw, headers={**signed_headers(SECRET, raw), "Content-Type": "application/json"}
    )
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, json.loads(data), {k.lower(): v for k, v in resp.getheaders()}


@pytest.mark.timeout(120)
def test_a_foreign_lock_neither_stalls_web_nor_loses_or_doubles_a_delivery():
    with Stack(ENV) as stack:
        locker = subprocess.Popen(
            [sys.executable, "-c", LOCKER, str(stack.dir / "var" / "bridge.sqlite3"), str(LOCK_S)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert locker.stdout.readline().strip() == "locked"
        locked_at = time.monotonic()
        stop = threading.Event()
        status_ms: list[float] = []
        health: list[int] = []
        attempts: list[tuple[float, int, dict, dict]] = []  # (seconds, status, body, headers)
        accepted: dict[int, dict] = {}

        def watch_status() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=10)
            while not stop.is_set():
                started = time.perf_counter()
                conn.request("GET", "/api/patreon/status")
                resp = conn.getresponse()
                resp.read()
                status_ms.append((time.perf_counter() - started) * 1000)
                assert resp.status == 200
                if len(status_ms) % 10 == 0:
                    conn.request("GET", "/api/patreon/health")
                    resp = conn.getresponse()
                    resp.read()
                    health.append(resp.status)
                time.sleep(0.02)

        def deliver(n: int) -> None:
            raw = encode(member_document(f"lock-{n:02d}", note=f"delivery {n}"))
            conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=10)
            while time.monotonic() < locked_at + LOCK_S + 20:
                started = time.monotonic()
                status, answer, headers = post(conn, raw)
                attempts.append((time.monotonic() - started, status, answer, headers))
                if status == 200:
                    accepted[n] = answer
                    return
                time.sleep(0.2)  # Patreon retries much later; sooner here, to press on the lock

        watcher = threading.Thread(target=watch_status)
        watcher.start()
        try:
            with ThreadPoolExecutor(DELIVERIES) as pool:
                for future in [pool.submit(deliver, n) for n in range(DELIVERIES)]:
                    future.result()
        finally:
            stop.set()
            watcher.join(10)
            locker.wait(LOCK_S + 10)

        # Every attempt answered within 1.5 s, 200 or 503 STORE_UNAVAILABLE with Retry-After.
        slowest = max(seconds for seconds, *_ in attempts)
        assert slowest < ANSWER_WITHIN_S, f"a delivery took {slowest:.2f} s"
        refused = [(answer, headers) for _s, status, answer, headers in attempts if status == 503]
        assert {status for _s, status, *_ in attempts} <= {200, 503}
        assert refused, "the lock never refused a delivery: the test did not press on it"
        for answer, headers in refused:
            assert answer["code"] == "STORE_UNAVAILABLE" and int(headers["retry-after"]) >= 1
        # Status answered fast throughout; health (a worker hop) kept answering too.
        ordered = sorted(status_ms)
        p99 = ordered[int(len(ordered) * 0.99)]
        assert len(ordered) > 100 and p99 < STATUS_P99_MS, f"status p99 {p99:.1f} ms over {len(ordered)}"
        assert health and set(health) == {200}
        # Each of the 40 stored exactly once, each 200 naming its own row.
        rows = dict(store_rows(stack, "SELECT id, body FROM webhook_events"))
        assert len(rows) == DELIVERIES == len(accepted)
        for n, answer in accepted.items():
            assert rows[answer["id"]] == encode(member_document(f"lock-{n:02d}", note=f"delivery {n}"))
        print(
            f"\nstore lock: {len(attempts)} attempts, {len(refused)} refused with 503, slowest answer "
            f"{slowest * 1000:.0f} ms; status p50/p99 {ordered[len(ordered) // 2]:.1f}/{p99:.1f} ms "
            f"over {len(ordered)} requests"
        )


@pytest.mark.timeout(120)
def test_a_delivery_answered_200_survives_web_killed_at_once():
    with Stack(ENV) as stack:
        web_pid = stack.pid("patreon:web_00")
        accepted: dict[int, int] = {}
        killed = threading.Event()
        lock = threading.Lock()

        def send(sender: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=10)
            for k in range(1000):
                n = sender * 1000 + k
                try:
                    status, answer, _ = post(conn, encode(member_document(f"kill-{n}")))
                except (OSError, http.client.HTTPException, ValueError):
                    return  # web is gone
                assert status == 200
                with lock:
                    accepted[n] = answer["id"]
                    if len(accepted) == 200 and not killed.is_set():
                        # Right after a 200: no chance for web to do anything more.
                        os.kill(web_pid, signal.SIGKILL)
                        killed.set()

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(send, range(8)))
        assert killed.is_set()
        rows = dict(store_rows(stack, "SELECT id, body FROM webhook_events"))
        missing = [
            n
            for n, event_id in accepted.items()
            if rows.get(event_id) != encode(member_document(f"kill-{n}"))
        ]
        assert not missing, f"{len(missing)} of {len(accepted)} deliveries answered 200 are not in the store"
        wait_for(lambda: stack.pid("patreon:web_00") not in (0, web_pid), 10, what="web to be restarted")
        print(f"\nkill -9 after a 200: all {len(accepted)} answered deliveries stored ({len(rows)} rows)")
