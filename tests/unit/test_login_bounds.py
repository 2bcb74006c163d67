"""Anonymous login starts are bounded (issue 16, finding 7): a per-client rate limit
(429 ``LOGIN_RATE_LIMITED`` with ``Retry-After``), a cap on pending states (503
``LOGIN_STATES_FULL``), and no session row for a login that has only started."""

from __future__ import annotations

import pytest

from tests.unit.test_web_auth import Env
from web import sessions as sessions_mod
from web.auth import LOGIN_BURST
from web.client_limit import ClientRateLimiter


def count(env, table: str) -> int:
    with env.store.read() as conn:
        return conn.execute(f"SELECT COUNT(*) AS n FROM {table}").fetchone()["n"]


def start(env, client: str):
    return env.client.simulate_get("/api/patreon/auth/url", remote_addr=client)


@pytest.fixture
def env(tmp_path):
    return Env(tmp_path, {"LOGIN_RATE_LIMIT_PER_MINUTE": "6"})


def test_one_client_is_limited_and_another_is_not(env):
    answers = [start(env, "198.51.100.7") for _ in range(LOGIN_BURST + 5)]
    assert [a.status_code for a in answers[:LOGIN_BURST]] == [200] * LOGIN_BURST
    limited = answers[LOGIN_BURST:]
    assert {a.status_code for a in limited} == {429}
    assert all(a.json["code"] == "LOGIN_RATE_LIMITED" for a in limited)
    assert all(1 <= int(a.headers["Retry-After"]) <= 10 for a in limited)  # 6 a minute: one each 10 s
    assert start(env, "198.51.100.8").status_code == 200
    # Only the accepted starts wrote anything, and none of them a session.
    assert (count(env, "sessions"), count(env, "oauth_states")) == (0, LOGIN_BURST + 1)
    # The redirect route shares the bucket.
    redirect = env.client.simulate_get("/auth/patreon", remote_addr="198.51.100.7")
    assert redirect.status_code == 429 and redirect.json["code"] == "LOGIN_RATE_LIMITED"


def test_the_bucket_refills_at_the_rate():
    now = [0.0]
    limiter = ClientRateLimiter(60, 2, clock=lambda: now[0])
    assert [limiter.wait_s("a") for _ in range(3)] == [0.0, 0.0, 1.0]
    now[0] += 1.0
    assert limiter.wait_s("a") == 0.0
    assert limiter.wait_s("a") == pytest.approx(1.0)


def test_pending_states_are_capped(env, monkeypatch):
    monkeypatch.setattr(sessions_mod, "MAX_STATES", 3)
    codes = [start(env, f"203.0.113.{i}").status_code for i in range(5)]
    assert codes == [200, 200, 200, 503, 503]
    full = start(env, "203.0.113.99")
    assert full.json["code"] == "LOGIN_STATES_FULL" and full.headers["Retry-After"].isdigit()
    assert count(env, "oauth_states") == 3
    env.clock.now += sessions_mod.STATE_TTL_S + 1  # they expire: logins start again
    assert start(env, "203.0.113.100").status_code == 200
    assert count(env, "oauth_states") == 1
