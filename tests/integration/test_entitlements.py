"""Members and entitlements through the real stack: supervisord, web, worker, sandbox.

The sandbox delivers its own signed webhooks to the bridge (``SANDBOX_WEBHOOK_URI``),
bent by its delivery faults; the sandbox's API is the truth each test compares the
bridge's member table with:

- the baseline sync at start copies every member;
- out-of-order deliveries, stale retries and a body replayed under ``members:delete``
  leave every member equal to the truth;
- with every webhook dropped, 50 changes are repaired by one reconciliation, drift 50;
- an upgrade is ``allowed`` within 2 s of its webhook, and after one reconciliation
  when the webhook is lost; each change is an ``entitlement:changed`` event;
- with Patreon's member endpoint failing, a new member's delivery is applied
  provisionally and the refresh repairs it once Patreon answers again;
- bad input to the entitlement API is a 400 with its code; an unknown user is
  ``NOT_A_MEMBER``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import pytest

from harness.stack import Stack, body, wait_for
from store.database import Store
from tests.webhook_deliveries import PATH, encode, signed_headers

KEY = "entitlements-bridge-key"
SECRET = "entitlements-webhook-secret"
BEARER = {"Authorization": f"Bearer {KEY}"}
CREATOR = {"Authorization": "Bearer sandbox-creator-access-token", "User-Agent": "entitlement-tests/1.0"}
ENV = {
    "BRIDGE_API_KEY": KEY,
    "PATREON_WEBHOOK_SECRET": SECRET,
    "SANDBOX_WEBHOOK_SECRET": SECRET,
    "BRIDGE_MEMBER_SYNC_INTERVAL_S": "0",  # only the baseline and requested syncs
}
CONVERGE_S = 20.0


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(request):
    """The whole file runs twice: on the stack's SQLite file, and on a PostgreSQL
    database of the throw-away cluster (harness/postgres.py)."""
    env = dict(ENV)
    if request.param == "postgresql":
        env["DATABASE_URL"] = request.getfixturevalue("postgres").create_database("entitlements")
    stack = Stack(env, name="pb-ent")
    stack.env["SANDBOX_WEBHOOK_URI"] = stack.url(PATH)
    stack.store = Store(stack.database_url)
    with stack.start():
        wait_for(lambda: sync_status(stack).get("synced"), 60, interval_s=0.2, what="the baseline sync")
        yield stack
    stack.store.close()


@pytest.fixture(autouse=True)
def no_faults(stack: Stack):
    yield
    stack.sandbox("DELETE", "/_sandbox/webhook-faults")
    stack.sandbox("DELETE", "/_sandbox/faults")


# -- the two sides ------------------------------------------------------------------------
def sync_status(stack: Stack) -> dict:
    return body(stack.get("/api/patreon/status"))["status"]["member_sync"]


def truth(stack: Stack) -> dict[str, tuple]:
    """Every member as the sandbox's API says, by member id."""
    params = {
        "page[count]": "1000",
        "include": "currently_entitled_tiers,user",
        "fields[member]": "patron_status,last_charge_status,currently_entitled_amount_cents",
    }
    out: dict[str, tuple] = {}
    while True:
        page = stack.sandbox("GET", "/api/oauth2/v2/campaigns/1001/members", params=params, headers=CREATOR)
        assert page.status_code == 200, page.text
        document = page.json()
        for m in document["data"]:
            a, r = m["attributes"], m["relationships"]
            tiers = tuple(sorted(t["id"] for t in r["currently_entitled_tiers"]["data"]))
            out[m["id"]] = (
                r["user"]["data"]["id"],
                a["patron_status"],
                a["last_charge_status"],
                tiers,
                a["currently_entitled_amount_cents"] or 0,
            )
        cursor = document["meta"]["pagination"]["cursors"]["next"]
        if not cursor:
            return out
        params["page[cursor]"] = cursor


def rows(stack: Stack, sql: str, params: dict | None = None) -> list[Mapping]:
    with stack.store.read() as conn:
        return conn.execute(sql, params).fetchall()


def ours(stack: Stack) -> tuple[dict[str, tuple], set[str]]:
    """(live members by id, ids of members stored as gone)."""
    live, gone = {}, set()
    for r in rows(stack, "SELECT * FROM members"):
        if r["deleted"]:
            gone.add(r["member_id"])
            continue
        tiers = tuple(sorted(__import__("json").loads(r["entitled_tier_ids"])))
        live[r["member_id"]] = (
            r["user_id"],
            r["patron_status"],
            r["last_charge_status"],
            tiers,
            r["entitled_amount_cents"],
        )
    return live, gone


def differences(stack: Stack, expected: dict[str, tuple]) -> list[str]:
    live, _gone = ours(stack)
    wrong = [f"{m}: ours {live.get(m)} != truth {t}" for m, t in expected.items() if live.get(m) != t]
    extra = [f"{m}: live here, gone at Patreon" for m in live if m not in expected]
    return wrong + extra


def converge(stack: Stack, what: str) -> dict[str, tuple]:
    """Wait until every delivery is consumed and every refresh done, then compare."""
    wait_for(
        lambda: (
            not rows(stack, "SELECT 1 FROM webhook_events WHERE processed_at IS NULL")
            and not rows(stack, "SELECT 1 FROM member_refresh")
        ),
        CONVERGE_S,
        interval_s=0.1,
        what=f"{what}: deliveries consumed and refreshes done",
    )
    expected = truth(stack)
    problems = differences(stack, expected)
    assert not problems, f"{what}: {len(problems)} members differ from Patreon: {problems[:5]}"
    return expected


def control(stack: Stack, method: str, path: str, **kw) -> dict:
    resp = stack.sandbox(method, path, **kw)
    assert resp.status_code in (200, 201), f"{method} {path}: {resp.status_code} {resp.text}"
    return resp.json()


def deliveries_settled(stack: Stack) -> bool:
    hooks = control(stack, "GET", "/_sandbox/webhooks")["webhooks"]
    return all(h["queued"] == 0 and h["held"] == 0 for h in hooks) if hooks else False


def active_members(expected: dict[str, tuple], below: str = "3004") -> list[str]:
    return sorted(m for m, t in expected.items() if t[1] == "active_patron" and t[3] and max(t[3]) < below)


def run_sync(stack: Stack) -> dict:
    started = stack.post("/api/patreon/sync", headers=BEARER)
    assert started.status_code == 202, started.text
    run_id = body(started)["sync"]["id"]
    return wait_for(
        lambda: (s := sync_status(stack)["last_sync"]) and s["id"] == run_id and s["finished_at"] and s,
        60,
        interval_s=0.2,
        what="the requested sync to finish",
    )


def access(stack: Stack, **params) -> dict:
    resp = stack.get("/api/patreon/access", params=params, headers=BEARER)
    assert resp.status_code == 200, resp.text
    return body(resp)


# -- tests ----------------------------------------------------------------------------------
def test_the_baseline_sync_copies_every_member_and_shows_in_status(stack: Stack):
    status = sync_status(stack)
    assert status["synced"] and status["last_sync"]["error"] is None
    assert status["last_sync"]["members"] == len(truth(stack)) == status["members"]
    assert status["last_sync"]["pages"] >= 1
    converge(stack, "after the baseline sync")
    tiers = {r["id"]: r["title"] for r in rows(stack, "SELECT id, title FROM tiers")}
    assert tiers == {"3001": "Supporter", "3002": "Insider", "3003": "Patron Plus", "3004": "Producer"}
    # No personal data unless BRIDGE_MEMBER_PII opts in.
    assert not rows(stack, "SELECT 1 FROM members WHERE email IS NOT NULL OR full_name IS NOT NULL")


def test_out_of_order_stale_and_replayed_deliveries_leave_members_equal_to_patreon(stack: Stack):
    expected = converge(stack, "before")
    first, second, third = active_members(expected, below="3003")[:3]
    # Newest first, then the older one: the first update is held until the next one.
    control(stack, "POST", "/_sandbox/webhook-faults", json={"kind": "reorder", "trigger": "members:update"})
    control(
        stack,
        "POST",
        "/_sandbox/webhook-faults",
        json={"kind": "reorder", "trigger": "members:pledge:update"},
    )
    control(stack, "POST", f"/_sandbox/members/{first}/upgrade", json={})
    control(stack, "POST", f"/_sandbox/members/{first}/upgrade", json={})
    # A retry of an older state arriving after a newer change.
    control(
        stack, "POST", "/_sandbox/webhook-faults", json={"kind": "stale_retry", "trigger": "members:update"}
    )
    control(stack, "POST", f"/_sandbox/members/{second}/upgrade", json={})
    control(stack, "POST", f"/_sandbox/members/{second}/decline")
    wait_for(lambda: deliveries_settled(stack), 20, what="the sandbox to deliver everything")
    stale = [
        d for d in control(stack, "GET", "/_sandbox/deliveries?limit=200")["deliveries"] if d.get("fault")
    ]
    assert {"reorder", "stale_retry"} <= {d["fault"] for d in stale}
    converge(stack, "after reordered and stale deliveries")

    # A captured body of the third member, replayed under members:delete.
    control(stack, "POST", f"/_sandbox/members/{third}/upgrade", json={})
    wait_for(lambda: deliveries_settled(stack), 20, what="the upgrade's deliveries")
    events = body(stack.get("/api/patreon/webhooks/events", params={"limit": "1000"}, headers=BEARER))[
        "events"
    ]
    captured = next(e for e in reversed(events) if e["type"] == "members:update" and e["data"]["id"] == third)
    raw = encode({"data": captured["data"], "included": captured["included"]})
    replay = stack.post(PATH, data=raw, headers=signed_headers(SECRET, raw, "members:delete"))
    assert replay.status_code == 200 and body(replay)["duplicate"] is False
    after = converge(stack, "after a body replayed under members:delete")
    assert third in after and after[third][1] == "active_patron"
    user = after[third][0]
    entitled = body(stack.get(f"/api/patreon/entitlements/{user}", headers=BEARER))["campaigns"]
    assert [c["active"] for c in entitled] == [True] and entitled[0]["source"] == "refresh"


def test_with_webhooks_dropped_one_reconciliation_repairs_50_changes(stack: Stack):
    expected = converge(stack, "before")
    control(stack, "POST", "/_sandbox/webhook-faults", json={"kind": "drop", "count": None})
    candidates = active_members(expected)
    upgrades, declines, deletes = candidates[:15], candidates[15:25], candidates[25:35]
    assert len(deletes) == 10, "the seeded world has too few active members below the top tier"
    for _ in range(15):
        control(stack, "POST", "/_sandbox/members", json={"tier_id": "3002"})
    for member_id in upgrades:
        control(stack, "POST", f"/_sandbox/members/{member_id}/upgrade", json={})
    for member_id in declines:
        control(stack, "POST", f"/_sandbox/members/{member_id}/decline")
    for member_id in deletes:
        control(stack, "DELETE", f"/_sandbox/members/{member_id}")
    assert control(stack, "GET", "/_sandbox/state")["deliveries_dropped"] >= 100  # two triggers each
    time.sleep(1.0)  # nothing arrives, so nothing may change: give it the chance to go wrong
    assert len(differences(stack, truth(stack))) == 50

    run = run_sync(stack)
    assert run["error"] is None
    assert run["drift"] == 50 and run["former"] == 10, run
    converge(stack, "after one reconciliation")
    assert sync_status(stack)["last_sync"]["drift"] == 50


def test_an_upgrade_is_allowed_within_2_s_of_its_webhook_and_after_one_sync_when_it_is_lost(stack: Stack):
    created = control(stack, "POST", "/_sandbox/members", json={"tier_id": "3001"})
    member_id, user = created["id"], created["user_id"]
    wait_for(lambda: access(stack, userId=user, tierId="3001")["allowed"], 10, what="the new member's access")
    assert access(stack, userId=user, tierId="3002") == {"allowed": False, "reason": "BELOW_TIER"}
    latest = body(stack.get("/api/patreon/webhooks/events", params={"limit": "1"}, headers=BEARER))["latest"]

    control(stack, "POST", f"/_sandbox/members/{member_id}/upgrade", json={"tier_id": "3002"})
    upgraded_at = time.monotonic()
    wait_for(
        lambda: access(stack, userId=user, tierId="3002")["allowed"],
        2.0,
        interval_s=0.02,
        what="access to the new tier within 2 s of the webhook",
    )
    took = time.monotonic() - upgraded_at
    assert took < 2.0
    changed = wait_for(
        lambda: [
            e
            for e in body(
                stack.get("/api/patreon/webhooks/events", params={"since": str(latest)}, headers=BEARER)
            )["events"]
            if e["type"] == "entitlement:changed" and e["data"]["id"] == member_id
        ],
        5,
        what="the entitlement:changed event",
    )
    attrs = changed[-1]["data"]["attributes"]
    assert attrs["user_id"] == user and attrs["campaign_id"] == "1001"
    assert attrs["before"]["tier_ids"] == ["3001"] and attrs["after"] == {
        "tier_ids": ["3002"],
        "active": True,
    }

    # The webhook of the next upgrade is lost: only a reconciliation can tell.
    control(stack, "POST", "/_sandbox/webhook-faults", json={"kind": "drop", "count": None})
    control(stack, "POST", f"/_sandbox/members/{member_id}/upgrade", json={"tier_id": "3003"})
    time.sleep(1.0)
    assert access(stack, userId=user, tierId="3003") == {"allowed": False, "reason": "BELOW_TIER"}
    run_sync(stack)
    assert access(stack, userId=user, tierId="3003") == {"allowed": True, "reason": "ACTIVE_TIER"}


def test_while_patreon_fails_a_delivery_applies_provisionally_until_the_refresh_succeeds(stack: Stack):
    control(
        stack,
        "POST",
        "/_sandbox/faults",
        json={"path": "/api/oauth2/v2/members/", "status": 503, "count": None},
    )
    created = control(stack, "POST", "/_sandbox/members", json={"tier_id": "3002"})
    member_id, user = created["id"], created["user_id"]
    wait_for(
        lambda: access(stack, userId=user, tierId="3002")["allowed"],
        20,
        what="the provisional application of the delivery",
    )
    (row,) = rows(stack, "SELECT source FROM members WHERE member_id = :m", {"m": member_id})
    assert row["source"] == "webhook"
    assert rows(stack, "SELECT 1 FROM member_refresh WHERE member_id = :m", {"m": member_id}), "retry is queued"
    stack.sandbox("DELETE", "/_sandbox/faults")
    wait_for(
        lambda: rows(stack, "SELECT 1 FROM members WHERE member_id = :m AND source = 'refresh'", {"m": member_id}),
        15,
        what="the retried refresh",
    )
    converge(stack, "after Patreon came back")


def test_entitlement_api_answers_from_the_table_and_refuses_bad_input(stack: Stack):
    expected = truth(stack)
    member_id = active_members(expected)[0]
    user = expected[member_id][0]
    tier = expected[member_id][3][0]
    entitled = body(stack.get(f"/api/patreon/entitlements/{user}", headers=BEARER))
    assert entitled["synced"] is True
    (campaign,) = entitled["campaigns"]
    assert campaign["campaign_id"] == "1001" and campaign["status"] == "active_patron" and campaign["active"]
    assert campaign["tiers"][0]["id"] == tier and campaign["tiers"][0]["title"]
    assert campaign["benefits"] and campaign["since"]
    assert access(stack, userId=user, tierId=tier) == {"allowed": True, "reason": "ACTIVE_TIER"}
    assert access(stack, userId=user, minCents="1") == {"allowed": True, "reason": "ACTIVE_TIER"}
    assert access(stack, userId="999999999", tierId=tier) == {"allowed": False, "reason": "NOT_A_MEMBER"}
    assert access(stack, userId=user, tierId="777") == {"allowed": False, "reason": "UNKNOWN_TIER"}
    unknown = body(stack.get("/api/patreon/entitlements/999999999", headers=BEARER))
    assert unknown["campaigns"] == []

    def refused(path: str, params: dict | None = None, headers=BEARER) -> tuple[int, str]:
        resp = stack.get(path, params=params, headers=headers)
        return resp.status_code, body(resp)["code"]

    assert refused("/api/patreon/access", {"userId": "abc", "tierId": "3001"}) == (400, "INVALID_USER_ID")
    assert refused("/api/patreon/access", {"tierId": "3001"}) == (400, "INVALID_USER_ID")
    assert refused("/api/patreon/access", {"userId": user}) == (400, "ACCESS_QUERY_REQUIRED")
    assert refused("/api/patreon/access", {"userId": user, "tierId": "1", "minCents": "5"}) == (
        400,
        "ACCESS_QUERY_REQUIRED",
    )
    assert refused("/api/patreon/access", {"userId": user, "tierId": "x"}) == (400, "INVALID_TIER_ID")
    assert refused("/api/patreon/access", {"userId": user, "benefitId": "-1"}) == (400, "INVALID_BENEFIT_ID")
    assert refused("/api/patreon/access", {"userId": user, "minCents": "1.5"}) == (400, "INVALID_MIN_CENTS")
    assert refused("/api/patreon/access", {"userId": user, "tierId": "1", "x": "1"}) == (
        400,
        "UNKNOWN_PARAMETER",
    )
    assert refused("/api/patreon/entitlements/12ab") == (400, "INVALID_USER_ID")
    assert refused(f"/api/patreon/entitlements/{user}", {"x": "1"}) == (400, "UNKNOWN_PARAMETER")
    assert refused(f"/api/patreon/entitlements/{user}", headers={}) == (401, "UNAUTHORIZED")
    assert refused("/api/patreon/access", {"userId": user, "tierId": "1"}, headers={}) == (
        401,
        "UNAUTHORIZED",
    )
    assert refused("/api/patreon/me/entitlements", headers={}) == (401, "PATREON_AUTH_REQUIRED")
    no_key = stack.post("/api/patreon/sync")
    assert (no_key.status_code, body(no_key)["code"]) == (401, "API_KEY_REQUIRED")


def test_a_logged_in_patron_sees_only_their_own_entitlements(stack: Stack):
    from tests.browser import Browser

    expected = truth(stack)
    member_id = active_members(expected)[0]
    user = expected[member_id][0]
    browser = Browser(stack)
    browser.login(user)
    mine = browser.get("/api/patreon/me/entitlements")
    assert mine.status_code == 200, mine.text
    answer = body(mine)
    assert answer["user_id"] == user
    assert [c["member_id"] for c in answer["campaigns"]] == [member_id]
    assert answer["campaigns"][0]["active"] is True
    # Its own rows only: the server-key view of the same user says the same.
    assert answer == body(stack.get(f"/api/patreon/entitlements/{user}", headers=BEARER))
    refused = browser.get("/api/patreon/me/entitlements", params={"userId": "3"})
    assert (refused.status_code, body(refused)["code"]) == (400, "UNKNOWN_PARAMETER")
