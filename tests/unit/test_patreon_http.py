"""PatreonHttp over a real requests.Session whose adapter answers in memory with real
``requests.Response`` objects: URLs and headers, retries only where safe, 429s,
timeouts, and what reaches the log."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from patreon_client.errors import PatreonError
from patreon_client.http import BACKOFF_S, CONNECT_TIMEOUT_S, PatreonHttp, build_session, retry_after_s
from patreon_client.ratelimit import RateLimiter
from settings.config import load_config
from settings.logs import request_id_var
from worker.errors import wire_error

NO_DOTENV = Path("/nonexistent/.env")
TOKEN = "secret-access-token-xyz"

Answer = Callable[[requests.PreparedRequest], requests.Response] | Exception | tuple


def response(
    status: int, body: Any = None, headers: dict[str, str] | None = None, raw: bytes | None = None
) -> Callable[[requests.PreparedRequest], requests.Response]:
    def build(request: requests.PreparedRequest) -> requests.Response:
        resp = requests.Response()
        resp.status_code = status
        resp.headers = CaseInsensitiveDict(headers or {})
        if raw is not None:
            resp._content = raw
        elif body is not None:
            resp._content = json.dumps(body).encode()
            resp.headers.setdefault("Content-Type", "application/json")
        else:
            resp._content = b""
        resp.url = request.url
        resp.request = request
        resp.encoding = "utf-8"
        return resp

    return build


class FakeAdapter(BaseAdapter):
    """Answers each request with the next scripted answer (a response builder or an exception)."""

    def __init__(self, answers: list):
        super().__init__()
        self.answers = list(answers)
        self.requests: list[tuple[requests.PreparedRequest, Any]] = []

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        self.requests.append((request, timeout))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer(request)

    def close(self):
        pass


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def time_():
    return FakeTime()


def make_http(time_: FakeTime, answers: list, **env: str) -> tuple[PatreonHttp, FakeAdapter, RateLimiter]:
    config = load_config({"PATREON_USER_AGENT": "Bridge Test (unit)", **env}, NO_DOTENV)
    adapter = FakeAdapter(answers)
    session = requests.Session()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    limiter = RateLimiter(95, 90, clock=time_.clock, sleep=time_.sleep)
    http = PatreonHttp(config, limiter, session=session, clock=time_.clock, sleep=time_.sleep)
    return http, adapter, limiter


def test_get_sends_encoded_brackets_user_agent_and_bearer_within_the_deadline(time_):
    http, adapter, _ = make_http(time_, [response(200, {"data": []})])
    result = http.request(
        "GET",
        "/api/oauth2/v2/campaigns/1001/members",
        deadline=time_.now + 30,
        token=TOKEN,
        rate_key="creator",
        params={"fields[member]": "full_name,email", "page[count]": "1000"},
    )
    assert result.status == 200 and result.body == {"data": []}
    request, timeout = adapter.requests[0]
    assert request.url.endswith(
        "/api/oauth2/v2/campaigns/1001/members?fields%5Bmember%5D=full_name,email&page%5Bcount%5D=1000"
    )
    assert request.headers["User-Agent"] == "Bridge Test (unit)"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert timeout == (CONNECT_TIMEOUT_S, 20.0)


def test_connect_and_read_timeouts_together_fit_before_the_deadline(time_):
    http, adapter, _ = make_http(time_, [response(200, {"data": {}}), response(200, {"data": {}})])
    http.request("GET", "/x", deadline=time_.now + 2.5)
    assert adapter.requests[0][1] == (1.25, 1.25)
    http.request("GET", "/x", deadline=time_.now + 10)
    assert adapter.requests[1][1] == (CONNECT_TIMEOUT_S, 10 - CONNECT_TIMEOUT_S)


def test_form_post_is_form_encoded_and_has_no_bearer(time_):
    http, adapter, _ = make_http(time_, [response(200, {"access_token": "a"})])
    http.request("POST", "/api/oauth2/token", deadline=time_.now + 5, form={"grant_type": "refresh_token"})
    request = adapter.requests[0][0]
    assert request.body == b"grant_type=refresh_token"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert "Authorization" not in request.headers


def test_get_is_retried_with_backoff_on_5xx_and_timeouts(time_):
    http, adapter, _ = make_http(
        time_, [response(503), requests.ReadTimeout("read timed out"), response(200, {"data": {}})]
    )
    assert http.request("GET", "/x", deadline=time_.now + 30).status == 200
    assert len(adapter.requests) == 3
    assert time_.slept == list(BACKOFF_S)


def test_get_gives_up_after_three_attempts_with_502(time_):
    http, adapter, _ = make_http(time_, [response(500), response(502), response(504)])
    with pytest.raises(PatreonError) as caught:
        http.request("GET", "/x", deadline=time_.now + 30)
    assert (wire_error(caught.value).status, wire_error(caught.value).code) == (502, "PATREON_UPSTREAM_ERROR")
    assert len(adapter.requests) == 3


def test_no_retry_when_the_deadline_has_no_room_for_it(time_):
    http, adapter, _ = make_http(time_, [response(503), response(200, {})])
    with pytest.raises(PatreonError) as caught:
        http.request("GET", "/x", deadline=time_.now + 0.6)
    assert wire_error(caught.value).code == "PATREON_UPSTREAM_ERROR"
    assert len(adapter.requests) == 1


def test_writes_are_never_retried(time_):
    http, adapter, _ = make_http(time_, [response(503), response(201, {"data": {}})])
    with pytest.raises(PatreonError) as caught:
        http.request("POST", "/api/oauth2/v2/webhooks", deadline=time_.now + 30, json_body={"data": {}})
    assert wire_error(caught.value).status == 502
    assert len(adapter.requests) == 1


def test_a_lost_connection_on_a_write_is_502_not_retried(time_):
    http, adapter, _ = make_http(time_, [requests.ConnectionError("reset"), response(204)])
    with pytest.raises(PatreonError) as caught:
        http.request("DELETE", "/api/oauth2/v2/webhooks/1", deadline=time_.now + 30)
    assert wire_error(caught.value).code == "PATREON_UPSTREAM_ERROR"
    assert isinstance(caught.value.__cause__, requests.ConnectionError)
    assert len(adapter.requests) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_a_4xx_is_returned_once_never_retried(time_, status):
    http, adapter, _ = make_http(
        time_, [response(status, {"errors": [{"status": str(status)}]}), response(200, {})]
    )
    result = http.request("GET", "/x", deadline=time_.now + 30)
    assert result.status == status
    assert len(adapter.requests) == 1


def test_429_honours_retry_after_header_and_pauses_that_token(time_):
    body = {"errors": [{"code_name": "RequestThrottled", "retry_after_seconds": 99}]}
    http, adapter, limiter = make_http(time_, [response(429, body, {"Retry-After": "7"})])
    with pytest.raises(PatreonError) as caught:
        http.request("GET", "/x", deadline=time_.now + 30, token=TOKEN, rate_key="alice")
    assert (wire_error(caught.value).status, wire_error(caught.value).code, wire_error(caught.value).retry_after) == (429, "RATE_LIMITED", 7)
    assert len(adapter.requests) == 1  # a 429 is not retried blindly
    with pytest.raises(PatreonError) as held:
        limiter.acquire("alice", time_.now + 3)  # the token is held back for 7 s
    assert wire_error(held.value).retry_after == 7
    limiter.acquire("bob", time_.now + 3)


def test_429_without_header_uses_retry_after_seconds_from_the_body(time_):
    body = {"errors": [{"code_name": "RequestThrottled", "retry_after_seconds": 12}]}
    http, _, _ = make_http(time_, [response(429, body)])
    with pytest.raises(PatreonError) as caught:
        http.request("GET", "/x", deadline=time_.now + 30)
    assert wire_error(caught.value).retry_after == 12


def test_retry_after_parsing():
    def parsed(headers, body=None):
        from patreon_client.http import PatreonResponse

        return retry_after_s(PatreonResponse(429, CaseInsensitiveDict(headers), body, None), now_epoch=0)

    assert parsed({"Retry-After": "3"}) == 3
    assert parsed({"Retry-After": "Thu, 01 Jan 1970 00:00:09 GMT"}) == 9
    assert parsed({}, {"retry_after_seconds": 4}) == 4
    assert parsed({}, {"errors": "nonsense"}) == 1  # unknown: a second


def test_an_unreadable_retry_after_falls_back_to_the_body():
    from patreon_client.http import PatreonResponse

    def parsed(value, body=None):
        response_ = PatreonResponse(429, CaseInsensitiveDict({"Retry-After": value}), body, None)
        return retry_after_s(response_, now_epoch=0)

    assert parsed("soon", {"retry_after_seconds": 6}) == 6
    assert parsed("soon") == 1
    assert parsed("Mon, 99 Foo 99999999999 00:00:00 GMT", {"retry_after_seconds": 5}) == 5


def test_a_retry_after_date_without_a_zone_is_utc(monkeypatch):
    import time

    from patreon_client.http import PatreonResponse

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        headers = CaseInsensitiveDict({"Retry-After": "Thu, 01 Jan 1970 00:00:09 -0000"})
        assert retry_after_s(PatreonResponse(429, headers, None, None), now_epoch=0) == 9
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_429_with_an_unreadable_retry_after_is_still_a_429(time_):
    body = {"errors": [{"code_name": "RequestThrottled", "retry_after_seconds": 4}]}
    http, _, _ = make_http(time_, [response(429, body, {"Retry-After": "soon"})])
    with pytest.raises(PatreonError) as caught:
        http.request("GET", "/x", deadline=time_.now + 10, rate_key="creator")
    assert (wire_error(caught.value).status, wire_error(caught.value).code, wire_error(caught.value).retry_after) == (429, "RATE_LIMITED", 4)


def test_a_2xx_that_is_not_json_is_an_upstream_error(time_):
    http, _, _ = make_http(time_, [response(200, raw=b"<html>maintenance</html>")])
    with pytest.raises(PatreonError) as caught:
        http.request("GET", "/x", deadline=time_.now + 30)
    assert wire_error(caught.value).code == "PATREON_UPSTREAM_ERROR"


def test_the_log_has_path_status_and_patreon_uuid_but_no_token_or_query(time_, caplog):
    http, _, _ = make_http(time_, [response(200, {"data": []}, {"x-patreon-uuid": "uuid-1234"})])
    token = request_id_var.set("req-abc")
    try:
        with caplog.at_level(logging.INFO, logger="patreon_client.http"):
            http.request(
                "GET",
                "/api/oauth2/v2/identity",
                deadline=time_.now + 5,
                token=TOKEN,
                params={"page[cursor]": "CUR"},
            )
    finally:
        request_id_var.reset(token)
    text = caplog.text
    assert "GET /api/oauth2/v2/identity -> 200" in text
    assert "x-patreon-uuid uuid-1234" in text
    assert TOKEN not in text and "CUR" not in text and "cursor" not in text


def test_connection_errors_are_logged_without_their_text(time_, caplog):
    secret_url = "http://x/api/oauth2/token?code=THE-CODE"
    http, _, _ = make_http(time_, [requests.ConnectionError(f"failed for {secret_url}")])
    with caplog.at_level(logging.INFO), pytest.raises(PatreonError):
        http.request("POST", "/api/oauth2/token", deadline=time_.now + 5, form={"code": "THE-CODE"})
    assert "THE-CODE" not in caplog.text
    assert "ConnectionError" in caplog.text


def test_every_attempt_takes_a_rate_limit_slot(time_):
    http, _, limiter = make_http(time_, [response(503), response(200, {})])
    http.request("GET", "/x", deadline=time_.now + 30, rate_key="alice")
    assert len(limiter._client.slots) == 2


def test_the_default_session_pools_one_connection_per_worker_thread():
    session = build_session(48, "https://www.patreon.com")
    adapter = session.get_adapter("https://www.patreon.com/api/oauth2/v2/identity")
    assert adapter._pool_maxsize == 48
    assert adapter.max_retries.total == 0  # retries are ours, deadline-aware, GET-only


def test_the_environment_is_read_once_for_the_patreon_host(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "localhost")
    session = build_session(4, "https://www.patreon.com")
    assert session.trust_env is False
    assert session.proxies["https"] == "http://proxy.internal:3128"
    local = build_session(4, "http://localhost:6970")
    assert "http" not in local.proxies  # NO_PROXY honoured, as requests itself would
