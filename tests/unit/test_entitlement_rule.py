"""entitlements.rule: the documented rule for ``active`` and every access reason."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from entitlements.rule import Decision, Membership, Query, Reason, Tier, decide, is_active, standing

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
NO_GRACE = timedelta(0)
CAMPAIGN, OTHER_CAMPAIGN = "c1", "c2"
TIERS = {
    "bronze": Tier("bronze", CAMPAIGN, 300, frozenset({"b-discord"})),
    "silver": Tier("silver", CAMPAIGN, 500, frozenset({"b-discord", "b-early"})),
    "gold": Tier("gold", CAMPAIGN, 1000, frozenset({"b-early", "b-call"})),
    "elsewhere": Tier("elsewhere", OTHER_CAMPAIGN, 5000),
}
PAYING = Membership(
    campaign_id=CAMPAIGN,
    patron_status="active_patron",
    last_charge_status="Paid",
    last_charge_date=NOW - timedelta(days=3),
    entitled_tier_ids=("silver",),
    entitled_amount_cents=500,
)


def member(**changes) -> Membership:
    return dataclasses.replace(PAYING, **changes)


def ask(memberships, *, synced=True, grace=NO_GRACE, **query) -> Decision:
    return decide(Query(**query), memberships, TIERS, synced=synced, now=NOW, grace=grace)


@pytest.mark.parametrize(
    ("changes", "active"),
    [
        ({}, True),
        ({"last_charge_status": "Pending"}, True),
        ({"last_charge_status": None, "is_free_trial": True}, True),
        ({"last_charge_status": None, "is_gifted": True}, True),
        ({"last_charge_status": "Refunded"}, False),
        ({"last_charge_status": "Fraud"}, False),
        ({"last_charge_status": None}, False),
        ({"patron_status": "declined_patron", "last_charge_status": "Declined"}, False),
        ({"patron_status": "former_patron"}, False),
        ({"patron_status": None, "entitled_tier_ids": (), "entitled_amount_cents": 0}, False),
        ({"deleted": True}, False),
    ],
)
def test_active_follows_the_documented_rule(changes, active):
    assert is_active(member(**changes), NOW, NO_GRACE) is active


def test_a_declined_patron_keeps_access_only_inside_the_grace_period():
    declined = member(patron_status="declined_patron", last_charge_status="Declined", last_charge_date=NOW - timedelta(days=2))
    assert standing(declined, NOW, NO_GRACE) is Reason.DECLINED
    assert is_active(declined, NOW, timedelta(days=3))
    assert not is_active(declined, NOW, timedelta(days=2))  # the grace ends at its edge
    assert not is_active(dataclasses.replace(declined, last_charge_date=None), NOW, timedelta(days=3))


def test_a_tier_is_allowed_by_that_tier_or_a_dearer_one_of_its_campaign():
    assert ask([PAYING], tier_id="silver") == Decision(True, Reason.ACTIVE_TIER)
    assert ask([PAYING], tier_id="bronze") == Decision(True, Reason.ACTIVE_TIER)
    assert ask([PAYING], tier_id="gold") == Decision(False, Reason.BELOW_TIER)


def test_a_tier_of_another_campaign_needs_a_membership_of_that_campaign():
    assert ask([PAYING], tier_id="elsewhere") == Decision(False, Reason.NOT_A_MEMBER)


def test_benefits_come_from_the_tiers_held():
    assert ask([PAYING], benefit_id="b-early").allowed
    assert ask([PAYING], benefit_id="b-call") == Decision(False, Reason.BELOW_TIER)


def test_min_cents_compares_the_entitled_amount():
    assert ask([PAYING], min_cents=500).allowed
    assert ask([PAYING], min_cents=501) == Decision(False, Reason.BELOW_TIER)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"patron_status": "declined_patron", "last_charge_status": "Declined"}, Reason.DECLINED),
        ({"patron_status": "former_patron"}, Reason.FORMER),
        ({"deleted": True}, Reason.FORMER),
        ({"patron_status": None, "entitled_tier_ids": (), "entitled_amount_cents": 0}, Reason.BELOW_TIER),
    ],
)
def test_an_inactive_member_is_refused_with_why(changes, reason):
    assert ask([member(**changes)], tier_id="bronze") == Decision(False, reason)


def test_unknown_ids_and_strangers_are_answers_not_errors():
    assert ask([PAYING], tier_id="nope") == Decision(False, Reason.UNKNOWN_TIER)
    assert ask([PAYING], benefit_id="nope") == Decision(False, Reason.UNKNOWN_TIER)
    assert ask([], tier_id="silver") == Decision(False, Reason.NOT_A_MEMBER)
    assert ask([], min_cents=1) == Decision(False, Reason.NOT_A_MEMBER)


def test_before_the_first_sync_a_missing_row_is_not_synced_not_a_stranger():
    assert ask([], synced=False, tier_id="silver") == Decision(False, Reason.NOT_SYNCED)
    assert ask([PAYING], synced=False, tier_id="nope") == Decision(False, Reason.NOT_SYNCED)
    assert ask([PAYING], synced=False, tier_id="silver").allowed  # a row we have still counts


def test_the_best_of_several_memberships_wins():
    former = member(campaign_id=OTHER_CAMPAIGN, patron_status="former_patron")
    assert ask([former, PAYING], min_cents=100).allowed
    declined = member(patron_status="declined_patron", last_charge_status="Declined")
    assert ask([member(patron_status="former_patron"), declined], min_cents=100).reason is Reason.DECLINED


def test_a_query_names_exactly_one_thing():
    with pytest.raises(ValueError):
        Query()
    with pytest.raises(ValueError):
        Query(tier_id="silver", min_cents=5)
