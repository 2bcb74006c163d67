"""The watchdog: a supervisord event listener that restarts a hung worker and stops a
crash-looping one (run by supervisord as ``[eventlistener:watchdog]``:
``python -m watchdog_listener.listener``).

supervisord restarts a worker that *exits*, but it cannot see one that *hangs*, and its
``startretries`` only ends crash loops during start-up: a worker that dies after
``startsecs`` is restarted forever. This listener covers both, in the style of
superlance's httpok:

* every ``WATCHDOG_INTERVAL_S`` (its own timer, while it waits for the next event;
  supervisord's ``TICK_5`` would add up to 5 s to every hang): when supervisord says
  the worker is RUNNING, ping it over ZeroMQ on the watchdog's own REQ socket (``ping`` is answered inline by the worker's loop, so a
  busy worker still answers). A miss is retried at once on a fresh socket (Lazy
  Pirate); after ``WATCHDOG_MAX_MISSES`` pings in a row of ``WATCHDOG_PING_TIMEOUT_S``
  each go unanswered, the worker is hung: the watchdog sends it SIGKILL through
  supervisord's XML-RPC (``signalProcess``) and starts it again (``startProcess``,
  unless ``autorestart`` already did). Not ``stopProcess``: it sends SIGTERM, which a
  hung (or SIGSTOPped) process never acts on, and would wait ``stopwaitsecs`` before
  its own SIGKILL. A hung worker's in-flight calls are lost either way.
* ``PROCESS_STATE``: every unexpected exit of the worker from RUNNING
  (``PROCESS_STATE_EXITED`` with ``expected:0``) that the watchdog did not cause itself
  is a crash. The ``WATCHDOG_CRASH_LIMIT``-th crash within ``WATCHDOG_CRASH_WINDOW_S``
  stops the worker (``stopProcess``) and keeps it stopped (a start that supervisord's
  autorestart slipped in is stopped again) until someone starts it deliberately:
  ``supervisorctl start patreon:worker_00`` (a start from STOPPED or FATAL) clears the
  verdict. Meanwhile web answers 503 ``PATREON_SERVICE_UNAVAILABLE``.

The verdict and the restarts are written to ``DATA_DIR/watchdog.json`` (atomically),
which ``GET /api/patreon/status`` shows as ``status.watchdog``: the stack reports a
stopped worker and why without web having to reach supervisord.

Several workers (``numprocs``: patreon:worker_00, patreon:worker_01, ...): the
listener finds this supervisord's worker processes at start and runs one
``Watchdog`` per process (``WatchdogGroup``), each pinging that process's own
endpoint and acting on that process name only, so a hung worker_01 is killed
while worker_00 serves on. worker_00 reports to ``watchdog.json``, worker_NN to
``watchdog-worker_NN.json`` (``status.watchdogs`` lists them all).

The supervisord protocol is on stdout and nothing else is ever written there; every
diagnostic goes to stderr (supervisord's ``stderr_logfile``). ``Watchdog`` takes its
streams, its XML-RPC handle and its ping function as attributes, and ``run_once``
serves one event, so a test drives it with fakes.

Small on purpose (issue 17, idle RSS): it speaks the listener protocol itself (three
lines of it, as superlance's listeners do) and reaches supervisord's XML-RPC over the
unix socket with the standard library, instead of importing ``supervisor`` (10 MB).
"""

from __future__ import annotations

import collections
import http.client
import logging
import os
import re
import select
import socket
import sys
import time
import xmlrpc.client
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from settings.config import EXIT_CONFIG, ConfigError, load_settings
from settings.logs import configure_logging
from store.timestamps import utc_now_iso
from watchdog_listener.report import read_state, state_path, write_state
from wire.client import Pinger
from wire.curve import KeysMissing, client_options

log = logging.getLogger("watchdog")

PROGRAM = "patreon:worker_00"
RPC_TIMEOUT_S = 10.0  # supervisord answers at once; a stuck call must not freeze the listener
# A worker told to stop for crash-looping that is still STOPPING this long after is
# SIGKILLed at the next tick: a SIGTERM that lands between supervisord's fork and the
# exec of a just-respawned worker is lost, and supervisord would wait stopwaitsecs.
STOP_ESCALATE_S = 3.0
EXIT_NOT_SUPERVISED = 2

# supervisord's names (supervisor.xmlrpc.Faults, supervisor.states).
FAULT_SHUTDOWN_STATE = 6
FAULT_ALREADY_STARTED = 60
FAULT_NOT_RUNNING = 70
ACTIVE_STATES = frozenset({"STARTING", "RUNNING", "BACKOFF"})  # what stopProcess accepts
# A start from these states is deliberate (supervisord at boot, or an operator); its
# autorestart starts from EXITED or BACKOFF.
DELIBERATE_START_FROM = frozenset({"STOPPED", "FATAL"})

RpcFailure = (xmlrpc.client.Fault, xmlrpc.client.ProtocolError, http.client.HTTPException, OSError)

Ping = Callable[[float], "dict[str, Any] | None"]


# -- supervisord's event listener protocol (supervisor.childutils, without its imports) --
def headers_of(line: str) -> dict[str, str]:
    """``key:value key:value`` (an event's header line, or its payload's first line)."""
    return dict(token.split(":", 1) for token in line.split())


def send_ready(stdout: TextIO) -> None:
    stdout.write("READY\n")
    stdout.flush()


def send_ok(stdout: TextIO) -> None:
    stdout.write("RESULT 2\nOK")
    stdout.flush()


class UnixTransport(xmlrpc.client.Transport):
    """XML-RPC over supervisord's unix socket (``SUPERVISOR_SERVER_URL=unix://...``)."""

    def __init__(self, path: str):
        super().__init__()
        self._path = path

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        path = self._path

        class Connection(http.client.HTTPConnection):
            def connect(self) -> None:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.settimeout(RPC_TIMEOUT_S)
                self.sock.connect(path)

        return Connection("localhost", timeout=RPC_TIMEOUT_S)


def rpc_interface(env: dict[str, str] | os._Environ) -> xmlrpc.client.ServerProxy:
    """supervisord's XML-RPC, from the variables it gives its event listeners."""
    url = env["SUPERVISOR_SERVER_URL"]
    if url.startswith("unix://"):
        return xmlrpc.client.ServerProxy("http://localhost", transport=UnixTransport(url[len("unix://") :]))
    user, password = env.get("SUPERVISOR_USERNAME", ""), env.get("SUPERVISOR_PASSWORD", "")
    if user:
        scheme, _, rest = url.partition("://")
        url = f"{scheme}://{user}:{password}@{rest}"
    return xmlrpc.client.ServerProxy(url.rstrip("/") + "/RPC2")


class Watchdog:
    def __init__(
        self,
        rpc: Any,
        ping: Ping,
        *,
        max_misses: int,
        ping_timeout_s: float,
        crash_limit: int,
        crash_window_s: float,
        interval_s: float | None = None,
        state_file: Path | None = None,
        program: str = PROGRAM,
        clock: Callable[[], float] = time.monotonic,
        stdin: TextIO = sys.stdin,
        stdout: TextIO = sys.stdout,
    ):
        self.rpc = rpc
        self.ping = ping
        self.stdin = stdin
        self.stdout = stdout
        self.program = program
        self.max_misses = max_misses
        self.ping_timeout_s = ping_timeout_s
        self.crash_limit = crash_limit
        self.crash_window_s = crash_window_s
        self.interval_s = interval_s  # None: only on supervisord's TICK events
        self.state_file = state_file
        self._clock = clock
        self._next_check = clock()
        self._crashes: collections.deque[float] = collections.deque()
        self._own_kills: collections.deque[int] = collections.deque(maxlen=16)  # pids we SIGKILLed
        self._stop_requested_at: float | None = None
        self.state: dict[str, Any] = {
            "program": program,
            "worker_stopped_reason": None,
            "worker_stopped_at": None,
            "crashes_in_window": 0,
            "hang_restarts": 0,
            "last_restart_reason": None,
            "last_restart_at": None,
        }

    # -- the listener protocol ---------------------------------------------------------
    @property
    def next_check(self) -> float:
        return self._next_check

    # Serving supervisord's events (and the timer between them) is WatchdogGroup's; one
    # watchdog alone is a group of one.
    def run_forever(self) -> None:
        self._alone().run_forever()

    def run_once(self) -> bool:
        """Serve one event; False when supervisord closed our stdin (it is going away)."""
        return self._alone().run_once()

    def _alone(self) -> WatchdogGroup:
        return WatchdogGroup([self], clock=self._clock, stdin=self.stdin, stdout=self.stdout)

    def check(self) -> None:
        """One check of the worker, and the time of the next one."""
        self.on_tick()
        self._next_check = self._clock() + (self.interval_s or 0.0)

    def handle(self, event_name: str, payload: str) -> None:
        if event_name.startswith("TICK_"):
            # A backstop for the own timer; no second check when one was just made.
            if self.interval_s is None or self._clock() >= self._next_check:
                self.check()
        elif event_name.startswith("PROCESS_STATE_"):
            fields = headers_of(payload)
            if f"{fields.get('groupname')}:{fields.get('processname')}" == self.program:
                self.on_state(event_name[len("PROCESS_STATE_") :], fields)

    # -- start-up ----------------------------------------------------------------------
    def resume(self, previous: dict[str, Any] | None) -> None:
        """Carry over a verdict from before a restart of the watchdog itself, if the
        worker is still stopped; otherwise start with a clean report."""
        info = self._process_info()
        if (
            previous
            and previous.get("program") == self.program
            and previous.get("worker_stopped_reason")
            and info is not None
            and info["statename"] == "STOPPED"
            and info["start"]  # a worker never started yet is supervisord booting, not our stop
        ):
            self.state.update({k: previous.get(k) for k in self.state})
            log.warning("worker still stopped by the watchdog: %s", previous["worker_stopped_reason"])
        self._save()

    # -- hangs ---------------------------------------------------------------------------
    def on_tick(self) -> None:
        info = self._process_info()
        if info is None:
            return
        if self.state["worker_stopped_reason"]:
            if info["statename"] in ACTIVE_STATES:
                self._stop_worker()
            elif info["statename"] == "STOPPING":
                self._escalate_stop(info["pid"])
            return
        if info["statename"] != "RUNNING":
            return
        for miss in range(1, self.max_misses + 1):
            pong = self.ping(self.ping_timeout_s)
            if pong is not None:
                if miss > 1:
                    log.info("worker pid %s answered after %d missed ping(s)", pong.get("pid"), miss - 1)
                return
            log.warning(
                "worker pid %s missed ping %d/%d (no reply within %g s)",
                info["pid"],
                miss,
                self.max_misses,
                self.ping_timeout_s,
            )
        self._kill_hung(info["pid"])

    def _kill_hung(self, pid: int) -> None:
        # It may have exited or been restarted while we pinged: kill only the pid we pinged.
        info = self._process_info()
        if info is None or info["statename"] != "RUNNING" or info["pid"] != pid:
            return
        reason = f"hung: {self.max_misses} ping(s) of {self.ping_timeout_s:g} s unanswered"
        self._own_kills.append(pid)
        try:
            self.rpc.supervisor.signalProcess(self.program, "KILL")
        except RpcFailure as ex:
            self._own_kills.remove(pid)
            log.error("❌ Watchdog: could not kill hung worker pid %d: %s", pid, ex)
            return
        log.error(
            "❌ Watchdog: %s pid %d is %s; killed it (SIGKILL) to restart it", self.program, pid, reason
        )
        self.state["hang_restarts"] += 1
        self.state["last_restart_reason"] = reason
        self.state["last_restart_at"] = utc_now_iso()
        self._save()

    # -- exits -----------------------------------------------------------------------------
    def on_state(self, state: str, fields: dict[str, str]) -> None:
        pid = int(fields.get("pid") or 0)
        if state == "EXITED":
            if pid in self._own_kills:
                self._own_kills.remove(pid)
                log.info("worker pid %d exited after the watchdog's SIGKILL (not a crash)", pid)
                self._start_worker()
            elif fields.get("expected") == "0":
                self._count_crash(pid)
        elif state == "STARTING" and fields.get("from_state") in DELIBERATE_START_FROM:
            if self.state["worker_stopped_reason"]:
                log.warning("✅ Watchdog: %s started deliberately; crash-loop stop lifted", self.program)
            self._crashes.clear()
            if self.state["worker_stopped_reason"] or self.state["crashes_in_window"]:
                self.state.update(worker_stopped_reason=None, worker_stopped_at=None, crashes_in_window=0)
                self._save()
        elif state in ACTIVE_STATES and self.state["worker_stopped_reason"]:
            # supervisord's autorestart got in before (or after) our stop: stop it again.
            info = self._process_info()
            if info is not None and info["statename"] in ACTIVE_STATES:
                self._stop_worker()

    def _count_crash(self, pid: int) -> None:
        now = self._clock()
        self._crashes.append(now)
        while self._crashes and now - self._crashes[0] > self.crash_window_s:
            self._crashes.popleft()
        count = len(self._crashes)
        self.state["crashes_in_window"] = count
        log.warning(
            "❌ Watchdog: %s pid %d exited unexpectedly (%d of %d allowed within %g s)",
            self.program,
            pid,
            count,
            self.crash_limit,
            self.crash_window_s,
        )
        if count >= self.crash_limit and not self.state["worker_stopped_reason"]:
            reason = f"crash loop: {count} unexpected exits within {self.crash_window_s:g} s"
            self.state["worker_stopped_reason"] = reason
            self.state["worker_stopped_at"] = utc_now_iso()
            log.error(
                "❌ Watchdog: stopping %s (%s; WATCHDOG_CRASH_LIMIT=%d). "
                "Fix the cause, then: supervisorctl start %s",
                self.program,
                reason,
                self.crash_limit,
                self.program,
            )
            self._stop_worker()
        self._save()

    # -- supervisord -----------------------------------------------------------------------
    def _process_info(self) -> dict[str, Any] | None:
        try:
            return self.rpc.supervisor.getProcessInfo(self.program)
        except xmlrpc.client.Fault as ex:
            if ex.faultCode != FAULT_SHUTDOWN_STATE:  # supervisord is stopping: nothing to watch
                log.error("cannot read %s from supervisord: %s", self.program, ex.faultString)
            return None
        except RpcFailure as ex:
            log.error("cannot read %s from supervisord: %s", self.program, ex)
            return None

    def _stop_worker(self) -> None:
        try:
            self.rpc.supervisor.stopProcess(self.program, False)  # wait=False: never block events
            self._stop_requested_at = self._clock()
        except xmlrpc.client.Fault as ex:
            if ex.faultCode != FAULT_NOT_RUNNING:  # already stopping or exited: autorestart is caught later
                log.error("could not stop %s: %s", self.program, ex.faultString)
        except RpcFailure as ex:
            log.error("could not stop %s: %s", self.program, ex)

    def _escalate_stop(self, pid: int) -> None:
        started = self._stop_requested_at
        if started is None or self._clock() - started < STOP_ESCALATE_S:
            return
        log.warning(
            "worker pid %d still stopping %g s after SIGTERM: killing it (SIGKILL)", pid, STOP_ESCALATE_S
        )
        self._stop_requested_at = None
        try:
            self.rpc.supervisor.signalProcess(self.program, "KILL")  # a STOPPING process ends STOPPED
        except RpcFailure as ex:
            log.error("could not kill %s: %s", self.program, ex)

    def _start_worker(self) -> None:
        try:
            self.rpc.supervisor.startProcess(self.program, False)
        except xmlrpc.client.Fault as ex:
            if ex.faultCode != FAULT_ALREADY_STARTED:  # autorestart was quicker: fine
                log.error("could not start %s: %s", self.program, ex.faultString)
        except RpcFailure as ex:
            log.error("could not start %s: %s", self.program, ex)

    def _save(self) -> None:
        if self.state_file is None:
            return
        report = {**self.state, "watchdog_pid": os.getpid(), "updated_at": utc_now_iso()}
        try:
            write_state(self.state_file, report)
        except OSError as ex:
            log.error("cannot write %s: %s", self.state_file, ex)


WORKER_PROCESS = re.compile(r"worker_(\d+)")


class WatchdogGroup:
    """One event stream for several ``Watchdog``s (one per worker process): each
    checks on its own timer and sees every event (it ignores other programs')."""

    def __init__(
        self,
        watchdogs: list[Watchdog],
        *,
        clock: Callable[[], float] = time.monotonic,
        stdin: TextIO = sys.stdin,
        stdout: TextIO = sys.stdout,
    ):
        self.watchdogs = watchdogs
        self._clock = clock
        self.stdin = stdin
        self.stdout = stdout

    def run_forever(self) -> None:
        while self.run_once():
            pass

    def run_once(self) -> bool:
        send_ready(self.stdout)
        self._checks_until_event()
        line = self.stdin.readline()
        if not line:
            return False
        headers = headers_of(line)
        payload = self.stdin.read(int(headers["len"]))
        for watchdog in self.watchdogs:
            try:
                watchdog.handle(headers["eventname"], payload)
            except Exception:
                # A bug here must not kill the listener (supervisord would queue events
                # for it meanwhile); the event is still acknowledged.
                log.exception("failed to handle %s for %s", headers.get("eventname"), watchdog.program)
        send_ok(self.stdout)
        return True

    def _checks_until_event(self) -> None:
        """While READY and no event has come, check each worker every ``interval_s``.

        supervisord sends nothing more until we answer an event, so nothing is
        buffered on stdin between events and ``select`` on it is exact.
        """
        timed = [w for w in self.watchdogs if w.interval_s is not None]
        if not timed:
            return
        try:
            fd = self.stdin.fileno()
        except (AttributeError, OSError, ValueError):
            return  # a test's stream: events only
        while True:
            wait = min(w.next_check for w in timed) - self._clock()
            if wait > 0 and select.select([fd], [], [], wait)[0]:
                return
            for watchdog in timed:
                if self._clock() >= watchdog.next_check:
                    try:
                        watchdog.check()
                    except Exception:
                        log.exception("%s check failed", watchdog.program)


def worker_programs(rpc: Any) -> list[tuple[str, int]]:
    """This supervisord's worker processes: (``patreon:worker_NN``, NN)."""
    found = []
    for info in rpc.supervisor.getAllProcessInfo():
        match = WORKER_PROCESS.fullmatch(info.get("name", ""))
        if info.get("group") == "patreon" and match:
            found.append((f"patreon:{info['name']}", int(match.group(1))))
    return sorted(found, key=lambda item: item[1]) or [(PROGRAM, 0)]


def main() -> int:
    configure_logging("watchdog")
    try:
        config = load_settings("watchdog")
    except ConfigError as ex:
        for line in ex.lines():
            log.error(line)
        return EXIT_CONFIG
    if "SUPERVISOR_SERVER_URL" not in os.environ:
        log.error("❌ the watchdog runs under supervisord as [eventlistener:watchdog], not by hand")
        return EXIT_NOT_SUPERVISED
    # The XML-RPC transport has no timeout of its own; the ZeroMQ sockets are unaffected.
    socket.setdefaulttimeout(RPC_TIMEOUT_S)
    try:
        curve = client_options(config.worker_curve_dir)
    except KeysMissing as ex:
        log.error("❌ Configuration error: PATREON_WORKER_CURVE_DIR: %s", ex)
        return EXIT_CONFIG
    rpc = rpc_interface(os.environ)
    try:
        programs = worker_programs(rpc)
    except RpcFailure as ex:
        log.error("cannot list the worker processes from supervisord: %s", ex)
        return EXIT_NOT_SUPERVISED
    watchdogs, pingers = [], []
    for program, num in programs:
        if num >= len(config.endpoints):
            log.error("❌ %s has no endpoint (WORKER_PROCESSES / PATREON_WORKER_ENDPOINTS): not watched", program)
            continue
        endpoint = config.endpoints[num]
        pinger = Pinger(endpoint, curve=curve)
        pingers.append(pinger)
        name = program.split(":", 1)[1]
        watchdog = Watchdog(
            rpc,
            pinger,
            max_misses=config.watchdog_max_misses,
            ping_timeout_s=config.watchdog_ping_timeout_s,
            crash_limit=config.watchdog_crash_limit,
            crash_window_s=config.watchdog_crash_window_s,
            interval_s=config.watchdog_interval_s,
            state_file=state_path(config.data_dir, None if num == 0 else name),
            program=program,
        )
        watchdog.resume(read_state(config.data_dir, None if num == 0 else name))
        watchdogs.append(watchdog)
        log.info(
            "🔧 Watchdog watching %s on %s: ping every %g s, restart after %d miss(es) of %g s; "
            "stop after %d unexpected exits within %g s",
            program,
            endpoint,
            config.watchdog_interval_s,
            config.watchdog_max_misses,
            config.watchdog_ping_timeout_s,
            config.watchdog_crash_limit,
            config.watchdog_crash_window_s,
        )
    try:
        WatchdogGroup(watchdogs).run_forever()
    finally:
        for pinger in pingers:
            pinger.close()
    log.info("watchdog stopped: supervisord closed the event stream")
    return 0


if __name__ == "__main__":
    sys.exit(main())
