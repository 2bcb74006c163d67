"""The event log in a temporary SQLite store: accept/dedupe, ordered reads, and the
worker's at-least-once consumption."""

from __future__ import annotations

import json

import sqlalchemy

from store import member_refresh, webhook_events
from store.database import Store
from tests.webhook_deliveries import encode, member_document
from worker import event_consumer
from worker.event_consumer import EventConsumer


def accept(store, event="members:update", **kw):
    return webhook_events.accept(store, event, encode(member_document(**kw)))


def test_accept_returns_sequence_ids_and_dedupes(store):
    body = encode(member_document("m-1"))
    other = encode(member_document("m-2"))
    assert webhook_events.accept(store, "members:create", body) == (1, False)
    assert webhook_events.accept(store, "members:create", other) == (2, False)
    assert webhook_events.accept(store, "members:create", body) == (1, True)
    assert webhook_events.latest_id(store) == 2
    assert webhook_events.counts(store) == {"total": 2, "unprocessed": 2, "failed": 0}


def test_the_same_body_under_another_trigger_is_not_stored_again(store):
    # Issue 16, finding 1: the signature covers only the body, so a captured delivery
    # replayed with another X-Patreon-Event is the same delivery.
    body = encode(member_document("m-1", patron_status="active_patron"))
    assert webhook_events.accept(store, "members:pledge:create", body) == (1, False)
    assert webhook_events.accept(store, "members:pledge:delete", body) == (1, True)
    assert webhook_events.counts(store)["total"] == 1
    assert webhook_events.get(store, 1).event == "members:pledge:create"


def test_rows_keyed_the_old_way_still_dedupe_under_any_trigger(store):
    body = encode(member_document("m-1"))
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO webhook_events (event, body, dedupe_key, received_at) VALUES (:e, :b, :k, 'then')",
            {"e": "members:create", "b": body, "k": webhook_events.legacy_dedupe_key("members:create", body)},
        )
    assert webhook_events.accept(store, "members:create", body) == (1, True)
    assert webhook_events.accept(store, "members:delete", body) == (1, True)
    assert webhook_events.counts(store)["total"] == 1


def test_the_dedupe_key_is_the_hash_of_the_raw_bytes_alone():
    body = encode(member_document())
    assert webhook_events.dedupe_key(body) == webhook_events.dedupe_key(body)
    assert webhook_events.dedupe_key(body) != webhook_events.dedupe_key(body + b" ")
    assert webhook_events.legacy_dedupe_key("members:create", body) != webhook_events.dedupe_key(body)


def test_accept_is_committed_when_it_returns(store, tmp_path):
    accept(store)
    other = Store(store.url)  # another connection, as another process would have
    assert webhook_events.latest_id(other) == 1


def test_since_reads_in_order_with_limit_and_campaign_filter(store):
    for n in range(1, 7):
        accept(store, member_id=f"m-{n}", campaign_id="1001" if n % 2 else "2002")
    assert [e.id for e in webhook_events.since(store, 0, 100)] == [1, 2, 3, 4, 5, 6]
    assert [e.id for e in webhook_events.since(store, 2, 3)] == [3, 4, 5]
    assert [e.id for e in webhook_events.since(store, 0, 100, campaign_ids={"2002"})] == [2, 4, 6]
    assert [e.id for e in webhook_events.since(store, 0, 100, campaign_ids={"1001", "2002"})] == [
        1,
        2,
        3,
        4,
        5,
        6,
    ]
    assert webhook_events.since(store, 0, 100, campaign_ids=set()) == []
    assert webhook_events.since(store, 6, 100) == []


def test_message_has_the_documented_shape(store):
    body = encode(member_document("m-1"))
    webhook_events.accept(store, "members:pledge:create", body, now="2026-05-01T00:00:00.000Z")
    (event,) = webhook_events.since(store, 0, 1)
    assert event.body == body
    assert event.message() == {
        "id": 1,
        "type": "members:pledge:create",
        "data": json.loads(body)["data"],
        "included": json.loads(body)["included"],
        "receivedAt": "2026-05-01T00:00:00.000Z",
    }


def test_claim_counts_an_attempt_and_mark_processed_finishes(store):
    accept(store, member_id="m-1")
    accept(store, member_id="m-2")
    claimed = webhook_events.claim_unprocessed(store, 10)
    assert [(e.id, e.attempts) for e in claimed] == [(1, 1), (2, 1)]
    webhook_events.mark_processed(store, [1])
    assert [e.id for e in webhook_events.claim_unprocessed(store, 10)] == [2]
    assert webhook_events.get(store, 2).attempts == 2
    assert webhook_events.get(store, 1).processed_at is not None


def test_a_failing_event_is_retried_then_set_aside(store):
    accept(store)
    for attempt in range(1, webhook_events.MAX_ATTEMPTS + 1):
        (event,) = webhook_events.claim_unprocessed(store, 10)
        assert event.attempts == attempt
        gave_up = webhook_events.record_failure(store, event.id, "Boom: broken")
        assert gave_up is (attempt == webhook_events.MAX_ATTEMPTS)
    assert webhook_events.claim_unprocessed(store, 10) == []
    stored = webhook_events.get(store, 1)
    assert stored.last_error == "Boom: broken" and stored.processed_at is not None
    assert webhook_events.counts(store) == {"total": 1, "unprocessed": 0, "failed": 1}


M1 = "0b3f7a4e-1111-4c2a-9d7e-000000000001"
M_GOOD = "0b3f7a4e-1111-4c2a-9d7e-000000000002"
M_BAD = "0b3f7a4e-1111-4c2a-9d7e-000000000003"


def test_consumer_queues_member_refreshes_and_marks_events_processed(store):
    accept(store, "members:create", member_id=M1, patron_status=None, cents=0, tier_ids=())
    accept(store, "members:pledge:create", member_id=M1, cents=500)
    accept(store, "posts:publish", member_id="post-not-member")
    consumer = EventConsumer(store, batch_size=2)
    assert consumer.run_once() == 2
    assert consumer.run_once() == 1
    assert consumer.run_once() == 0
    # One refresh of the member, for the newest of its deliveries; nothing for the post.
    assert [(w.member_id, w.event_id) for w in member_refresh.due(store, float("inf"), 10)] == [(M1, 2)]
    assert webhook_events.counts(store) == {"total": 3, "unprocessed": 0, "failed": 0}
    # Revision 0003 (legacy migration 210) dropped the retired table.
    assert "member_state" not in sqlalchemy.inspect(store.engine).get_table_names()


def test_consumer_records_a_failing_event_and_goes_on(store, caplog, monkeypatch):
    webhook_events.accept(store, "members:update", encode(member_document(M_BAD)))
    accept(store, member_id=M_GOOD)
    real_note_in = event_consumer.member_refresh.note_in

    def note_in(conn, event, now):
        if event.document()["data"]["id"] == M_BAD:
            raise ValueError("the refresh queue refused it")
        return real_note_in(conn, event, now)

    monkeypatch.setattr(event_consumer.member_refresh, "note_in", note_in)
    consumer = EventConsumer(store)
    for _ in range(webhook_events.MAX_ATTEMPTS):
        consumer.run_once()
    assert [w.member_id for w in member_refresh.due(store, float("inf"), 10)] == [M_GOOD]
    failed = webhook_events.get(store, 1)
    assert failed.attempts == webhook_events.MAX_ATTEMPTS and failed.processed_at is not None
    assert "ValueError: the refresh queue refused it" in failed.last_error
    assert "set aside" in caplog.text
    assert consumer.run_once() == 0


def test_consumer_thread_starts_and_stops(store):
    accept(store)
    consumer = EventConsumer(store, poll_interval_s=0.01)
    consumer.start()
    consumer.stop()
    consumer.join(5)
    assert not consumer._thread.is_alive()
