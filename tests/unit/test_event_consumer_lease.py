"""Two workers' event consumers on one store (worker.event_consumer with holders):
only the lease holder applies events, and a holder that stalled past its lease does
not apply its batch a second time after a peer took over."""

from __future__ import annotations

from store import leases, webhook_events
from tests.webhook_deliveries import encode, member_document
from worker.event_consumer import LEASE_TTL_S, EventConsumer

MEMBER = "0b3f7a4e-1111-4c2a-9d7e-000000000002"


def unprocessed(store) -> int:
    with store.read() as conn:
        return conn.execute("SELECT count(*) AS n FROM webhook_events WHERE processed_at IS NULL").fetchone()["n"]


def test_only_the_lease_holder_consumes(store):
    webhook_events.accept(store, "members:create", encode(member_document(MEMBER)))
    a = EventConsumer(store, holder="host/worker_00/x")
    b = EventConsumer(store, holder="host/worker_01/x")
    assert a.run_once() == 1
    webhook_events.accept(store, "members:update", encode(member_document(MEMBER, cents=900)))
    assert b.run_once() == 0 and unprocessed(store) == 1  # a holds the event log
    assert a.run_once() == 1 and unprocessed(store) == 0


def test_a_holder_whose_lease_was_taken_over_rolls_its_batch_back(store, monkeypatch):
    webhook_events.accept(store, "members:create", encode(member_document(MEMBER)))
    a = EventConsumer(store, holder="host/worker_00/x")
    assert a._hold_lease()
    # a stalls (SIGSTOP) past its lease; b takes the log over meanwhile.
    with store.transaction() as conn:
        conn.execute("UPDATE leases SET expires_at = 0 WHERE name = 'event-consumer'")
    b = EventConsumer(store, holder="host/worker_01/x")
    assert b._hold_lease()
    monkeypatch.setattr(a, "_hold_lease", lambda: True)  # a resumes mid-batch, unaware
    assert a.run_once() == 0 and unprocessed(store) == 1  # fenced: nothing applied by a
    assert b.run_once() == 1 and unprocessed(store) == 0
    assert leases.get(store, "event-consumer").holder == "host/worker_01/x"
    assert LEASE_TTL_S > 0
