"""Webhook delivery faults through /_sandbox/webhook-faults (drop, delay, reorder,
stale_retry) and member control through /_sandbox/members, each change firing the
webhooks Patreon fires (Patreon/platform-documentation source/includes/_webhooks_v2.md,
"Triggers")."""

from __future__ import annotations

import json

import pytest

MEMBER_TRIGGERS = [
    "members:create",
    "members:update",
    "members:delete",
    "members:pledge:create",
    "members:pledge:update",
    "members:pledge:delete",
]


def control(client, method, path, body=None, status=None):
    result = client.simulate_request(method, f"/_sandbox{path}", json=body)
    if status is not None:
        assert result.status_code == status, result.text
    else:
        assert result.status_code < 300, result.text
    return result.json


@pytest.fixture
def hook(sandbox):
    return sandbox.webhooks.create("c", "1001", "http://127.0.0.1:9/hook", MEMBER_TRIGGERS)


def sent(transport):
    """(trigger, tier ids, patron_status) of every delivery, in order."""
    out = []
    for call in transport.calls:
        data = json.loads(call.body)["data"]
        tiers = [t["id"] for t in data["relationships"]["currently_entitled_tiers"]["data"]]
        out.append((call.headers["X-Patreon-Event"], tiers, data["attributes"]["patron_status"]))
    return out


def test_member_control_fires_what_patreon_fires(client, sandbox, transport, hook):
    created = control(client, "POST", "/members", {"tier_id": "3001"}, status=201)
    assert created["events_queued"] == 2
    member = created["id"]
    control(client, "POST", f"/members/{member}/upgrade", {"tier_id": "3003"})
    control(client, "POST", f"/members/{member}/upgrade", {"tier_id": "3002"})  # a downgrade
    control(client, "POST", f"/members/{member}/decline", {})
    control(client, "DELETE", f"/members/{member}")
    sandbox.webhooks.run_due()
    assert sent(transport) == [
        ("members:create", ["3001"], "active_patron"),
        ("members:pledge:create", ["3001"], "active_patron"),
        ("members:update", ["3003"], "active_patron"),
        ("members:pledge:update", ["3003"], "active_patron"),
        ("members:update", ["3002"], "active_patron"),
        ("members:pledge:update", ["3002"], "active_patron"),
        ("members:update", ["3002"], "declined_patron"),
        ("members:pledge:update", ["3002"], "declined_patron"),
        ("members:delete", ["3002"], "declined_patron"),
        ("members:pledge:delete", ["3002"], "declined_patron"),
    ]
    assert client.simulate_get(f"/_sandbox/members/{member}").status_code == 404


def test_drop_loses_the_event_but_patreon_thinks_it_sent_it(client, sandbox, transport, hook):
    control(client, "POST", "/webhook-faults", {"kind": "drop", "trigger": "members:create"}, status=201)
    control(client, "POST", "/members", {})
    sandbox.webhooks.run_due()
    assert [t for t, _, _ in sent(transport)] == ["members:pledge:create"]
    log = control(client, "GET", "/deliveries")["deliveries"]
    assert log[0]["fault"] == "drop" and log[0]["trigger"] == "members:create"
    assert control(client, "GET", "/state")["deliveries_dropped"] == 1
    assert control(client, "GET", "/webhook-faults")["faults"] == []  # count 1: used up


def test_delay_holds_the_event_and_the_queue_behind_it(client, sandbox, transport, hook, clock):
    control(client, "POST", "/webhook-faults", {"kind": "delay", "delay_s": 30, "trigger": "members:create"})
    control(client, "POST", "/members", {})
    assert sandbox.webhooks.run_due() == 0
    clock.advance(29)
    assert sandbox.webhooks.run_due() == 0
    clock.advance(1)
    assert sandbox.webhooks.run_due() == 2
    assert [t for t, _, _ in sent(transport)] == ["members:create", "members:pledge:create"]


def test_reorder_sends_an_older_change_after_a_newer_one(client, sandbox, transport, hook):
    member = control(client, "POST", "/members", {"tier_id": "3001"})["id"]
    sandbox.webhooks.run_due()
    transport.calls.clear()
    control(client, "POST", "/webhook-faults", {"kind": "reorder", "trigger": "members:update"})
    control(client, "POST", f"/members/{member}/upgrade", {"tier_id": "3002"})  # change A
    control(client, "POST", f"/members/{member}/upgrade", {"tier_id": "3004"})  # change B
    sandbox.webhooks.run_due()
    updates = [tiers for trigger, tiers, _ in sent(transport) if trigger == "members:update"]
    assert updates == [["3004"], ["3002"]]  # B arrives before A
    log = control(client, "GET", "/deliveries")["deliveries"]
    assert [e.get("fault") for e in log if e["trigger"] == "members:update"][-1] == "reorder"


def test_stale_retry_resends_an_old_body_after_a_newer_change(client, sandbox, transport, hook):
    member = control(client, "POST", "/members", {"tier_id": "3001"})["id"]
    sandbox.webhooks.run_due()
    transport.calls.clear()
    control(client, "POST", "/webhook-faults", {"kind": "stale_retry", "trigger": "members:update"})
    control(client, "POST", f"/members/{member}/upgrade", {"tier_id": "3003"})  # A
    sandbox.webhooks.run_due()
    control(client, "POST", f"/members/{member}/decline", {})  # B
    sandbox.webhooks.run_due()
    updates = [(tiers, status) for trigger, tiers, status in sent(transport) if trigger == "members:update"]
    assert updates == [
        (["3003"], "active_patron"),
        (["3003"], "declined_patron"),
        (["3003"], "active_patron"),
    ]
    first, stale = [c for c in transport.calls if c.headers["X-Patreon-Event"] == "members:update"][::2]
    assert (
        stale.body == first.body
        and stale.headers["X-Patreon-Signature"] == first.headers["X-Patreon-Signature"]
    )


def test_clearing_faults_releases_held_events(client, sandbox, transport, hook):
    control(client, "POST", "/webhook-faults", {"kind": "reorder", "trigger": "members:create"})
    control(client, "POST", "/members", {})
    sandbox.webhooks.run_due()
    assert [t for t, _, _ in sent(transport)] == ["members:pledge:create"]
    assert control(client, "GET", "/webhooks")["webhooks"][0]["held"] == 1
    assert control(client, "DELETE", "/webhook-faults") == {"cleared": 0, "released": 1}
    sandbox.webhooks.run_due()
    assert [t for t, _, _ in sent(transport)] == ["members:pledge:create", "members:create"]


@pytest.mark.parametrize(
    "body, code",
    [
        ({"kind": "explode"}, "bad_kind"),
        ({"kind": "delay"}, "bad_delay_s"),
        ({"kind": "drop", "trigger": "pledges:create"}, "bad_trigger"),
        ({"kind": "drop", "count": 0}, "bad_count"),
        ({"kind": "drop", "webhook_id": "77"}, "unknown_webhook"),
    ],
)
def test_bad_delivery_faults_are_refused(client, hook, body, code):
    result = client.simulate_post("/_sandbox/webhook-faults", json=body)
    assert result.status_code in (400, 404) and result.json["code"] == code


@pytest.mark.parametrize(
    "path, body, code",
    [
        ("/edge", {"threshold_4xx": 0}, "bad_threshold_4xx"),
        ("/edge", {"window_s": -1}, "bad_window_s"),
        ("/tokens/early-expiry", {}, "bad_after_s"),
        ("/tokens/early-expiry", {"after_s": "soon"}, "bad_after_s"),
        ("/faults", {"path": "/api/oauth2/v2/identity", "html": True}, "empty_fault"),
        ("/faults", {"path": "/api/oauth2/v2/identity", "status": 503, "html": "yes"}, "bad_html"),
    ],
)
def test_bad_fault_controls_are_refused(client, path, body, code):
    result = client.simulate_post(f"/_sandbox{path}", json=body)
    assert result.status_code == 400 and result.json["code"] == code, result.text
