"""The worker's ZeroMQ server: a ROUTER socket in front of a thread pool.

Requests come in on one ROUTER socket (REQ clients connect to it). ``ping`` is
answered inline by the loop, so a heartbeat is never queued behind slow work; every
other action runs on a pool thread, whose reply travels back to the loop over an
inproc PUSH/PULL pair (ZeroMQ sockets belong to one thread each), and the loop sends
it out on the ROUTER socket.

Each frame is decoded once, on the loop, and stamped with the time it arrived: its
deadline counts from then, so a request that waited its whole deadline for a free
thread is answered ``DEADLINE_EXCEEDED`` instead of being run for nobody. A frame
that is not a valid request is answered at once by the loop.

No input stops the loop: one message that cannot be handled is logged and dropped,
and a pool thread always pushes a reply (``WORKER_INTERNAL_ERROR`` when dispatching
itself failed), so ``in_flight`` stays true.

``stop()`` (from a signal handler) makes the loop stop taking work: new requests are
answered ``WORKER_SHUTTING_DOWN`` at once, in-flight ones get up to ``grace_s`` to
finish, then the loop closes its sockets and returns. A pool thread that finishes
later drops its reply (its push never blocks on the closed socket); the entry point
then leaves without waiting for such threads (see ``worker.__main__``).

The registry may come after the bind (``attach``): the entry point binds and answers
pings first, then imports the Patreon client and opens the store (issue 17, P5). A
request that arrives before ``attach`` waits for it on its pool thread, within its own
deadline (``DEADLINE_EXCEEDED`` past it); after ``abandon`` (start-up failed) it is
answered ``WORKER_SHUTTING_DOWN``. No request is served by a half-built registry.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import zmq

from wire import protocol

if TYPE_CHECKING:  # wire.curve loads zmq.auth and asyncio: not on the start-up path
    from wire.curve import ServerSecurity

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.1
REFUSAL_LOG_EVERY_S = 10.0  # one line per this long for a client that keeps retrying
# What a keyless (NULL) client, or one with another server's key, causes on a CURVE socket.
_HANDSHAKE_FAILED = zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
STOP_GRACE_S = 8.0  # below supervisord's stopwaitsecs (10 s) for the worker


class WorkerServer:
    def __init__(
        self,
        endpoint: str,
        registry: protocol.ActionRegistry | None,
        *,
        threads: int,
        ping: Callable[[], dict],
        context: zmq.Context | None = None,
        grace_s: float = STOP_GRACE_S,
        curve: ServerSecurity | None = None,
    ):
        self.endpoint = endpoint
        self.curve = curve
        self._monitor: zmq.Socket | None = None
        self._last_refusal_log = -REFUSAL_LOG_EVERY_S
        self._refusals = 0
        self.registry = registry
        # Deadlines are on the registry's clock; one attached later uses the default.
        self._clock = registry.clock if registry is not None else time.monotonic
        self._registry_ready = threading.Event()
        if registry is not None:
            self._registry_ready.set()
        self.ping = ping
        self.grace_s = grace_s
        self._context = context or zmq.Context.instance()
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="action")
        self._results_endpoint = f"inproc://worker-results-{id(self)}"
        self._local = threading.local()
        self._stopping = threading.Event()
        self._in_flight = 0
        self._frontend: zmq.Socket | None = None

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def bind(self) -> None:
        """Bind the public socket; raises ``zmq.ZMQError`` when the endpoint is taken."""
        if self.endpoint.startswith("ipc://"):
            os.makedirs(os.path.dirname(self.endpoint[len("ipc://") :]) or ".", exist_ok=True)
        self._frontend = self._context.socket(zmq.ROUTER)
        self._frontend.setsockopt(zmq.LINGER, 0)
        if self.curve is not None and self.endpoint.startswith("tcp://"):
            # Ironhouse: only clients whose public key is allowed get through (wire.curve).
            self.curve.start()
            self.curve.apply(self._frontend)
            self._monitor = self._frontend.get_monitor_socket(_HANDSHAKE_FAILED)
        self._frontend.bind(self.endpoint)

    def stop(self) -> None:
        self._stopping.set()

    def attach(self, registry: protocol.ActionRegistry) -> None:
        """Start serving actions with ``registry`` (built after the bind); requests
        already waiting for it go on at once."""
        self.registry = registry
        self._registry_ready.set()

    def abandon(self) -> None:
        """Start-up failed: no registry will come. Waiting requests are refused and the
        loop stops (it still answers pings until then)."""
        self._stopping.set()
        self._registry_ready.set()

    def serve_forever(self) -> None:
        if self._frontend is None:
            self.bind()
        frontend = self._frontend
        results = self._context.socket(zmq.PULL)
        results.setsockopt(zmq.LINGER, 0)
        results.bind(self._results_endpoint)
        poller = zmq.Poller()
        poller.register(frontend, zmq.POLLIN)
        poller.register(results, zmq.POLLIN)
        if self._monitor is not None:
            poller.register(self._monitor, zmq.POLLIN)
        stop_deadline: float | None = None
        try:
            while True:
                if self._stopping.is_set():
                    if stop_deadline is None:
                        stop_deadline = time.monotonic() + self.grace_s
                        log.info("stopping: %d request(s) in flight", self._in_flight)
                    if self._in_flight == 0:
                        break
                    if time.monotonic() >= stop_deadline:
                        log.warning("stopping with %d request(s) unfinished", self._in_flight)
                        break
                events = dict(poller.poll(POLL_INTERVAL_S * 1000))
                if results in events:
                    self._forward_results(results, frontend)
                if frontend in events:
                    self._take_requests(frontend)
                if self._monitor is not None and self._monitor in events:
                    self._log_refusals()
        finally:
            self._executor.shutdown(wait=False, cancel_futures=True)
            if self._monitor is not None:
                frontend.disable_monitor()
                self._monitor.close(linger=0)
            if self.curve is not None:
                self.curve.stop()
            results.close(linger=0)
            frontend.close(linger=0)

    def _log_refusals(self) -> None:
        """A client without CURVE (or with another server's key) never reaches ZAP:
        its failed handshake is logged here, at most once per REFUSAL_LOG_EVERY_S."""
        from zmq.utils.monitor import recv_monitor_message

        while True:
            try:
                recv_monitor_message(self._monitor, zmq.NOBLOCK)
            except zmq.Again:
                break
            self._refusals += 1
        now = time.monotonic()
        if self._refusals and now - self._last_refusal_log >= REFUSAL_LOG_EVERY_S:
            log.warning(
                "refused %d connection(s) on %s: CURVE handshake failed (a client with no CURVE key,"
                " or one made for another server key)",
                self._refusals,
                self.endpoint,
            )
            self._refusals, self._last_refusal_log = 0, now

    def _forward_results(self, results: zmq.Socket, frontend: zmq.Socket) -> None:
        while True:
            try:
                frames = results.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._in_flight -= 1
            frontend.send_multipart(frames)

    def _take_requests(self, frontend: zmq.Socket) -> None:
        while True:
            try:
                frames = frontend.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            received_at = self._clock()
            try:
                self._take(frontend, frames, received_at)
            except Exception:
                # One message must never take the loop (and every request in flight) down.
                log.exception("dropped a message the loop could not handle")

    def _take(self, frontend: zmq.Socket, frames: list[bytes], received_at: float) -> None:
        # A REQ peer sends [identity, b"", payload]; anything else is not ours.
        if len(frames) != 3 or frames[1] != b"":
            log.warning("dropped a message with %d frames", len(frames))
            return
        route, payload = frames[:2], frames[2]
        try:
            request = protocol.decode_request(payload)
        except protocol.ProtocolError as ex:
            frontend.send_multipart([*route, protocol.encode_protocol_error(ex)])
            return
        if request.action == "ping":
            frontend.send_multipart([*route, protocol.encode_ok(request.msg_id, self.ping())])
        elif self._stopping.is_set():
            error = protocol.ActionError(
                protocol.SHUTTING_DOWN, "the worker is shutting down", status=503, retry_after=1
            )
            frontend.send_multipart([*route, protocol.encode_error(request.msg_id, error)])
        else:
            self._executor.submit(self._run, route, request, received_at)
            self._in_flight += 1  # only the loop thread touches the count

    def _registry_for(self, request: protocol.Request, received_at: float) -> protocol.ActionRegistry | None:
        """The registry, waited for within the request's deadline; None if it never came."""
        if not self._registry_ready.is_set():
            remaining = received_at + request.deadline_ms / 1000.0 - self._clock()
            self._registry_ready.wait(max(0.0, remaining))
        return self.registry

    def _run(self, route: list[bytes], request: protocol.Request, received_at: float) -> None:
        try:
            registry = self._registry_for(request, received_at)
            if registry is not None:
                frames = registry.serve(request, received_at)
            elif self._stopping.is_set():
                error = protocol.ActionError(
                    protocol.SHUTTING_DOWN, "the worker is shutting down", status=503, retry_after=1
                )
                frames = [protocol.encode_error(request.msg_id, error)]
            else:
                error = protocol.ActionError(
                    protocol.DEADLINE_EXCEEDED,
                    "the worker was still starting when this request expired",
                    status=504,
                )
                frames = [protocol.encode_error(request.msg_id, error)]
        except Exception:
            # serve() answers a failing handler itself; this is the last resort so
            # that a reply (and the in-flight count) is never lost.
            log.exception("action %s could not be dispatched", request.action)
            frames = [protocol.encode_internal_error(request.msg_id)]
        try:
            push = getattr(self._local, "push", None)
            if push is None:
                push = self._context.socket(zmq.PUSH)
                push.setsockopt(zmq.LINGER, 0)
                push.connect(self._results_endpoint)
                self._local.push = push
            # NOBLOCK: after a stop the loop's PULL end is closed and a blocking send
            # would hang this thread (and the exit that joins it) forever.
            push.send_multipart([*route, *frames], zmq.NOBLOCK)
        except zmq.ZMQError as ex:  # zmq.Again included
            log.warning("reply to %s dropped: the loop has stopped (%s)", request.action, type(ex).__name__)
