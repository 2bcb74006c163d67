"""WorkerPool (wire.pool): calls spread over live workers; a dead or hung one takes
only its own in-flight calls, and idempotent ones are retried on a live peer."""

from __future__ import annotations

import pytest

from wire import protocol
from wire.client import Liveness, WorkerCallError, WorkerTimeout, WorkerUnavailable
from wire.codes import PATREON_SERVICE_UNAVAILABLE, WORKER_SHUTTING_DOWN
from wire.pool import WorkerPool


class FakePeer:
    """A WorkerClient stand-in returning real Replies (or raising its real errors)."""

    def __init__(self, name: str, up: bool = True):
        self.endpoint = f"ipc:///tmp/{name}.sock"
        self.name = name
        self.liveness = Liveness()
        if up:
            self.liveness.beat_ok({"pid": hash(name) % 1000})
        self.fail: Exception | None = None
        self.calls: list[str] = []

    def reply(self, action, data, *, timeout_s=None, request_id=None, retry=True):
        self.calls.append(action)
        if self.fail is not None:
            raise self.fail
        return protocol.Reply("id", True, {"served_by": self.name}, None)

    def call(self, action, data=None, **_):
        return self.reply(action, data).payload()


def test_calls_go_round_robin_over_live_workers_only():
    a, b, c = FakePeer("a"), FakePeer("b"), FakePeer("c", up=False)
    pool = WorkerPool([], peers=[a, b, c])
    served = [pool.call("campaigns.list", {})["served_by"] for _ in range(6)]
    assert sorted(served) == ["a", "a", "a", "b", "b", "b"] and c.calls == []


@pytest.mark.parametrize(
    "failure",
    [WorkerUnavailable("connection closed"), WorkerTimeout("campaigns.list", 1.0)],
    ids=["died", "hung"],
)
def test_an_idempotent_call_is_retried_on_a_live_peer(failure):
    a, b = FakePeer("a"), FakePeer("b")
    a.fail = failure
    pool = WorkerPool([], peers=[a, b])
    assert {pool.call("campaigns.list", {})["served_by"] for _ in range(4)} == {"b"}
    assert a.calls  # a got its turn and failed


def test_a_non_idempotent_call_fails_with_its_code_and_is_not_retried():
    a, b = FakePeer("a"), FakePeer("b")
    a.fail = WorkerUnavailable("connection closed")
    pool = WorkerPool([], peers=[a, b])
    outcomes = []
    for _ in range(2):
        try:
            outcomes.append(pool.call("oauth.refresh", {})["served_by"])
        except WorkerUnavailable as ex:
            outcomes.append(ex.code)
    assert sorted(outcomes) == sorted([PATREON_SERVICE_UNAVAILABLE, "b"])
    assert a.calls.count("oauth.refresh") == 1 and b.calls.count("oauth.refresh") == 1


def test_a_stopping_worker_hands_idempotent_calls_to_its_peer():
    a, b = FakePeer("a"), FakePeer("b")
    a.fail = WorkerCallError({"code": WORKER_SHUTTING_DOWN, "message": "stopping", "status": 503})
    pool = WorkerPool([], peers=[a, b])
    assert {pool.call("members.get", {})["served_by"] for _ in range(4)} == {"b"}


def test_every_worker_down_fails_at_once_and_status_shows_each():
    a, b = FakePeer("a", up=False), FakePeer("b", up=False)
    pool = WorkerPool([], peers=[a, b])
    with pytest.raises(WorkerUnavailable):
        pool.call("campaigns.list", {})
    assert a.calls == b.calls == []
    snapshot = pool.liveness.snapshot()
    assert snapshot["available"] is False
    assert [w["name"] for w in snapshot["workers"]] == ["worker_00", "worker_01"]


def test_one_worker_keeps_the_single_client_retry_after_a_timeout():
    a = FakePeer("a")
    a.fail = WorkerTimeout("campaigns.list", 1.0)
    pool = WorkerPool([], peers=[a])
    with pytest.raises(WorkerTimeout):
        pool.call("campaigns.list", {})
    assert a.calls == ["campaigns.list", "campaigns.list"]
