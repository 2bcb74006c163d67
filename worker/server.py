"""The worker's ZeroMQ server: a ROUTER socket in front of a thread pool.

Requests come in on one ROUTER socket (REQ clients connect to it). ``ping`` is
answered inline by the loop, so a heartbeat is never queued behind slow work; every
other action runs on a pool thread, whose reply travels back to the loop over an
inproc PUSH/PULL pair (ZeroMQ sockets belong to one thread each), and the loop sends
it out on the ROUTER socket.

``stop()`` (from a signal handler) makes the loop stop taking work: new requests are
answered ``WORKER_SHUTTING_DOWN`` at once, in-flight ones get up to ``grace_s`` to
finish, then the loop closes its sockets and returns.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import zmq

from worker import protocol

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.1
STOP_GRACE_S = 8.0  # below supervisord's stopwaitsecs (10 s) for the worker


class WorkerServer:
    def __init__(
        self,
        endpoint: str,
        registry: protocol.ActionRegistry,
        *,
        threads: int,
        ping: Callable[[], dict],
        context: zmq.Context | None = None,
        grace_s: float = STOP_GRACE_S,
    ):
        self.endpoint = endpoint
        self.registry = registry
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
        self._frontend.bind(self.endpoint)

    def stop(self) -> None:
        self._stopping.set()

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
        finally:
            self._executor.shutdown(wait=False, cancel_futures=True)
            results.close(linger=0)
            frontend.close(linger=0)

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
            # A REQ peer sends [identity, b"", payload]; anything else is not ours.
            if len(frames) != 3 or frames[1] != b"":
                log.warning("dropped a message with %d frames", len(frames))
                continue
            route, payload = frames[:2], frames[2]
            action = self.registry.peek_action(payload)
            if action == "ping":
                frontend.send_multipart([*route, self._answer_ping(payload)])
            elif self._stopping.is_set() and action is not None:
                error = protocol.ActionError(
                    protocol.SHUTTING_DOWN, "the worker is shutting down", status=503, retry_after=1
                )
                request = protocol.decode_request(payload)
                frontend.send_multipart([*route, protocol.encode_error(request.msg_id, error)])
            else:
                self._in_flight += 1
                self._executor.submit(self._run, route, payload)

    def _answer_ping(self, payload: bytes) -> bytes:
        request = protocol.decode_request(payload)
        return protocol.encode_ok(request.msg_id, self.ping())

    def _run(self, route: list[bytes], payload: bytes) -> None:
        frames = self.registry.dispatch(payload)
        push = getattr(self._local, "push", None)
        if push is None:
            push = self._context.socket(zmq.PUSH)
            push.setsockopt(zmq.LINGER, 0)
            push.connect(self._results_endpoint)
            self._local.push = push
        push.send_multipart([*route, *frames])
