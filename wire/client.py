"""The web side's client for the worker: Lazy Pirate REQ sockets plus liveness.

``WorkerClient.call`` is safe from any number of threads: each thread has its own REQ
socket (ZeroMQ sockets are not thread-safe), LINGER 0, a per-action timeout from
``protocol.ACTIONS``, and after a timeout the socket is thrown away and a fresh one
connected. Only idempotent actions are retried.

``Pinger`` is the one-shot, blocking ping the watchdog uses (the web client's
``Heartbeat`` pings without blocking, next to its connection monitor).

``Liveness`` is the shared up/down state. Two signals mark the worker down:

* a crash closes its end of the connection: the ``Heartbeat`` thread watches a
  connection monitor and marks it down at once; calls already waiting notice within
  ``POLL_SLICE_S`` and fail instead of waiting out their timeout;
* a hang keeps the connection open: the heartbeat pings every
  ``HEARTBEAT_INTERVAL_S``; after ``HEARTBEAT_MAX_MISSES`` missed beats it is down.

The first answered beat marks it up again. While down, calls fail at once.

Errors::

    WorkerError
    +-- WorkerUnavailable   the worker is down (or went down while we waited): 503
    +-- WorkerTimeout       no reply within the action's timeout: 504
    +-- WorkerCallError     the worker answered with an error reply (code, status)
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import zmq

from wire import protocol
from wire.actions import Payload
from wire.codes import PATREON_SERVICE_TIMEOUT, PATREON_SERVICE_UNAVAILABLE
from wire.curve import ClientOptions, secure

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_S = 1.0
HEARTBEAT_TIMEOUT_S = 1.0
HEARTBEAT_MAX_MISSES = 3
DOWN_PROBE_INTERVAL_S = 0.1  # while down, probe often so recovery is quick
POLL_SLICE_S = 0.02  # how often a waiting call looks at liveness
WATCH_RECONNECT_MS = 10
RETRY_AFTER_S = 2  # what a 503 tells the HTTP client


class WorkerError(Exception):
    code = PATREON_SERVICE_UNAVAILABLE
    status = 503
    retry_after: float | None = RETRY_AFTER_S


class WorkerUnavailable(WorkerError):
    def __init__(self, reason: str):
        super().__init__(f"Patreon service is not available ({reason})")
        self.reason = reason


class WorkerTimeout(WorkerError):
    code = PATREON_SERVICE_TIMEOUT
    status = 504

    def __init__(self, action: str, timeout_s: float):
        super().__init__(f"the worker did not answer {action} within {timeout_s:g} s")


class WorkerCallError(WorkerError):
    def __init__(self, error: dict[str, Any]):
        super().__init__(str(error.get("message") or error.get("code")))
        self.code = str(error["code"])
        status = error.get("status")
        self.status = status if isinstance(status, int) and 400 <= status <= 599 else 502
        retry_after = error.get("retry_after")
        self.retry_after = retry_after if isinstance(retry_after, int | float) else None
        self.message = str(error.get("message") or self.code)


class Liveness:
    """Thread-safe worker state, fed by the heartbeat and read by every call."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_misses: int = HEARTBEAT_MAX_MISSES):
        self._clock = clock
        self._max_misses = max_misses
        self._lock = threading.Lock()
        self._up = False
        self._ever_up = False
        self._generation = 0  # bumped on every transition to down
        self._misses = 0
        self._last_beat_at: float | None = None
        self._pid: int | None = None
        self._restarts = 0
        self._reason = "no heartbeat yet"
        self._last_pong: dict[str, Any] = {}

    @property
    def up(self) -> bool:
        return self._up

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def reason(self) -> str:
        return self._reason

    def beat_ok(self, pong: dict[str, Any]) -> None:
        with self._lock:
            pid = pong.get("pid")
            if self._pid is not None and pid != self._pid:
                self._restarts += 1
            if not self._up:
                log.info("worker is up (pid %s)", pid)
            self._pid = pid
            self._up = self._ever_up = True
            self._misses = 0
            self._last_beat_at = self._clock()
            self._last_pong = dict(pong)
            self._reason = ""

    def beat_missed(self) -> None:
        with self._lock:
            self._misses += 1
            if self._up and self._misses >= self._max_misses:
                self._mark_down(f"{self._misses} heartbeats missed")

    def disconnected(self) -> None:
        with self._lock:
            if self._up:
                self._mark_down("connection closed")

    def _mark_down(self, reason: str) -> None:
        log.warning("worker is down: %s", reason)
        self._up = False
        self._generation += 1
        self._reason = reason

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            ago = None if self._last_beat_at is None else int((self._clock() - self._last_beat_at) * 1000)
            return {
                "available": self._up,
                "ready": self._ever_up,
                "reason": self._reason or None,
                "pid": self._pid,
                "last_heartbeat_ms_ago": ago,
                "restarts": self._restarts,
                "version": self._last_pong.get("version"),
                "in_flight": self._last_pong.get("in_flight"),
                # Patreon's edge block as the worker last reported it (patreon_client.edge).
                "patreon_edge": self._last_pong.get("patreon_edge"),
            }


def _req_socket(context: zmq.Context, endpoint: str, curve: ClientOptions | None = None) -> zmq.Socket:
    sock = context.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    secure(sock, curve, endpoint).connect(endpoint)
    return sock


class WorkerClient:
    def __init__(
        self,
        endpoint: str,
        *,
        context: zmq.Context | None = None,
        liveness: Liveness | None = None,
        clock: Callable[[], float] = time.monotonic,
        retries: int = 1,
        curve: ClientOptions | None = None,
    ):
        self.endpoint = endpoint
        self.curve = curve
        self.liveness = liveness or Liveness(clock)
        self._context = context or zmq.Context.instance()
        self._clock = clock
        self._retries = retries
        self._local = threading.local()
        self._heartbeat: Heartbeat | None = None

    def start(self) -> None:
        """Start the heartbeat thread (web's entry point does this once)."""
        self._heartbeat = Heartbeat(
            self.endpoint, self.liveness, context=self._context, clock=self._clock, curve=self.curve
        )
        self._heartbeat.start()

    def close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
        self._drop_socket()

    def _socket(self) -> zmq.Socket:
        sock = getattr(self._local, "sock", None)
        generation = self.liveness.generation
        if sock is not None and self._local.generation != generation:
            # Made before the worker last went down: it may still be waiting out
            # ZeroMQ's reconnect interval, while a fresh socket connects at once.
            self._drop_socket()
            sock = None
        if sock is None:
            sock = _req_socket(self._context, self.endpoint, self.curve)
            self._local.sock = sock
            self._local.generation = generation
        return sock

    def _drop_socket(self) -> None:
        sock = getattr(self._local, "sock", None)
        if sock is not None:
            sock.close(linger=0)
            self._local.sock = None

    def send(self, request: Payload, **options: Any) -> dict[str, Any]:
        """Send one typed request (``wire.actions``) and return its reply data; the
        options are ``call``'s (timeout_s, request_id, retry)."""
        return self.call(request.spec.name, request.data(), **options)

    def send_document(self, request: Payload, **options: Any) -> bytes:
        """Like ``send``, but the answer as undecoded JSON bytes (see ``call_document``)."""
        return self.call_document(request.spec.name, request.data(), **options)

    def call(
        self,
        action: str,
        data: dict[str, Any] | None = None,
        *,
        timeout_s: float | None = None,
        request_id: str | None = None,
        retry: bool = True,
    ) -> dict[str, Any]:
        """Send one action and return its reply data, or raise a ``WorkerError``.

        An idempotent action is retried after a timeout unless ``retry`` is False
        (health checks want a verdict within one timeout).
        """
        reply = self.reply(action, data, timeout_s=timeout_s, request_id=request_id, retry=retry)
        try:
            return reply.payload()
        except (ValueError, RecursionError) as ex:  # a document that is not JSON
            raise WorkerCallError(
                {
                    "code": protocol.BAD_FRAME,
                    "message": "bad reply from worker: document is not JSON",
                    "status": 502,
                }
            ) from ex

    def call_document(
        self,
        action: str,
        data: dict[str, Any] | None = None,
        *,
        timeout_s: float | None = None,
        request_id: str | None = None,
        retry: bool = True,
    ) -> bytes:
        """Like ``call``, but the answer as the JSON bytes the worker sent, undecoded:
        for documents web only passes on (a Patreon page can be megabytes)."""
        reply = self.reply(action, data, timeout_s=timeout_s, request_id=request_id, retry=retry)
        if reply.body is not None:
            return reply.body
        # ensure_ascii: decoded JSON may hold a lone surrogate, which UTF-8 cannot encode.
        return json.dumps(reply.data, separators=(",", ":"), ensure_ascii=True).encode("ascii")

    def reply(
        self,
        action: str,
        data: dict[str, Any] | None,
        *,
        timeout_s: float | None = None,
        request_id: str | None = None,
        retry: bool = True,
    ) -> protocol.Reply:
        """The worker's ok reply to one action (retried like ``call``), or a ``WorkerError``."""
        spec = protocol.ACTIONS[action]
        timeout_s = spec.timeout_s if timeout_s is None else timeout_s
        attempts = 1 + (self._retries if spec.idempotent and retry else 0)
        for attempt in range(attempts):
            try:
                return self._call_once(action, data, timeout_s, request_id)
            except WorkerTimeout:
                if attempt + 1 == attempts or not self.liveness.up:
                    raise
                log.info("retrying %s after a timeout", action)
        raise AssertionError("unreachable")

    def _call_once(
        self, action: str, data: dict[str, Any] | None, timeout_s: float, request_id: str | None
    ) -> protocol.Reply:
        if not self.liveness.up:
            raise WorkerUnavailable(self.liveness.reason)
        generation = self.liveness.generation
        msg_id, frame = protocol.encode_request(
            action, data, max(1, int(timeout_s * 1000)), request_id=request_id
        )
        sock = self._socket()
        sock.send(frame)
        deadline = self._clock() + timeout_s
        while True:
            remaining = deadline - self._clock()
            if remaining <= 0:
                self._drop_socket()
                raise WorkerTimeout(action, timeout_s)
            if sock.poll(min(remaining, POLL_SLICE_S) * 1000, zmq.POLLIN):
                try:
                    reply = protocol.decode_reply(sock.recv_multipart())
                except protocol.ProtocolError as ex:
                    self._drop_socket()
                    raise WorkerCallError(
                        {"code": ex.code, "message": f"bad reply from worker: {ex.message}", "status": 502}
                    ) from ex
                if reply.msg_id != msg_id:
                    # A REQ socket cannot normally see this; never hand one caller another's reply.
                    self._drop_socket()
                    raise WorkerCallError(
                        {"code": protocol.BAD_FRAME, "message": "reply id mismatch", "status": 502}
                    )
                if reply.ok:
                    return reply
                raise WorkerCallError(reply.error)
            if self.liveness.generation != generation or not self.liveness.up:
                # The worker went down while we waited: this reply will never come.
                self._drop_socket()
                raise WorkerUnavailable(self.liveness.reason)


class Heartbeat(threading.Thread):
    """Pings the worker and watches the connection; feeds ``Liveness``."""

    def __init__(
        self,
        endpoint: str,
        liveness: Liveness,
        *,
        context: zmq.Context | None = None,
        clock: Callable[[], float] = time.monotonic,
        interval_s: float = HEARTBEAT_INTERVAL_S,
        timeout_s: float = HEARTBEAT_TIMEOUT_S,
        curve: ClientOptions | None = None,
    ):
        super().__init__(name="worker-heartbeat", daemon=True)
        self.endpoint = endpoint
        self.curve = curve
        self.liveness = liveness
        self._context = context or zmq.Context.instance()
        self._clock = clock
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        # The watch socket never sends: it exists so its monitor reports the
        # connection's state. Pings go on their own REQ socket, renewed after a miss.
        # Imported here: zmq.utils.monitor loads asyncio, which the watchdog (a Pinger
        # user) has no use for (issue 17, idle RSS).
        from zmq.utils.monitor import recv_monitor_message

        self._recv_monitor = recv_monitor_message
        watch = self._context.socket(zmq.DEALER)
        watch.setsockopt(zmq.LINGER, 0)
        # A restarted worker is seen within 10 ms instead of ZeroMQ's default 100 ms:
        # its handshake triggers the ping that brings web back (one socket: cheap).
        watch.setsockopt(zmq.RECONNECT_IVL, WATCH_RECONNECT_MS)
        monitor = watch.get_monitor_socket(zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED)
        secure(watch, self.curve, self.endpoint).connect(self.endpoint)
        self._poller = zmq.Poller()
        self._poller.register(monitor, zmq.POLLIN)
        self._ping: zmq.Socket | None = None
        self._renew_ping()
        self._pending: tuple[str, float] | None = None  # (msg id, deadline)
        self._next_beat = self._clock()
        try:
            while not self._stop_event.is_set():
                try:
                    self._step(monitor)
                except Exception:
                    # This thread must never die: liveness would freeze at its last value.
                    log.exception("heartbeat failed; carrying on with a fresh socket")
                    self.liveness.beat_missed()
                    self._renew_ping()
                    self._pending, self._next_beat = None, self._clock() + DOWN_PROBE_INTERVAL_S
                    self._stop_event.wait(DOWN_PROBE_INTERVAL_S)  # no busy loop if it keeps failing
        finally:
            if self._ping is not None:
                self._ping.close(linger=0)
            watch.disable_monitor()
            monitor.close(linger=0)
            watch.close(linger=0)

    def _renew_ping(self) -> None:
        """A fresh REQ socket: after a miss or a bad reply the old one's state is unknown."""
        if self._ping is not None:
            self._poller.unregister(self._ping)
            self._ping.close(linger=0)
        self._ping = _req_socket(self._context, self.endpoint, self.curve)
        self._poller.register(self._ping, zmq.POLLIN)

    def _step(self, monitor: zmq.Socket) -> None:
        now = self._clock()
        if self._pending is None and now >= self._next_beat:
            msg_id, frame = protocol.encode_request("ping", {}, int(self._timeout_s * 1000))
            self._ping.send(frame)
            self._pending = (msg_id, now + self._timeout_s)
        wake = self._pending[1] if self._pending else self._next_beat
        events = dict(self._poller.poll(max(0.0, min(wake - now, 0.5)) * 1000))
        if monitor in events:
            event = self._recv_monitor(monitor)["event"]
            if event == zmq.EVENT_DISCONNECTED:
                self.liveness.disconnected()
            # Connected or lost: either way, ask again now instead of waiting.
            self._renew_ping()
            self._pending, self._next_beat = None, self._clock()
            return
        pending = self._pending
        if self._ping in events and pending is not None:
            # recv_multipart: a reply of several frames is read whole, never leaving
            # the REQ socket half-read (its next send would fail).
            try:
                reply = protocol.decode_reply(self._ping.recv_multipart())
            except protocol.ProtocolError:
                reply = None
            if reply is not None and reply.ok and reply.msg_id == pending[0]:
                self.liveness.beat_ok(reply.data)
            else:
                self.liveness.beat_missed()
                self._renew_ping()
            self._pending, self._next_beat = None, pending[1] - self._timeout_s + self._interval_s
            return
        if pending is not None and self._clock() >= pending[1]:
            self.liveness.beat_missed()
            self._renew_ping()
            interval = self._interval_s if self.liveness.up else DOWN_PROBE_INTERVAL_S
            self._next_beat = pending[1] - self._timeout_s + interval
            self._pending = None


class Pinger:
    """Pings the worker on one REQ socket, renewed after every miss (a REQ socket that
    missed its reply cannot send again)."""

    def __init__(self, endpoint: str, context: zmq.Context | None = None, curve: ClientOptions | None = None):
        self.endpoint = endpoint
        self.curve = curve
        self._context = context or zmq.Context.instance()
        self._sock: zmq.Socket | None = None

    def __call__(self, timeout_s: float) -> dict[str, Any] | None:
        """The worker's pong data, or None when no valid reply came within ``timeout_s``."""
        if self._sock is None:
            self._sock = self._context.socket(zmq.REQ)
            self._sock.setsockopt(zmq.LINGER, 0)
            secure(self._sock, self.curve, self.endpoint).connect(self.endpoint)
        msg_id, frame = protocol.encode_request("ping", {}, max(1, int(timeout_s * 1000)))
        try:
            self._sock.send(frame, zmq.NOBLOCK)
            if self._sock.poll(timeout_s * 1000, zmq.POLLIN):
                reply = protocol.decode_reply(self._sock.recv())
                if reply.ok and reply.msg_id == msg_id:
                    return reply.data
        except (zmq.ZMQError, protocol.ProtocolError) as ex:
            log.warning("ping failed: %s", ex)
        self.close()
        return None

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None
