"""The seeded world: deterministic, realistic, and fast to build."""

from __future__ import annotations

import re
import time
import uuid
from collections import Counter

from sandbox.data import CAMPAIGN_ID, CREATOR_ID, World

EMAIL = re.compile(r"^patron\d+@example\.com$")


def test_same_seed_same_world_other_seed_other_world():
    first, second, other = World.generate(7, 200), World.generate(7, 200), World.generate(8, 200)
    assert list(first.members) == list(second.members)
    assert [u.email for u in first.users.values()] == [u.email for u in second.users.values()]
    assert list(first.members) != list(other.members)


def test_creator_campaign_tiers_and_posts():
    world = World.generate(1, 30)
    creator = world.users[CREATOR_ID]
    assert creator.is_creator and CREATOR_ID not in world.member_by_user
    campaign = world.campaigns[CAMPAIGN_ID]
    assert campaign.creator_id == CREATOR_ID
    amounts = sorted(world.tiers[t].amount_cents for t in campaign.tier_ids)
    assert len(amounts) >= 3 and amounts[:3] == [100, 500, 1000]
    assert all(world.tiers[t].benefit_ids for t in campaign.tier_ids)
    assert len(world.posts) == 20


def test_members_look_like_patreon_members():
    world = World.generate(1, 500)
    assert len(world.members) == 500
    user_ids = sorted(int(m.user_id) for m in world.members.values())
    assert user_ids == list(range(2, 502))
    statuses = Counter(m.patron_status for m in world.members.values())
    assert statuses["active_patron"] > statuses["declined_patron"] > 0
    assert statuses["former_patron"] > 0
    for member in world.members.values():
        assert uuid.UUID(member.id).version == 4
        assert EMAIL.match(world.users[member.user_id].email)
        assert member.pledge_event_ids
        if member.patron_status == "active_patron":
            assert member.tier_ids and member.last_charge_status == "Paid"
            assert member.currently_entitled_amount_cents == world.tiers[member.tier_ids[0]].amount_cents
        if member.patron_status == "former_patron":
            assert member.tier_ids == [] and member.will_pay_amount_cents == 0
    assert any(u.social_connections.get("discord") for u in world.users.values())


def test_ten_thousand_members_build_well_under_two_seconds():
    # Best of two, so that a busy machine (other suites, benchmarks) does not decide it.
    timings = []
    for _ in range(2):
        started = time.perf_counter()
        world = World.generate(1, 10_000)
        timings.append(time.perf_counter() - started)
        assert len(world.members) == 10_000
        if timings[-1] < 1.5:
            break
    assert min(timings) < 1.5, f"building 10,000 members took {min(timings):.2f}s"
