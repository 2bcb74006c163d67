"""Leases (store.leases, worker.lease_holder): one holder at a time, renewal, takeover
after expiry, and the fence that keeps a stalled holder's commit out."""

from __future__ import annotations

import pytest

from store import leases
from store.database import Store
from worker.lease_holder import LeaseHolder


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "bridge.sqlite3")
    store.migrate()
    return store


def test_one_holder_at_a_time_and_takeover_only_after_expiry(store):
    now = 1000.0
    assert leases.acquire(store, "member-sync", "a", 10, now)
    assert not leases.acquire(store, "member-sync", "b", 10, now + 5)
    assert leases.acquire(store, "member-sync", "a", 10, now + 5)  # ours: renewed to 1015
    assert not leases.acquire(store, "member-sync", "b", 10, now + 14)
    assert leases.acquire(store, "member-sync", "b", 10, now + 16)  # a died: taken over
    assert leases.get(store, "member-sync").holder == "b"
    assert not leases.renew(store, "member-sync", "a", 10, now + 17)
    leases.release(store, "member-sync", "a")  # not a's any more: no effect
    assert leases.get(store, "member-sync").holder == "b"
    leases.release(store, "member-sync", "b")
    assert leases.get(store, "member-sync") is None
    assert leases.acquire(store, "member-sync", "a", 10, now + 18)


def test_lease_holder_renews_when_half_spent_and_fences_after_a_takeover(store):
    clock = Clock()
    a = LeaseHolder(store, "event-consumer", "a", 20, clock=clock)
    b = LeaseHolder(store, "event-consumer", "b", 20, clock=clock)
    assert a.try_take() and not b.try_take()
    clock.now += 5
    assert a.keep() and leases.get(store, "event-consumer").expires_at == clock.now - 5 + 20  # no write
    clock.now += 6
    assert a.keep() and leases.get(store, "event-consumer").expires_at == clock.now + 20  # renewed
    clock.now += 21  # a stalled (SIGSTOP) past its lease
    assert b.try_take()
    with store.transaction() as conn:
        assert not a.fence_in(conn) and b.fence_in(conn)
    assert not a.keep()  # a learns it lost the lease
    b.release()
    assert a.try_take()
