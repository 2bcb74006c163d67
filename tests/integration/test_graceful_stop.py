"""Stopping without cutting requests, through the real supervisord: a 3-second request
in flight during ``supervisorctl stop patreon:web_00``, ``supervisorctl restart patreon:*``,
``supervisorctl stop patreon:worker_00`` and SIGTERM to supervisord (what systemd sends)
completes with 200, and every process stops on its own, before ``stopwaitsecs``."""

from __future__ import annotations

import re
import signal
import threading
import time

import pytest
import requests

from harness.stack import Stack, body, wait_for

SLOW_MS = 3000


class InFlight(threading.Thread):
    """One slow request (``/api/patreon/_test/sleep``) running in the background."""

    def __init__(self, stack: Stack, ms: int = SLOW_MS):
        super().__init__(daemon=True)
        self.stack, self.ms = stack, ms
        self.resp: requests.Response | None = None
        self.error: Exception | None = None
        self.finished_at: float | None = None

    def run(self) -> None:
        try:
            self.resp = self.stack.get(f"/api/patreon/_test/sleep?ms={self.ms}", timeout=30)
        except requests.RequestException as ex:
            self.error = ex
        self.finished_at = time.monotonic()

    def begin(self) -> InFlight:
        before = self.worker_in_flight()
        self.start()
        wait_for(lambda: self.worker_in_flight() > before, 5, what="the slow call to reach the worker")
        return self

    def worker_in_flight(self) -> int:
        return body(self.stack.get("/api/patreon/status"))["status"]["worker"]["in_flight"] or 0

    def result(self, timeout_s: float = 15.0) -> requests.Response:
        self.join(timeout_s)
        assert not self.is_alive(), "the in-flight request never finished"
        assert self.error is None, f"the in-flight request was cut: {self.error!r}"
        assert self.resp is not None
        return self.resp


def assert_completed(call: InFlight) -> None:
    resp = call.result()
    assert resp.status_code == 200, resp.text
    assert body(resp) == {"success": True, "slept_ms": SLOW_MS}


def assert_stopped_cleanly(stack: Stack, program: str, since: int) -> None:
    """supervisord saw the program exit on its own (exit 0), not SIGKILLed at stopwaitsecs."""
    log = stack.log_text("supervisord")[since:]
    assert re.search(rf"stopped: {program} \(exit status 0\)", log), log
    assert f"killing '{program}'" not in log, log


def test_stop_web_lets_the_in_flight_request_finish(stack: Stack):
    mark = len(stack.log_text("supervisord"))
    call = InFlight(stack).begin()
    started = time.monotonic()
    out = stack.ctl("stop", "patreon:web_00")
    assert out.returncode == 0, out.stdout + out.stderr
    assert_completed(call)
    print(f"\nstop patreon:web_00: in-flight request answered 200 after {call.finished_at - started:.2f} s")
    assert_stopped_cleanly(stack, "web_00", mark)
    with pytest.raises(requests.ConnectionError):
        stack.get("/api/patreon/health", timeout=2)
    assert stack.ctl("start", "patreon:web_00").returncode == 0
    stack.wait_healthy()


def test_a_request_longer_than_waitress_own_grace_also_finishes(stack: Stack):
    # waitress alone waits 5 s for running requests; web waits up to its STOP_GRACE_S (8 s).
    call = InFlight(stack, ms=7000).begin()
    assert stack.ctl("stop", "patreon:web_00").returncode == 0
    resp = call.result()
    assert resp.status_code == 200 and body(resp)["slept_ms"] == 7000, resp.text
    assert stack.ctl("start", "patreon:web_00").returncode == 0
    stack.wait_healthy()


def test_restart_the_group_lets_the_in_flight_request_finish(stack: Stack):
    mark = len(stack.log_text("supervisord"))
    old_pids = stack.pid("patreon:web_00"), stack.pid("patreon:worker_00")
    call = InFlight(stack).begin()
    out = stack.ctl("restart", "patreon:*")
    assert out.returncode == 0, out.stdout + out.stderr
    assert_completed(call)
    assert_stopped_cleanly(stack, "web_00", mark)
    assert_stopped_cleanly(stack, "worker_00", mark)
    stack.wait_healthy()
    assert stack.pid("patreon:web_00") not in old_pids and stack.pid("patreon:worker_00") not in old_pids


def test_stop_worker_finishes_in_flight_calls_and_refuses_new_ones(stack: Stack):
    mark = len(stack.log_text("supervisord"))
    call = InFlight(stack).begin()
    stopper = threading.Thread(target=stack.ctl, args=("stop", "patreon:worker_00"))
    stopper.start()
    # While it drains, a new call is refused at once with a code, not left to hang.
    (refused,) = wait_for(  # a tuple: a 503 Response is falsy
        lambda: (r := stack.get("/api/patreon/_test/sleep?ms=1")).status_code == 503 and (r,),
        5,
        interval_s=0.05,
        what="a new call refused by the stopping worker",
    )
    assert body(refused)["code"] in ("WORKER_SHUTTING_DOWN", "PATREON_SERVICE_UNAVAILABLE")
    assert int(refused.headers["Retry-After"]) >= 1
    assert_completed(call)
    stopper.join(15)
    assert stack.state("patreon:worker_00") == "STOPPED"
    assert_stopped_cleanly(stack, "worker_00", mark)
    assert stack.ctl("start", "patreon:worker_00").returncode == 0
    stack.wait_healthy()


@pytest.mark.timeout(90)
def test_sigterm_to_supervisord_lets_the_in_flight_request_finish():
    with Stack(name="pb-term") as stack:
        call = InFlight(stack).begin()
        started = time.monotonic()
        stack.process.send_signal(signal.SIGTERM)
        assert_completed(call)
        assert stack.process.wait(20) == 0
        took = time.monotonic() - started
        print(f"\nSIGTERM to supervisord: in-flight request answered 200, everything stopped in {took:.2f} s")
        for program in ("web_00", "worker_00", "sandbox"):
            assert_stopped_cleanly(stack, program, 0)
        assert "stopped: watchdog" in stack.log_text("supervisord")
        assert took < 10  # under web's and worker's stopwaitsecs: nothing waited for SIGKILL
