"""Tiers and benefits of the creator's campaigns, as the last sync saw them.

Owns the tables ``tiers`` and ``benefits`` (created in ``store/migrations``).
Written by the worker's full sync (``worker.member_sync``), read by web's
entitlement routes. A tier or benefit that Patreon stops listing is kept with
``deleted = 1``: a member's entitled tier ids, an old link to a tier or a site's
stored gate then still resolve to a title and an amount.
"""

from __future__ import annotations

import dataclasses
import json

from store.database import Connection, Store


@dataclasses.dataclass(frozen=True)
class TierRow:
    id: str
    campaign_id: str
    title: str | None
    amount_cents: int
    published: bool
    deleted: bool
    benefit_ids: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class BenefitRow:
    id: str
    campaign_id: str
    title: str | None
    deleted: bool


def replace_campaign_in(
    conn: Connection,
    campaign_id: str,
    tiers: list[TierRow],
    benefits: list[BenefitRow],
    now: str,
) -> None:
    """Store what the campaign lists now; what it no longer lists becomes deleted."""
    where = {"now": now, "campaign_id": campaign_id}
    conn.execute("UPDATE tiers SET deleted = 1, updated_at = :now WHERE campaign_id = :campaign_id", where)
    conn.execute("UPDATE benefits SET deleted = 1, updated_at = :now WHERE campaign_id = :campaign_id", where)
    if tiers:
        conn.execute(
            "INSERT INTO tiers (id, campaign_id, title, amount_cents, published, deleted, benefit_ids, updated_at)"
            " VALUES (:id, :campaign_id, :title, :amount_cents, :published, :deleted, :benefit_ids, :now)"
            " ON CONFLICT (id) DO UPDATE SET campaign_id = excluded.campaign_id,"
            " title = excluded.title, amount_cents = excluded.amount_cents, published = excluded.published,"
            " deleted = excluded.deleted, benefit_ids = excluded.benefit_ids, updated_at = excluded.updated_at",
            [
                {
                    "id": t.id,
                    "campaign_id": campaign_id,
                    "title": t.title,
                    "amount_cents": t.amount_cents,
                    "published": int(t.published),
                    "deleted": int(t.deleted),
                    "benefit_ids": json.dumps(sorted(t.benefit_ids)),
                    "now": now,
                }
                for t in tiers
            ],
        )
    if benefits:
        conn.execute(
            "INSERT INTO benefits (id, campaign_id, title, deleted, updated_at)"
            " VALUES (:id, :campaign_id, :title, :deleted, :now)"
            " ON CONFLICT (id) DO UPDATE SET campaign_id = excluded.campaign_id, title = excluded.title,"
            " deleted = excluded.deleted, updated_at = excluded.updated_at",
            [
                {
                    "id": b.id,
                    "campaign_id": campaign_id,
                    "title": b.title,
                    "deleted": int(b.deleted),
                    "now": now,
                }
                for b in benefits
            ],
        )


def all_tiers(store: Store) -> dict[str, TierRow]:
    with store.read() as conn:
        rows = conn.execute(
            "SELECT id, campaign_id, title, amount_cents, published, deleted, benefit_ids FROM tiers"
        ).fetchall()
    return {
        row["id"]: TierRow(
            row["id"],
            row["campaign_id"],
            row["title"],
            row["amount_cents"],
            bool(row["published"]),
            bool(row["deleted"]),
            tuple(json.loads(row["benefit_ids"])),
        )
        for row in rows
    }


def all_benefits(store: Store) -> dict[str, BenefitRow]:
    with store.read() as conn:
        rows = conn.execute("SELECT id, campaign_id, title, deleted FROM benefits").fetchall()
    return {
        row["id"]: BenefitRow(row["id"], row["campaign_id"], row["title"], bool(row["deleted"]))
        for row in rows
    }


def version(store: Store) -> str | None:
    """Changes whenever a sync rewrites tiers or benefits (readers cache on it)."""
    with store.read() as conn:
        row = conn.execute("SELECT MAX(updated_at) AS t, COUNT(*) AS n FROM tiers").fetchone()
    return None if row["t"] is None else f"{row['t']}/{row['n']}"
