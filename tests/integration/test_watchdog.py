"""The watchdog through the real supervisord: a hung worker is restarted, a worker that
crash-loops after start is stopped, and ``/api/patreon/status`` reports both."""

from __future__ import annotations

import contextlib
import os
import signal
import time

import pytest

from harness.stack import Stack, body, wait_for

CRASH_LIMIT = 3


@pytest.fixture(scope="module")
def wd_stack():
    # The hang test runs first: its restart must not count towards this small limit.
    with Stack({"WATCHDOG_CRASH_LIMIT": str(CRASH_LIMIT), "WATCHDOG_CRASH_WINDOW_S": "120"}) as running:
        yield running


def watchdog_report(stack: Stack) -> dict:
    report = body(stack.get("/api/patreon/status"))["status"]["watchdog"]
    assert report is not None, "the watchdog has written no report"
    return report


def test_watchdog_runs_and_reports(wd_stack: Stack):
    assert wd_stack.state("watchdog") == "RUNNING"
    report = watchdog_report(wd_stack)
    assert report["program"] == "patreon:worker_00"
    assert report["worker_stopped_reason"] is None and report["hang_restarts"] == 0
    assert report["watchdog_pid"] == wd_stack.pid("watchdog")
    assert "🔧 Watchdog watching patreon:worker_00" in wd_stack.log_text("watchdog")


def test_a_hung_worker_is_restarted(wd_stack: Stack):
    pid = wd_stack.pid("patreon:worker_00")
    stopped_at = time.monotonic()
    os.kill(pid, signal.SIGSTOP)
    try:
        down = wait_for(
            lambda: wd_stack.get("/api/patreon/health", timeout=3).status_code == 503 and time.monotonic(),
            5,
            interval_s=0.05,
            what="health 503 for the hung worker",
        )
        up = wait_for(
            lambda: wd_stack.get("/api/patreon/health", timeout=3).status_code == 200 and time.monotonic(),
            20,
            interval_s=0.1,
            what="the watchdog to restart the hung worker",
        )
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
    down_s, up_s = down - stopped_at, up - stopped_at
    print(f"\nkill -STOP worker: health 503 after {down_s:.2f} s, restarted and 200 again after {up_s:.2f} s")
    assert down_s < 3.0
    assert up_s < 15.0
    assert wd_stack.pid("patreon:worker_00") not in (0, pid)
    report = watchdog_report(wd_stack)
    assert report["hang_restarts"] == 1
    assert report["last_restart_reason"] == "hung: 2 ping(s) of 1 s unanswered"
    assert report["crashes_in_window"] == 0  # its own kill is not a crash
    log = wd_stack.log_text("watchdog")
    assert f"❌ Watchdog: patreon:worker_00 pid {pid} is hung" in log
    assert f"worker pid {pid} exited after the watchdog's SIGKILL (not a crash)" in log


def crash_once(stack: Stack, previous_pid: int, crash: int) -> int:
    """Wait for a fresh worker past start-up, make it crash, return its pid."""

    def fresh_and_running() -> bool:
        # RUNNING means past startsecs: supervisord's startretries no longer apply.
        return (
            stack.state("patreon:worker_00") == "RUNNING"
            and stack.pid("patreon:worker_00") not in (0, previous_pid)
            and stack.get("/api/patreon/health").status_code == 200
        )

    wait_for(fresh_and_running, 20, interval_s=0.1, what=f"a fresh RUNNING worker before crash {crash}")
    pid = stack.pid("patreon:worker_00")
    resp = stack.post("/api/patreon/_test/crash")
    assert resp.status_code == 200 and body(resp)["pid"] == pid, resp.text
    wait_for(lambda: stack.pid("patreon:worker_00") != pid, 10, what=f"crash {crash} to happen")
    return pid


def test_a_crash_loop_after_start_is_stopped_and_reported(wd_stack: Stack):
    wd_stack.wait_healthy()
    pid = 0
    for crash in range(1, CRASH_LIMIT + 1):
        pid = crash_once(wd_stack, pid, crash)
    crashed_at = time.monotonic()
    wait_for(
        lambda: wd_stack.state("patreon:worker_00") == "STOPPED",
        20,
        interval_s=0.2,
        what="the watchdog to stop the crash-looping worker",
    )
    print(f"\ncrash loop: worker STOPPED {time.monotonic() - crashed_at:.2f} s after crash {CRASH_LIMIT}")

    health = wd_stack.get("/api/patreon/health")
    assert health.status_code == 503 and body(health)["code"] == "PATREON_SERVICE_UNAVAILABLE"
    api = wd_stack.get("/api/patreon/_test/sleep?ms=1")
    assert api.status_code == 503 and body(api)["code"] == "PATREON_SERVICE_UNAVAILABLE"
    assert int(api.headers["Retry-After"]) >= 1
    status = body(wd_stack.get("/api/patreon/status"))["status"]
    assert status["available"] is False
    reason = f"crash loop: {CRASH_LIMIT} unexpected exits within 120 s"
    assert status["watchdog"]["worker_stopped_reason"] == reason
    assert status["watchdog"]["worker_stopped_at"]
    assert (
        f"❌ Watchdog: stopping patreon:worker_00 ({reason}; WATCHDOG_CRASH_LIMIT={CRASH_LIMIT}). "
        "Fix the cause, then: supervisorctl start patreon:worker_00"
    ) in wd_stack.log_text("watchdog")
    assert wd_stack.ctl("status", "patreon:worker_00").returncode == 3  # supervisorctl: not running

    # The operator's way back.
    assert wd_stack.ctl("start", "patreon:worker_00").returncode == 0
    wd_stack.wait_healthy()
    report = watchdog_report(wd_stack)
    assert report["worker_stopped_reason"] is None and report["crashes_in_window"] == 0
    assert "crash-loop stop lifted" in wd_stack.log_text("watchdog")


def test_stopping_the_whole_stack_is_not_a_crash(wd_stack: Stack):
    # An operator's stop and start of the group: no PROCESS_STATE_EXITED, nothing counted.
    assert wd_stack.ctl("restart", "patreon:*").returncode == 0
    wd_stack.wait_healthy()
    assert watchdog_report(wd_stack)["crashes_in_window"] == 0
    assert wd_stack.state("watchdog") == "RUNNING"
