"""The worker's member programs without the network: an in-memory Patreon that answers
the same JSON:API dicts ``PatreonApi.get`` returns, and the real SQLite store.

- documents -> records (no PII unless asked; unreadable resources refused);
- a webhook hint queues a refresh; the refresh stores Patreon's state whatever the
  delivery said; a 404 makes the member former; while Patreon fails a delivery is
  applied provisionally, never over API-sourced state nor over a newer delivery;
- a sync walks pages, counts drift, marks missing members former, and marks nobody
  former when the walk fails part way;
- ``entitlement:changed`` events exactly when access or tiers change.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from entitlements import answers
from entitlements.documents import DocumentError, campaign_tiers, member_record
from entitlements.rule import Query, Reason
from patreon_client.errors import UpstreamError
from store import member_refresh, member_sync, members, tiers, webhook_events
from store.members import MemberRecord
from tests.webhook_deliveries import encode, member_document
from wire.codes import NOT_FOUND
from wire.protocol import ActionError
from worker.member_refresh import MemberRefresher, PatreonReader, note_in
from worker.member_sync import MemberSync
from worker.member_writer import MemberWriter

M1 = "0b3f7a4e-1111-4c2a-9d7e-000000000001"
M2 = "0b3f7a4e-1111-4c2a-9d7e-000000000002"
M3 = "0b3f7a4e-1111-4c2a-9d7e-000000000003"
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def resource(member_id: str, user: str, status: str = "active_patron", tiers_=("3001",), cents=100, **attrs):
    return {
        "type": "member",
        "id": member_id,
        "attributes": {
            "patron_status": status,
            "last_charge_status": "Paid" if status == "active_patron" else "Declined",
            "last_charge_date": "2026-05-01T10:00:00.000+00:00",
            "currently_entitled_amount_cents": cents,
            "email": "someone@example.com",
            "full_name": "Some One",
            **attrs,
        },
        "relationships": {
            "currently_entitled_tiers": {"data": [{"type": "tier", "id": t} for t in tiers_]},
            "user": {"data": {"type": "user", "id": user}},
            "campaign": {"data": {"type": "campaign", "id": "1001"}},
        },
    }


class FakePatreon:
    """Answers like ``PatreonApi.get``: dicts, ActionError(NOT_FOUND) for a 404."""

    def __init__(self, people: dict[str, dict], page_size: int = 2):
        self.people = people
        self.page_size = page_size
        self.fail: Exception | None = None
        self.fail_after_pages: int | None = None
        self.calls: list[str] = []

    def get(self, principal, path, params, deadline):
        self.calls.append(path)
        if self.fail is not None and (self.fail_after_pages is None or self._pages() > self.fail_after_pages):
            raise self.fail
        if path == "/campaigns":
            return {"data": [{"type": "campaign", "id": "1001"}]}
        if path == "/campaigns/1001":
            return {
                "data": {"type": "campaign", "id": "1001"},
                "included": [
                    {
                        "type": "tier",
                        "id": "3001",
                        "attributes": {"title": "Supporter", "amount_cents": 100, "published": True},
                        "relationships": {"benefits": {"data": [{"type": "benefit", "id": "4001"}]}},
                    },
                    {
                        "type": "tier",
                        "id": "3002",
                        "attributes": {"title": "Insider", "amount_cents": 500, "published": True},
                        "relationships": {"benefits": {"data": []}},
                    },
                    {
                        "type": "benefit",
                        "id": "4001",
                        "attributes": {"title": "Discord", "is_deleted": False},
                    },
                ],
            }
        if path == "/campaigns/1001/members":
            assert params["page[count]"] == "1000"
            ids = sorted(self.people)
            start = int(params.get("page[cursor]", "0"))
            chunk = ids[start : start + self.page_size]
            more = start + self.page_size < len(ids)
            return {
                "data": [self.people[i] for i in chunk],
                "meta": {"pagination": {"cursors": {"next": str(start + self.page_size) if more else None}}},
            }
        if path.startswith("/members/"):
            member_id = path.rsplit("/", 1)[1]
            if member_id not in self.people:
                raise ActionError(NOT_FOUND, "no such member", status=404)
            return {"data": self.people[member_id]}
        raise AssertionError(path)

    def _pages(self) -> int:
        return sum(1 for c in self.calls if c.endswith("/members"))


def sync_of(store, patreon, **kw) -> MemberSync:
    return MemberSync(store, patreon, MemberWriter(timedelta(0)), interval_s=0, sleep=lambda s: None, **kw)


def run(store, sync: MemberSync):
    run_id = member_sync.request(store, "test", "2026-06-01T00:00:00.000Z")
    return sync.run(run_id)


def live(store) -> dict[str, MemberRecord]:
    with store.read() as conn:
        ids = [r["member_id"] for r in conn.execute("SELECT member_id FROM members")]
    return {i: members.get(store, i).record for i in ids}


def changed_events(store) -> list[dict]:
    return [
        json.loads(e.body)["data"]["attributes"]
        for e in webhook_events.since(store, 0, 1000)
        if e.event == webhook_events.ENTITLEMENT_CHANGED
    ]


def deliver(store, event: str, document: dict) -> webhook_events.StoredEvent:
    event_id, _ = webhook_events.accept(store, event, encode(document))
    return webhook_events.get(store, event_id)


# -- documents --------------------------------------------------------------------------------
def test_a_member_resource_becomes_a_record_without_pii_unless_asked():
    record = member_record(resource(M1.upper(), "7", tiers_=("3002", "3001"), cents=500))
    assert record.member_id == M1 and record.user_id == "7" and record.campaign_id == "1001"
    assert record.entitled_tier_ids == ("3001", "3002") and record.entitled_amount_cents == 500
    assert record.email is None and record.full_name is None
    assert member_record(resource(M1, "7"), keep_pii=True).email == "someone@example.com"


@pytest.mark.parametrize(
    "bad",
    [
        {"type": "post", "id": "1"},
        {"type": "member", "id": ""},
        {"type": "member", "id": M1, "attributes": {"patron_status": 5}},
        {"type": "member", "id": M1, "relationships": {"currently_entitled_tiers": {"data": "x"}}},
        {"type": "member", "id": M1},  # no campaign
    ],
)
def test_unreadable_member_resources_are_refused(bad):
    with pytest.raises(DocumentError):
        member_record(bad)


def test_campaign_tiers_keep_benefit_links():
    tier_rows, benefit_rows = campaign_tiers(FakePatreon({}).get(None, "/campaigns/1001", {}, 0), "1001")
    assert [(t.id, t.title, t.benefit_ids) for t in tier_rows] == [
        ("3001", "Supporter", ("4001",)),
        ("3002", "Insider", ()),
    ]
    assert [b.id for b in benefit_rows] == ["4001"]


# -- sync -------------------------------------------------------------------------------------------
def test_a_sync_walks_every_page_counts_drift_and_makes_missing_members_former(store):
    patreon = FakePatreon({M1: resource(M1, "2"), M2: resource(M2, "3"), M3: resource(M3, "4")})
    first = run(store, sync_of(store, patreon))
    assert (first.pages, first.members, first.drift, first.former, first.error) == (2, 3, 3, 0, None)
    assert member_sync.synced(store)
    assert changed_events(store) == []  # the baseline announces nobody
    assert tiers.all_tiers(store)["3001"].benefit_ids == ("4001",)

    del patreon.people[M3]
    patreon.people[M2] = resource(M2, "3", tiers_=("3002",), cents=500)
    second = run(store, sync_of(store, patreon))
    assert (second.members, second.drift, second.former) == (2, 2, 1)
    rows = live(store)
    assert rows[M3].deleted and rows[M3].entitled_tier_ids == ()
    assert rows[M2].entitled_tier_ids == ("3002",) and not rows[M1].deleted
    events = changed_events(store)
    assert [(e["member_id"], e["before"], e["after"]) for e in events] == [
        (M2, {"tier_ids": ["3001"], "active": True}, {"tier_ids": ["3002"], "active": True}),
        (M3, {"tier_ids": ["3001"], "active": True}, {"tier_ids": [], "active": False}),
    ]
    third = run(store, sync_of(store, patreon))
    assert (third.drift, third.former) == (0, 0) and len(changed_events(store)) == 2


def test_a_walk_that_fails_part_way_makes_nobody_former(store):
    patreon = FakePatreon({M1: resource(M1, "2"), M2: resource(M2, "3"), M3: resource(M3, "4")})
    run(store, sync_of(store, patreon))
    patreon.fail, patreon.fail_after_pages = UpstreamError("Patreon answered 503"), 1
    failed = run(store, sync_of(store, patreon))
    assert failed.error and "UpstreamError" in failed.error
    assert not any(r.deleted for r in live(store).values())
    assert member_sync.last_finished(store).id != failed.id  # the failed run is not the last good one


def test_a_sync_is_due_at_start_on_an_empty_table_and_then_on_schedule(store):
    patreon = FakePatreon({M1: resource(M1, "2")})
    clock = [1_000_000.0]
    sync = MemberSync(
        store,
        patreon,
        MemberWriter(timedelta(0)),
        interval_s=3600,
        clock=lambda: clock[0],
        sleep=lambda s: None,
    )
    assert sync.run_due() is not None  # nothing ever ran: due
    ran = len(patreon.calls)
    clock[0] = datetime.now(UTC).timestamp() + 60
    assert sync.run_due() is None and len(patreon.calls) == ran
    clock[0] += 3600
    assert sync.run_due() is not None


# -- refresh ------------------------------------------------------------------------------------
def refresher(store, patreon, clock=lambda: 10**10) -> MemberRefresher:
    return MemberRefresher(store, PatreonReader(patreon), MemberWriter(timedelta(0)), clock=clock)


def consume(store, event: webhook_events.StoredEvent) -> bool:
    with store.transaction() as conn:
        return note_in(conn, event, 0.0)


def test_any_member_delivery_only_queues_a_read_of_patreons_truth(store):
    patreon = FakePatreon({M1: resource(M1, "2", tiers_=("3002",), cents=500)})
    run(store, sync_of(store, patreon))
    # A stale body, replayed under members:delete: it says tier 3001, or deleted.
    old = member_document(M1, user_id="2", tier_ids=("3001",), cents=100)
    consume(store, deliver(store, "members:pledge:update", old))
    consume(store, deliver(store, "members:delete", old))
    assert member_refresh.pending(store) == 1  # one read for the burst
    assert refresher(store, patreon).run_once() == 1
    record = live(store)[M1]
    assert record.entitled_tier_ids == ("3002",) and not record.deleted
    assert members.get(store, M1).source == "refresh"
    assert member_refresh.pending(store) == 0


def test_a_member_patreon_no_longer_has_becomes_former_on_refresh(store):
    patreon = FakePatreon({M1: resource(M1, "2")})
    run(store, sync_of(store, patreon))
    del patreon.people[M1]
    consume(store, deliver(store, "members:delete", member_document(M1, user_id="2")))
    refresher(store, patreon).run_once()
    assert live(store)[M1].deleted
    assert changed_events(store)[-1]["after"] == {"tier_ids": [], "active": False}


def test_ids_that_are_not_patreon_member_ids_are_never_asked_for(store):
    consume(store, deliver(store, "members:create", member_document("dur-001")))
    assert member_refresh.pending(store) == 0


def test_while_patreon_fails_a_delivery_applies_provisionally_but_never_over_the_api(store):
    patreon = FakePatreon({M1: resource(M1, "2", tiers_=("3002",), cents=500)})
    run(store, sync_of(store, patreon))
    patreon.fail = UpstreamError("Patreon answered 503")
    # Known from the API: a (possibly stale) delivery must not replace it.
    consume(store, deliver(store, "members:update", member_document(M1, user_id="2", tier_ids=("3001",))))
    # Unknown: the delivery is the best there is.
    consume(store, deliver(store, "members:create", member_document(M2, user_id="3", tier_ids=("3001",))))
    clock = [10**9]
    worker = refresher(store, patreon, clock=lambda: clock[0])
    worker.run_once()
    rows = live(store)
    assert rows[M1].entitled_tier_ids == ("3002",) and members.get(store, M1).source == "sync"
    assert rows[M2].entitled_tier_ids == ("3001",) and members.get(store, M2).source == "webhook"
    assert member_refresh.pending(store) == 2  # both retried later
    assert worker.run_once() == 0  # not before their delay
    clock[0] += 2.5
    patreon.fail = None
    patreon.people[M2] = resource(M2, "3", tiers_=("3002",), cents=500)
    worker.run_once()
    assert live(store)[M2].entitled_tier_ids == ("3002",) and members.get(store, M2).source == "refresh"
    assert member_refresh.pending(store) == 0


def test_a_legacy_pledge_refreshes_the_users_members_or_asks_for_a_sync(store):
    patreon = FakePatreon({M1: resource(M1, "2")})
    run(store, sync_of(store, patreon))
    pledge = {
        "data": {
            "type": "pledge",
            "id": "pl-1",
            "relationships": {"patron": {"data": {"type": "user", "id": "2"}}},
        }
    }
    assert consume(store, deliver(store, "pledges:update", pledge)) is False
    assert member_refresh.pending(store) == 1
    stranger = {
        "data": {
            "type": "pledge",
            "id": "pl-2",
            "relationships": {"patron": {"data": {"type": "user", "id": "99"}}},
        }
    }
    assert consume(store, deliver(store, "pledges:create", stranger)) is True


# -- answers ------------------------------------------------------------------------------------
def test_answers_come_from_the_rows_and_the_rule(store):
    patreon = FakePatreon({M1: resource(M1, "2"), M2: resource(M2, "3", status="declined_patron")})
    run(store, sync_of(store, patreon))
    all_tiers, benefits = tiers.all_tiers(store), tiers.all_benefits(store)
    (entry,) = answers.entitlements(
        members.of_user(store, "2"), all_tiers, benefits, now=NOW, grace=timedelta(0)
    )
    assert entry["active"] and entry["tiers"] == [{"id": "3001", "title": "Supporter"}]
    assert entry["benefits"] == [{"id": "4001", "title": "Discord"}]

    def decide(user, **query):
        return answers.access(
            Query(**query), members.of_user(store, user), all_tiers, synced=True, now=NOW, grace=timedelta(0)
        ).reason

    assert decide("2", tier_id="3001") == Reason.ACTIVE_TIER
    assert decide("2", tier_id="3002") == Reason.BELOW_TIER
    assert decide("2", benefit_id="4001") == Reason.ACTIVE_TIER
    assert decide("3", tier_id="3001") == Reason.DECLINED
    assert decide("4", tier_id="3001") == Reason.NOT_A_MEMBER
    # Within a grace period a declined patron (last charge 2026-05-01) keeps access.
    grace = answers.access(
        Query(tier_id="3001"),
        members.of_user(store, "3"),
        all_tiers,
        synced=True,
        now=datetime(2026, 5, 2, tzinfo=UTC),
        grace=timedelta(days=3),
    )
    assert grace.allowed


def test_a_refresh_backlog_becomes_one_full_sync_that_clears_it(store, monkeypatch):
    from worker import member_refresh as refresh_module

    monkeypatch.setattr(refresh_module, "BACKLOG_FOR_SYNC", 2)
    people = {m: resource(m, str(n)) for n, m in enumerate((M1, M2, M3), start=2)}
    patreon = FakePatreon(people)
    sync = sync_of(store, patreon)
    run(store, sync)
    for m in (M1, M2, M3):
        consume(store, deliver(store, "members:pledge:update", member_document(m, user_id="2")))
    for e in webhook_events.since(store, 0, 100):
        webhook_events.mark_processed(store, [e.id])
    requested: list[str] = []
    worker = MemberRefresher(
        store,
        PatreonReader(patreon),
        MemberWriter(timedelta(0)),
        clock=lambda: 10**10,
        request_sync=lambda reason: requested.append(reason) or sync.request(reason),
    )
    reads_before = sum(1 for c in patreon.calls if c.startswith("/members/"))
    assert worker.run_once() == 0 and requested == ["refresh backlog"]
    assert sync.run_due().error is None
    assert member_refresh.pending(store) == 0
    assert sum(1 for c in patreon.calls if c.startswith("/members/")) == reads_before  # no single reads


def test_a_failed_first_sync_is_retried_soon_even_with_the_schedule_off(store):
    patreon = FakePatreon({M1: resource(M1, "2")})
    patreon.fail = UpstreamError("Patreon answered 503")
    clock = [datetime.now(UTC).timestamp()]
    sync = MemberSync(
        store, patreon, MemberWriter(timedelta(0)), interval_s=0, clock=lambda: clock[0], sleep=lambda s: None
    )
    sync.request("initial")
    assert sync.run_due().error is not None
    assert sync.run_due() is None  # not at once
    clock[0] += 61
    patreon.fail = None
    assert sync.run_due().error is None and member_sync.synced(store)
    clock[0] += 10**6
    assert sync.run_due() is None  # the schedule is off once a sync has finished


def test_a_refused_request_is_not_retried_by_the_sync(store):
    patreon = FakePatreon({M1: resource(M1, "2")})
    patreon.fail = ActionError("PATREON_FORBIDDEN", "needs campaigns.members", status=403)
    failed = run(store, sync_of(store, patreon))
    assert failed.error and len(patreon.calls) == 1
