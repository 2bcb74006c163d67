"""Per-member state, kept current from consumed webhook events.

Owns the table ``member_state`` (created in ``store/migrations``; written by the
worker's event consumer, read through the worker's ``members.state`` action): one row per
Patreon member id with what entitlement checks need (patron status, last charge
status, entitled tiers, amounts), the campaign and user it belongs to, and the last
event applied. No email or name is kept: the store holds no more personal data than
the checks need.

Application is idempotent and ordered by event id: a row remembers the id of the
event that last changed it, and an event with an id not above it changes nothing.
Applying the same event twice, or an older event after a newer one (a retry that
overtook its successor), is therefore harmless.

An attribute missing from a payload keeps its stored value; an attribute present
with ``null`` is stored as null (``patron_status: null`` means "never pledged").
Only ``member`` documents are applied; posts and legacy v1 ``pledge`` documents
carry no member id and are ignored.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from store.database import Connection, Store
from store.timestamps import utc_now_iso
from store.webhook_events import StoredEvent

APPLIED = "applied"
STALE = "stale"  # an event not newer than the one the row already reflects
IGNORED = "ignored"  # not a member document

_TEXT_ATTRIBUTES = ("patron_status", "last_charge_status")
_CENTS_ATTRIBUTES = ("currently_entitled_amount_cents", "will_pay_amount_cents")
MAX_ID_CHARS = 128


class MemberEventError(ValueError):
    """A member event that cannot be applied. Its message never quotes payload values."""


@dataclasses.dataclass(frozen=True)
class MemberState:
    member_id: str
    campaign_id: str | None
    user_id: str | None
    patron_status: str | None
    last_charge_status: str | None
    entitled_tier_ids: tuple[str, ...]
    currently_entitled_amount_cents: int | None
    will_pay_amount_cents: int | None
    deleted: bool
    last_event: str
    last_event_id: int
    last_event_at: str
    updated_at: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "memberId": self.member_id,
            "campaignId": self.campaign_id,
            "userId": self.user_id,
            "patronStatus": self.patron_status,
            "lastChargeStatus": self.last_charge_status,
            "entitledTierIds": list(self.entitled_tier_ids),
            "currentlyEntitledAmountCents": self.currently_entitled_amount_cents,
            "willPayAmountCents": self.will_pay_amount_cents,
            "deleted": self.deleted,
            "lastEvent": self.last_event,
            "lastEventId": self.last_event_id,
            "lastEventAt": self.last_event_at,
            "updatedAt": self.updated_at,
        }


def _identifier(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_ID_CHARS:
        raise MemberEventError(f"{what} is not an id string")
    return value


def _related_id(relationships: dict[str, Any], name: str) -> tuple[bool, str | None]:
    """(present, id) of a to-one relationship."""
    if name not in relationships:
        return False, None
    rel = relationships[name]
    if not isinstance(rel, dict) or "data" not in rel:
        raise MemberEventError(f"relationship {name} is not a JSON:API relationship")
    if rel["data"] is None:
        return True, None
    if not isinstance(rel["data"], dict):
        raise MemberEventError(f"relationship {name} is not to-one")
    return True, _identifier(rel["data"].get("id"), f"relationships.{name}.data.id")


def _changes(event: StoredEvent, data: dict[str, Any]) -> dict[str, Any]:
    """The columns this event sets (only those its payload carries)."""
    attributes = data.get("attributes")
    relationships = data.get("relationships")
    attributes = {} if attributes is None else attributes
    relationships = {} if relationships is None else relationships
    if not isinstance(attributes, dict) or not isinstance(relationships, dict):
        raise MemberEventError("attributes or relationships is not an object")
    changes: dict[str, Any] = {}
    for name in _TEXT_ATTRIBUTES:
        if name in attributes:
            value = attributes[name]
            if value is not None and not isinstance(value, str):
                raise MemberEventError(f"attribute {name} is not a string")
            changes[name] = value
    for name in _CENTS_ATTRIBUTES:
        if name in attributes:
            value = attributes[name]
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise MemberEventError(f"attribute {name} is not a whole number")
            changes[name] = value
    for name, column in (("campaign", "campaign_id"), ("user", "user_id")):
        present, related = _related_id(relationships, name)
        if present:
            changes[column] = related
    if "currently_entitled_tiers" in relationships:
        rel = relationships["currently_entitled_tiers"]
        items = rel.get("data") if isinstance(rel, dict) else None
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise MemberEventError("relationship currently_entitled_tiers is not to-many")
        tier_ids = [_identifier(item.get("id"), "a tier id") for item in items]
        changes["entitled_tier_ids"] = json.dumps(sorted(set(tier_ids)))
    # Only members:delete removes the member; members:pledge:delete ends a pledge,
    # and the member (now a former patron) stays.
    changes["deleted"] = 1 if event.event == "members:delete" else 0
    changes["last_event"] = event.event
    changes["last_event_id"] = event.id
    changes["last_event_at"] = event.received_at
    return changes


def apply(store: Store, event: StoredEvent, *, now: str | None = None) -> str:
    """Apply one stored event in its own transaction: ``APPLIED``, ``STALE`` or ``IGNORED``.

    Raises ``MemberEventError`` for a member document it cannot read.
    """
    with store.transaction() as conn:
        return apply_in(conn, event, now=now)


def apply_in(conn: Connection, event: StoredEvent, *, now: str | None = None) -> str:
    """``apply`` inside the caller's write transaction (the consumer applies a whole
    batch in one). Raises before writing anything for a document it cannot read."""
    data = event.document().get("data")
    if not isinstance(data, dict) or data.get("type") != "member":
        return IGNORED
    member_id = _identifier(data.get("id"), "data.id")
    changes = _changes(event, data)
    changes["updated_at"] = now or utc_now_iso()
    row = conn.execute(
        "SELECT last_event_id FROM member_state WHERE member_id = :member_id", {"member_id": member_id}
    ).fetchone()
    params = {**changes, "member_id": member_id}
    if row is None:
        columns = ["member_id", *changes]
        conn.execute(
            f"INSERT INTO member_state ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)})",
            params,
        )
        return APPLIED
    if row["last_event_id"] >= event.id:
        return STALE
    assignments = ", ".join(f"{column} = :{column}" for column in changes)
    conn.execute(f"UPDATE member_state SET {assignments} WHERE member_id = :member_id", params)
    return APPLIED


def get(store: Store, member_id: str) -> MemberState | None:
    with store.read() as conn:
        row = conn.execute(
            "SELECT * FROM member_state WHERE member_id = :member_id", {"member_id": member_id}
        ).fetchone()
    if row is None:
        return None
    return MemberState(
        member_id=row["member_id"],
        campaign_id=row["campaign_id"],
        user_id=row["user_id"],
        patron_status=row["patron_status"],
        last_charge_status=row["last_charge_status"],
        entitled_tier_ids=tuple(json.loads(row["entitled_tier_ids"])),
        currently_entitled_amount_cents=row["currently_entitled_amount_cents"],
        will_pay_amount_cents=row["will_pay_amount_cents"],
        deleted=bool(row["deleted"]),
        last_event=row["last_event"],
        last_event_id=row["last_event_id"],
        last_event_at=row["last_event_at"],
        updated_at=row["updated_at"],
    )
