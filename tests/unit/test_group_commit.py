"""Group commit (store.group_commit), the write budget of store.database, and the
cached secrets read (store.generations): real SQLite files, a foreign connection
standing in for another process's lock. No timing is asserted."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from store import group_commit, webhook_events, webhook_secrets
from store.database import Connection, Store, StoreUnavailable, _statements
from store.generations import CachedRead, generation
from tests.webhook_deliveries import encode, member_document


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "bridge.sqlite3", write_timeout_s=0.2)
    s.migrate()
    return s


def foreign_lock(store: Store) -> sqlite3.Connection:
    """Another connection holding a write transaction, as another process would."""
    conn = sqlite3.connect(store.path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO webhook_secrets VALUES ('foreign', 'x', 0)")
    return conn


def count(store: Store) -> int:
    with store.read() as conn:
        return conn.execute("SELECT COUNT(*) AS n FROM webhook_events").fetchone()["n"]


def test_concurrent_deliveries_share_transactions_and_each_gets_its_own_id(store: Store, monkeypatch):
    rounds = []
    real = Store.transaction

    def counting(self, *a, **kw):
        rounds.append(1)
        return real(self, *a, **kw)

    monkeypatch.setattr(Store, "transaction", counting)
    group_commit.for_store(store).max_waiting = 16
    start = threading.Barrier(16)
    answers: dict[int, tuple[int, bool]] = {}

    def deliver(n: int) -> None:
        start.wait()
        for k in range(10):
            raw = encode(member_document(f"m-{n}-{k}"))
            answers[n * 100 + k] = webhook_events.accept(store, "members:create", raw)

    threads = [threading.Thread(target=deliver, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [event_id for event_id, duplicate in answers.values()]
    assert len(set(ids)) == len(ids) == 160 == count(store)
    assert not any(duplicate for _id, duplicate in answers.values())
    # Every answered id holds the body that was sent for it.
    for key, (event_id, _dup) in answers.items():
        assert webhook_events.get(store, event_id).body == encode(
            member_document(f"m-{key // 100}-{key % 100}")
        )
    assert len(rounds) <= 160  # never more transactions than writes (usually far fewer)


def test_a_duplicate_in_the_same_round_is_stored_once(store: Store):
    raw = encode(member_document("dup"))
    start = threading.Barrier(8)
    answers = []

    def deliver() -> None:
        start.wait()
        answers.append(webhook_events.accept(store, "members:create", raw))

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert count(store) == 1
    assert len({event_id for event_id, _ in answers}) == 1
    assert sorted(dup for _, dup in answers) == [False] + [True] * 7


def test_a_failing_write_rolls_back_only_itself(store: Store):
    committer = group_commit.for_store(store)

    def bad(conn: Connection) -> None:
        conn.execute("INSERT INTO webhook_secrets VALUES ('w1', 's1', 0)")
        raise ValueError("no")

    with pytest.raises(ValueError):
        committer.run(bad)
    assert committer.run(lambda conn: conn.execute("SELECT COUNT(*) AS n FROM webhook_secrets").fetchone()["n"]) == 0
    assert webhook_events.accept(store, "members:create", encode(member_document("ok")))[1] is False


def test_a_foreign_lock_fails_the_write_with_nothing_stored_then_fails_fast(store: Store):
    now = [100.0]
    committer = group_commit.GroupCommit(store, clock=lambda: now[0])
    lock = foreign_lock(store)
    try:
        with pytest.raises(group_commit.StoreBusy):
            committer.run(lambda conn: conn.execute("INSERT INTO webhook_secrets VALUES ('a', 'b', 0)"))
        # Within FAIL_FAST_S, the next write does not even try.
        tried = []
        with pytest.raises(group_commit.StoreBusy):
            committer.run(lambda conn: tried.append(1))
        assert tried == []
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    now[0] += group_commit.FAIL_FAST_S
    assert committer.run(lambda conn: conn.execute("SELECT COUNT(*) AS n FROM webhook_secrets").fetchone()["n"]) == 0


def test_a_foreign_lock_fails_every_concurrent_writer_and_none_is_half_stored(store: Store):
    lock = foreign_lock(store)
    errors, stored = [], []
    start = threading.Barrier(12)

    def deliver(n: int) -> None:
        start.wait()
        try:
            stored.append(webhook_events.accept(store, "members:create", encode(member_document(f"l-{n}"))))
        except StoreUnavailable as ex:
            errors.append(ex)

    threads = [threading.Thread(target=deliver, args=(n,)) for n in range(12)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert len(errors) == 12 and stored == []
    assert count(store) == 0


def test_the_write_budget_covers_the_process_lock_too(store: Store):
    other = Store(store.path, write_timeout_s=0.05)  # same file: same process lock
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store.transaction():
            entered.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    entered.wait(10)
    try:
        with pytest.raises(StoreUnavailable, match="locked"):
            with other.transaction():
                pass
    finally:
        release.set()
        holder.join()
    with other.transaction() as conn:
        conn.execute("SELECT 1")


def test_stored_secrets_are_cached_until_any_connection_changes_them(store: Store):
    reads = []

    def read(s: Store) -> list[str]:
        reads.append(1)
        return webhook_secrets.all_secrets(s)

    cached = CachedRead(store, "webhook_secrets", read)
    assert cached() == [] and cached() == [] and len(reads) == 1
    elsewhere = Store(store.path)  # stands in for the worker's process: its own connection
    before = generation(store, "webhook_secrets")
    webhook_secrets.save(elsewhere, "w1", "secret-one", now=1)
    assert generation(store, "webhook_secrets") == before + 1
    assert cached() == ["secret-one"] and len(reads) == 2
    webhook_secrets.save(elsewhere, "w1", "secret-two", now=2)  # INSERT OR REPLACE: a rotation
    assert cached() == ["secret-two"]
    webhook_secrets.delete(elsewhere, "w1")
    assert cached() == [] and cached() == [] and len(reads) == 4


def test_migration_statements_keep_trigger_bodies_whole():
    sql = """
    CREATE TABLE t (a);
    CREATE TRIGGER tr AFTER INSERT ON t BEGIN
        UPDATE t SET a = 1; UPDATE t SET a = 2;
    END;
    INSERT INTO t VALUES (';');
    """
    statements = [s.strip() for s in _statements(sql)]
    assert len(statements) == 3
    assert statements[1].startswith("CREATE TRIGGER") and statements[1].endswith("END;")
    assert statements[2] == "INSERT INTO t VALUES (';');"


def test_no_more_than_max_waiting_writes_wait(store: Store):
    committer = group_commit.GroupCommit(store, max_waiting=2)
    inside, release = threading.Event(), threading.Event()

    def slow(conn: Connection) -> int:
        inside.set()
        release.wait(10)
        return 1

    results = []
    first = threading.Thread(target=lambda: results.append(committer.run(slow)))
    first.start()
    inside.wait(10)
    second = threading.Thread(target=lambda: results.append(committer.run(lambda conn: 2)))
    second.start()
    while committer._waiting < 2:
        threading.Event().wait(0.001)
    with pytest.raises(group_commit.StoreBusy, match="waiting"):
        committer.run(lambda conn: 3)
    release.set()
    first.join()
    second.join()
    assert sorted(results) == [1, 2]


def test_a_store_without_auto_checkpoint_leaves_the_wal_to_others(tmp_path: Path):
    web = Store(tmp_path / "b.sqlite3", auto_checkpoint=False)
    web.migrate()
    with web.read() as conn:
        assert conn.execute("PRAGMA wal_autocheckpoint").scalar() == 0
    worker = Store(tmp_path / "b.sqlite3")
    with worker.read() as conn:
        assert conn.execute("PRAGMA wal_autocheckpoint").scalar() == 1000
