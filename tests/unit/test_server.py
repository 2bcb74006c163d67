"""The worker's ZeroMQ loop: no frame stops it, every request gets a reply, and a
stop never leaves a pool thread blocked.

A real ``WorkerServer`` on an inproc endpoint, with a real REQ socket as the client.
"""

from __future__ import annotations

import itertools
import threading

import pytest
import zmq

from wire import protocol
from worker import __main__ as entry
from worker.server import WorkerServer

_endpoints = itertools.count()
REPLY_WAIT_MS = 5000  # a bound on a wait that normally ends at once


@pytest.fixture
def context():
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


class Running:
    """A server looping in a thread, and a client to talk to it."""

    def __init__(self, context: zmq.Context, registry: protocol.ActionRegistry, ping=None):
        self.endpoint = f"inproc://test-server-{next(_endpoints)}"
        self.server = WorkerServer(
            self.endpoint, registry, threads=2, ping=ping or (lambda: {"pong": True}), context=context
        )
        self.server.bind()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        self.context = context

    def _serve(self) -> None:
        try:
            self.server.serve_forever()
        except BaseException as ex:  # what the old loop let escape
            self.errors.append(ex)

    def ask(self, payload: bytes) -> protocol.Reply:
        sock = self.context.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.endpoint)
        try:
            sock.send(payload)
            assert sock.poll(REPLY_WAIT_MS), f"no reply; loop errors: {self.errors!r}"
            return protocol.decode_reply(sock.recv_multipart())
        finally:
            sock.close(linger=0)

    def stop(self) -> None:
        self.server.stop()
        self.thread.join(REPLY_WAIT_MS / 1000)


@pytest.fixture
def running(context):
    servers: list[Running] = []

    def start(registry: protocol.ActionRegistry, ping=None) -> Running:
        servers.append(Running(context, registry, ping))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def echo_registry() -> protocol.ActionRegistry:
    registry = protocol.ActionRegistry()
    registry.register("members.state", lambda data, ctx: {"seen": data})
    return registry


def test_a_deeply_nested_frame_gets_bad_frame_and_the_loop_serves_on(running):
    served = running(echo_registry())
    assert served.ask(b"[" * 100_000).error["code"] == protocol.BAD_FRAME
    _, frame = protocol.encode_request("members.state", {"k": 1}, 1000)
    assert served.ask(frame).data == {"seen": {"k": 1}}
    assert served.errors == []


def test_a_message_the_loop_fails_on_is_dropped_and_the_loop_serves_on(running):
    calls = []

    def ping():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("ping info broke once")
        return {"pong": True}

    served = running(echo_registry(), ping=ping)
    sock = served.context.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(served.endpoint)
    sock.send(protocol.encode_request("ping", {}, 1000)[1])
    _, frame = protocol.encode_request("ping", {}, 1000)
    assert served.ask(frame).data == {"pong": True}
    assert served.errors == []
    sock.close(linger=0)


def test_each_frame_is_decoded_once(running, monkeypatch):
    decoded = []
    real = protocol.decode_request

    def counting(frame):
        decoded.append(frame)
        return real(frame)

    monkeypatch.setattr(protocol, "decode_request", counting)
    served = running(echo_registry())
    for action in ("ping", "members.state"):
        decoded.clear()
        _, frame = protocol.encode_request(action, {}, 1000)
        assert served.ask(frame).ok
        assert decoded == [frame]


def test_a_dispatch_that_raises_still_gets_a_reply_and_leaves_nothing_in_flight(running):
    class Broken(protocol.ActionRegistry):
        def serve(self, request, received_at=None):
            raise OverflowError("what a 10**400 deadline used to do")

    registry = Broken()
    registry.register("members.state", lambda data, ctx: {})
    served = running(registry)
    _, frame = protocol.encode_request("members.state", {}, 1000)
    reply = served.ask(frame)
    assert (reply.error["code"], reply.error["status"]) == (protocol.INTERNAL_ERROR, 500)
    assert served.server.in_flight == 0


def test_the_server_passes_the_time_a_request_arrived(running):
    seen = []

    class Recording(protocol.ActionRegistry):
        def serve(self, request, received_at=None):
            seen.append(received_at)
            return super().serve(request, received_at)

    ticks = itertools.count(100)
    registry = Recording(clock=lambda: float(next(ticks)))
    registry.register("members.state", lambda data, ctx: {})
    served = running(registry)
    _, frame = protocol.encode_request("members.state", {}, 1000)
    # The clock moves a second per reading: stamped on arrival, the deadline
    # (1 s) has passed by the time the pool thread looks.
    reply = served.ask(frame)
    assert seen and seen[0] is not None
    assert reply.error["code"] == protocol.DEADLINE_EXCEEDED


def test_a_reply_nobody_can_take_is_dropped_and_the_pool_thread_ends(context, caplog):
    server = WorkerServer(
        f"inproc://test-server-{next(_endpoints)}", echo_registry(), threads=1, ping=dict, context=context
    )
    request = protocol.decode_request(protocol.encode_request("members.state", {}, 1000)[1])

    def pool_thread() -> None:
        # A PUSH socket without a peer, as after the loop closed its PULL end: a
        # blocking send would wait forever (and Python would wait for it at exit).
        push = context.socket(zmq.PUSH)
        push.setsockopt(zmq.LINGER, 0)
        server._local.push = push
        try:
            server._run([b"peer", b""], request, None)
        finally:
            push.close(linger=0)

    worker = threading.Thread(target=pool_thread, daemon=True)
    worker.start()
    worker.join(REPLY_WAIT_MS / 1000)
    assert not worker.is_alive()
    assert "reply to members.state dropped" in caplog.text


def test_leaving_with_unfinished_requests_exits_at_once():
    exits = []
    entry.leave_unfinished(2, exit_now=exits.append)
    assert exits == [0]


class LateRegistry(Running):
    """A server bound and looping before its registry exists (the worker's start-up)."""

    def __init__(self, context: zmq.Context):
        super().__init__(context, None)


def _send(served: Running, action: str, deadline_ms: int) -> zmq.Socket:
    sock = served.context.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(served.endpoint)
    sock.send(protocol.encode_request(action, {"k": 1}, deadline_ms)[1])
    return sock


def _until_taken(served: Running) -> None:
    """Until the loop has handed the request to a pool thread (which waits for the registry)."""
    for _ in range(REPLY_WAIT_MS):
        if served.server.in_flight:
            return
        threading.Event().wait(0.001)
    raise AssertionError("the loop never took the request")


def _reply(sock: zmq.Socket) -> protocol.Reply:
    try:
        assert sock.poll(REPLY_WAIT_MS), "no reply"
        return protocol.decode_reply(sock.recv_multipart())
    finally:
        sock.close(linger=0)


def test_pings_are_answered_before_the_registry_is_attached(context):
    served = LateRegistry(context)
    try:
        assert served.ask(protocol.encode_request("ping", {}, 1000)[1]).data == {"pong": True}
    finally:
        served.stop()


def test_a_request_before_attach_waits_for_the_registry_and_is_served_by_it(context):
    served = LateRegistry(context)
    try:
        waiting = _send(served, "members.state", 10_000)
        _until_taken(served)
        served.server.attach(echo_registry())
        assert _reply(waiting).data == {"seen": {"k": 1}}
    finally:
        served.stop()


def test_a_request_whose_deadline_passes_before_attach_gets_deadline_exceeded(context):
    served = LateRegistry(context)
    try:
        reply = _reply(_send(served, "members.state", 1))
        assert reply.error["code"] == protocol.DEADLINE_EXCEEDED
        assert reply.error["status"] == 504
    finally:
        served.stop()


def test_abandon_refuses_waiting_requests_and_ends_the_loop(context):
    served = LateRegistry(context)
    waiting = _send(served, "members.state", 10_000)
    _until_taken(served)
    served.server.abandon()
    assert _reply(waiting).error["code"] == protocol.SHUTTING_DOWN
    served.thread.join(REPLY_WAIT_MS / 1000)
    assert not served.thread.is_alive()
    assert served.errors == []
