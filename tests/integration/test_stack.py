"""The backbone through the real supervisord: status, health, and a worker that dies,
hangs, or cannot start."""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from harness.stack import Stack, body, wait_for


@pytest.fixture(scope="module")
def stack():
    """These tests hang the worker on purpose to watch web notice it; the watchdog
    (tested in test_watchdog.py) is told to be patient so it does not restart the
    worker in the middle of one."""
    with Stack({"WATCHDOG_MAX_MISSES": "100"}) as running:
        yield running


UNAVAILABLE = {
    "success": False,
    "error": "Patreon service is not available",
    "code": "PATREON_SERVICE_UNAVAILABLE",
}


def assert_unavailable(resp: requests.Response) -> None:
    assert resp.status_code == 503, resp.text
    assert int(resp.headers["Retry-After"]) >= 1
    assert {k: body(resp)[k] for k in UNAVAILABLE} == UNAVAILABLE


def test_status_health_and_supervisorctl(stack: Stack):
    status = body(stack.get("/api/patreon/status"))
    assert status["success"] is True
    assert status["status"]["available"] is True
    assert status["status"]["ready"] is True
    assert status["status"]["mode"] == "sandbox"
    assert status["status"]["worker"]["pid"] == stack.pid("patreon:worker_00")
    assert status["status"]["worker"]["last_heartbeat_ms_ago"] < 3000

    health = stack.get("/api/patreon/health")
    assert health.status_code == 200
    assert body(health)["status"] == "healthy" and body(health)["pong"] is True
    assert body(health)["latency_ms"] >= 0

    out = stack.ctl("status", "patreon:*")
    assert out.returncode == 0, out.stdout
    lines = {line.split()[0]: line.split()[1] for line in out.stdout.splitlines()}
    assert lines == {"patreon:web_00": "RUNNING", "patreon:worker_00": "RUNNING"}


def test_unknown_path_is_json_404(stack: Stack):
    resp = stack.get("/api/patreon/no-such-thing")
    assert resp.status_code == 404
    assert body(resp)["success"] is False
    assert body(resp)["code"] == "NOT_FOUND"


def test_kill_9_fails_new_and_in_flight_requests_fast_then_recovers(stack: Stack):
    pid = stack.pid("patreon:worker_00")
    in_flight: dict = {}

    def slow_call():
        resp = stack.get("/api/patreon/_test/sleep?ms=5000")
        in_flight["answered_at"] = time.monotonic()
        in_flight["resp"] = resp

    caller = threading.Thread(target=slow_call)
    caller.start()
    wait_for(
        lambda: body(stack.get("/api/patreon/status"))["status"]["worker"]["in_flight"] == 1,
        5,
        what="the slow call to reach the worker",
    )

    killed_at = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    # A new request: poll until the first 503, then time it.
    first_503 = wait_for(
        lambda: (r := stack.get("/api/patreon/health")).status_code == 503 and (time.monotonic(), r),
        5,
        interval_s=0.005,
        what="a 503 for a new request",
    )
    caller.join(10)
    new_ms = (first_503[0] - killed_at) * 1000
    in_flight_ms = (in_flight["answered_at"] - killed_at) * 1000
    assert_unavailable(first_503[1])
    assert_unavailable(in_flight["resp"])
    recovered = wait_for(
        lambda: stack.get("/api/patreon/health").status_code == 200 and time.monotonic(),
        10,
        interval_s=0.01,
        what="health back to 200 after the restart",
    )
    recovered_ms = (recovered - killed_at) * 1000
    print(
        f"\nkill -9: new request 503 after {new_ms:.0f} ms, in-flight 503 after {in_flight_ms:.0f} ms, "
        f"200 again after {recovered_ms:.0f} ms (original: 20 ms / 30000 ms / 1200 ms)"
    )
    assert new_ms < 100
    assert in_flight_ms < 100
    assert stack.pid("patreon:worker_00") not in (0, pid)
    assert body(stack.get("/api/patreon/status"))["status"]["worker"]["restarts"] >= 1


def test_sigstop_marks_worker_down_and_sigcont_brings_it_back(stack: Stack):
    pid = stack.pid("patreon:worker_00")
    stopped_at = time.monotonic()
    os.kill(pid, signal.SIGSTOP)
    try:
        down = wait_for(
            lambda: stack.get("/api/patreon/health").status_code == 503 and time.monotonic(),
            5,
            what="health 503 for a hung worker",
        )
        # Liveness (3 missed beats) makes every route fail fast, not only health.
        wait_for(
            lambda: not body(stack.get("/api/patreon/status"))["status"]["available"],
            6,
            what="status to show the worker unavailable",
        )
        started = time.monotonic()
        assert_unavailable(stack.get("/api/patreon/_test/sleep?ms=1"))
        assert time.monotonic() - started < 0.5
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_for(lambda: stack.get("/api/patreon/health").status_code == 200, 5, what="health 200 after SIGCONT")
    print(f"\nkill -STOP: health 503 after {(down - stopped_at) * 1000:.0f} ms")
    assert down - stopped_at < 3.0
    assert stack.pid("patreon:worker_00") == pid  # the same process came back, no restart


def test_slow_requests_do_not_delay_health(stack: Stack):
    with ThreadPoolExecutor(16) as pool:
        slow = [pool.submit(stack.get, "/api/patreon/_test/sleep?ms=3000") for _ in range(16)]
        wait_for(
            lambda: body(stack.get("/api/patreon/status"))["status"]["worker"]["in_flight"] == 16,
            5,
            what="16 slow calls in flight",
        )
        latencies = []
        for _ in range(5):
            started = time.perf_counter()
            assert stack.get("/api/patreon/health").status_code == 200
            latencies.append((time.perf_counter() - started) * 1000)
        assert all(f.result().status_code == 200 for f in slow)
    print(f"\nhealth with 16 slow calls in flight: max {max(latencies):.1f} ms")
    assert max(latencies) < 200


@pytest.mark.timeout(120)
def test_worker_with_bad_configuration_ends_fatal_and_web_answers_503():
    with Stack({"PATREON_RATE_LIMIT_REQUESTS_PER_MINUTE": "lots"}).start(wait=False) as stack:
        wait_for(
            lambda: stack.state("patreon:worker_00") == "FATAL",
            60,
            interval_s=0.2,
            what="the worker to end FATAL",
        )
        log = stack.log_text("worker")
        # supervisord's own account of each start. It gave up by its startretries rule;
        # each failed start is one initialisation, startretries=3 plus the first. On an
        # overloaded machine a start can outlive startsecs: supervisord then counts it
        # as running, and its retries begin again, so there can be more, never fewer.
        starts = [line for line in stack.log_text("supervisord").splitlines() if "worker_00" in line]
        assert any("entered FATAL state, too many start retries too quickly" in line for line in starts), starts
        assert log.count("🔧 Initializing Patreon service...") >= 4, starts
        assert "PATREON_RATE_LIMIT_REQUESTS_PER_MINUTE must be a whole number" in log
        assert "❌ Patreon service error: invalid configuration (exit 78)" in log
        assert stack.state("patreon:web_00") == "RUNNING"
        assert_unavailable(stack.get("/api/patreon/_test/sleep?ms=1"))
        health = stack.get("/api/patreon/health")
        assert health.status_code == 503 and body(health)["status"] == "unhealthy"
        status = body(stack.get("/api/patreon/status"))["status"]
        assert status["available"] is False and status["ready"] is False
