"""Several workers under the real supervisord (``numprocs=2`` through the documented
supervisord.d/ override): web spreads calls over both, one budget and one token
refresh across them, and a worker that is killed or hung takes only its own in-flight
calls with it (docs/scaling-out.md, "Many processes")."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from harness.stack import Stack, body, wait_for
from tests.browser import Browser

pytestmark = pytest.mark.timeout(300)

KEY = "w" * 40
SERVER = {"Authorization": f"Bearer {KEY}"}
WORKERS = ("patreon:worker_00", "patreon:worker_01")


@pytest.fixture(scope="module")
def stack():
    env = {
        "BRIDGE_API_KEY": KEY,
        # As in test_api_reads: only the real 2-second window (100 at the sandbox, 95
        # ours) is in play, so any slip of the shared budget shows as a sandbox 429.
        "PATREON_RATE_LIMIT_REQUESTS_PER_MINUTE": "100000",
        "SANDBOX_RATE_LIMIT_PER_MINUTE": "1000000",
        "SANDBOX_RATE_LIMIT_PER_2_SECONDS": "100",
    }
    with Stack(env, name="pb-workers", workers=2) as running:
        yield running


def sandbox_state(stack: Stack) -> dict:
    return body(stack.sandbox("GET", "/_sandbox/state"))


def read_campaigns(stack: Stack) -> int:
    # The status only: a live Response keeps its keep-alive connection open.
    return requests.get(stack.url("/api/patreon/campaigns"), headers=SERVER, timeout=60).status_code


def both_up(stack: Stack) -> bool:
    workers = body(stack.get("/api/patreon/status"))["status"]["workers"]
    return len(workers) == 2 and all(w["available"] for w in workers)


def test_both_workers_serve_and_status_and_health_report_each(stack):
    pids = [stack.pid(name) for name in WORKERS]
    assert all(pids) and pids[0] != pids[1]
    health = body(stack.get("/api/patreon/health"))
    assert health["status"] == "healthy"
    assert [(w["name"], w["healthy"], w["pid"]) for w in health["workers"]] == [
        ("worker_00", True, pids[0]),
        ("worker_01", True, pids[1]),
    ]
    status = body(stack.get("/api/patreon/status"))["status"]
    assert [(w["name"], w["available"], w["pid"]) for w in status["workers"]] == [
        ("worker_00", True, pids[0]),
        ("worker_01", True, pids[1]),
    ]
    assert [r["program"] for r in status["watchdogs"]] == list(WORKERS)


def member_page_calls(stack: Stack, process: str) -> int:
    """How many member-page calls a worker process made to the sandbox (its log lines)."""
    return stack.log_text(process).count("patreon GET /api/oauth2/v2/campaigns/1001/members")


def test_300_calls_over_two_workers_without_a_single_sandbox_429(stack):
    stack.sandbox("POST", "/_sandbox/state/reset-counters")
    before = [member_page_calls(stack, p) for p in ("worker_00", "worker_01")]

    def read(_: int) -> int:
        return requests.get(
            stack.url("/api/patreon/campaigns/1001/members"),
            params={"page[count]": "5"},
            headers=SERVER,
            timeout=90,
        ).status_code

    started = time.perf_counter()
    with ThreadPoolExecutor(300) as pool:
        statuses = list(pool.map(read, range(300)))
    elapsed_s = time.perf_counter() - started
    state = sandbox_state(stack)
    print(
        f"\n300 calls over 2 workers: {elapsed_s:.1f} s, statuses {sorted(set(statuses))}, sandbox saw "
        f"{state['api_requests']} API requests and {state['throttled']} 429s"
    )
    assert set(statuses) == {200}
    assert state["throttled"] == 0 and state["api_requests"] == 300
    served = [
        member_page_calls(stack, p) - n for p, n in zip(("worker_00", "worker_01"), before, strict=True)
    ]
    print(f"worker_00 made {served[0]} of the calls, worker_01 {served[1]}")
    assert sum(served) == 300 and min(served) >= 100  # spread over both, round robin
    # Two workers with a budget each would finish in about half this: one budget held.
    assert elapsed_s >= 2 * (300 - 95) / 95 - 0.5
    with sqlite3.connect(stack.dir / "var" / "bridge.sqlite3") as conn:
        assert conn.execute("SELECT count(*) FROM rate_slots WHERE window_key = 'client'").fetchone()[0] >= 95


def test_twenty_concurrent_reads_on_an_expired_token_over_two_workers_cause_one_refresh(stack):
    browser = Browser(stack)
    browser.login("7")
    with sqlite3.connect(stack.dir / "var" / "bridge.sqlite3") as conn:
        sealed = conn.execute(
            "SELECT access_token FROM tokens WHERE principal = ?", ("session:" + browser.cookie,)
        ).fetchone()[0]
    access = stack.cipher().open(sealed)
    before = sandbox_state(stack)["token_grants"]["refresh_token"]
    reads_before = [
        stack.log_text(p).count("patreon GET /api/oauth2/v2/identity") for p in ("worker_00", "worker_01")
    ]
    assert stack.sandbox("POST", "/_sandbox/tokens/expire", json={"access_token": access}).status_code == 200
    cookie = browser.cookie

    def read(_: int) -> tuple[int, str]:
        resp = requests.get(stack.url("/api/patreon/user"), cookies={"pb_session": cookie}, timeout=30)
        return resp.status_code, body(resp).get("data", {}).get("id", resp.text[:200])

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(read, range(20)))
    refreshes = sandbox_state(stack)["token_grants"]["refresh_token"] - before
    print(f"\n20 concurrent reads on an expired token over 2 workers: {refreshes} refresh")
    assert answers == [(200, "7")] * 20
    assert refreshes == 1
    reads = [
        stack.log_text(p).count("patreon GET /api/oauth2/v2/identity") - n
        for p, n in zip(("worker_00", "worker_01"), reads_before, strict=True)
    ]
    assert min(reads) >= 10, reads  # both workers met the expired token
    # The session kept a working pair: a later read needs no new login.
    assert read(0) == (200, "7")


class Load:
    """Idempotent reads in a loop from 8 threads, recording every status."""

    def __init__(self, stack: Stack):
        self.stack = stack
        self.statuses: list[int] = []
        self.slow: list[float] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(8)]

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            status = read_campaigns(self.stack)
            self.statuses.append(status)
            self.slow.append(time.perf_counter() - started)

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)


def test_kill_9_of_one_worker_under_load_loses_no_idempotent_call(stack):
    wait_for(lambda: both_up(stack), 30, what="both workers up")
    victim = stack.pid(WORKERS[1])
    with Load(stack) as load:
        time.sleep(1.0)
        os.kill(victim, signal.SIGKILL)
        time.sleep(2.0)
    print(f"\nkill -9 of worker_01: {len(load.statuses)} calls, statuses {sorted(set(load.statuses))}")
    assert load.statuses and set(load.statuses) == {200}
    wait_for(lambda: stack.pid(WORKERS[1]) not in (0, victim), 20, what="supervisord to restart worker_01")
    wait_for(lambda: both_up(stack), 30, what="web to see worker_01 back")


def test_a_hung_worker_under_load_is_bypassed_then_restarted_by_the_watchdog(stack):
    wait_for(lambda: both_up(stack), 30, what="both workers up")
    victim = stack.pid(WORKERS[0])
    with Load(stack) as load:
        time.sleep(1.0)
        os.kill(victim, signal.SIGSTOP)  # a hang: the connection stays open
        try:
            wait_for(
                lambda: stack.pid(WORKERS[0]) not in (0, victim), 30, what="the watchdog to restart worker_00"
            )
        finally:
            try:
                os.kill(victim, signal.SIGCONT)
            except ProcessLookupError:
                pass
        time.sleep(1.0)
    print(
        f"\nSIGSTOP of worker_00: {len(load.statuses)} calls, statuses {sorted(set(load.statuses))},"
        f" slowest {max(load.slow):.1f} s"
    )
    assert load.statuses and set(load.statuses) == {200}
    assert f"❌ Watchdog: patreon:worker_00 pid {victim} is hung" in stack.log_text("watchdog")
    # A call caught in the hung worker waited for web to mark it down (3 missed
    # heartbeats), then went to worker_01: seconds, never its 30 s timeout.
    assert max(load.slow) < 10
    wait_for(lambda: both_up(stack), 30, what="web to see worker_00 back")


def test_a_non_idempotent_call_in_a_killed_worker_fails_with_the_documented_code(stack):
    wait_for(lambda: both_up(stack), 30, what="both workers up")
    results: list[requests.Response] = []

    def slow_call() -> None:
        # debug.sleep is not idempotent: never retried, whichever worker it landed on.
        results.append(stack.get("/api/patreon/_test/sleep?ms=5000", timeout=30))

    callers = [threading.Thread(target=slow_call) for _ in range(4)]
    for t in callers:
        t.start()
    wait_for(
        lambda: (
            sum(w["in_flight"] or 0 for w in body(stack.get("/api/patreon/status"))["status"]["workers"]) >= 4
        ),
        10,
        what="4 slow calls in flight",
    )
    os.kill(stack.pid(WORKERS[1]), signal.SIGKILL)
    for t in callers:
        t.join(30)
    codes = sorted(r.status_code for r in results)
    print(f"\nkill -9 with 4 slow non-idempotent calls in flight: statuses {codes}")
    failed = [r for r in results if r.status_code != 200]
    assert failed, "no call was in flight on worker_01"
    assert all(r.status_code == 503 and body(r)["code"] == "PATREON_SERVICE_UNAVAILABLE" for r in failed)
    assert any(r.status_code == 200 for r in results)  # worker_00's calls finished
    wait_for(lambda: both_up(stack), 30, what="worker_01 back")


def test_two_web_processes_listen_on_port_and_port_plus_one_on_one_store():
    with Stack(name="pb-webs", webs=2) as stack:
        wait_for(
            lambda: all(
                requests.get(url + "/api/patreon/health", timeout=5).status_code == 200
                for url in stack.web_urls
            ),
            30,
            what="both web processes healthy",
        )
        assert stack.state("patreon:web_01") == "RUNNING"
        # A session made through one process is known to the other (the store holds it).
        browser = Browser(stack)
        browser.login("7")
        other = requests.get(
            stack.web_urls[1] + "/api/patreon/user", cookies={"pb_session": browser.cookie}, timeout=30
        )
        assert other.status_code == 200 and body(other)["data"]["id"] == "7"
