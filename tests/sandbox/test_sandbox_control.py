"""The /_sandbox control API: members, faults, tokens, state, and its error replies."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from sandbox.settings import SandboxSettings, live_mode, read_environment

ROOT = Path(__file__).resolve().parents[2]


def control(client, method, path, body=None, status=None):
    result = client.simulate_request(method, f"/_sandbox{path}", json=body)
    if status is not None:
        assert result.status_code == status, result.text
    return result


# ------------------------------------------------------------------ members


def test_member_lifecycle_changes_what_the_api_returns(client, oauth):
    created = control(client, "POST", "/members", {"email": "new@example.com", "full_name": "New Fan"}, 201)
    member = created.json
    assert member["patron_status"] == "active_patron" and member["email"] == "new@example.com"
    fields = "fields%5Bmember%5D=patron_status,last_charge_status,currently_entitled_amount_cents,email"
    api = oauth.get(f"/members/{member['id']}", query=fields).json["data"]["attributes"]
    assert api == {
        "patron_status": "active_patron",
        "last_charge_status": "Paid",
        "currently_entitled_amount_cents": 100,
        "email": "new@example.com",
    }
    upgraded = control(client, "POST", f"/members/{member['id']}/upgrade", {"tier_id": "3003"}, 200)
    assert upgraded.json["tier_ids"] == ["3003"]
    control(client, "POST", f"/members/{member['id']}/decline", None, 200)
    api = oauth.get(f"/members/{member['id']}", query=fields).json["data"]["attributes"]
    assert api["patron_status"] == "declined_patron" and api["last_charge_status"] == "Declined"
    control(client, "DELETE", f"/members/{member['id']}", None, 200)
    assert oauth.get(f"/members/{member['id']}").status_code == 404
    assert control(client, "GET", f"/members/{member['id']}").status_code == 404


def test_upgrade_defaults_to_the_next_tier_and_stops_at_the_top(client):
    member_id = control(client, "POST", "/members", {}, 201).json["id"]
    tiers = [
        control(client, "POST", f"/members/{member_id}/upgrade", {}, 200).json["tier_ids"] for _ in range(3)
    ]
    assert tiers == [["3002"], ["3003"], ["3004"]]
    top = control(client, "POST", f"/members/{member_id}/upgrade", {}, 400).json
    assert top["code"] == "no_higher_tier"


def test_an_existing_user_can_become_a_member_once(client):
    user_id = control(client, "POST", "/members", {}, 201).json["user_id"]
    assert control(client, "POST", "/members", {"user_id": user_id}, 409).json["code"] == "already_member"
    assert control(client, "POST", "/members", {"user_id": "1"}, 409).json["code"] == "already_member"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("POST", "/members", {"tier_id": "42"}, 400, "unknown_tier"),
        ("POST", "/members", {"email": "not an email"}, 400, "bad_email"),
        ("POST", "/members", {"email": 5}, 400, "bad_email"),
        ("POST", "/members", {"user_id": "99999"}, 404, "unknown_user"),
        ("POST", "/members/nope/upgrade", {}, 404, "unknown_member"),
        ("POST", "/members/nope/decline", None, 404, "unknown_member"),
        ("DELETE", "/members/nope", None, 404, "unknown_member"),
        ("PATCH", "/posts/1", {}, 404, "unknown_post"),
        ("POST", "/events", {"trigger": "pledges:create", "id": "x"}, 400, "bad_event"),
        ("POST", "/faults", {"path": "/_sandbox/state", "status": 500}, 400, "bad_path"),
        ("POST", "/faults", {"path": "/api/oauth2/v2/identity"}, 400, "empty_fault"),
        ("POST", "/faults", {"path": "/api", "status": 200}, 400, "bad_status"),
        ("POST", "/faults", {"path": "/api", "status": 500, "match": "glob"}, 400, "bad_match"),
        ("DELETE", "/faults/f999", None, 404, "unknown_fault"),
        ("POST", "/tokens/expire", {}, 400, "bad_request"),
        ("POST", "/tokens/expire", {"access_token": "nope"}, 404, "unknown_token"),
        ("POST", "/tokens/revoke", {"token": "nope"}, 404, "unknown_token"),
        ("GET", "/deliveries?limit=0", None, 400, "bad_limit"),
    ],
)
def test_bad_control_input_gets_a_json_error_with_a_code(client, method, path, body, status, code):
    path, _, query = path.partition("?")
    result = client.simulate_request(method, f"/_sandbox{path}", json=body, query_string=query)
    assert result.status_code == status, result.text
    assert result.json["code"] == code and result.json["error"]


def test_bad_json_and_unknown_routes(client):
    result = client.simulate_post(
        "/_sandbox/members", body="{nope", headers={"Content-Type": "application/json"}
    )
    assert (result.status_code, result.json["code"]) == (400, "bad_json")
    missing = client.simulate_get("/_sandbox/nothing")
    assert missing.status_code == 404 and set(missing.json) == {"error", "code"}
    wrong_method = client.simulate_put("/_sandbox/state")
    assert wrong_method.status_code == 405 and set(wrong_method.json) == {"error", "code"}


def test_index_documents_every_endpoint(client):
    endpoints = control(client, "GET", "", None, 200).json["endpoints"]
    listed = {(e["method"], e["path"]) for e in endpoints}
    assert ("POST", "/_sandbox/members/{member_id}/upgrade") in listed
    assert ("POST", "/_sandbox/faults") in listed and ("GET", "/_sandbox/state") in listed
    assert all(e["doc"] for e in endpoints)


# ------------------------------------------------------------------ faults


def test_injected_errors_hit_the_next_count_requests_then_stop(client, oauth):
    fault = control(
        client, "POST", "/faults", {"path": "/api/oauth2/v2/campaigns", "status": 503, "count": 2}, 201
    ).json
    assert fault["id"].startswith("f")
    first = oauth.get("/campaigns/1001")
    assert first.status_code == 503 and first.headers["Retry-After"] == "1"
    assert first.json["errors"][0]["status"] == "503"
    assert oauth.get("/campaigns").status_code == 503
    assert oauth.get("/campaigns").status_code == 200
    assert oauth.get("/identity").status_code == 200
    assert control(client, "GET", "/faults", None, 200).json["faults"] == []


def test_injected_429_is_shaped_like_patreons_but_not_counted_as_throttled(client, oauth):
    control(
        client,
        "POST",
        "/faults",
        {"path": "/api/oauth2/v2/identity", "match": "exact", "status": 429, "retry_after": 7},
        201,
    )
    result = oauth.get("/identity")
    assert result.status_code == 429 and result.headers["Retry-After"] == "7"
    error = result.json["errors"][0]
    assert error["code_name"] == "RequestThrottled" and error["retry_after_seconds"] == 7
    state = control(client, "GET", "/state", None, 200).json
    assert state["throttled"] == 0 and state["injected"] == 1


def test_faults_until_cleared_latency_and_token_endpoint(client, oauth, sleeps):
    control(client, "POST", "/faults", {"path": "/api/oauth2/token", "status": 500, "count": None}, 201)
    assert [oauth.refresh("x").status_code for _ in range(3)] == [500, 500, 500]
    assert control(client, "DELETE", "/faults", None, 200).json == {"cleared": 1}
    assert oauth.refresh("x").status_code == 401
    control(client, "POST", "/faults", {"path": "/api/oauth2/v2/", "latency_ms": 250}, 201)
    assert oauth.get("/identity").status_code == 200
    assert sleeps == [0.25]
    assert control(client, "GET", "/state", None, 200).json["delayed"] == 1


def test_a_fault_can_dictate_the_body_and_be_deleted(client, oauth):
    body = {"error": "invalid_grant"}
    fault = control(
        client, "POST", "/faults", {"path": "/api/oauth2/token", "status": 401, "count": 5, "body": body}, 201
    ).json
    assert oauth.refresh("x").json == body
    control(client, "DELETE", f"/faults/{fault['id']}", None, 200)
    assert control(client, "GET", "/faults", None, 200).json["faults"] == []


# ------------------------------------------------------------------ tokens


def test_expire_one_token_then_refresh(client, oauth):
    token = oauth.login()
    assert control(client, "POST", "/tokens/expire", {"access_token": token["access_token"]}, 200).json == {
        "expired": 1
    }
    assert oauth.get("/identity", token=token["access_token"]).status_code == 401
    assert oauth.get("/identity").status_code == 200  # the creator's own pair is untouched
    assert oauth.refresh(token["refresh_token"]).status_code == 200


def test_expire_by_user_and_all(client, oauth):
    token = oauth.login(user_id="2")
    control(client, "POST", "/tokens/expire", {"user_id": "2"}, 200)
    assert oauth.get("/identity", token=token["access_token"]).status_code == 401
    assert oauth.get("/identity").status_code == 200
    control(client, "POST", "/tokens/expire", {"all": True}, 200)
    assert oauth.get("/identity").status_code == 401


def test_revoke_kills_access_and_refresh(client, oauth):
    token = oauth.login()
    rotated = oauth.refresh(token["refresh_token"]).json
    revoked = control(client, "POST", "/tokens/revoke", {"token": token["access_token"]}, 200).json
    assert revoked == {"revoked": 2}  # the whole family: the original and the rotated pair
    assert oauth.get("/identity", token=rotated["access_token"]).status_code == 401
    assert oauth.refresh(rotated["refresh_token"]).json == {"error": "invalid_grant"}


def test_revoke_by_user(client, oauth):
    token = oauth.login(user_id="3")
    control(client, "POST", "/tokens/revoke", {"user_id": "3"}, 200)
    assert oauth.refresh(token["refresh_token"]).json == {"error": "invalid_grant"}


# ------------------------------------------------------------------ state


def test_state_counts_and_reset(client, oauth):
    oauth.login()
    oauth.get("/identity")
    oauth.get("/campaigns")
    state = control(client, "GET", "/state", None, 200).json
    assert state["members"] == 60 and state["campaign_id"] == "1001"
    assert state["token_grants"] == {"authorization_code": 1, "refresh_token": 0}
    assert state["api_requests"] == 2
    assert state["requests"] == 4  # authorize POST, token, two API calls
    assert state["deliveries"] == {"attempted": 0, "succeeded": 0, "failed": 0, "queued": 0}
    reset = control(client, "POST", "/state/reset-counters", None, 200).json
    assert reset["requests"] == 0 and reset["token_grants"]["authorization_code"] == 0
    assert reset["members"] == 60


# ------------------------------------------------------------------ entry point


def test_read_environment_and_live_mode(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "# comment\nexport SANDBOX_PORT=7001\nPATREON_CLIENT_ID='abc'\nEMPTY=\nX=\"q v\"\nY=1 # note\n"
    )
    values = read_environment({}, dotenv)
    assert values == {"SANDBOX_PORT": "7001", "PATREON_CLIENT_ID": "abc", "EMPTY": "", "X": "q v", "Y": "1"}
    assert live_mode(values) and not live_mode({"PATREON_CLIENT_ID": " "})
    assert read_environment({}, tmp_path / "missing") == {}
    assert SandboxSettings.from_env(values).port == 7001


def test_default_redirect_uris_include_patreon_redirect_uri():
    settings = SandboxSettings.from_env(
        {"PATREON_REDIRECT_URI": "https://site.example/auth/patreon/callback"}
    )
    assert settings.redirect_uris[0] == "https://site.example/auth/patreon/callback"
    assert "http://127.0.0.1:6969/auth/patreon/callback" in settings.redirect_uris


def test_supervised_in_live_mode_stands_aside_after_startsecs(tmp_path):
    (tmp_path / ".env").write_text("PATREON_CLIENT_ID=live-client\n")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "SANDBOX_PORT": "not-even-checked"}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "sandbox", "--supervised"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started >= 1.0  # longer than supervisord's startsecs
    assert "live mode" in done.stderr


def test_answer_latency_delays_the_answer_after_the_request_was_served(client, oauth, sleeps):
    # Served first, then delayed (tests/integration/test_webhook_admin.py shows a create
    # stored at Patreon while its answer is still late).
    control(client, "POST", "/faults", {"path": "/api/oauth2/v2/identity", "answer_latency_ms": 1500}, 201)
    assert oauth.get("/identity").status_code == 200
    assert sleeps == [1.5]
    assert control(client, "GET", "/state", None, 200).json["delayed"] == 1
