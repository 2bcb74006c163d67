"""Patreon's edge (Cloudflare) answers in HTML: PatreonHttp over an in-memory adapter
with real ``requests.Response`` objects. HTML 5xx and HTML 401 become upstream errors
(with Patreon's Retry-After when sent), the HTML 403 of the edge block stops every
call of the process for the pause, and a long 5xx Retry-After is passed on, not
retried."""

from __future__ import annotations

import pytest

from patreon_client.edge import EdgeBlock
from patreon_client.errors import EdgeBlocked, UpstreamError
from tests.unit.test_patreon_http import FakeTime, make_http, response
from worker.errors import wire_error

EDGE_PAGE = b"<!DOCTYPE html><html><head><title>Attention Required! | Cloudflare</title></head></html>"
HTML = {"Content-Type": "text/html; charset=UTF-8", "Server": "cloudflare"}


@pytest.fixture
def time_():
    return FakeTime()


def html(status: int, **headers: str):
    return response(status, headers={**HTML, **headers}, raw=EDGE_PAGE)


def test_an_html_5xx_is_retried_then_502_without_retry_after(time_):
    http, adapter, _ = make_http(time_, [html(502), html(502), html(502)])
    with pytest.raises(UpstreamError) as caught:
        http.request("GET", "/api/oauth2/v2/campaigns", deadline=time_.now + 30)
    error = wire_error(caught.value)
    assert (error.status, error.code, error.retry_after) == (502, "PATREON_UPSTREAM_ERROR", None)
    assert len(adapter.requests) == 3


@pytest.mark.parametrize("page", [True, False], ids=["html", "json"])
def test_a_503_asking_for_30_s_is_not_retried_and_its_retry_after_passed_on(time_, page):
    answer = (
        html(503, **{"Retry-After": "30"})
        if page
        else response(503, {"errors": [{"status": "503"}]}, headers={"Retry-After": "30"})
    )
    http, adapter, _ = make_http(time_, [answer, response(200, {"data": {}})])
    with pytest.raises(UpstreamError) as caught:
        http.request("GET", "/api/oauth2/v2/campaigns", deadline=time_.now + 60)
    error = wire_error(caught.value)
    assert (error.status, error.code, error.retry_after) == (502, "PATREON_UPSTREAM_ERROR", 30)
    assert len(adapter.requests) == 1 and time_.slept == []


def test_a_503_asking_for_1_s_is_waited_out_and_retried(time_):
    http, adapter, _ = make_http(
        time_, [response(503, headers={"Retry-After": "1"}), response(200, {"data": {}})]
    )
    assert http.request("GET", "/x", deadline=time_.now + 30).status == 200
    assert len(adapter.requests) == 2 and time_.slept == [1.0]


def test_an_html_401_is_an_upstream_error_not_a_token_verdict(time_):
    http, adapter, _ = make_http(time_, [html(401)])
    with pytest.raises(UpstreamError) as caught:
        http.request("GET", "/api/oauth2/v2/identity", deadline=time_.now + 30, token="t")
    assert wire_error(caught.value).code == "PATREON_UPSTREAM_ERROR"
    assert len(adapter.requests) == 1


def test_a_json_401_is_still_returned_for_the_caller_to_refresh(time_):
    http, _, _ = make_http(time_, [response(401, {"errors": [{"code_name": "Unauthorized"}]})])
    assert http.request("GET", "/api/oauth2/v2/identity", deadline=time_.now + 30, token="t").status == 401


def test_the_edge_block_stops_every_call_until_the_pause_ends(time_):
    http, adapter, _ = make_http(
        time_, [html(403), html(403), response(200, {"data": {}})], PATREON_EDGE_BLOCK_PAUSE_S="60"
    )
    with pytest.raises(EdgeBlocked) as caught:
        http.request("GET", "/api/oauth2/v2/campaigns", deadline=time_.now + 30)
    error = wire_error(caught.value)
    assert (error.status, error.code, error.retry_after) == (503, "PATREON_EDGE_BLOCKED", 60)
    # During the pause nothing is sent, for any token or endpoint, the token endpoint included.
    for path in ("/api/oauth2/v2/identity", "/api/oauth2/token", "/api/oauth2/v2/campaigns"):
        time_.now += 10
        with pytest.raises(EdgeBlocked) as caught:
            http.request("GET", path, deadline=time_.now + 30, token="other")
    assert caught.value.retry_after == 30
    assert len(adapter.requests) == 1
    state = http.edge.describe()
    assert state["blocked"] is True and state["blocks"] == 1 and state["calls_held_back"] == 3
    # After the pause, one probe: still blocked -> a new pause; then open again.
    time_.now += 31
    with pytest.raises(EdgeBlocked):
        http.request("GET", "/x", deadline=time_.now + 30)
    assert len(adapter.requests) == 2 and http.edge.describe()["blocks"] == 2
    time_.now += 61
    assert http.request("GET", "/x", deadline=time_.now + 30).status == 200
    assert http.edge.describe()["blocked"] is False and http.edge.describe()["blocked_until"] is None


def test_the_edge_pages_own_retry_after_wins_over_the_default_pause(time_):
    http, _, _ = make_http(time_, [html(403, **{"Retry-After": "7"})], PATREON_EDGE_BLOCK_PAUSE_S="600")
    with pytest.raises(EdgeBlocked) as caught:
        http.request("GET", "/x", deadline=time_.now + 30)
    assert caught.value.retry_after == 7


def test_a_json_403_is_patreons_answer_not_the_edge(time_):
    http, _, _ = make_http(
        time_, [response(403, {"errors": [{"detail": "no"}]}), response(200, {"data": {}})]
    )
    assert http.request("GET", "/x", deadline=time_.now + 30).status == 403
    assert http.request("GET", "/x", deadline=time_.now + 30).status == 200


def test_edge_block_reports_when_it_ends():
    now = [1000.0]
    edge = EdgeBlock(5.0, clock=lambda: now[0], wall=lambda: 1_800_000_000.0)
    assert edge.describe() == {
        "blocked": False,
        "blocked_until": None,
        "seconds_left": 0.0,
        "blocks": 0,
        "calls_held_back": 0,
    }
    assert edge.start() == 5.0
    assert edge.describe()["blocked_until"] == "2027-01-15T08:00:05.000Z"
