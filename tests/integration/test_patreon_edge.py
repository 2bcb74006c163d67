"""Patreon's edge behaviours through the real stack, the sandbox as Patreon
(docs/sandbox.md, "Testing the bridge against Patreon's edge"): HTML 5xx and HTML 401
become 502 PATREON_UPSTREAM_ERROR, Patreon's Retry-After is passed on, the edge block
stops the worker calling and shows in /api/patreon/status, and an early-revoked
access token is refreshed exactly once."""

from __future__ import annotations

import time

import pytest
import requests

from harness.stack import Stack, body, wait_for

KEY = "integration-edge-bridge-key-00001"
SERVER = {"Authorization": f"Bearer {KEY}"}
PAUSE_S = 3  # the worker's own pause after the edge's HTML 403 (PATREON_EDGE_BLOCK_PAUSE_S)
SANDBOX_EDGE_DEFAULTS = {"threshold_4xx": 2000, "window_s": 600, "block_s": 600}


@pytest.fixture(scope="module")
def stack():
    with Stack(
        {"BRIDGE_API_KEY": KEY, "PATREON_EDGE_BLOCK_PAUSE_S": str(PAUSE_S)}, name="pb-edge"
    ) as running:
        yield running


@pytest.fixture(autouse=True)
def clean_sandbox(stack):
    yield
    stack.sandbox("DELETE", "/_sandbox/faults")
    stack.sandbox("POST", "/_sandbox/edge", json=SANDBOX_EDGE_DEFAULTS)
    stack.sandbox("DELETE", "/_sandbox/edge")
    stack.sandbox("POST", "/_sandbox/tokens/early-expiry", json={"after_s": None})
    # Whatever a test left of the worker's own pause runs out before the next test.
    wait_for(lambda: not edge_status(stack)["blocked"], PAUSE_S + 5, what="the worker's edge pause to end")


def sandbox_state(stack: Stack) -> dict:
    return body(stack.sandbox("GET", "/_sandbox/state"))


def fault(stack: Stack, **spec) -> None:
    resp = stack.sandbox("POST", "/_sandbox/faults", json=spec)
    assert resp.status_code == 201, resp.text


def edge_status(stack: Stack) -> dict:
    return body(stack.get("/api/patreon/status"))["status"]["patreon_edge"] or {"blocked": None}


def campaigns(stack: Stack) -> requests.Response:
    return stack.get("/api/patreon/campaigns", headers=SERVER, timeout=30)


def assert_error(resp: requests.Response, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text[:300]
    assert body(resp)["success"] is False and body(resp)["code"] == code, resp.text[:300]


def test_an_html_502_from_patreon_is_502_upstream_error(stack):
    before = sandbox_state(stack)["injected"]
    fault(stack, path="/api/oauth2/v2/", status=502, html=True, count=None)
    resp = campaigns(stack)
    assert_error(resp, 502, "PATREON_UPSTREAM_ERROR")
    assert "Retry-After" not in resp.headers  # Patreon sent none
    assert sandbox_state(stack)["injected"] - before == 3  # a read is tried three times
    stack.sandbox("DELETE", "/_sandbox/faults")
    assert campaigns(stack).status_code == 200


@pytest.mark.parametrize("html", [True, False], ids=["html", "json"])
def test_a_patreon_503_with_retry_after_passes_it_on(stack, html):
    before = sandbox_state(stack)["injected"]
    fault(stack, path="/api/oauth2/v2/", status=503, retry_after=30, html=html)
    resp = campaigns(stack)
    assert_error(resp, 502, "PATREON_UPSTREAM_ERROR")
    assert resp.headers["Retry-After"] == "30"
    # Patreon asked for 30 s: not retried behind its back.
    assert sandbox_state(stack)["injected"] - before == 1
    assert campaigns(stack).status_code == 200


def test_an_html_401_from_the_edge_is_502_and_no_refresh(stack):
    refreshes = sandbox_state(stack)["token_grants"]["refresh_token"]
    fault(stack, path="/api/oauth2/v2/", status=401, html=True)
    assert_error(campaigns(stack), 502, "PATREON_UPSTREAM_ERROR")
    assert sandbox_state(stack)["token_grants"]["refresh_token"] == refreshes
    assert campaigns(stack).status_code == 200


def held_back_while_blocked(stack: Stack) -> None:
    """The edge has blocked us: the worker's first call meets it, then none go out."""
    assert_error(campaigns(stack), 503, "PATREON_EDGE_BLOCKED")
    refused = sandbox_state(stack)["edge"]["refused"]
    status = wait_for(
        lambda: edge_status(stack)["blocked"] and edge_status(stack), 3, what="status to show it"
    )
    assert status["blocked_until"] and 0 < status["seconds_left"] <= PAUSE_S
    for path in ("/api/patreon/campaigns", "/api/patreon/posts/2001", "/api/patreon/campaigns/1001/members"):
        resp = stack.get(path, headers=SERVER, timeout=30)
        assert_error(resp, 503, "PATREON_EDGE_BLOCKED")
        assert 1 <= int(resp.headers["Retry-After"]) <= PAUSE_S
    assert sandbox_state(stack)["edge"]["refused"] == refused  # none of those reached Patreon
    # The sandbox lifts its block; the worker waits out its own pause, then calls again.
    stack.sandbox("DELETE", "/_sandbox/edge")
    wait_for(lambda: edge_status(stack)["blocked"] is False, PAUSE_S + 3, what="the pause to end")
    assert campaigns(stack).status_code == 200
    assert sandbox_state(stack)["edge"]["refused"] == refused


def test_an_edge_block_set_at_once_stops_the_worker_calling(stack):
    before = sandbox_state(stack)["edge"]
    assert stack.sandbox("POST", "/_sandbox/edge/block", json={"seconds": 30}).status_code == 200
    held_back_while_blocked(stack)
    after = sandbox_state(stack)["edge"]
    assert after["refused"] - before["refused"] == 1  # only the call that found the block
    print(f"\nedge block: {after['refused'] - before['refused']} call refused at the edge")


def test_the_edge_block_tripped_by_4xx_stops_the_worker_calling(stack):
    stack.sandbox("POST", "/_sandbox/edge", json={"threshold_4xx": 3, "window_s": 60, "block_s": 30})
    before = sandbox_state(stack)["edge"]
    for _ in range(3):
        assert_error(stack.get("/api/patreon/posts/999", headers=SERVER), 404, "NOT_FOUND")
    assert sandbox_state(stack)["edge"]["blocks"] == before["blocks"] + 1
    held_back_while_blocked(stack)
    assert sandbox_state(stack)["edge"]["refused"] - before["refused"] == 1


@pytest.mark.parametrize("how", ["early-expiry", "expire"])
def test_an_early_revoked_token_is_refreshed_once_and_the_call_succeeds(stack, how):
    assert campaigns(stack).status_code == 200  # the creator's token is fresh and in use
    refreshes = sandbox_state(stack)["token_grants"]["refresh_token"]
    if how == "early-expiry":
        stack.sandbox("POST", "/_sandbox/tokens/early-expiry", json={"after_s": 1})
        time.sleep(1.2)
    else:
        stack.sandbox("POST", "/_sandbox/tokens/expire", json={"user_id": "1"})
    resp = campaigns(stack)
    assert resp.status_code == 200, resp.text[:300]
    assert sandbox_state(stack)["token_grants"]["refresh_token"] == refreshes + 1
