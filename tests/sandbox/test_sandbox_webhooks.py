"""Webhook delivery, per PATREON.md, on a fake transport and a fake clock: signatures
made with the secret returned at creation, realistic payloads for every trigger,
failures queued and retried in order, pause after repeated failures, resend on
PATCH paused=false."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest


def create_webhook(oauth, triggers, uri="https://receiver.example/patreon"):
    result = oauth.send(
        "POST",
        "/webhooks",
        {
            "data": {
                "type": "webhook",
                "attributes": {"triggers": list(triggers), "uri": uri},
                "relationships": {"campaign": {"data": {"type": "campaign", "id": "1001"}}},
            }
        },
    )
    assert result.status_code == 201, result.text
    return result.json["data"]


def webhook_state(oauth, hook_id):
    hooks = oauth.get("/webhooks", query="fields%5Bwebhook%5D=paused,num_consecutive_times_failed")
    return next(h["attributes"] for h in hooks.json["data"] if h["id"] == hook_id)


def control(client, method, path, body=None):
    result = client.simulate_request(method, f"/_sandbox{path}", json=body)
    assert result.status_code < 300, result.text
    return result.json


def verify(delivery, secret):
    expected = hmac.new(secret.encode(), delivery.body, hashlib.md5).hexdigest()
    return hmac.compare_digest(expected, delivery.headers["X-Patreon-Signature"])


ALL_MEMBER = [
    "members:create",
    "members:update",
    "members:delete",
    "members:pledge:create",
    "members:pledge:update",
    "members:pledge:delete",
]


def test_signature_verifies_with_the_secret_returned_at_creation(oauth, client, sandbox, transport):
    hook = create_webhook(oauth, ["members:create", "members:pledge:create"])
    secret = hook["attributes"]["secret"]
    created = control(client, "POST", "/members", {"email": "newfan@example.com", "tier_id": "3002"})
    assert created["events_queued"] == 2
    assert sandbox.webhooks.run_due() == 2
    assert [d.headers["X-Patreon-Event"] for d in transport.calls] == [
        "members:create",
        "members:pledge:create",
    ]
    for delivery in transport.calls:
        assert verify(delivery, secret)
        assert not verify(delivery, "sandbox-client-secret")
        assert delivery.url == "https://receiver.example/patreon"
        assert delivery.headers["Content-Type"] == "application/json"
        assert delivery.headers["User-Agent"].startswith("Patreon")
        assert delivery.timeout_s == 10.0
    # Re-serialised JSON is not the signed body: the classic bug must fail.
    reserialised = json.dumps(json.loads(transport.calls[0].body), indent=2).encode()
    expected = hmac.new(secret.encode(), reserialised, hashlib.md5).hexdigest()
    assert expected != transport.calls[0].headers["X-Patreon-Signature"]


def test_member_payload_is_a_full_json_api_member(oauth, client, sandbox, transport):
    create_webhook(oauth, ["members:create"])
    created = control(client, "POST", "/members", {"full_name": "Nina Fan", "tier_id": "3004"})
    sandbox.webhooks.run_due()
    payload = json.loads(transport.calls[0].body)
    data = payload["data"]
    assert data["type"] == "member" and data["id"] == created["id"]
    attributes = data["attributes"]
    for name in (
        "patron_status",
        "last_charge_status",
        "currently_entitled_amount_cents",
        "will_pay_amount_cents",
        "campaign_lifetime_support_cents",
        "pledge_cadence",
        "next_charge_date",
        "last_charge_date",
        "pledge_relationship_start",
        "is_free_trial",
        "is_gifted",
        "email",
        "full_name",
        "note",
    ):
        assert name in attributes
    assert attributes["patron_status"] == "active_patron"
    assert attributes["currently_entitled_amount_cents"] == 2500
    assert attributes["full_name"] == "Nina Fan"
    assert set(data["relationships"]) == {"address", "campaign", "currently_entitled_tiers", "user"}
    assert data["relationships"]["address"]["data"]["type"] == "address"  # a shipping tier
    assert data["relationships"]["currently_entitled_tiers"]["data"] == [{"id": "3004", "type": "tier"}]
    included = {(r["type"], r["id"]) for r in payload["included"]}
    assert included == {("campaign", "1001"), ("user", created["user_id"]), ("tier", "3004")}
    assert payload["links"]["self"].endswith(f"/api/oauth2/v2/members/{created['id']}")


def test_every_trigger_fires_with_the_matching_payload(oauth, client, sandbox, transport):
    create_webhook(oauth, [*ALL_MEMBER, "posts:publish", "posts:update", "posts:delete"])
    member_id = control(client, "POST", "/members", {})["id"]
    control(client, "POST", f"/members/{member_id}/upgrade", {})
    control(client, "POST", f"/members/{member_id}/decline")
    control(client, "DELETE", f"/members/{member_id}")
    post_id = control(client, "POST", "/posts", {"title": "Hello patrons"})["id"]
    control(client, "PATCH", f"/posts/{post_id}", {"title": "Hello again"})
    control(client, "DELETE", f"/posts/{post_id}")
    sandbox.webhooks.run_due()
    seen = [(d.headers["X-Patreon-Event"], json.loads(d.body)["data"]) for d in transport.calls]
    assert [trigger for trigger, _ in seen] == [
        "members:create",
        "members:pledge:create",
        "members:update",
        "members:pledge:update",
        "members:update",
        "members:pledge:update",
        "members:delete",
        "members:pledge:delete",
        "posts:publish",
        "posts:update",
        "posts:delete",
    ]
    statuses = [data["attributes"].get("patron_status") for _, data in seen[:8]]
    assert statuses[4:6] == ["declined_patron"] * 2
    amounts = [data["attributes"].get("currently_entitled_amount_cents") for _, data in seen[:4]]
    assert amounts == [100, 100, 500, 500]  # lowest tier, then the next tier up
    assert seen[4][1]["attributes"]["last_charge_status"] == "Declined"
    assert seen[-2][1]["type"] == "post"
    assert seen[-2][1]["attributes"]["title"] == "Hello again"
    assert not sandbox.world.members.get(member_id)


def test_only_listening_webhooks_get_an_event(oauth, client, sandbox, transport):
    create_webhook(oauth, ["posts:publish"], uri="https://posts.example/hook")
    create_webhook(oauth, ["members:create"], uri="https://members.example/hook")
    control(client, "POST", "/members", {})
    sandbox.webhooks.run_due()
    assert [d.url for d in transport.calls] == ["https://members.example/hook"]


def test_failures_are_retried_in_order_then_pause_and_resend_on_unpause(
    oauth, client, sandbox, transport, clock
):
    hook = create_webhook(oauth, ["members:create"])
    secret = hook["attributes"]["secret"]
    transport.default = 500
    first = control(client, "POST", "/members", {})["id"]
    second = control(client, "POST", "/members", {})["id"]

    assert sandbox.webhooks.run_due() == 1  # the head fails; the second waits behind it
    assert webhook_state(oauth, hook["id"]) == {"paused": False, "num_consecutive_times_failed": 1}
    assert sandbox.webhooks.run_due() == 0  # not before the retry delay
    clock.advance(5.0)
    transport.answers.append(TimeoutError("receiver too slow"))
    assert sandbox.webhooks.run_due() == 1
    clock.advance(5.0)
    assert sandbox.webhooks.run_due() == 1
    assert webhook_state(oauth, hook["id"]) == {"paused": True, "num_consecutive_times_failed": 3}

    clock.advance(60.0)
    assert sandbox.webhooks.run_due() == 0  # paused: no retries
    third = control(client, "POST", "/members", {})["id"]  # still queued while paused
    assert sandbox.webhooks.run_due() == 0

    transport.default = 200
    transport.calls.clear()
    resumed = oauth.send(
        "PATCH",
        f"/webhooks/{hook['id']}",
        {"data": {"id": hook["id"], "type": "webhook", "attributes": {"paused": "false"}}},
    )
    assert resumed.status_code == 200
    assert resumed.json["data"]["attributes"]["paused"] is False
    assert resumed.json["data"]["attributes"]["num_consecutive_times_failed"] == 0
    assert sandbox.webhooks.run_due() == 3
    assert [json.loads(d.body)["data"]["id"] for d in transport.calls] == [first, second, third]
    assert all(verify(d, secret) for d in transport.calls)
    assert webhook_state(oauth, hook["id"]) == {"paused": False, "num_consecutive_times_failed": 0}

    state = control(client, "GET", "/state")["deliveries"]
    assert state == {"attempted": 6, "succeeded": 3, "failed": 3, "queued": 0}
    log = control(client, "GET", "/deliveries?limit=10")["deliveries"]
    assert [(e["status"], e["error"]) for e in log[:3]] == [
        (500, None),
        (None, "TimeoutError"),
        (500, None),
    ]
    assert log[2]["paused"] is True


def test_a_success_resets_the_failure_count(oauth, client, sandbox, transport, clock):
    hook = create_webhook(oauth, ["members:create"])
    transport.answers.extend([503, 204])
    control(client, "POST", "/members", {})
    sandbox.webhooks.run_due()
    clock.advance(5.0)
    sandbox.webhooks.run_due()
    assert webhook_state(oauth, hook["id"]) == {"paused": False, "num_consecutive_times_failed": 0}
    last = oauth.get("/webhooks", query="fields%5Bwebhook%5D=last_attempted_at").json
    assert last["data"][0]["attributes"]["last_attempted_at"].endswith("+00:00")


def test_is_paused_false_also_resends(oauth, client, sandbox, transport):
    hook = create_webhook(oauth, ["members:create"])
    transport.default = 500
    control(client, "POST", "/members", {})
    sandbox.webhooks.run_due()
    transport.default = 200
    oauth.send(
        "PATCH",
        f"/webhooks/{hook['id']}",
        {"data": {"type": "webhook", "attributes": {"is_paused": False}}},
    )
    assert sandbox.webhooks.run_due() == 1
    assert sandbox.webhooks.queued() == 0


def test_seeded_webhook_from_settings(make_sandbox, transport):
    sandbox = make_sandbox(webhook_uri="http://127.0.0.1:6969/webhooks/patreon")
    (hook,) = sandbox.webhooks.all()
    assert hook.secret == "sandbox-webhook-secret"
    assert hook.campaign_id == "1001" and len(hook.triggers) == 9
    with sandbox.world.lock:
        post = sandbox.world.publish_post(sandbox.now(), "Seeded", None, True, False)
        sandbox.fire_post(post, "posts:publish")
    sandbox.webhooks.run_due()
    assert verify(transport.calls[0], "sandbox-webhook-secret")


@pytest.mark.parametrize("trigger", ALL_MEMBER)
def test_events_endpoint_refires_any_member_trigger(oauth, client, sandbox, transport, trigger):
    create_webhook(oauth, [trigger])
    member_id = next(iter(sandbox.world.members))
    fired = control(client, "POST", "/events", {"trigger": trigger, "id": member_id})
    assert fired["events_queued"] == 1
    sandbox.webhooks.run_due()
    assert transport.calls[0].headers["X-Patreon-Event"] == trigger
    assert json.loads(transport.calls[0].body)["data"]["id"] == member_id
