"""Writes member rows, and tells when a write changed what a member may see.

Every writer of ``store.members`` in the worker goes through ``MemberWriter.put_in``
(sync pages, refreshes, provisional webhook documents), so drift is judged and
``entitlement:changed`` events are appended in one place, inside the same
transaction as the row: an event exists exactly when the row it describes does.

An event is appended when the member's ``active`` answer or its entitled tiers
change. It is not appended while the table is being filled for the first time
(``emit=False``: the baseline sync), which would otherwise announce every member.
Expiry of a grace period is not a write, so it appends no event; the access API
still answers by the clock.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from entitlements.answers import is_active
from store import members, webhook_events
from store.database import Connection
from store.members import MemberRecord, StoredMember


class MemberWriter:
    def __init__(self, grace: timedelta, clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self._grace = grace
        self._clock = clock

    def put_in(
        self,
        conn: Connection,
        record: MemberRecord,
        *,
        source: str,
        source_at: str,
        sync_id: int | None = None,
        event_id: int | None = None,
        emit: bool = True,
        before: StoredMember | None = None,
    ) -> bool:
        """Write the row; True when it differs from what was stored (drift)."""
        if before is None:
            before = members.get_in(conn, record.member_id)
        members.put_in(conn, record, source=source, source_at=source_at, sync_id=sync_id, event_id=event_id)
        old = None if before is None else before.record
        drift = old is None or old.entitlement_key() != record.entitlement_key()
        if drift and emit:
            now = self._clock()
            was, now_active = is_active(old, now, self._grace), is_active(record, now, self._grace)
            old_tiers = sorted(old.entitled_tier_ids) if old else []
            new_tiers = sorted(record.entitled_tier_ids)
            if was != now_active or old_tiers != new_tiers:
                document = {
                    "data": {
                        "type": "entitlement-change",
                        "id": record.member_id,
                        "attributes": {
                            "user_id": record.user_id,
                            "campaign_id": record.campaign_id,
                            "member_id": record.member_id,
                            "before": {"tier_ids": old_tiers, "active": was},
                            "after": {"tier_ids": new_tiers, "active": now_active},
                            "source": source,
                        },
                    }
                }
                webhook_events.append_derived_in(
                    conn, webhook_events.ENTITLEMENT_CHANGED, document, record.campaign_id, now=source_at
                )
        return drift
