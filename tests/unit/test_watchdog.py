"""The watchdog listener driven one event at a time: real supervisord event envelopes
on a fake stdin (``str``, as supervisord's listener protocol is read), a fake XML-RPC handle with the
real method names, faults and return types, a fake ping and a fake clock."""

from __future__ import annotations

import io
import json
import logging
import threading
import xmlrpc.client
from pathlib import Path
from typing import Any

import falcon.testing
import pytest
import zmq

from settings.config import ConfigError, load_config
from watchdog_listener import listener as watchdog
from watchdog_listener.listener import Pinger, Watchdog
from watchdog_listener.report import read_state
from web.app import create_app
from wire import protocol
from wire.client import Liveness, WorkerClient

PROGRAM = "patreon:worker_00"
NO_ENV_FILE = Path("/nonexistent/.env")


def envelope(event_name: str, payload: str, serial: int = 1) -> str:
    """What supervisord writes to a listener (supervisor.process._eventEnvelope)."""
    return (
        f"ver:3.0 server:patreon-bridge serial:{serial} pool:watchdog poolserial:{serial} "
        f"eventname:{event_name} len:{len(payload)}\n{payload}"
    )


def tick(when: int = 1_700_000_000) -> str:
    return envelope("TICK_5", f"when:{when}")


def exited(pid: int, expected: int = 0, process: str = "worker_00", group: str = "patreon") -> str:
    return envelope(
        "PROCESS_STATE_EXITED",
        f"processname:{process} groupname:{group} from_state:RUNNING expected:{expected} pid:{pid}",
    )


def starting(from_state: str, tries: int = 0) -> str:
    return envelope(
        "PROCESS_STATE_STARTING",
        f"processname:worker_00 groupname:patreon from_state:{from_state} tries:{tries}",
    )


class FakeSupervisor:
    """The ``supervisor.*`` namespace of the XML-RPC handle, for one process."""

    RUNNING_STATES = frozenset({"STARTING", "RUNNING", "BACKOFF"})
    SIGNALLABLE = frozenset({"STARTING", "RUNNING", "STOPPING"})

    def __init__(self, statename: str = "RUNNING", pid: int = 100, start: int = 1_700_000_000):
        self.statename, self.pid, self.start = statename, pid, start
        self.calls: list[tuple[Any, ...]] = []
        self.fail_with: Exception | None = None

    def getProcessInfo(self, name: str) -> dict[str, Any]:
        self.calls.append(("getProcessInfo", name))
        if self.fail_with:
            raise self.fail_with
        assert name == PROGRAM
        return {
            "name": "worker_00",
            "group": "patreon",
            "description": f"pid {self.pid}, uptime 0:00:05",
            "start": self.start,
            "stop": 0,
            "now": self.start + 5,
            "state": 20,
            "statename": self.statename,
            "spawnerr": "",
            "exitstatus": 0,
            "logfile": "/x/var/log/worker_00.log",
            "stdout_logfile": "/x/var/log/worker_00.log",
            "stderr_logfile": "",
            "pid": self.pid,
        }

    def signalProcess(self, name: str, signal: str) -> bool:
        self.calls.append(("signalProcess", name, signal))
        if self.statename not in self.SIGNALLABLE:
            raise xmlrpc.client.Fault(70, f"NOT_RUNNING: {name}")
        return True

    def stopProcess(self, name: str, wait: bool = True) -> bool:
        self.calls.append(("stopProcess", name, wait))
        if self.statename not in self.RUNNING_STATES:
            raise xmlrpc.client.Fault(70, f"NOT_RUNNING: {name}")
        self.statename = "STOPPING"
        return True

    def startProcess(self, name: str, wait: bool = True) -> bool:
        self.calls.append(("startProcess", name, wait))
        if self.statename in self.RUNNING_STATES:
            raise xmlrpc.client.Fault(60, f"ALREADY_STARTED: {name}")
        self.statename = "STARTING"
        return True

    def actions(self) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] != "getProcessInfo"]


class FakeRpc:
    def __init__(self, supervisor: FakeSupervisor):
        self.supervisor = supervisor


class FakePing:
    def __init__(self, *answers: dict[str, Any] | None):
        self.answers = list(answers)
        self.timeouts: list[float] = []

    def __call__(self, timeout_s: float) -> dict[str, Any] | None:
        self.timeouts.append(timeout_s)
        return self.answers.pop(0) if self.answers else {"pong": True, "pid": 100}


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


PONG = {"pong": True, "pid": 100}


@pytest.fixture
def sup():
    return FakeSupervisor()


@pytest.fixture
def clock():
    return FakeClock()


def make(sup, tmp_path, ping=None, clock=None, **kw) -> Watchdog:
    settings = {"max_misses": 2, "ping_timeout_s": 2.0, "crash_limit": 3, "crash_window_s": 60.0, **kw}
    dog = Watchdog(
        FakeRpc(sup),
        ping or FakePing(),
        state_file=tmp_path / "watchdog.json",
        clock=clock or FakeClock(),
        stdin=io.StringIO(),
        stdout=io.StringIO(),
        **settings,
    )
    dog.resume(None)  # as main() does: the first report
    return dog


def feed(dog: Watchdog, *events: str) -> None:
    """Serve exactly these events, as supervisord would send them one by one."""
    dog.stdin = io.StringIO("".join(events))
    for _ in events:
        assert dog.run_once() is True


def report(tmp_path) -> dict[str, Any]:
    return json.loads((tmp_path / "watchdog.json").read_text())


# -- the protocol ---------------------------------------------------------------------
def test_each_event_is_acknowledged_on_stdout_and_eof_ends_the_loop(sup, tmp_path):
    dog = make(sup, tmp_path)
    feed(dog, tick(), exited(5, process="web"))
    assert dog.stdout.getvalue() == "READY\nRESULT 2\nOKREADY\nRESULT 2\nOK"
    dog.stdout = io.StringIO()
    assert dog.run_once() is False  # supervisord closed stdin
    assert dog.stdout.getvalue() == "READY\n"


def test_a_failing_handler_still_acknowledges_the_event(sup, tmp_path, caplog):
    dog = make(sup, tmp_path)
    dog.handle = lambda name, payload: 1 / 0
    feed(dog, tick())
    assert dog.stdout.getvalue().endswith("RESULT 2\nOK")
    assert "failed to handle TICK_5" in caplog.text


def test_run_forever_serves_until_eof(sup, tmp_path):
    ping = FakePing()
    dog = make(sup, tmp_path, ping=ping)
    dog.stdin = io.StringIO(tick(1) + tick(2) + tick(3))
    dog.run_forever()
    assert len(ping.timeouts) == 3
    assert dog.stdout.getvalue().count("RESULT 2\nOK") == 3


# -- hangs ----------------------------------------------------------------------------
def test_an_answered_ping_does_nothing(sup, tmp_path):
    ping = FakePing(PONG)
    dog = make(sup, tmp_path, ping=ping)
    feed(dog, tick())
    assert ping.timeouts == [2.0]
    assert sup.actions() == []


@pytest.mark.parametrize("statename", ["STARTING", "BACKOFF", "STOPPING", "STOPPED", "EXITED", "FATAL"])
def test_a_worker_that_is_not_running_is_not_pinged(sup, tmp_path, statename):
    sup.statename = statename
    ping = FakePing(None, None)
    dog = make(sup, tmp_path, ping=ping)
    feed(dog, tick())
    assert ping.timeouts == [] and sup.actions() == []


def test_one_miss_then_an_answer_is_not_a_hang(sup, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    ping = FakePing(None, PONG)
    dog = make(sup, tmp_path, ping=ping)
    feed(dog, tick())
    assert len(ping.timeouts) == 2
    assert sup.actions() == []
    assert "missed ping 1/2" in caplog.text and "answered after 1 missed ping(s)" in caplog.text


def test_a_hung_worker_is_killed_and_started_and_its_exit_is_not_a_crash(sup, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    ping = FakePing(None, None, None, None, None)
    dog = make(sup, tmp_path, ping=ping, max_misses=3, crash_limit=1)
    feed(dog, tick())
    assert ping.timeouts == [2.0, 2.0, 2.0]
    assert sup.actions() == [("signalProcess", PROGRAM, "KILL")]
    assert (
        "❌ Watchdog: patreon:worker_00 pid 100 is hung: 3 ping(s) of 2 s unanswered; killed it" in caplog.text
    )
    state = report(tmp_path)
    assert state["hang_restarts"] == 1 and state["last_restart_reason"].startswith("hung")
    assert state["worker_stopped_reason"] is None

    # supervisord reports the exit it saw; autorestart has already moved it to STARTING.
    sup.statename = "STARTING"
    feed(dog, exited(100))
    assert sup.actions()[-1] == ("startProcess", PROGRAM, False)  # ALREADY_STARTED is fine
    assert "exited after the watchdog's SIGKILL (not a crash)" in caplog.text
    assert report(tmp_path)["crashes_in_window"] == 0  # crash_limit=1 would have stopped it
    assert "could not start" not in caplog.text


def test_a_killed_worker_that_autorestart_left_exited_is_started(sup, tmp_path):
    dog = make(sup, tmp_path, ping=FakePing(None, None))
    feed(dog, tick())
    sup.statename = "EXITED"
    feed(dog, exited(100))
    assert sup.statename == "STARTING"
    assert sup.actions() == [("signalProcess", PROGRAM, "KILL"), ("startProcess", PROGRAM, False)]


def test_a_worker_restarted_while_being_pinged_is_not_killed(sup, tmp_path):
    class RestartingPing(FakePing):
        def __call__(self, timeout_s):
            sup.pid = 101  # supervisord restarted it meanwhile
            return super().__call__(timeout_s)

    dog = make(sup, tmp_path, ping=RestartingPing(None, None))
    feed(dog, tick())
    assert sup.actions() == []


def test_supervisord_unreachable_is_logged_not_fatal(sup, tmp_path, caplog):
    sup.fail_with = ConnectionRefusedError(111, "Connection refused")
    dog = make(sup, tmp_path, ping=FakePing(None, None))
    feed(dog, tick(), exited(100))
    assert "cannot read patreon:worker_00 from supervisord" in caplog.text
    assert dog.stdout.getvalue().count("RESULT 2\nOK") == 2


def test_supervisord_shutting_down_is_not_an_error(sup, tmp_path, caplog):
    dog = make(sup, tmp_path, ping=FakePing(None, None))
    sup.fail_with = xmlrpc.client.Fault(6, "SHUTDOWN_STATE")
    feed(dog, tick())
    assert caplog.text == "" and sup.actions() == []


def test_a_failed_kill_is_logged_and_tried_again_next_tick(sup, tmp_path, caplog):
    dog = make(sup, tmp_path, ping=FakePing(None, None, None, None))
    sup.signalProcess = lambda name, signal: (_ for _ in ()).throw(xmlrpc.client.Fault(30, "FAILED: x"))
    feed(dog, tick(), tick())
    assert caplog.text.count("could not kill hung worker pid 100") == 2
    assert report(tmp_path)["hang_restarts"] == 0


# -- crash loops --------------------------------------------------------------------------
def test_the_crash_limit_within_the_window_stops_the_worker(sup, tmp_path, clock, caplog):
    dog = make(sup, tmp_path, clock=clock)
    sup.statename = "STARTING"  # autorestart is quicker than the listener
    feed(dog, exited(100), exited(101))
    assert sup.actions() == []
    assert report(tmp_path)["crashes_in_window"] == 2
    feed(dog, exited(102))
    assert sup.actions() == [("stopProcess", PROGRAM, False)]
    assert (
        "❌ Watchdog: stopping patreon:worker_00 (crash loop: 3 unexpected exits within 60 s; "
        "WATCHDOG_CRASH_LIMIT=3). Fix the cause, then: supervisorctl start patreon:worker_00"
    ) in caplog.text
    state = report(tmp_path)
    assert state["worker_stopped_reason"] == "crash loop: 3 unexpected exits within 60 s"
    assert state["worker_stopped_at"] and state["crashes_in_window"] == 3


def test_crashes_outside_the_window_do_not_add_up(sup, tmp_path, clock):
    dog = make(sup, tmp_path, clock=clock)
    for pid in range(10):
        feed(dog, exited(pid))
        clock.now += 31.0  # two per 60 s at most
    assert sup.actions() == []
    assert report(tmp_path)["crashes_in_window"] == 2


def test_expected_exits_and_other_programs_are_not_crashes(sup, tmp_path):
    dog = make(sup, tmp_path, crash_limit=1)
    feed(dog, exited(1, expected=1), exited(2, process="web"), exited(3, process="sandbox", group="sandbox"))
    assert sup.actions() == []
    assert report(tmp_path)["crashes_in_window"] == 0


def test_a_stopped_worker_stays_stopped_when_autorestart_slips_in(sup, tmp_path, clock):
    dog = make(sup, tmp_path, clock=clock, crash_limit=1)
    sup.statename = "EXITED"  # not restarted yet: the stop is refused (NOT_RUNNING)
    feed(dog, exited(100))
    assert sup.actions() == [("stopProcess", PROGRAM, False)]
    sup.statename = "STARTING"  # now autorestart starts it
    feed(dog, starting("EXITED"))
    assert sup.actions()[-1] == ("stopProcess", PROGRAM, False)
    assert sup.statename == "STOPPING"
    # Stuck in STOPPING (its SIGTERM was lost between fork and exec): SIGKILL after a while.
    feed(dog, tick())
    assert sup.actions()[-1] == ("stopProcess", PROGRAM, False)
    clock.now += watchdog.STOP_ESCALATE_S
    feed(dog, tick())
    assert sup.actions()[-1] == ("signalProcess", PROGRAM, "KILL")
    sup.statename = "STOPPED"
    feed(dog, tick())
    assert len(sup.actions()) == 3
    assert report(tmp_path)["worker_stopped_reason"].startswith("crash loop")


def test_a_deliberate_start_lifts_the_stop(sup, tmp_path, caplog):
    dog = make(sup, tmp_path, crash_limit=2)
    feed(dog, exited(100), exited(101))
    sup.statename = "STOPPED"
    assert report(tmp_path)["worker_stopped_reason"]
    feed(dog, starting("STOPPED"))  # supervisorctl start patreon:worker_00
    sup.statename = "STARTING"
    assert "started deliberately; crash-loop stop lifted" in caplog.text
    state = report(tmp_path)
    assert state["worker_stopped_reason"] is None and state["crashes_in_window"] == 0
    feed(dog, exited(102))  # counting starts over
    assert report(tmp_path)["worker_stopped_reason"] is None


def test_resume_keeps_a_verdict_only_for_a_worker_still_stopped(sup, tmp_path):
    previous = {"program": PROGRAM, "worker_stopped_reason": "crash loop: 5", "crashes_in_window": 5}
    sup.statename = "STOPPED"
    dog = make(sup, tmp_path)
    dog.resume(previous)
    assert report(tmp_path)["worker_stopped_reason"] == "crash loop: 5"

    sup.start = 0  # never started: supervisord is booting, the old verdict is stale
    dog = make(sup, tmp_path)
    dog.resume(previous)
    assert report(tmp_path)["worker_stopped_reason"] is None

    sup.statename, sup.start = "RUNNING", 1_700_000_000
    dog = make(sup, tmp_path)
    dog.resume(previous)
    assert report(tmp_path)["worker_stopped_reason"] is None


def test_read_state_tolerates_missing_and_garbage_files(tmp_path):
    assert read_state(tmp_path) is None
    (tmp_path / "watchdog.json").write_text("{not json")
    assert read_state(tmp_path) is None
    (tmp_path / "watchdog.json").write_text("[1]")
    assert read_state(tmp_path) is None


# -- the ping ----------------------------------------------------------------------------
def test_pinger_gets_a_pong_and_renews_its_socket_after_a_miss():
    context = zmq.Context()
    endpoint = "inproc://watchdog-test"
    rep = context.socket(zmq.REP)
    rep.bind(endpoint)
    pinger = Pinger(endpoint, context)

    def answer_one():
        request = protocol.decode_request(rep.recv())
        rep.send(protocol.encode_ok(request.msg_id, {"pong": True, "pid": 7}))

    server = threading.Thread(target=answer_one)
    server.start()
    assert pinger(5.0) == {"pong": True, "pid": 7}
    server.join()

    assert pinger(0.01) is None  # nobody answers: the socket is thrown away
    rep.recv()  # the unanswered request; REP must reply before it can read the next one
    rep.send(b"late")
    server = threading.Thread(target=answer_one)
    server.start()
    assert pinger(5.0) == {"pong": True, "pid": 7}  # a fresh socket, not the stale reply
    server.join()
    pinger.close()
    rep.close(linger=0)
    context.term()


# -- configuration --------------------------------------------------------------------------
def test_watchdog_settings_have_defaults_and_are_validated():
    config = load_config({}, NO_ENV_FILE, process="watchdog")
    assert (config.watchdog_max_misses, config.watchdog_ping_timeout_s) == (2, 1.0)
    assert config.watchdog_interval_s == 1.0
    assert (config.watchdog_crash_limit, config.watchdog_crash_window_s) == (5, 60.0)
    config = load_config({"WATCHDOG_PING_TIMEOUT_S": "0.5", "WATCHDOG_CRASH_WINDOW_S": "30"}, NO_ENV_FILE)
    assert (config.watchdog_ping_timeout_s, config.watchdog_crash_window_s) == (0.5, 30.0)
    bad = {"WATCHDOG_MAX_MISSES": "0", "WATCHDOG_PING_TIMEOUT_S": "nan", "WATCHDOG_CRASH_LIMIT": "x"}
    with pytest.raises(ConfigError) as raised:
        load_config(bad, NO_ENV_FILE, process="watchdog")
    assert {name for name, _ in raised.value.problems} == set(bad)
    # A bad watchdog setting stops only the watchdog; the watchdog ignores web's settings.
    load_config(bad, NO_ENV_FILE, process="web")
    load_config(bad, NO_ENV_FILE, process="worker")
    load_config({"PORT": "nope", "WORKER_THREADS": "0"}, NO_ENV_FILE, process="watchdog")


# -- what web shows -----------------------------------------------------------------------
def test_status_shows_the_watchdog_report_and_the_crash_route_is_test_only(sup, tmp_path):
    def client(test_actions: str) -> falcon.testing.TestClient:
        config = load_config({"DATA_DIR": str(tmp_path), "BRIDGE_TEST_ACTIONS": test_actions}, NO_ENV_FILE)
        return falcon.testing.TestClient(
            create_app(config, WorkerClient("inproc://none", liveness=Liveness()))
        )

    app = client("1")
    assert app.simulate_get("/api/patreon/status").json["status"]["watchdog"] is None  # no report yet
    dog = make(sup, tmp_path, crash_limit=1)
    feed(dog, exited(100))
    shown = app.simulate_get("/api/patreon/status").json["status"]["watchdog"]
    assert shown == report(tmp_path)
    assert shown["worker_stopped_reason"] == "crash loop: 1 unexpected exits within 60 s"

    crash = app.simulate_post("/api/patreon/_test/crash")
    assert (crash.status_code, crash.json["code"]) == (503, "PATREON_SERVICE_UNAVAILABLE")  # no worker here
    assert client("0").simulate_post("/api/patreon/_test/crash").status_code == 404


# -- its own timer ----------------------------------------------------------------------------
def test_between_events_the_worker_is_checked_on_the_watchdogs_own_interval(sup, tmp_path):
    """On a real pipe (select works): checks run while no event comes, then the event
    is served as usual; no TICK_5 needed."""
    import os
    import time

    read_fd, write_fd = os.pipe()
    checked = threading.Event()
    pings: list[float] = []

    def ping(timeout_s: float) -> dict[str, Any]:
        pings.append(timeout_s)
        if len(pings) >= 3:
            checked.set()
        return PONG

    with os.fdopen(read_fd, "r") as stdin, os.fdopen(write_fd, "w") as feed:
        dog = Watchdog(
            FakeRpc(sup),
            ping,
            max_misses=2,
            ping_timeout_s=1.0,
            crash_limit=3,
            crash_window_s=60.0,
            interval_s=0.01,
            clock=time.monotonic,
            stdin=stdin,
            stdout=io.StringIO(),
        )
        served = []
        runner = threading.Thread(target=lambda: served.append(dog.run_once()))
        runner.start()
        assert checked.wait(10), "no check while waiting for an event"
        feed.write(exited(100, expected=1))
        feed.flush()
        runner.join(10)
    assert served == [True] and len(pings) >= 3
    assert dog.stdout.getvalue() == "READY\nRESULT 2\nOK"


def test_a_tick_right_after_a_timed_check_does_not_ping_again(sup, tmp_path, clock):
    ping = FakePing()
    dog = make(sup, tmp_path, ping=ping, clock=clock, interval_s=1.0)
    dog.handle("TICK_5", "when:1")
    dog.handle("TICK_5", "when:2")
    assert len(ping.timeouts) == 1
    clock.now += 1.0
    dog.handle("TICK_5", "when:3")
    assert len(ping.timeouts) == 2


def test_the_rpc_interface_speaks_to_supervisords_unix_socket(tmp_path):
    import http.server
    import socketserver

    calls = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            calls.append((self.path, xmlrpc.client.loads(body)))
            reply = xmlrpc.client.dumps(({"statename": "RUNNING", "pid": 7},), methodresponse=True).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args):
            pass

    class Server(socketserver.UnixStreamServer):
        def get_request(self):
            request, _ = super().get_request()
            return request, ("local", 0)

    path = str(tmp_path / "supervisor.sock")
    server = Server(path, Handler)
    thread = threading.Thread(target=server.handle_request)
    thread.start()
    try:
        rpc = watchdog.rpc_interface({"SUPERVISOR_SERVER_URL": f"unix://{path}"})
        assert rpc.supervisor.getProcessInfo(PROGRAM) == {"statename": "RUNNING", "pid": 7}
    finally:
        thread.join(10)
        server.server_close()
    assert calls == [("/RPC2", ((PROGRAM,), "supervisor.getProcessInfo"))]


# -- several workers (numprocs) ----------------------------------------------------------
class TwoWorkers:
    """supervisord with patreon:worker_00 and patreon:worker_01 (and web_00)."""

    def __init__(self):
        self.sups = {"patreon:worker_00": FakeSupervisor(pid=100), "patreon:worker_01": FakeSupervisor(pid=101)}
        self.calls: list[tuple[Any, ...]] = []

    def getAllProcessInfo(self) -> list[dict[str, Any]]:
        return [
            {"name": "web_00", "group": "patreon"},
            {"name": "worker_01", "group": "patreon"},
            {"name": "worker_00", "group": "patreon"},
            {"name": "watchdog", "group": "watchdog"},
        ]

    def getProcessInfo(self, name: str) -> dict[str, Any]:
        one = self.sups[name]
        return {"name": name.split(":")[1], "statename": one.statename, "pid": one.pid, "start": one.start}

    def signalProcess(self, name: str, signal: str) -> bool:
        self.calls.append(("signalProcess", name, signal))
        return True


def test_the_watchdog_finds_every_worker_process_and_kills_only_the_hung_one(tmp_path, caplog):
    from watchdog_listener.listener import WatchdogGroup, worker_programs

    sup = TwoWorkers()
    rpc = FakeRpc(sup)
    assert worker_programs(rpc) == [("patreon:worker_00", 0), ("patreon:worker_01", 1)]
    pings = {"patreon:worker_00": FakePing(), "patreon:worker_01": FakePing(None, None)}
    dogs = []
    for program, _num in worker_programs(rpc):
        dog = Watchdog(
            rpc,
            pings[program],
            max_misses=2,
            ping_timeout_s=1.0,
            crash_limit=3,
            crash_window_s=60.0,
            state_file=tmp_path / f"{program.split(':')[1]}.json",
            program=program,
            clock=FakeClock(),
        )
        dogs.append(dog)
    group = WatchdogGroup(dogs, stdin=io.StringIO(tick()), stdout=io.StringIO())
    assert group.run_once() is True
    assert group.stdout.getvalue() == "READY\nRESULT 2\nOK"
    assert sup.calls == [("signalProcess", "patreon:worker_01", "KILL")]
    assert "❌ Watchdog: patreon:worker_01 pid 101 is hung" in caplog.text
    assert len(pings["patreon:worker_00"].timeouts) == 1  # worker_00 answered its one ping
    # worker_01's exit after our SIGKILL is no crash; worker_00's own exit would be its alone.
    group.stdin = io.StringIO(exited(100, process="worker_00"))
    group.run_once()
    assert dogs[0].state["crashes_in_window"] == 1 and dogs[1].state["crashes_in_window"] == 0
