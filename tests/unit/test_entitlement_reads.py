"""web.entitlement_reads: the per-process cache of what access checks read, on a real
SQLite store, changed through a second Store on the same file (another process's
connection, as the worker's would be): every change to members, tiers, benefits or
sync runs is seen by the very next read, and nothing is re-read while nothing changed.
"""

from __future__ import annotations

from entitlements import answers
from store import member_sync, members, tiers
from store.database import Store
from store.members import MemberRecord
from store.tiers import BenefitRow, TierRow
from web.entitlement_reads import EntitlementReads

M1 = "0b3f7a4e-1111-4c2a-9d7e-000000000001"
AT = "2026-06-01T00:00:00.000Z"


def put_member(store: Store, tiers_: tuple[str, ...], status: str = "active_patron") -> None:
    record = MemberRecord(
        member_id=M1,
        campaign_id="1001",
        user_id="7",
        patron_status=status,
        last_charge_status="Paid",
        entitled_tier_ids=tiers_,
        entitled_amount_cents=500,
    )
    with store.transaction() as conn:
        members.put_in(conn, record, source=members.REFRESH, source_at=AT)


def put_tiers(store: Store, amount_cents: int) -> None:
    with store.transaction() as conn:
        tiers.replace_campaign_in(
            conn,
            "1001",
            [TierRow("3001", "1001", "Bronze", amount_cents, True, False, ("4001",))],
            [BenefitRow("4001", "1001", "Posts", False)],
            AT,
        )


def test_every_write_by_another_connection_is_seen_by_the_next_read(store, tmp_path):
    other = Store(store.url)  # the worker's connection, say
    reads = EntitlementReads(store)
    catalog, memberships = reads.access_inputs("7")
    assert (catalog.synced, catalog.tiers, memberships) == (False, {}, ())

    put_tiers(other, 500)
    put_member(other, ("3001",))
    catalog, memberships = reads.access_inputs("7")
    assert catalog.rule_tiers["3001"].amount_cents == 500
    assert catalog.benefits["4001"].title == "Posts"
    assert [m.entitled_tier_ids for m in memberships] == [("3001",)]

    put_member(other, (), status="declined_patron")
    _, memberships = reads.access_inputs("7")
    assert [(m.patron_status, m.entitled_tier_ids) for m in memberships] == [("declined_patron", ())]

    put_tiers(other, 900)
    assert reads.access_inputs("7")[0].rule_tiers["3001"].amount_cents == 900

    run_id = member_sync.request(other, "test", AT)
    member_sync.start(other, run_id, AT)
    member_sync.finish(other, run_id, AT)
    assert reads.catalog().synced is True
    # Exactly what reading the tables directly gives.
    expected = tuple(answers.membership_of(row.record) for row in members.of_user(store, "7"))
    assert reads.access_inputs("7")[1] == expected


def test_nothing_is_re_read_while_nothing_changed(store, monkeypatch):
    put_tiers(store, 500)
    put_member(store, ("3001",))
    reads = EntitlementReads(store)
    first = reads.access_inputs("7")
    calls = []
    monkeypatch.setattr(members, "of_user", lambda *a: calls.append(a) or [])
    monkeypatch.setattr(tiers, "all_tiers", lambda *a: calls.append(a) or {})
    again = reads.access_inputs("7")
    assert again[0] is first[0] and again[1] is first[1]
    assert calls == []


def test_the_cache_holds_at_most_its_bound_of_users(store):
    reads = EntitlementReads(store, max_users=3)
    for user in range(10):
        reads.access_inputs(str(user))
    assert len(reads._current().memberships) <= 3


def test_a_store_without_counters_is_read_through(store):
    with store.transaction() as conn:
        conn.execute("DELETE FROM table_generations WHERE name = 'members'")
    put_member(store, ("3001",))
    reads = EntitlementReads(store)
    assert [m.entitled_tier_ids for m in reads.access_inputs("7")[1]] == [("3001",)]
    put_member(store, ("3002",))
    assert [m.entitled_tier_ids for m in reads.access_inputs("7")[1]] == [("3002",)]
