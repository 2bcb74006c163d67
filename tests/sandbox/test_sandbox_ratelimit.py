"""Rate limits as Patreon documents them: per client per 2 s, per token per minute;
429 with Retry-After and a RequestThrottled body carrying retry_after_seconds."""

from __future__ import annotations

import pytest
from falcon import testing

from sandbox.ratelimit import RateLimiter, SlidingWindow


def test_sliding_window_admits_limit_events_per_window():
    window = SlidingWindow(3, 2.0)
    for t in (0.0, 0.5, 1.0):
        assert window.wait_time(t) == 0
        window.record(t)
    assert window.wait_time(1.5) == pytest.approx(0.5)  # oldest leaves at 2.0
    assert window.wait_time(2.0) == 0


def test_limiter_checks_both_windows_and_records_only_admitted(clock):
    limiter = RateLimiter(per_2_seconds=5, per_minute=3, clock=clock)
    assert all(limiter.admit("client", "token").allowed for _ in range(3))
    refused = limiter.admit("client", "token")
    assert not refused.allowed and refused.limit == "token"
    assert refused.retry_after_s == pytest.approx(60.0)
    assert limiter.admit("client", "other-token").allowed  # the client window has room
    assert limiter.admit("client", "third").allowed
    by_client = limiter.admit("client", "fourth")
    assert not by_client.allowed and by_client.limit == "client"
    clock.advance(2.0)
    assert limiter.admit("client", "fourth").allowed


@pytest.fixture
def limited(make_sandbox):
    sandbox = make_sandbox(rate_limit_per_2_seconds=5, rate_limit_per_minute=8)
    return sandbox, testing.TestClient(sandbox.app, headers={"User-Agent": "ratelimit-tests"})


def identity(client, token):
    return client.simulate_get("/api/oauth2/v2/identity", headers={"Authorization": f"Bearer {token}"})


def test_429_shape_and_headers_per_client(limited, oauth, clock):
    _, client = limited
    statuses = [identity(client, oauth.creator_token).status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    throttled = identity(client, oauth.creator_token)
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "2"
    error = throttled.json["errors"][0]
    assert error["code_name"] == "RequestThrottled"
    assert error["status"] == "429"
    assert error["retry_after_seconds"] == 2
    assert {"id", "code", "detail", "title"} <= set(error)
    clock.advance(2.0)
    assert identity(client, oauth.creator_token).status_code == 200
    assert client.simulate_get("/_sandbox/state").json["throttled"] == 2


def test_per_token_minute_window_survives_a_refresh(limited, oauth, clock):
    _, client = limited
    helper = type(oauth)(client)
    first = helper.login(scope="identity", user_id="2")
    for _ in range(4):
        assert identity(client, first["access_token"]).status_code == 200
        clock.advance(2.0)
    rotated = helper.refresh(first["refresh_token"]).json
    for _ in range(4):
        assert identity(client, rotated["access_token"]).status_code == 200
        clock.advance(2.0)
    throttled = identity(client, rotated["access_token"])
    assert throttled.status_code == 429
    retry_after = int(throttled.headers["Retry-After"])
    assert 40 <= retry_after <= 60
    assert throttled.json["errors"][0]["retry_after_seconds"] == retry_after
    # The window is per client and user (as Patreon documents): the creator's is apart.
    assert identity(client, oauth.creator_token).status_code == 200


def test_token_requests_count_toward_the_client_window(limited, oauth):
    _, client = limited
    helper = type(oauth)(client)
    statuses = [helper.refresh("unknown").status_code for _ in range(6)]
    assert statuses == [401] * 5 + [429]
    assert identity(client, oauth.creator_token).status_code == 429
