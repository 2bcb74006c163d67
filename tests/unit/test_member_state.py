"""Member state from events: idempotent, ordered by event id, no personal data kept."""

from __future__ import annotations

import pytest

from store import member_state, webhook_events
from tests.webhook_deliveries import EMAIL_DOMAIN, encode, member_document
from wire import protocol
from worker.actions import state_action

MEMBER = "0b3f7a4e-1111-4c2a-9d7e-000000000001"


def stored(store, event: str, document: dict) -> webhook_events.StoredEvent:
    event_id, _duplicate = webhook_events.accept(store, event, encode(document))
    return webhook_events.get(store, event_id)


def test_a_create_makes_the_row(store):
    event = stored(store, "members:create", member_document(MEMBER, tier_ids=("t2", "t1"), cents=700))
    assert member_state.apply(store, event, now="2026-05-02T00:00:00.000Z") == member_state.APPLIED
    state = member_state.get(store, MEMBER)
    assert state.as_dict() == {
        "memberId": MEMBER,
        "campaignId": "1001",
        "userId": "2",
        "patronStatus": "active_patron",
        "lastChargeStatus": "Paid",
        "entitledTierIds": ["t1", "t2"],
        "currentlyEntitledAmountCents": 700,
        "willPayAmountCents": 700,
        "deleted": False,
        "lastEvent": "members:create",
        "lastEventId": event.id,
        "lastEventAt": event.received_at,
        "updatedAt": "2026-05-02T00:00:00.000Z",
    }


def test_applying_the_same_event_twice_is_harmless(store):
    event = stored(store, "members:create", member_document(MEMBER))
    assert member_state.apply(store, event) == member_state.APPLIED
    before = member_state.get(store, MEMBER)
    assert member_state.apply(store, event) == member_state.STALE
    assert member_state.get(store, MEMBER) == before


def test_an_older_event_never_overwrites_a_newer_one(store):
    old = stored(store, "members:pledge:create", member_document(MEMBER, cents=500, tier_ids=("t1",)))
    new = stored(store, "members:pledge:update", member_document(MEMBER, cents=1500, tier_ids=("t3",)))
    assert member_state.apply(store, new) == member_state.APPLIED
    assert member_state.apply(store, old) == member_state.STALE
    state = member_state.get(store, MEMBER)
    assert (state.currently_entitled_amount_cents, state.entitled_tier_ids, state.last_event_id) == (
        1500,
        ("t3",),
        new.id,
    )


def test_decline_then_delete(store):
    member_state.apply(store, stored(store, "members:pledge:create", member_document(MEMBER)))
    declined = member_document(MEMBER, patron_status="declined_patron", last_charge_status="Declined")
    member_state.apply(store, stored(store, "members:update", declined))
    state = member_state.get(store, MEMBER)
    assert (state.patron_status, state.last_charge_status, state.deleted) == (
        "declined_patron",
        "Declined",
        False,
    )
    ended = member_document(MEMBER, patron_status="former_patron", tier_ids=(), cents=0)
    member_state.apply(store, stored(store, "members:pledge:delete", ended))
    state = member_state.get(store, MEMBER)
    assert (state.patron_status, state.entitled_tier_ids, state.deleted) == ("former_patron", (), False)
    member_state.apply(store, stored(store, "members:delete", member_document(MEMBER, note="gone")))
    state = member_state.get(store, MEMBER)
    assert state.deleted is True and state.last_event == "members:delete"


def test_missing_attributes_keep_their_value_and_null_is_stored(store):
    member_state.apply(store, stored(store, "members:create", member_document(MEMBER, cents=900)))
    sparse = {"data": {"type": "member", "id": MEMBER, "attributes": {"patron_status": None}}}
    member_state.apply(store, stored(store, "members:update", sparse))
    state = member_state.get(store, MEMBER)
    assert state.patron_status is None
    assert state.currently_entitled_amount_cents == 900
    assert state.entitled_tier_ids == ("2001",)
    assert state.campaign_id == "1001"


def test_posts_and_legacy_pledges_are_ignored(store):
    post = {"data": {"type": "post", "id": "p-1", "attributes": {"title": "Hello"}}}
    pledge = {"data": {"type": "pledge", "id": "pl-1", "attributes": {"amount_cents": 100}}}
    assert member_state.apply(store, stored(store, "posts:publish", post)) == member_state.IGNORED
    assert member_state.apply(store, stored(store, "pledges:create", pledge)) == member_state.IGNORED
    assert member_state.get(store, "p-1") is None and member_state.get(store, "pl-1") is None


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["data"]["attributes"].update(patron_status=5),
        lambda d: d["data"]["attributes"].update(currently_entitled_amount_cents=True),
        lambda d: d["data"]["attributes"].update(will_pay_amount_cents=1.5),
        lambda d: d["data"].update(id=""),
        lambda d: d["data"]["relationships"].update(campaign={"data": ["1001"]}),
        lambda d: d["data"]["relationships"].update(currently_entitled_tiers={"data": {"id": "t"}}),
        lambda d: d["data"]["relationships"].update(user="2"),
        lambda d: d["data"].update(attributes=[]),
    ],
)
def test_unreadable_member_documents_raise_without_quoting_values(store, mutate):
    document = member_document(MEMBER)
    mutate(document)
    with pytest.raises(member_state.MemberEventError) as raised:
        member_state.apply(store, stored(store, "members:update", document))
    assert EMAIL_DOMAIN not in str(raised.value)
    assert member_state.get(store, MEMBER) is None


def test_no_email_or_name_is_kept(store):
    member_state.apply(store, stored(store, "members:create", member_document(MEMBER)))
    with store.read() as conn:
        row = conn.execute("SELECT * FROM member_state").fetchone()
    assert not any(EMAIL_DOMAIN in str(value) or "Patron 2" in str(value) for value in (row[k] for k in row.keys()))
    assert not {"email", "full_name"} & set(row.keys())


def test_the_members_state_action(store):
    action = state_action(store)
    ctx = protocol.CallContext(msg_id="m", action="members.state", request_id=None, deadline=0)
    with pytest.raises(protocol.ActionError) as missing:
        action({"member_id": MEMBER}, ctx)
    assert (missing.value.code, missing.value.status) == ("MEMBER_STATE_NOT_FOUND", 404)
    for bad in ({}, {"member_id": 5}, {"member_id": ""}, {"member_id": "x" * 500}):
        with pytest.raises(protocol.ActionError) as invalid:
            action(bad, ctx)
        assert invalid.value.code == protocol.INVALID_DATA
    member_state.apply(store, stored(store, "members:create", member_document(MEMBER)))
    assert action({"member_id": MEMBER}, ctx)["member"]["patronStatus"] == "active_patron"
    assert "members.state" in protocol.ACTIONS and protocol.ACTIONS["members.state"].idempotent
