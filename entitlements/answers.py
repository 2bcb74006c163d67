"""From stored rows to the answers of the entitlement API, through ``entitlements.rule``.

Pure: web reads the rows (``store.members``, ``store.tiers``) and passes them in with
the clock and the grace period; the worker uses ``membership_of`` to tell whether a
write changed anyone's access (``entitlement:changed``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from entitlements import rule
from store.members import MemberRecord, StoredMember
from store.tiers import BenefitRow, TierRow


def parse_time(value: str | None) -> datetime | None:
    """Patreon's ISO timestamps (``...000+00:00`` or ``Z``); None when unreadable."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def membership_of(record: MemberRecord) -> rule.Membership:
    return rule.Membership(
        campaign_id=record.campaign_id,
        patron_status=record.patron_status,
        last_charge_status=record.last_charge_status,
        last_charge_date=parse_time(record.last_charge_date),
        entitled_tier_ids=record.entitled_tier_ids,
        entitled_amount_cents=record.entitled_amount_cents,
        is_free_trial=record.is_free_trial,
        is_gifted=record.is_gifted,
        deleted=record.deleted,
    )


def rule_tiers(tiers: Mapping[str, TierRow]) -> dict[str, rule.Tier]:
    return {
        t.id: rule.Tier(t.id, t.campaign_id, t.amount_cents, frozenset(t.benefit_ids)) for t in tiers.values()
    }


def is_active(record: MemberRecord | None, now: datetime, grace: timedelta) -> bool:
    return record is not None and rule.is_active(membership_of(record), now, grace)


def entitlements(
    rows: Iterable[StoredMember],
    tiers: Mapping[str, TierRow],
    benefits: Mapping[str, BenefitRow],
    *,
    now: datetime,
    grace: timedelta,
) -> list[dict[str, Any]]:
    """One entry per campaign the user belongs to (former memberships included)."""
    out = []
    for row in rows:
        record = row.record
        held = [tiers[t] for t in record.entitled_tier_ids if t in tiers]
        benefit_ids = sorted({b for t in held for b in t.benefit_ids})
        why_not = rule.standing(membership_of(record), now, grace)
        out.append(
            {
                "campaign_id": record.campaign_id,
                "member_id": record.member_id,
                "status": "former_patron" if record.deleted else record.patron_status,
                "active": why_not is None,
                "reason": None if why_not is None else str(why_not),
                "tiers": [
                    {"id": t, "title": tiers[t].title if t in tiers else None}
                    for t in record.entitled_tier_ids
                ],
                "benefits": [
                    {"id": b, "title": benefits[b].title if b in benefits else None} for b in benefit_ids
                ],
                "amount_cents": record.entitled_amount_cents,
                "since": record.pledge_relationship_start,
                "last_charge_status": record.last_charge_status,
                "last_charge_date": record.last_charge_date,
                "next_charge_date": record.next_charge_date,
                "source": row.source,
                "updated_at": row.source_at,
            }
        )
    return out


def access(
    query: rule.Query,
    rows: Iterable[StoredMember],
    tiers: Mapping[str, TierRow],
    *,
    synced: bool,
    now: datetime,
    grace: timedelta,
) -> rule.Decision:
    return rule.decide(
        query,
        [membership_of(row.record) for row in rows],
        rule_tiers(tiers),
        synced=synced,
        now=now,
        grace=grace,
    )
