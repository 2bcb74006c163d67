"""The rule that says whether a member is entitled, and whether a user may see a thing.

Active (``is_active``), in this order:

1. A deleted member row, or ``patron_status == "former_patron"``: not active (FORMER).
2. ``patron_status == "active_patron"`` with a last charge that is ``Paid`` or
   ``Pending``, or a free trial, or a gifted membership: active.
3. ``patron_status == "declined_patron"`` (Patreon retries the card for a while):
   active only within the grace period after the last charge date; the grace period
   is the operator's choice and defaults to 0, so a decline ends access at once.
4. Anything else: not active. That includes free members (``patron_status`` null:
   they follow the campaign and pay nothing) and an active patron whose last charge
   was refunded, marked as fraud or deleted.

A tier check (``decide``) passes when the member is active and is entitled to that
tier, or to a tier of the same campaign that costs at least as much (a higher tier
unlocks what a lower one does, as on Patreon's own posts). A benefit check passes
when one of the member's entitled tiers carries the benefit. A ``min_cents`` check
compares ``currently_entitled_amount_cents``.

Every answer carries one stable reason, so a site can say why: ``ACTIVE_TIER``
(allowed), ``BELOW_TIER``, ``DECLINED``, ``FORMER``, ``NOT_A_MEMBER``,
``UNKNOWN_TIER`` (no synced tier or benefit has that id, deleted ones included), and
``NOT_SYNCED`` (no full sync has finished yet, so "not a member" would be a guess).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

ACTIVE_PATRON = "active_patron"
DECLINED_PATRON = "declined_patron"
FORMER_PATRON = "former_patron"
# Patreon's ``last_charge_status`` values that count as paying.
PAYING_CHARGE_STATUSES = frozenset({"Paid", "Pending"})


class Reason(enum.StrEnum):
    ACTIVE_TIER = "ACTIVE_TIER"
    BELOW_TIER = "BELOW_TIER"
    DECLINED = "DECLINED"
    FORMER = "FORMER"
    NOT_A_MEMBER = "NOT_A_MEMBER"
    UNKNOWN_TIER = "UNKNOWN_TIER"
    NOT_SYNCED = "NOT_SYNCED"


@dataclasses.dataclass(frozen=True, slots=True)  # slots: web caches many (web.entitlement_reads)
class Membership:
    """What the rule needs of one member row."""

    campaign_id: str
    patron_status: str | None
    last_charge_status: str | None
    last_charge_date: datetime | None
    entitled_tier_ids: tuple[str, ...]
    entitled_amount_cents: int
    is_free_trial: bool = False
    is_gifted: bool = False
    deleted: bool = False


@dataclasses.dataclass(frozen=True)
class Tier:
    """A synced tier; deleted tiers stay so that old ids still resolve."""

    id: str
    campaign_id: str
    amount_cents: int
    benefit_ids: frozenset[str] = frozenset()


@dataclasses.dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: Reason


@dataclasses.dataclass(frozen=True)
class Query:
    """Exactly one of the three is set (web validates that before asking)."""

    tier_id: str | None = None
    benefit_id: str | None = None
    min_cents: int | None = None

    def __post_init__(self) -> None:
        if sum(x is not None for x in (self.tier_id, self.benefit_id, self.min_cents)) != 1:
            raise ValueError("exactly one of tier_id, benefit_id, min_cents")


def standing(member: Membership, now: datetime, grace: timedelta) -> Reason | None:
    """None when active; otherwise why not (FORMER, DECLINED or BELOW_TIER)."""
    if member.deleted or member.patron_status == FORMER_PATRON:
        return Reason.FORMER
    if member.patron_status == ACTIVE_PATRON:
        if member.last_charge_status in PAYING_CHARGE_STATUSES or member.is_free_trial or member.is_gifted:
            return None
        return Reason.BELOW_TIER
    if member.patron_status == DECLINED_PATRON:
        if member.last_charge_date is not None and grace > timedelta(0) and now < member.last_charge_date + grace:
            return None
        return Reason.DECLINED
    return Reason.BELOW_TIER  # a free member


def is_active(member: Membership, now: datetime, grace: timedelta) -> bool:
    return standing(member, now, grace) is None


def decide(
    query: Query,
    memberships: Iterable[Membership],
    tiers: Mapping[str, Tier],
    *,
    synced: bool,
    now: datetime,
    grace: timedelta,
) -> Decision:
    """May the user whose ``memberships`` these are see what ``query`` names?"""
    memberships = list(memberships)
    wanted: Tier | None = None
    if query.tier_id is not None:
        wanted = tiers.get(query.tier_id)
        if wanted is None:
            return Decision(False, Reason.UNKNOWN_TIER if synced else Reason.NOT_SYNCED)
        memberships = [m for m in memberships if m.campaign_id == wanted.campaign_id]
    elif query.benefit_id is not None and not any(query.benefit_id in t.benefit_ids for t in tiers.values()):
        return Decision(False, Reason.UNKNOWN_TIER if synced else Reason.NOT_SYNCED)
    if not memberships:
        return Decision(False, Reason.NOT_A_MEMBER if synced else Reason.NOT_SYNCED)

    # The best answer over the user's memberships: allowed beats every refusal, and a
    # refusal that says more (below tier, declined) beats one that says less (former).
    refusals: list[Reason] = []
    for member in memberships:
        why_not = standing(member, now, grace)
        if why_not is None:
            if _covers(query, member, wanted, tiers):
                return Decision(True, Reason.ACTIVE_TIER)
            why_not = Reason.BELOW_TIER
        refusals.append(why_not)
    for reason in (Reason.BELOW_TIER, Reason.DECLINED, Reason.FORMER):
        if reason in refusals:
            return Decision(False, reason)
    raise AssertionError(f"unexpected refusals {refusals}")  # standing() returns only those three


def _covers(query: Query, member: Membership, wanted: Tier | None, tiers: Mapping[str, Tier]) -> bool:
    if query.min_cents is not None:
        return member.entitled_amount_cents >= query.min_cents
    held = [tiers[t] for t in member.entitled_tier_ids if t in tiers]
    if wanted is not None:
        return wanted.id in member.entitled_tier_ids or any(
            t.campaign_id == wanted.campaign_id and t.amount_cents >= wanted.amount_cents for t in held
        )
    return any(query.benefit_id in t.benefit_ids for t in held)
