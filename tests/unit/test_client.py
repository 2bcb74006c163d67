"""The web side's worker client: liveness, timeouts, fresh sockets, retries.

The worker here is a real ZeroMQ ROUTER socket in a thread (inproc), answering with
real protocol frames, so the client sees exactly what it sees in production.
"""

from __future__ import annotations

import itertools
import json
import threading
import time

import pytest
import zmq

from wire import protocol
from wire.client import (
    Liveness,
    WorkerCallError,
    WorkerClient,
    WorkerTimeout,
    WorkerUnavailable,
)

_endpoints = itertools.count()


class FakeClock:
    def __init__(self, now: float = 1000.0, step: float = 0.0):
        self.now = now
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


class FakeWorker(threading.Thread):
    """Answers ping; for other actions obeys data["mode"]: ok, error, or silent."""

    def __init__(self, context: zmq.Context, endpoint: str):
        super().__init__(daemon=True)
        self.sock = context.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind(endpoint)
        self.received: list[protocol.Request] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            if not self.sock.poll(20):
                continue
            route_id, empty, payload = self.sock.recv_multipart()
            request = protocol.decode_request(payload)
            self.received.append(request)
            mode = request.data.get("mode", "ok")
            if mode == "silent":
                continue
            if mode == "error":
                reply = protocol.encode_error(
                    request.msg_id,
                    protocol.ActionError("RATE_LIMITED", "slow down", status=429, retry_after=7),
                )
            else:
                reply = protocol.encode_ok(request.msg_id, {"pong": True, "pid": 42, "echo": request.data})
            self.sock.send_multipart([route_id, empty, reply])

    def stop(self) -> None:
        self._halt.set()
        self.join(2)
        self.sock.close(linger=0)


@pytest.fixture
def context():
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


@pytest.fixture
def fake_worker(context):
    endpoint = f"inproc://fake-worker-{next(_endpoints)}"
    worker = FakeWorker(context, endpoint)
    worker.start()
    yield worker, endpoint
    worker.stop()


def up_liveness(clock=None) -> Liveness:
    liveness = Liveness(clock or FakeClock())
    liveness.beat_ok({"pid": 42})
    return liveness


# -- liveness -------------------------------------------------------------------


def test_liveness_starts_down_and_not_ready():
    state = Liveness(FakeClock()).snapshot()
    assert state["available"] is False and state["ready"] is False
    assert state["last_heartbeat_ms_ago"] is None


def test_three_missed_beats_mark_the_worker_down_and_one_beat_brings_it_back():
    clock = FakeClock()
    liveness = up_liveness(clock)
    generation = liveness.generation
    liveness.beat_missed()
    liveness.beat_missed()
    assert liveness.up
    liveness.beat_missed()
    assert not liveness.up
    assert liveness.generation == generation + 1
    assert liveness.reason == "3 heartbeats missed"
    clock.now += 2.5
    assert liveness.snapshot()["last_heartbeat_ms_ago"] == 2500
    liveness.beat_ok({"pid": 42})
    assert liveness.up and liveness.snapshot()["restarts"] == 0


def test_a_beat_resets_the_miss_count():
    liveness = up_liveness()
    for _ in range(5):
        liveness.beat_missed()
        liveness.beat_missed()
        liveness.beat_ok({"pid": 42})
    assert liveness.up


def test_disconnect_marks_down_at_once_and_a_new_pid_counts_as_a_restart():
    liveness = up_liveness()
    liveness.disconnected()
    assert not liveness.up and liveness.reason == "connection closed"
    liveness.beat_ok({"pid": 43})
    assert liveness.up
    assert liveness.snapshot()["restarts"] == 1
    assert liveness.snapshot()["pid"] == 43


# -- calls ------------------------------------------------------------------------


def test_call_returns_reply_data(context, fake_worker):
    worker, endpoint = fake_worker
    client = WorkerClient(endpoint, context=context, liveness=up_liveness())
    assert client.call("ping", {"x": 1}, request_id="rid-1") == {"pong": True, "pid": 42, "echo": {"x": 1}}
    assert worker.received[0].request_id == "rid-1"
    assert worker.received[0].deadline_ms == 1000


def test_error_reply_raises_call_error_with_status_and_retry_after(context, fake_worker):
    _, endpoint = fake_worker
    client = WorkerClient(endpoint, context=context, liveness=up_liveness())
    with pytest.raises(WorkerCallError) as caught:
        client.call("debug.sleep", {"mode": "error"})
    assert (caught.value.code, caught.value.status, caught.value.retry_after) == ("RATE_LIMITED", 429, 7)


def test_timeout_throws_the_socket_away_and_the_next_call_works(context, fake_worker):
    _, endpoint = fake_worker
    client = WorkerClient(endpoint, context=context, liveness=up_liveness(), clock=FakeClock(step=0.05))
    with pytest.raises(WorkerTimeout):
        client.call("debug.sleep", {"mode": "silent"}, timeout_s=1.0)
    # A REQ socket still waiting for its reply could not send again (EFSM): a fresh one can.
    assert client.call("debug.sleep", {"mode": "ok"})["pong"] is True


def test_non_idempotent_actions_are_not_retried(context, fake_worker):
    worker, endpoint = fake_worker
    client = WorkerClient(endpoint, context=context, liveness=up_liveness(), clock=FakeClock(step=0.05))
    with pytest.raises(WorkerTimeout):
        client.call("debug.sleep", {"mode": "silent"}, timeout_s=0.5)
    assert [r.action for r in worker.received] == ["debug.sleep"]


def test_idempotent_actions_are_retried_once_unless_told_not_to(context, fake_worker):
    worker, endpoint = fake_worker
    client = WorkerClient(endpoint, context=context, liveness=up_liveness(), clock=FakeClock(step=0.05))
    with pytest.raises(WorkerTimeout):
        client.call("ping", {"mode": "silent"}, timeout_s=0.5)
    assert len(worker.received) == 2
    assert worker.received[0].msg_id != worker.received[1].msg_id
    with pytest.raises(WorkerTimeout):
        client.call("ping", {"mode": "silent"}, timeout_s=0.5, retry=False)
    assert len(worker.received) == 3


def test_calls_fail_at_once_while_the_worker_is_down(context, fake_worker):
    worker, endpoint = fake_worker
    client = WorkerClient(endpoint, context=context, liveness=Liveness(FakeClock()))
    with pytest.raises(WorkerUnavailable) as caught:
        client.call("ping")
    assert caught.value.status == 503 and caught.value.code == "PATREON_SERVICE_UNAVAILABLE"
    assert worker.received == []


def test_a_waiting_call_fails_when_the_worker_goes_down(context, fake_worker):
    worker, endpoint = fake_worker
    liveness = up_liveness()
    client = WorkerClient(endpoint, context=context, liveness=liveness)
    outcome: dict = {}

    def wait_forever():
        try:
            client.call("debug.sleep", {"mode": "silent"}, timeout_s=30)
        except WorkerUnavailable as ex:
            outcome["error"] = ex

    caller = threading.Thread(target=wait_forever)
    caller.start()
    # Wait without touching the worker's socket: a ZeroMQ socket belongs to one thread
    # (polling it from here raced the worker's own recv and cut a message in two).
    deadline = time.monotonic() + 5
    while not worker.received and time.monotonic() < deadline:
        time.sleep(0.01)
    assert worker.received, "the call never reached the worker"
    liveness.disconnected()
    caller.join(5)
    assert not caller.is_alive()
    assert isinstance(outcome["error"], WorkerUnavailable)


# -- heartbeat robustness and encoding (review fixes) ----------------------------------


class PingWorker(threading.Thread):
    """Answers pings, the first ``bad`` of them with ``bad_reply(request)`` frames."""

    def __init__(self, context: zmq.Context, endpoint: str, bad_reply, bad: int = 1):
        super().__init__(daemon=True)
        self.sock = context.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind(endpoint)
        self.bad_reply, self.bad = bad_reply, bad
        self.pings = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            if not self.sock.poll(20):
                continue
            route_id, empty, payload = self.sock.recv_multipart()
            request = protocol.decode_request(payload)
            self.pings += 1
            if self.pings <= self.bad:
                frames = self.bad_reply(request)
            else:
                frames = [protocol.encode_ok(request.msg_id, {"pong": True, "pid": 42})]
            self.sock.send_multipart([route_id, empty, *frames])

    def stop(self) -> None:
        self._halt.set()
        self.join(2)
        self.sock.close(linger=0)


def run_heartbeat(context, bad_reply, liveness=None, bad: int = 1) -> tuple[Liveness, int]:
    from wire.client import Heartbeat

    endpoint = f"inproc://ping-worker-{next(_endpoints)}"
    worker = PingWorker(context, endpoint, bad_reply, bad)
    worker.start()
    liveness = liveness or Liveness()
    beat = Heartbeat(endpoint, liveness, context=context, interval_s=0.01, timeout_s=1.0)
    beat.start()
    try:
        pause = threading.Event()
        for _ in range(500):  # a bounded wait for the first good beat, not a timing check
            if liveness.up:
                break
            pause.wait(0.01)
        return liveness, worker.pings
    finally:
        beat.stop()
        beat.join(2)
        worker.stop()


def test_a_multi_frame_ping_reply_does_not_kill_the_heartbeat(context):
    liveness, pings = run_heartbeat(context, lambda request: [b"garbage", b"more", b"frames"])
    assert liveness.up and pings >= 2


def test_a_ping_reply_with_another_id_is_a_miss_and_the_heartbeat_goes_on(context):
    liveness, pings = run_heartbeat(context, lambda request: [protocol.encode_ok("other", {"pid": 1})], bad=2)
    assert liveness.up and pings >= 3


def test_an_error_inside_the_heartbeat_loop_does_not_kill_it(context):
    class FlakyLiveness(Liveness):
        failures = 1

        def beat_ok(self, pong):
            if self.failures:
                self.failures -= 1
                raise RuntimeError("a bug somewhere in the beat")
            super().beat_ok(pong)

    liveness, _ = run_heartbeat(
        context, lambda request: [protocol.encode_ok(request.msg_id, {"pid": 42})], liveness=FlakyLiveness()
    )
    assert liveness.up


def test_call_document_survives_a_lone_surrogate(context, fake_worker):
    _, endpoint = fake_worker
    client = WorkerClient(endpoint, context=context, liveness=up_liveness())
    raw = client.call_document("ping", {"name": "\ud800"})
    raw.decode("ascii")
    assert json.loads(raw)["echo"] == {"name": "\ud800"}


def test_a_document_reply_that_is_not_json_is_a_call_error(context):
    endpoint = f"inproc://ping-worker-{next(_endpoints)}"

    def document(request):
        return protocol.encode_document(request.msg_id, protocol.Document(b"[" * 100_000))

    worker = PingWorker(context, endpoint, document, bad=10)
    worker.start()
    try:
        client = WorkerClient(endpoint, context=context, liveness=up_liveness())
        with pytest.raises(WorkerCallError) as caught:
            client.call("ping")
        assert (caught.value.code, caught.value.status) == (protocol.BAD_FRAME, 502)
    finally:
        worker.stop()
