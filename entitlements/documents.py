"""Patreon's JSON:API documents -> the records the member and tier tables keep.

Pure functions, used by the worker for API answers (sync pages, single-member reads)
and for webhook bodies (a provisional application). They raise ``DocumentError``
for a resource they cannot read, with a message that never quotes its values.
"""

from __future__ import annotations

from typing import Any

from store.members import MemberRecord
from store.tiers import BenefitRow, TierRow

MAX_ID_CHARS = 128


class DocumentError(ValueError):
    """A resource that is not what Patreon sends. Quotes no payload values."""


def _id(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_ID_CHARS:
        raise DocumentError(f"{what} is not an id string")
    return value


def _text(attributes: dict[str, Any], name: str) -> str | None:
    value = attributes.get(name)
    if value is not None and not isinstance(value, str):
        raise DocumentError(f"attribute {name} is not a string")
    return value


def _int(attributes: dict[str, Any], name: str) -> int | None:
    value = attributes.get(name)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise DocumentError(f"attribute {name} is not a whole number")
    return value


def _to_one(relationships: dict[str, Any], name: str) -> str | None:
    data = (relationships.get(name) or {}).get("data") if isinstance(relationships.get(name), dict) else None
    if data is None:
        return None
    if not isinstance(data, dict):
        raise DocumentError(f"relationship {name} is not to-one")
    return _id(data.get("id"), f"relationships.{name}.data.id")


def _to_many(relationships: dict[str, Any], name: str) -> tuple[str, ...]:
    rel = relationships.get(name)
    if rel is None:
        return ()
    items = rel.get("data") if isinstance(rel, dict) else None
    if items is None:
        return ()
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise DocumentError(f"relationship {name} is not to-many")
    return tuple(sorted({_id(i.get("id"), f"a {name} id") for i in items}))


def member_record(resource: Any, *, campaign_id: str | None = None, keep_pii: bool = False) -> MemberRecord:
    """A ``member`` resource (with ``currently_entitled_tiers`` and ``user`` linkage)."""
    if not isinstance(resource, dict) or resource.get("type") != "member":
        raise DocumentError("not a member resource")
    member_id = _id(resource.get("id"), "data.id")
    attributes = resource.get("attributes") or {}
    relationships = resource.get("relationships") or {}
    if not isinstance(attributes, dict) or not isinstance(relationships, dict):
        raise DocumentError("attributes or relationships is not an object")
    campaign = _to_one(relationships, "campaign") or campaign_id
    if campaign is None:
        raise DocumentError("the member names no campaign")
    lifetime = _int(attributes, "campaign_lifetime_support_cents")
    if lifetime is None:
        lifetime = _int(attributes, "lifetime_support_cents")
    return MemberRecord(
        member_id=member_id.lower(),
        campaign_id=campaign,
        user_id=_to_one(relationships, "user"),
        patron_status=_text(attributes, "patron_status"),
        last_charge_status=_text(attributes, "last_charge_status"),
        last_charge_date=_text(attributes, "last_charge_date"),
        next_charge_date=_text(attributes, "next_charge_date"),
        entitled_tier_ids=_to_many(relationships, "currently_entitled_tiers"),
        entitled_amount_cents=_int(attributes, "currently_entitled_amount_cents") or 0,
        will_pay_amount_cents=_int(attributes, "will_pay_amount_cents"),
        pledge_relationship_start=_text(attributes, "pledge_relationship_start"),
        lifetime_support_cents=lifetime,
        is_free_trial=attributes.get("is_free_trial") is True,
        is_gifted=attributes.get("is_gifted") is True,
        email=_text(attributes, "email") if keep_pii else None,
        full_name=_text(attributes, "full_name") if keep_pii else None,
    )


def campaign_tiers(document: Any, campaign_id: str) -> tuple[list[TierRow], list[BenefitRow]]:
    """Tiers and benefits from ``GET /campaigns/{id}?include=tiers,benefits,tiers.benefits``."""
    included = document.get("included") if isinstance(document, dict) else None
    tiers: list[TierRow] = []
    benefits: list[BenefitRow] = []
    for item in included or []:
        if not isinstance(item, dict):
            continue
        attributes = item.get("attributes") or {}
        if item.get("type") == "tier":
            tier_id = _id(item.get("id"), "a tier id")
            relationships = item.get("relationships") or {}
            tiers.append(
                TierRow(
                    id=tier_id,
                    campaign_id=campaign_id,
                    title=_text(attributes, "title"),
                    amount_cents=_int(attributes, "amount_cents") or 0,
                    published=attributes.get("published") is not False,
                    deleted=False,
                    benefit_ids=_to_many(relationships, "benefits"),
                )
            )
        elif item.get("type") == "benefit":
            benefits.append(
                BenefitRow(
                    id=_id(item.get("id"), "a benefit id"),
                    campaign_id=campaign_id,
                    title=_text(attributes, "title"),
                    deleted=attributes.get("is_deleted") is True,
                )
            )
    return tiers, benefits
