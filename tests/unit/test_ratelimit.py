"""The outgoing rate limiter, on a fake clock: windows, waiting within a deadline,
failing fast beyond it, Patreon's 429 pause, and exact counting under threads."""

from __future__ import annotations

import threading

import pytest

from patreon_client.errors import PatreonError
from patreon_client.ratelimit import BUSY_POLL_S, RateLimiter
from worker.errors import wire_error


class FakeTime:
    """A clock that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def clock(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            self.now += seconds


@pytest.fixture
def time_():
    return FakeTime()


def limiter(time_: FakeTime, per_2_seconds: int = 3, per_minute: int = 5) -> RateLimiter:
    return RateLimiter(per_2_seconds, per_minute, clock=time_.clock, sleep=time_.sleep)


def use(lim: RateLimiter, key, deadline: float) -> None:
    with lim.slot(key, deadline):
        pass


def test_under_the_limit_nobody_waits(time_):
    lim = limiter(time_)
    for _ in range(3):
        use(lim, "a", time_.now + 10)
    assert time_.slept == []


def test_the_next_call_waits_until_the_oldest_answer_leaves_the_client_window(time_):
    lim = limiter(time_)
    use(lim, "a", time_.now + 10)
    time_.now += 0.5
    use(lim, "b", time_.now + 10)
    use(lim, "c", time_.now + 10)
    use(lim, "d", time_.now + 10)  # the 4th within 2 s: waits for the 1st to age out
    assert time_.slept == [pytest.approx(1.5)]


def test_a_wait_beyond_the_deadline_fails_at_once_with_retry_after(time_):
    lim = limiter(time_)
    for key in "abc":
        use(lim, key, time_.now + 10)
    with pytest.raises(PatreonError) as caught:
        use(lim, "d", time_.now + 1.0)
    assert wire_error(caught.value).code == "RATE_LIMITED"
    assert wire_error(caught.value).status == 429
    assert wire_error(caught.value).retry_after == 2
    assert time_.slept == []


def test_per_token_minute_window_is_per_token(time_):
    lim = limiter(time_, per_2_seconds=100, per_minute=2)
    use(lim, "alice", time_.now + 5)
    use(lim, "alice", time_.now + 5)
    use(lim, "bob", time_.now + 5)  # another token: its own window
    with pytest.raises(PatreonError) as caught:
        use(lim, "alice", time_.now + 5)
    assert wire_error(caught.value).retry_after == 60
    use(lim, "alice", time_.now + 61)  # fits a longer deadline: waits the minute out
    assert time_.slept == [pytest.approx(60.0)]


def test_token_endpoint_calls_count_against_the_client_window_only(time_):
    lim = limiter(time_, per_2_seconds=3, per_minute=1)
    use(lim, None, time_.now + 5)
    use(lim, None, time_.now + 5)
    use(lim, "alice", time_.now + 5)  # the token window is untouched by the two above
    with pytest.raises(PatreonError):
        use(lim, None, time_.now + 1)  # but the client window is full


def test_slots_in_flight_keep_the_window_full_until_answered(time_):
    lim = limiter(time_, per_2_seconds=2)
    lim.acquire("a", time_.now + 10)
    lim.acquire("b", time_.now + 10)
    time_.now += 5  # long after: still in flight, still counted
    with pytest.raises(PatreonError) as caught:
        lim.acquire("c", time_.now + 0.2)
    assert wire_error(caught.value).code == "RATE_LIMITED"
    # It polled (nobody can say when an unanswered slot frees up), then gave up at the deadline.
    assert all(0 < s <= BUSY_POLL_S + 1e-9 for s in time_.slept)
    assert sum(time_.slept) == pytest.approx(0.2)
    lim.release("a")
    time_.now += 2.0
    lim.acquire("c", time_.now + 1)  # the answered one aged out


def test_a_slot_ages_from_its_answer_not_from_its_request(time_):
    lim = limiter(time_, per_2_seconds=1)
    lim.acquire("a", time_.now + 10)
    time_.now += 1.9  # a slow answer
    lim.release("a")
    time_.sleep(0)
    use(lim, "b", time_.now + 10)
    assert time_.slept[-1] == pytest.approx(2.0)  # waited 2 s from the answer


def test_pause_after_patreon_429_holds_the_token_back(time_):
    lim = limiter(time_, per_2_seconds=100, per_minute=100)
    lim.pause("alice", 7)
    with pytest.raises(PatreonError) as caught:
        use(lim, "alice", time_.now + 3)
    assert wire_error(caught.value).retry_after == 7
    use(lim, "bob", time_.now + 3)  # others go on
    use(lim, "alice", time_.now + 10)
    assert time_.slept == [pytest.approx(7.0)]


def test_exactly_the_limit_gets_through_when_many_threads_race(time_):
    lim = limiter(time_, per_2_seconds=95, per_minute=10_000)
    granted, refused = [], []
    barrier = threading.Barrier(200)

    def take() -> None:
        barrier.wait()
        try:
            lim.acquire("creator", deadline=time_.now)  # no time to wait
        except PatreonError:
            refused.append(1)
        else:
            granted.append(1)

    threads = [threading.Thread(target=take) for _ in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(granted) == 95
    assert len(refused) == 105
