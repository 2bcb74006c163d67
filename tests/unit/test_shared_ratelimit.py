"""The store-backed rate limiter (worker.shared_ratelimit): two workers, one budget."""

from __future__ import annotations

import pytest

from patreon_client.errors import RateLimited
from store import rate_slots
from store.database import Store
from worker.shared_ratelimit import SharedRateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "bridge.sqlite3")
    store.migrate()
    return store


def limiter(store: Store, clock: Clock, per_2s: int = 3, per_minute: int = 100) -> SharedRateLimiter:
    other = Store(store.path)  # its own connections, as another worker process has
    return SharedRateLimiter(other, per_2s, per_minute, wall_clock=clock, clock=clock, sleep=clock.sleep)


def test_two_workers_share_one_client_window(store):
    clock = Clock()
    a, b = limiter(store, clock), limiter(store, clock)
    for worker in (a, b, a):
        with worker.slot(None, clock.now + 0.1):
            pass
    # Three answered at t0: the fourth call, from either worker, fits only at t0 + 2 s.
    with pytest.raises(RateLimited) as caught:
        b.acquire(None, clock.now + 0.5)
    assert caught.value.retry_after == 2
    started = clock.now
    with b.slot(None, clock.now + 5):  # waits (the fake sleep moves the clock)
        pass
    assert clock.now - started == pytest.approx(2.0, abs=0.06)


def test_a_slot_in_flight_counts_until_answered_and_a_dead_workers_slot_ages_out(store):
    clock = Clock()
    a, b = limiter(store, clock, per_2s=1), limiter(store, clock, per_2s=1)
    held = a.acquire(None, clock.now + 1)  # its worker dies here: never released
    with pytest.raises(RateLimited):
        b.acquire(None, clock.now + 1)
    clock.now += rate_slots.IN_FLIGHT_MAX_S + 1
    b.release(b.acquire(None, clock.now + 1))
    assert held


def test_the_user_window_is_shared_and_keyed_by_a_hash(store):
    clock = Clock()
    a, b = limiter(store, clock, per_2s=100, per_minute=2), limiter(store, clock, per_2s=100, per_minute=2)
    a.release(a.acquire("session:cookie-value", clock.now + 1))
    b.release(b.acquire("session:cookie-value", clock.now + 1))
    with pytest.raises(RateLimited):
        a.acquire("session:cookie-value", clock.now + 1)
    b.release(b.acquire("session:another", clock.now + 1))  # another user: its own window
    with store.read() as conn:
        keys = {row["window_key"] for row in conn.execute("SELECT window_key FROM rate_slots")}
    assert not any("cookie-value" in key for key in keys)
